"""The four ways ``cost.py`` builds a prompt, and the data it replays.

Each strategy is fed the messages (OpenAI chat dicts) that arrived since the previous
model call and returns what the next call sends, as token segments (``cache_cost``), with
the tokens its summarizer spent meanwhile. Every prompt goes through
``convert_to_openai_messages`` before it is tokenized, so all four are billed alike.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cache_cost import Segment, Tokenizer
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    convert_to_openai_messages,
    trim_messages,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from memory import BudgetError, ConversationMemory
from memory._context import CONVERSATION_START

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langchain.agents.middleware.summarization import SummarizationMiddleware

MODEL = "gpt-4o-mini"
SUMMARY_SHARE = 0.15
"""The fake summarizer's fixed summary size, as a share of the budget (our summary cap)."""
LOCOMO_SYSTEM = "You are a friendly assistant who remembers the user's life."
Chat = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Sent:
    """What one model call sends, and what its summarizer spent since the last call."""

    segments: list[Segment]
    summarizer_in: int = 0
    summarizer_out: int = 0
    refused: bool = False


# --- data ------------------------------------------------------------------------------------


def locomo_chat(sample: dict[str, Any]) -> tuple[Chat, dict[str, str]]:
    """Return a LoCoMo conversation as a plain chat, and each turn's text by dia_id.

    Speaker A is the user, speaker B the assistant; each message's text starts with its
    speaker's name, and the first of a session with the session's date, as plain text.
    """
    conversation = sample["conversation"]
    numbers = sorted(
        int(key.split("_")[1])
        for key, value in conversation.items()
        if key.startswith("session_") and not key.endswith("date_time") and isinstance(value, list)
    )
    chat: Chat = []
    texts: dict[str, str] = {}
    for number in numbers:
        when = conversation.get(f"session_{number}_date_time", "")
        for position, turn in enumerate(conversation[f"session_{number}"]):
            text = str(turn["text"])
            if turn.get("blip_caption"):
                text += f" [shares an image: {turn['blip_caption']}]"
            texts[turn["dia_id"]] = text
            line = f"{turn['speaker']}: {text}"
            if position == 0 and when:
                line = f"[{when}] {line}"
            role = "user" if turn["speaker"] == conversation["speaker_a"] else "assistant"
            chat.append({"role": role, "content": line})
    return chat, texts


def swe_transcripts(path: Path, limit: int | None) -> Iterator[tuple[str, str | None, Chat]]:
    """Yield ``(id, system prompt, messages after it)`` for each SWE-agent run."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                return
            record = json.loads(line)
            messages: Chat = record["messages"]
            system = None
            if messages and messages[0].get("role") == "system":
                system, messages = str(messages[0]["content"]), messages[1:]
            yield str(record["id"]), system, messages


def call_points(chat: Chat) -> list[int]:
    """Return the index of every assistant message: a model call is made before each."""
    return [i for i, m in enumerate(chat) if m.get("role") == "assistant" and i > 0]


# --- shared pieces ---------------------------------------------------------------------------


class Counter:
    """Count LangChain messages as ``cache_cost`` bills them (o200k, markers, priming)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._by_id: dict[int, tuple[BaseMessage, int]] = {}

    def message(self, message: BaseMessage) -> int:
        """Count one message (memoized per object)."""
        found = self._by_id.get(id(message))
        if found is not None and found[0] is message:
            return found[1]
        tokens = len(self.tokenizer.segment(convert_to_openai_messages([message])[0]))
        self._by_id[id(message)] = (message, tokens)
        return tokens

    def __call__(self, messages: Iterable[Any]) -> int:
        """Count a prompt (LangChain's ``token_counter`` signature)."""
        found = convert_to_messages(list(messages))
        return len(self.tokenizer.priming) + sum(self.message(m) for m in found)


class FixedSummaryModel(BaseChatModel):
    """A fake summarizer: a fixed-size summary of what it is shown, spend recorded.

    The answer is the fold number and the last ``summary_tokens`` tokens of its prompt,
    so each fold's summary differs (as a real one would) and has the same size.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    summary_tokens: int
    tokenizer: Any
    spent_in: int = 0
    spent_out: int = 0
    folds: int = 0

    @property
    def _llm_type(self) -> str:
        return "fixed-summary-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any
    ) -> ChatResult:
        tokenizer = cast(Tokenizer, self.tokenizer)
        text = "\n".join(m.text for m in messages)
        self.folds += 1
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        tail = tokenizer.encode(text)[-self.summary_tokens :]
        summary = f"Summary {self.folds} ({digest}): " + tokenizer.decode(tail)
        self.spent_in += tokenizer.count(convert_to_openai_messages(messages))
        self.spent_out += len(tokenizer.encode(summary))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(summary))])


class CachedEmbeddings(Embeddings):
    """Memoize an embedder (documents and queries), so each text is embedded once per run."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self._cache: dict[str, list[float]] = {}
        self._queries: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed the texts not seen before; reuse the rest."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self._cache[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query once."""
        if text not in self._queries:
            self._queries[text] = self.inner.embed_query(text)
        return self._queries[text]


def sent_text(messages: Sequence[dict[str, Any]]) -> str:
    """Return the text of a prompt, for evidence checks."""
    return "\n".join(str(m.get("content") or "") for m in messages)


# --- the four strategies ---------------------------------------------------------------------


class Raw:
    """Every message so far, no limit (segments kept incrementally).

    Made valid for every provider the cheapest way, as any app must send it: a chat that
    opens with the assistant gets one user turn before it (Anthropic answers 400 "first
    message must use the user role"), the same one context-attic sends
    (``memory._context.CONVERSATION_START``), so neither pays for validity alone.
    """

    name = "raw history"

    def __init__(self, tokenizer: Tokenizer, system: str | None) -> None:
        self.tokenizer = tokenizer
        self.history: Chat = [] if system is None else [{"role": "system", "content": system}]
        self.segments = [tokenizer.segment(m) for m in self.history]
        self.opened = False

    def call(self, new: Chat) -> Sent:
        """Append the new messages; send everything."""
        if new and not self.opened:
            self.opened = True
            if new[0].get("role") == "assistant":
                new = [{"role": "user", "content": CONVERSATION_START}, *new]
        self.history += new
        self.segments += [self.tokenizer.segment(m) for m in new]
        return Sent([*self.segments, self.tokenizer.priming])

    def recall_text(self, question: str) -> str:
        """Return what a question after the conversation would be sent with."""
        return sent_text(self.history)


class Trim:
    """langchain-core ``trim_messages(strategy="last", start_on="human")`` over the history."""

    name = "trim_messages"

    def __init__(self, counter: Counter, system: str | None, budget: int) -> None:
        self.counter = counter
        self.budget = budget
        self.history: list[BaseMessage] = [] if system is None else [SystemMessage(system)]

    def _send(self, messages: list[BaseMessage]) -> list[dict[str, Any]]:
        kept = trim_messages(
            messages,
            max_tokens=self.budget,
            token_counter=self.counter,
            strategy="last",
            start_on="human",
            include_system=True,
        )
        return convert_to_openai_messages(kept)

    def call(self, new: Sequence[BaseMessage]) -> Sent:
        """Append the new messages; send the trimmed history."""
        self.history += new
        return Sent(self.counter.tokenizer.prompt(self._send(self.history)))

    def recall_text(self, question: str) -> str:
        """Return what a question after the conversation would be sent with."""
        return sent_text(self._send([*self.history, HumanMessage(question)]))


class Middleware:
    """langchain ``SummarizationMiddleware``: ``before_model`` on the state before each call.

    ``trigger=("tokens", B - system - priming)``, ``keep=("tokens", (room - summary) // 2)``,
    the shared counter, the fake fixed-size summarizer; the system prompt is sent apart
    (as ``create_agent(system_prompt=...)`` does).
    """

    name = "SummarizationMiddleware"

    def __init__(self, counter: Counter, system: str | None, budget: int) -> None:
        self.counter = counter
        self.system: Chat = [] if system is None else [{"role": "system", "content": system}]
        room = max(1, budget - counter.tokenizer.count(self.system))
        summary = int(budget * SUMMARY_SHARE)
        self.model = FixedSummaryModel(summary_tokens=summary, tokenizer=counter.tokenizer)
        self.middleware = SummarizationMiddleware(
            model=self.model,
            trigger=("tokens", room),
            keep=("tokens", max(1, (room - summary) // 2)),
            token_counter=counter,
        )
        self.state: list[BaseMessage] = []

    def _run(self) -> None:
        update = self.middleware.before_model(cast(Any, {"messages": self.state}), cast(Any, None))
        if update is not None:
            self.state = list(update["messages"][1:])  # [RemoveMessage(REMOVE_ALL), *new]

    def call(self, new: Sequence[BaseMessage]) -> Sent:
        """Add the new messages to the state, run the hook, send system + state."""
        spent = (self.model.spent_in, self.model.spent_out)
        self.state += new
        self._run()
        messages = [*self.system, *convert_to_openai_messages(self.state)]
        return Sent(
            self.counter.tokenizer.prompt(messages),
            summarizer_in=self.model.spent_in - spent[0],
            summarizer_out=self.model.spent_out - spent[1],
        )

    def recall_text(self, question: str) -> str:
        """Return what a question after the conversation would be sent with."""
        return sent_text([*self.system, *convert_to_openai_messages(self.state)])


class Ours:
    """context-attic: ``add`` the new messages, ``assemble(system=...)``; public API only."""

    name = "context-attic"

    def __init__(
        self, tokenizer: Tokenizer, system: str | None, budget: int, session: str,
        embedder: Embeddings, summarizer: BaseChatModel | None,
    ) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.system = system
        self.raw = Raw(tokenizer, system)
        self.memory = ConversationMemory.open(
            ":memory:", session=session, budget=budget, model=MODEL, embedder=embedder,
            summarizer=summarizer,
        )  # fmt: skip
        self.spent = (0, 0)

    def settle(self) -> None:
        """Wait for background folds and indexing, so the numbers do not hang on timing."""
        self.memory.wait_for_summary(60)
        self.memory.wait_until_indexed(600)

    def call(self, new: Chat) -> Sent:
        """Add, settle, assemble; a refused call (``BudgetError``) sends the raw history."""
        raw = self.raw.call(new)
        if new:
            self.memory.add(new)
        self.settle()
        try:
            prompt = self.memory.assemble(system=self.system)
        except BudgetError:
            return Sent(raw.segments, refused=True)
        report = prompt.report
        spent = (report.summarizer_input_tokens, report.summarizer_output_tokens)
        delta = (spent[0] - self.spent[0], spent[1] - self.spent[1])
        self.spent = spent
        return Sent(self.tokenizer.prompt(prompt.to_openai()), delta[0], delta[1])

    def recall_text(self, question: str) -> str:
        """Return the prompt ``assemble(query=question)`` sends (the question not added)."""
        try:
            prompt = self.memory.assemble(system=self.system, query=question)
        except BudgetError:
            return ""
        return sent_text(prompt.to_openai())

    def close(self) -> None:
        """Close the memory."""
        self.memory.close()
