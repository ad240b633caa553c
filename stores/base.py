"""Storage protocols and the records they exchange.

``stores`` knows nothing of ``memory``: records carry messages as JSON text, and every read
and write is scoped by a session id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NewTurn", "SessionInfo", "TurnRecord", "TurnStore"]


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A message about to be stored: its JSON payload and its token count."""

    role: str
    payload: str
    tokens: int
    counter: str


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


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session and the size of its history."""

    session: str
    turns: int
    tokens: int
    first_at: float
    last_at: float


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

    def last_seq(self, session: str) -> int:
        """Return the session's highest seq, 0 when it has none."""
        ...

    def sessions(self) -> list[SessionInfo]:
        """Return every session in the store, by name."""
        ...

    def close(self) -> None:
        """Release the backend; later calls raise ``StoreError``."""
        ...
