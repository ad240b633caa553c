"""Model calls with a deadline: a stalled summarizer never holds a worker or ``close()``.

A synchronous LangChain model call cannot be cancelled. Each call therefore runs on its
own daemon thread while the caller waits at most ``timeout`` seconds; a call past its
deadline is abandoned (its answer, if it ever comes, is dropped) and the caller retries
later. At most ``slots`` calls run at once per engine, stalled ones included, so a model
that hangs costs a bounded number of threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from memory._errors import SummarizerError

__all__ = ["DEFAULT_MODEL_SLOTS", "DEFAULT_MODEL_TIMEOUT", "ModelCalls"]

DEFAULT_MODEL_TIMEOUT = 120.0
"""Seconds a summarizer call may take before it is abandoned and retried later."""
DEFAULT_MODEL_SLOTS = 2
"""Model calls one engine runs at once (stalled calls hold their slot until they end)."""
_POLL_SECONDS = 0.05
_T = TypeVar("_T")


class _Call:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None


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
        self.abandoned = 0
        """Calls given up on at their deadline so far."""

    def call(self, fn: Callable[[], _T], *, cancelled: Callable[[], bool]) -> _T:
        """Return ``fn()``, run on a daemon thread, waiting at most ``timeout`` seconds.

        Raises:
            SummarizerError: every slot is taken by calls in flight, the call passed its
                deadline, or ``cancelled()`` became true while waiting (the engine is
                closing); the call's own exception is re-raised as it is.
        """
        if not self._slots.acquire(blocking=False):
            why = (  # only a call given up on at its deadline makes this a timeout
                f"the summarizer did not answer within {self.timeout:g} s and calls given "
                "up on are still running"
                if self.abandoned
                else "earlier summarizer calls are still running"
            )
            raise SummarizerError(f"{why}; retrying later (check the model endpoint)")
        call = _Call()

        def run() -> None:
            try:
                call.result = fn()
            except BaseException as exc:  # handed to the caller
                call.error = exc
            finally:
                self._slots.release()
                call.done.set()

        threading.Thread(target=run, name="attic-model-call", daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not call.done.wait(_POLL_SECONDS):
            if cancelled():
                raise SummarizerError("the engine closed while the summarizer was answering")
            if time.monotonic() >= deadline:
                self.abandoned += 1
                raise SummarizerError(
                    f"the summarizer did not answer within {self.timeout:g} s; the call "
                    "was abandoned and the block will be summarized again later"
                )
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]
