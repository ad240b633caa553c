"""Model calls with a deadline: a stalled summarizer never holds a worker or ``close()``.

A synchronous LangChain model call cannot be cancelled. Each call therefore runs on its
own daemon thread while the caller waits at most ``timeout`` seconds; a call past its
deadline is abandoned (its answer, if it ever comes, is dropped) and the caller retries
later. At most ``slots`` calls are waited on at once per engine. An abandoned call frees
its slot but keeps its summarizer's: until it ends, calls through that summarizer fail
at once (its endpoint does not answer: a worker thread would only wait again), while
other summarizers, other sessions', go on. At most ``MAX_ABANDONED`` abandoned calls
may still be running, so a model that hangs costs a bounded number of threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from memory._daemon_call import DaemonCall
from memory._errors import SummarizerError

__all__ = ["DEFAULT_MODEL_SLOTS", "DEFAULT_MODEL_TIMEOUT", "MAX_ABANDONED", "ModelCalls"]

DEFAULT_MODEL_TIMEOUT = 120.0
"""Seconds a summarizer call may take before it is abandoned and retried later."""
DEFAULT_MODEL_SLOTS = 2
"""Model calls one engine waits on at once."""
MAX_ABANDONED = 8
"""Abandoned model calls of one engine that may still be running (each holds a thread)."""
_T = TypeVar("_T")


class ModelCalls:
    """Run model calls under a deadline, at most ``slots`` at a time.

    Args:
        timeout: Seconds a call may take (> 0).
        slots: Calls in flight at once (>= 1).
    """

    def __init__(
        self, timeout: float = DEFAULT_MODEL_TIMEOUT, slots: int = DEFAULT_MODEL_SLOTS
    ) -> None:
        if timeout <= 0 or slots < 1:
            raise ValueError(f"need timeout > 0 and slots >= 1, got {timeout} and {slots}")
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._stalled: dict[int, int] = {}  # id(owner) -> its abandoned calls still running
        self.abandoned = 0
        """Calls given up on at their deadline so far."""

    def call(
        self, fn: Callable[[], _T], *, cancelled: Callable[[], bool], owner: object = None
    ) -> _T:
        """Return ``fn()``, run on a daemon thread, waiting at most ``timeout`` seconds.

        Args:
            fn: The call.
            cancelled: Polled while waiting; true gives up (the engine is closing).
            owner: What makes the call (its summarizer): while a call of the same owner
                that was given up on still runs, this one fails at once.

        Raises:
            SummarizerError: every slot is taken, a call of ``owner`` given up on is
                still running (or ``MAX_ABANDONED`` calls are), the call passed its
                deadline, or ``cancelled()`` became true while waiting; the call's own
                exception is re-raised as it is.
        """
        with self._lock:
            stalled = self._stalled.get(id(owner), 0) if owner is not None else 0
            if stalled or sum(self._stalled.values()) >= MAX_ABANDONED:
                raise SummarizerError(
                    f"the summarizer did not answer within {self.timeout:g} s and calls given "
                    "up on are still running; retrying later (check the model endpoint)"
                )
        if not self._slots.acquire(blocking=False):
            raise SummarizerError(
                "earlier summarizer calls are still running; retrying later (check the "
                "model endpoint)"
            )

        def ended(abandoned: bool, failed: bool) -> None:
            if abandoned:
                self._release_stall(owner)
            else:
                self._slots.release()

        def late() -> None:
            self._slots.release()  # the slot is for calls waited on
            self._stalled[id(owner)] = self._stalled.get(id(owner), 0) + 1
            self.abandoned += 1

        call = DaemonCall(fn, lock=self._lock, ended=ended, name="attic-model-call")
        outcome = call.wait(self.timeout, cancelled=cancelled, late=late)
        if outcome == "cancelled":
            raise SummarizerError("the engine closed while the summarizer was answering")
        if outcome == "late":
            raise SummarizerError(
                f"the summarizer did not answer within {self.timeout:g} s; the call "
                "was abandoned and the block will be summarized again later"
            )
        return call.value()

    def _release_stall(self, owner: object) -> None:
        """An abandoned call of ``owner`` ended (under the lock)."""
        left = self._stalled.get(id(owner), 0) - 1
        if left > 0:
            self._stalled[id(owner)] = left
        else:
            self._stalled.pop(id(owner), None)
