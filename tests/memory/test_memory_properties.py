"""The prompt guarantees, checked on the memory's own path with hypothesis state machines.

Random chats and agent runs (parallel tool calls answered out of order, outputs above and
below the archive threshold, long user messages, summaries folding in the background)
go through ``ConversationMemory.add`` and ``assemble``; after every call: never over
budget, pairs intact, valid for every provider, the current user turn present, the
latest exchange present whenever it fits, nothing both verbatim and recalled, and
between two folds each prompt minus its volatile part is a prefix of the next one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from prompt_checks import assert_pairs_intact, assert_valid_for_providers, texts

from memory import ConversationMemory, Prompt

SYSTEM = "You are a careful assistant."
VOCABULARY = "alice bob lyon paris box order invoice 42 2024 quota disk parser test the a of"
WORDS = st.lists(st.sampled_from(VOCABULARY.split()), min_size=1, max_size=60).map(" ".join)


def _call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "run", "arguments": "{}"}}


class MemoryMachine(RuleBasedStateMachine):
    """A conversation fed message by message, a prompt assembled after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.mem: ConversationMemory | None = None
        self.pending: list[str] = []
        self.calls = 0
        self.previous: Prompt | None = None
        self.last_user: str | None = None
        self.after_lookup = False
        self.clock = 1_683_540_000.0  # 2023-05-08: messages carry times; days pass

    @initialize(budget=st.integers(300, 1500))
    def open_memory(self, budget: int) -> None:
        self.mem = ConversationMemory.open(
            ":memory:",
            session="s",
            budget=budget,
            embedder=DeterministicFakeEmbedding(size=16),
            compress_threshold=300,
        )

    @property
    def memory(self) -> ConversationMemory:
        assert self.mem is not None
        return self.mem

    @precondition(lambda self: not self.pending)
    @rule(text=WORDS, long=st.booleans(), days=st.sampled_from([0, 0, 1, 3]))
    def user_says(self, text: str, long: bool, days: int) -> None:
        text = text * 8 if long else text
        self.clock += days * 86_400 + 60  # a turn on a new day is sent with its date
        self.memory.add({"role": "user", "content": text}, timestamp=self.clock)
        self.last_user = text

    @precondition(lambda self: not self.pending)
    @rule(text=WORDS)
    def assistant_says(self, text: str) -> None:
        self.memory.add({"role": "assistant", "content": text})

    @precondition(lambda self: not self.pending)
    @rule(count=st.integers(1, 4))
    def assistant_calls_tools(self, count: int) -> None:
        ids = [f"c{self.calls + i}" for i in range(count)]
        self.calls += count
        calls = [_call(i) for i in ids]
        self.memory.add({"role": "assistant", "content": "", "tool_calls": calls})
        self.pending = ids

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), text=WORDS, big=st.booleans())
    def a_tool_answers(self, data: st.DataObject, text: str, big: bool) -> None:
        call_id = data.draw(st.sampled_from(self.pending))  # in any order
        self.pending.remove(call_id)
        content = "\n".join(f"{n}: {text}" for n in range(40)) if big else text
        self.memory.add({"role": "tool", "tool_call_id": call_id, "content": content})

    @rule()
    def summaries_catch_up(self) -> None:
        self.memory.wait_for_summary(10)

    @precondition(lambda self: not self.pending)
    @rule(lookup=st.booleans(), about=st.sampled_from([None, "Which box order went to Lyon?"]))
    def assemble(self, lookup: bool, about: str | None) -> None:
        # ``about``: the user's new text, not stored yet (a chat history read first).
        try:
            prompt = self.memory.assemble(
                system=SYSTEM, query="box order" if lookup else None, about=about
            )
        except Exception as error:  # only a pinned turn too big for the budget is allowed
            assert type(error).__name__ == "BudgetError", error
            return
        check_prompt(prompt, self.memory, self.last_user)
        if lookup:  # a one-off question about the past: the ledger compares with it
            self.after_lookup = True
        else:
            self.check_cache_stability(prompt)
            self.after_lookup = False

    def check_cache_stability(self, prompt: Prompt) -> None:
        previous, self.previous = self.previous, prompt
        if previous is None:
            return
        same_fold = (previous.report.window_start_seq, previous.report.summary_covers_upto) == (
            prompt.report.window_start_seq,
            prompt.report.summary_covers_upto,
        )
        # A task pinned before the window (an agent's tool rounds) leaves the prompt when
        # the user speaks again: like a fold, that changes the prefix once.
        pinned = previous.report.current_turn_seq or 0
        if pinned < (previous.report.window_start_seq or 0):
            same_fold = same_fold and prompt.report.current_turn_seq == pinned
        event("same fold" if same_fold else "folded")
        if prompt.report.recalled_included:
            event("recalled")
        if same_fold:
            stable = list(previous.messages[: previous.stable_count])
            assert list(prompt.messages[: len(stable)]) == stable, "prefix changed between folds"
            if not self.after_lookup:
                assert prompt.report.shared_tokens >= previous.report.stable_tokens

    def teardown(self) -> None:
        if self.mem is not None:
            self.mem.close()


def check_prompt(prompt: Prompt, memory: ConversationMemory, last_user: str | None) -> None:
    """Every guarantee a prompt assembled by the memory must keep."""
    messages: Sequence[BaseMessage] = prompt.messages
    assert prompt.tokens <= prompt.report.budget
    assert prompt.tokens == memory.counter.count_messages(list(messages))
    assert_pairs_intact(messages)
    assert_valid_for_providers(messages)
    assert isinstance(messages[0], SystemMessage) and messages[0].content == SYSTEM
    assert sum(isinstance(m, SystemMessage) for m in messages) == 1
    sent = [t for m in messages for t in texts(m)]
    if last_user is not None:
        dated = re.compile(r"(\[\d{4}-\d\d-\d\d\] )?" + re.escape(last_user))
        assert any(dated.fullmatch(t) for t in sent), "the current user turn is missing"
    verbatim = _verbatim_seqs(prompt, memory)
    assert not verbatim & set(prompt.report.recalled_turns), "both verbatim and recalled"
    assert prompt.report.turns_kept + prompt.report.turns_omitted == prompt.report.turns_total
    history = memory.history()
    latest = history[-1] if history else None
    if isinstance(latest, AIMessage) and not latest.tool_calls:
        pinned = memory.counter.count_messages(
            [SystemMessage(SYSTEM), HumanMessage(last_user or "")]
        )
        if pinned + memory.counter.count_message(latest) + 60 <= prompt.report.budget:
            assert latest.content in sent, "the latest exchange is missing although it fits"


def _verbatim_seqs(prompt: Prompt, memory: ConversationMemory) -> set[int]:
    history = memory.history()
    first = prompt.report.window_start_seq or len(history) + 1
    verbatim = set(range(first, len(history) + 1))
    if prompt.report.current_turn_seq is not None:
        verbatim.add(prompt.report.current_turn_seq)
    return verbatim


MemoryMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ATTIC_STATEFUL_EXAMPLES", "30")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMemoryGuarantees = MemoryMachine.TestCase
