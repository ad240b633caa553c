"""What every adapter shares: opening memories, optional imports, tracking added messages.

Bad input is handled the same way in every adapter, by the core: a tool result whose call
was never issued (a tool message first, say) is refused with ``InputError`` naming the
message; a tool call still unanswered when the next user turn comes is stored but left out
of every prompt until its results arrive (``report.pending_tool_calls``), since providers
reject an unanswered call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Unpack, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from memory._budget import as_budget
from memory._core import ConversationMemory
from memory._engine import Engine
from memory._errors import ConfigError, MissingDependencyError, did_you_mean
from memory._options import OpenOptions
from memory._tokens import TokenCounter
from memory.tool import answer_room

__all__ = [
    "AGENTS_EXTRA",
    "CLASSIC_EXTRA",
    "AddedMessages",
    "MemoryOpener",
    "MessagesCounter",
    "as_counter",
    "fingerprint",
    "recall_tokens",
    "require",
    "split_system",
]

AGENTS_EXTRA = "context-attic[agents]"
CLASSIC_EXTRA = "context-attic[classic]"


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it.

    Raises:
        MissingDependencyError: ``module`` cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install '{extra}'"
        ) from exc


CounterLike = TokenCounter | BaseChatModel | Callable[[str], int]
MessagesCounterFn = Callable[[Sequence[BaseMessage]], int]


def check_options(options: Iterable[str], *, takes: Iterable[str] = ()) -> None:
    """Refuse a keyword ``Engine.open`` does not take (nor ``takes``), naming the closest.

    Raises:
        ConfigError: an unknown keyword (a typo such as ``budgt`` would otherwise fail
            at the first request, or be ignored).
    """
    known = {*OpenOptions.__required_keys__, *OpenOptions.__optional_keys__, *takes}
    for name in options:
        if name not in known:
            hint = did_you_mean(name, known)
            hint = f"{hint} " if hint else ""
            raise ConfigError(f"unknown option {name!r}; {hint}known: {', '.join(sorted(known))}")


class MemoryOpener:
    """Open the memory of any session with one set of options (those of ``Engine.open``).

    Args:
        path: Where the memories live when no ``engine`` is given: the process's shared
            engine for it is used (``":memory:"``: one private store per session).
        engine: An engine the application owns; handles are opened from it.
        options: ``Engine.open``'s options.
    """

    def __init__(
        self,
        *,
        path: str | Path = ":memory:",
        engine: Engine | None = None,
        **options: Unpack[OpenOptions],
    ) -> None:
        """Check the options now, at start-up, not at the first request.

        Raises:
            ConfigError: an option ``Engine.open`` does not take, a bad budget, or a
                ``path`` whose folder does not exist.
        """
        check_options(options)
        if "budget" in options:
            as_budget(options["budget"])
        local = engine is None and str(path) != ":memory:" and "://" not in str(path)
        if local and not Path(path).expanduser().resolve().parent.is_dir():
            raise ConfigError(f"no folder for the store {str(path)!r}: create it first")
        self.path = path
        self.engine = engine
        self.options = options
        self.summarizer = options.get("summarizer")

    def open(self, session: str) -> ConversationMemory:
        """Open the memory of ``session``.

        Raises:
            InputError: ``session`` is not a valid session id.
            ConfigError: a bad option.
        """
        if self.engine is not None:
            return self.engine.open(session=session, **self.options)
        return ConversationMemory.open(self.path, session=session, **self.options)


def recall_tokens(memory: ConversationMemory, requested: int, answers: int = 1) -> int:
    """Cap a recall so its answer is read as it is and fits the prompt beside the
    ``answers`` asked for in the same round (``memory.tool.answer_room``)."""
    return answer_room(
        requested,
        compress_threshold=memory.compress_threshold,
        prompt_tokens=memory.budget.prompt_tokens,
        answers=answers,
    )


class MessagesCounter:
    """A ``TokenCounter`` over a LangChain ``messages -> int`` counter.

    ``SummarizationMiddleware`` takes counters of that shape (``count_tokens_approximately``).
    """

    def __init__(self, count: MessagesCounterFn) -> None:
        self._count = count
        self._name = f"messages-callable:{getattr(count, '__qualname__', 'callable')}"

    @property
    def name(self) -> str:
        """Identify the wrapped callable."""
        return self._name

    @property
    def reply_priming(self) -> int:
        """No extra per-prompt tokens are assumed."""
        return 0

    def count(self, text: str) -> int:
        """Count text as the content of one user message."""
        return int(self._count([HumanMessage(text)]))

    def count_message(self, message: BaseMessage) -> int:
        """Count one message."""
        return int(self._count([message]))

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Count a prompt as the sum of its messages."""
        return sum(self.count_message(m) for m in messages)


def _counts_messages(fn: Callable[..., Any]) -> bool:
    """Tell a LangChain ``messages -> int`` counter from a ``str -> int`` one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if fn is count_tokens_approximately:
        return True
    try:
        first = next(iter(inspect.signature(fn).parameters.values()), None)
    except (TypeError, ValueError):
        return False
    annotation = str(first.annotation) if first is not None else ""
    return any(word in annotation for word in ("Message", "Iterable", "Sequence", "list"))


def as_counter(token_counter: CounterLike | MessagesCounterFn | None) -> CounterLike | None:
    """Wrap a LangChain ``messages -> int`` counter; pass other counters through."""
    if (
        callable(token_counter)
        and not isinstance(token_counter, BaseChatModel)
        and not hasattr(token_counter, "count_messages")
        and _counts_messages(token_counter)
    ):
        return MessagesCounter(cast(MessagesCounterFn, token_counter))
    return cast(CounterLike | None, token_counter)


def fingerprint(message: BaseMessage) -> str:
    """Identify a message by what a prompt would carry (not by its id or metadata)."""
    calls = [(c.get("id"), c.get("name")) for c in getattr(message, "tool_calls", [])]
    call_id = message.tool_call_id if isinstance(message, ToolMessage) else None
    return json.dumps([message.type, message.content, call_id, calls], default=str)


class AddedMessages:
    """Remember which messages of a growing list are already in a memory.

    A message counts as added if its id was added before, or if it matches, by content,
    the stored message at the same position (a client that re-sends the whole history
    without ids). So re-sending a conversation never stores a message twice.
    """

    def __init__(self, history: Iterable[BaseMessage] = ()) -> None:
        self._ids: dict[str, None] = {}
        self._prints: list[str] = []
        self.note(history)

    def note(self, messages: Iterable[BaseMessage]) -> None:
        """Record messages as stored, in order."""
        for message in messages:
            if message.id:
                self._ids[message.id] = None
            self._prints.append(fingerprint(message))

    @property
    def ids(self) -> list[str]:
        """Ids of the stored messages that have one, in the order they were added."""
        return list(self._ids)

    def new(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Return the messages not stored yet, in order."""
        fresh = []
        for position, message in enumerate(messages):
            if message.id and message.id in self._ids:
                continue
            if position < len(self._prints) and self._prints[position] == fingerprint(message):
                continue
            fresh.append(message)
        return fresh

    def unseen(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Return the messages whose ids were never added (for messages that come next)."""
        return [m for m in messages if not (m.id and m.id in self._ids)]


def split_system(messages: Sequence[BaseMessage]) -> tuple[list[str], list[BaseMessage]]:
    """Separate system messages (instructions, always sent) from the conversation."""
    system = [str(m.text) for m in messages if isinstance(m, SystemMessage)]
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    return system, rest
