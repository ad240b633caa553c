"""A session's derived work (embedding, summaries), run as jobs on the engine's pool.

A worker owns no thread: ``notify()`` queues one job on the shared ``WorkerPool`` unless
one is queued already, and the job runs ``step()`` once, queueing itself again while
there is more work. Sessions therefore take turns on a fixed number of threads.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from memory._errors import ClosedError
from memory._pool import WorkerPool
from stores.errors import StoreError

__all__ = ["MAX_RETRY_SECONDS", "RETRY_SECONDS", "BackgroundWorker"]

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
"""Delay before a failed step is tried again; doubled per failure in a row."""
MAX_RETRY_SECONDS = 300.0
"""Longest delay between retries of a failing step."""


class BackgroundWorker:
    """Run ``step()`` on ``pool`` whenever notified, until it reports no more work.

    Subclasses implement ``step() -> bool`` (True if it did some work and should be
    called again). A step that raises is logged and kept in ``last_error``; it is tried
    again after ``RETRY_SECONDS``, doubling up to ``MAX_RETRY_SECONDS``, and at once on
    the next ``notify()`` after that delay.

    Args:
        name: Names the worker in logs.
        pool: The pool its steps run on.
    """

    def __init__(self, name: str, pool: WorkerPool) -> None:
        self.name = name
        self._pool = pool
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = False
        self._queued = False
        self._stop = False
        self._running = threading.Event()
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None

    def notify(self) -> None:
        """Tell the worker there is new work (queues a step unless one is queued)."""
        with self._lock:
            if self._stop:
                return
            self._pending = True
            self._idle.clear()
            if self._queued or time.monotonic() < self._retry_at:
                return  # a step is queued, or a failure's retry is scheduled
            self._queued = self._pool.submit(self._job)
            if not self._queued:
                self._idle.set()

    def _job(self) -> None:
        with self._lock:
            if self._stop:
                self._queued = False
                self._idle.set()
                return
            self._pending = False
            self._running.set()
        failed = False
        try:
            worked = self.step()
        except Exception as exc:  # keep serving; callers see last_error
            self.last_error = f"{type(exc).__name__}: {exc}"
            if _exiting(exc):  # handles left open at exit: the work waits for a reopen
                logger.debug("%s stopped by the interpreter's exit: %s", self.name, exc)
                with self._lock:
                    self._stop = True
            else:
                logger.warning("%s failed: %s", self.name, exc)
            worked, failed = False, True
        else:
            self.last_error = None
        finally:
            self._running.clear()
        with self._lock:
            self._queued = False
            if self._stop:
                self._idle.set()
                return
            if failed:
                self._failures += 1
                delay = min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2 ** (self._failures - 1))
                self._retry_at = time.monotonic() + delay
                self._pool.call_later(delay, self._retry)
                self._idle.set()
                return
            self._failures = 0
            if worked or self._pending:
                self._queued = self._pool.submit(self._job)
                if self._queued:
                    return
            self._idle.set()

    def _retry(self) -> None:
        with self._lock:
            self._retry_at = 0.0
        self.notify()

    def step(self) -> bool:
        """Do one unit of work; return True if there may be more."""
        raise NotImplementedError

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no step is queued or running; True if that happened in time.

        A worker waiting out a failure's retry delay counts as idle.
        """
        self.notify()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self._idle.wait(remaining):
                with self._lock:
                    if self._idle.is_set():
                        return not self._stop or not self._pending
            if self._pool.stopped:
                return False

    @property
    def stopping(self) -> bool:
        """True once ``close()`` was called."""
        return self._stop

    def close(self, *, wait: float = 0.0) -> bool:
        """Stop queueing steps; wait up to ``wait`` s for a step in flight to end.

        A summarizer step in flight gives up on its model call at once (``stopping``),
        so waiting never waits for a model. Returns False if a step was still running.
        """
        with self._lock:
            self._stop = True
            self._idle.set()
        deadline = time.monotonic() + wait
        while self._running.is_set():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True


def _exiting(exc: Exception) -> bool:
    """Whether ``exc`` comes from the process exiting or the store closing under queued
    work (thread pools refuse new work once exit has begun; a closed store refuses
    reads), not from the work itself: the work resumes when the session is reopened."""
    text = str(exc)
    return (
        sys.is_finalizing()
        or (isinstance(exc, RuntimeError) and "cannot schedule new futures after" in text)
        or (isinstance(exc, StoreError | ClosedError) and text.endswith("is closed"))
    )
