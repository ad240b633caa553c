"""A background thread that does a session's derived work off the hot path."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["BackgroundWorker"]

logger = logging.getLogger(__name__)


class BackgroundWorker:
    """Run ``step()`` in a daemon thread whenever notified, until it reports no work.

    Subclasses implement ``step() -> bool`` (True if it did some work and should be
    called again at once). A failing step is logged and remembered in ``last_error``;
    the thread stays alive and tries again later.
    """

    idle_poll_seconds = 30.0
    error_poll_seconds = 5.0

    def __init__(self, name: str) -> None:
        self._wake = threading.Condition()
        self._idle = threading.Event()
        self._stop = False
        self._pending = False
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (call once, after the subclass is set up)."""
        self._thread.start()

    def step(self) -> bool:
        """Do one unit of work; return True if there may be more."""
        raise NotImplementedError

    def notify(self) -> None:
        """Tell the worker there is new work."""
        with self._wake:
            self._pending = True
            self._idle.clear()
            self._wake.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the worker has no more work; True if that happened in time."""
        self.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self._idle.wait(remaining):
                with self._wake:
                    if not self._pending:
                        return True
            if not self._thread.is_alive():
                return False

    @property
    def stopping(self) -> bool:
        """True once ``close()`` was called."""
        return self._stop

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    self._idle.set()
                    return
                self._pending = False
            try:
                worked = self.step()
            except Exception as exc:  # keep the worker alive; callers see last_error
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("%s failed: %s", self._thread.name, exc)
                worked = False
            if worked:
                continue
            with self._wake:
                if self._stop:
                    self._idle.set()
                    return
                if self._pending:
                    continue
                self._idle.set()
                poll = (
                    self.idle_poll_seconds if self.last_error is None else self.error_poll_seconds
                )
                self._wake.wait(timeout=poll)

    def close(self) -> None:
        """Stop after the step in flight and wait for the thread.

        Waiting matters: a thread killed inside native code (torch, a model client) at
        interpreter exit can abort the process.
        """
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
