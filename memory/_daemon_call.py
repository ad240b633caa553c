"""A blocking call on a daemon thread of its own, waited on until a deadline.

A synchronous call into a model or embedder client cannot be cancelled: the caller waits
for it at most until a deadline, then abandons it (it runs on; its answer, if one comes,
is dropped). Whether a call ended in time or was abandoned is settled under the owner's
lock, so the owner's books (slots, calls still running) never count a call both ways.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Literal, TypeVar, cast

__all__ = ["DaemonCall"]

_POLL_SECONDS = 0.05
_T = TypeVar("_T")


class DaemonCall(Generic[_T]):
    """``fn()`` started at once on a daemon thread.

    Args:
        fn: The call.
        lock: The owner's lock: held when the call ends (``ended`` runs under it) and
            when a waiter gives up on it (``late`` runs under it).
        ended: Called when the call ends, with whether it was abandoned first and
            whether it raised.
        name: The thread's name.
    """

    def __init__(
        self,
        fn: Callable[[], _T],
        *,
        lock: threading.Lock,
        ended: Callable[[bool, bool], None],
        name: str,
    ) -> None:
        self._lock = lock
        self._done = threading.Event()
        self._value: _T | None = None
        self._error: BaseException | None = None
        self._abandoned = False

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # handed to the waiter
                self._error = exc
            finally:
                with lock:
                    ended(self._abandoned, self._error is not None)
                    self._done.set()

        threading.Thread(target=run, name=name, daemon=True).start()

    def wait(
        self, timeout: float, *, cancelled: Callable[[], bool], late: Callable[[], None]
    ) -> Literal["done", "cancelled", "late"]:
        """Wait until the call ends ("done"), ``cancelled()`` is true ("cancelled": the
        call goes on, still counted as waited on), or ``timeout`` seconds pass ("late":
        the call is abandoned, and ``late`` runs under the lock)."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0.0))):
            if cancelled():
                return "cancelled"
            if time.monotonic() >= deadline:
                with self._lock:
                    if self._done.is_set():
                        break  # it ended just now
                    self._abandoned = True
                    late()
                return "late"
        return "done"

    def value(self) -> _T:
        """The call's value; its exception is raised here (once it is done)."""
        if self._error is not None:
            raise self._error
        return cast(_T, self._value)
