"""Editing a conversation's history: retracting messages, replacing one.

For an app whose history changed (a regenerated reply, a LangGraph ``RemoveMessage``, a
fork from an earlier checkpoint, an edited last turn). A mixin of ``ConversationMemory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from memory._errors import InputError
from memory._messages import MessageLike
from memory._session import SessionState
from memory._timestamps import Timestamp
from memory._tokens import TokenCounter

__all__ = ["HistoryEdits"]


class HistoryEdits:
    """Mixin: ``retract`` and ``replace`` (the handle provides ``_state``, ``counter``,
    ``_check_open`` and ``add``)."""

    _state: SessionState
    counter: TokenCounter

    def _check_open(self) -> None:
        raise NotImplementedError

    def add(
        self, messages: MessageLike | Sequence[MessageLike], *, timestamp: Timestamp | None = None
    ) -> list[int]:
        raise NotImplementedError

    def retract(self, messages: int | str | Sequence[int | str]) -> list[int]:
        """Take messages out of every future prompt, summary and ``history()``.

        For an app whose history changed: a regenerated reply, a LangGraph
        ``RemoveMessage``, a fork from an earlier checkpoint. A retracted assistant
        message takes the tool results of its calls with it. Retracted messages stay
        stored for audit (``history(include_retracted=True)``) until the session is
        forgotten; a summary that covered one is rebuilt.

        Args:
            messages: Seqs (as ``add`` returned) or message ids, one or many.

        Returns:
            The seqs retracted.

        Raises:
            InputError: one of them is no stored message of this session, or neither a
                seq nor an id; nothing was retracted.
            ClosedError: the handle was closed.
        """
        given: list[object] = (
            [messages]
            if isinstance(messages, int | str) or not isinstance(messages, Sequence)
            else list(messages)
        )
        targets = [t for t in given if isinstance(t, int | str) and not isinstance(t, bool)]
        if len(targets) != len(given):
            raise InputError(f"retract takes seqs (int) or message ids (str), not {messages!r}")
        with self._state.lock:
            self._check_open()
            retracted = self._state.retract(targets, self.counter.name)
        self._state.runner.notify()
        return retracted

    def replace(self, message: int | str, new: MessageLike) -> list[int]:
        """Retract ``message`` (a seq or message id) and add ``new`` in its place, at the
        end of the history (an edited last turn); returns ``new``'s seq.

        Raises:
            InputError: ``message`` is unknown, or ``new`` cannot be accepted.
        """
        with self._state.lock:
            self.retract(message)
            return self.add(new)
