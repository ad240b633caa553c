"""The running summary of a conversation, as its handle shows it: the current version,
every attempt, waiting for the folds due, and folding again. A mixin of
``ConversationMemory``.
"""

from __future__ import annotations

from memory._folding import SummaryRunner
from memory._options import check_timeout
from memory._session import SessionState
from stores.base import SummaryRecord

__all__ = ["SummaryAccess"]


class SummaryAccess:
    """Mixin: ``summary``, ``summary_attempts``, ``wait_for_summary`` and
    ``rebuild_summary`` (the handle provides ``_state``, ``_check_open`` and
    ``_current``)."""

    _state: SessionState

    def _check_open(self) -> None:
        raise NotImplementedError

    def _current(self) -> None:
        raise NotImplementedError

    @property
    def _summaries(self) -> SummaryRunner:
        """The session's summary runner (internal: tests and benchmarks tune it)."""
        return self._state.runner

    @property
    def summary(self) -> SummaryRecord | None:
        """The running summary: ``.text``, ``.covers_upto`` (its last turn), ``.tokens``,
        ``.summarizer``, ``.created_at``; None before the first fold.

        Raises:
            ClosedError: the memory was closed, or the session forgotten elsewhere.
        """
        self._current()
        return self._state.runner.current

    def summary_attempts(self) -> list[SummaryRecord]:
        """Every summary version and failed attempt of the session, oldest first.

        Raises:
            ClosedError: the memory was closed, or the session forgotten elsewhere.
        """
        self._current()
        return self._state.runner.attempts()

    def wait_for_summary(self, timeout: float | None = None) -> bool:
        """Block until no fold is due: the running summary covers every block it should.

        Returns:
            True if that was reached within ``timeout`` seconds; a failing summarizer
            counts as done (its error is in ``assemble().report.summary_error``).

        Raises:
            ConfigError: ``timeout`` is not seconds >= 0 or None.
        """
        self._check_open()
        return self._state.runner.wait(check_timeout(timeout))

    def rebuild_summary(self) -> None:
        """Drop the running summary and fold the history again, in the background."""
        self._check_open()
        self._state.runner.rebuild()
