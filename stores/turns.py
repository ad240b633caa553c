"""The turn store's protocol and the records it exchanges.

Records carry messages as JSON text (LangChain's ``messages_to_dict`` form when the memory
wrote them); ``TurnOutline`` is a session's turns without that text, for opening a long
history without reading every message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

__all__ = [
    "NewTurn",
    "SessionInfo",
    "TurnOutline",
    "TurnRecord",
    "TurnStore",
    "message_fields",
]


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A message about to be stored.

    ``payload`` is the original message (JSON); ``compact`` the form sent in prompts when
    it differs (a tool output replaced by its digest); ``tokens`` counts what is sent and
    ``raw_tokens`` the original (None: the same); ``ref`` names the archived original;
    ``created_at`` is when the message was sent, in epoch seconds (None: now).
    """

    role: str
    payload: str
    tokens: int
    counter: str
    compact: str | None = None
    raw_tokens: int | None = None
    ref: str | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A stored message; ``seq`` numbers a session's messages from 1, without gaps."""

    session: str
    seq: int
    role: str
    payload: str
    tokens: int
    counter: str
    created_at: float
    compact: str | None = None
    raw_tokens: int = 0
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session and the size of its history."""

    session: str
    turns: int
    tokens: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class TurnOutline:
    """A session's turns without their messages, one column per field, in seq order.

    What grouping turns into exchanges and budgeting a prompt need, read without the
    payloads, so a long history opens in a fraction of the time and memory; the messages
    a prompt sends are fetched with ``TurnStore.read_seqs``. ``calls``, ``answers`` and
    ``names`` come from payloads in ``messages_to_dict`` form (see ``message_fields``):
    the ids of the tool calls a message issues, the call id a tool result answers, the
    message's ``name``; other payloads give ``()``, None and None. ``times`` are the
    messages' ``created_at``.
    """

    seqs: tuple[int, ...] = ()
    roles: tuple[str, ...] = ()
    tokens: tuple[int, ...] = ()
    raw_tokens: tuple[int, ...] = ()
    counters: tuple[str, ...] = ()
    refs: tuple[str | None, ...] = ()
    calls: tuple[tuple[str, ...], ...] = ()
    answers: tuple[str | None, ...] = ()
    names: tuple[str | None, ...] = ()
    times: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        lengths = {len(getattr(self, f.name)) for f in fields(self)}
        if len(lengths) > 1:
            raise ValueError(f"outline columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.seqs)


class TurnStore(Protocol):
    """Append-only history of messages, per session."""

    def append(self, session: str, turns: Sequence[NewTurn], *, after_seq: int) -> list[TurnRecord]:
        """Append turns in one transaction, all or nothing.

        Raises:
            ConflictError: the session's last seq is not ``after_seq`` (another writer
                appended first); nothing was written.
            StoreError: the backend failed; nothing was written.
        """
        ...

    def read(self, session: str, *, after_seq: int = 0) -> list[TurnRecord]:
        """Return the session's turns with ``seq > after_seq``, in order."""
        ...

    def outline(self, session: str, *, after_seq: int = 0) -> TurnOutline:
        """Return the session's turns with ``seq > after_seq`` without their payloads."""
        ...

    def read_seqs(self, session: str, seqs: Sequence[int]) -> list[TurnRecord]:
        """Return the session's turns with these seqs, in seq order (unknown ones left out)."""
        ...

    def last_seq(self, session: str) -> int:
        """Return the session's highest seq, 0 when it has none."""
        ...

    def sessions(self) -> list[SessionInfo]:
        """Return every session in the store, by name."""
        ...

    def close(self) -> None:
        """Release the backend; later calls raise ``StoreError``."""
        ...


def message_fields(payload: str) -> tuple[tuple[str, ...], str | None, str | None]:
    """Return a payload's tool call ids, the call id it answers, and its name.

    Reads ``{"type": ..., "data": {"tool_calls": [{"id": ...}], "tool_call_id": ...,
    "name": ...}}`` (``messages_to_dict``); any other payload gives ``((), None, None)``.
    """
    try:
        data = json.loads(payload)
    except ValueError:
        return (), None, None
    body: Any = data.get("data") if isinstance(data, dict) else None
    if not isinstance(body, dict):
        return (), None, None
    calls = body.get("tool_calls")
    ids = tuple(
        str(c["id"])
        for c in (calls if isinstance(calls, list) else ())
        if isinstance(c, dict) and c.get("id") is not None
    )
    answer, name = body.get("tool_call_id"), body.get("name")
    return ids, None if answer is None else str(answer), None if name is None else str(name)
