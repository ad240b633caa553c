"""A bounded pool of daemon threads with delayed jobs, stopped cleanly at exit.

The engine's background work (embedding, summaries) runs here: a fixed number of
threads serve every session, whatever their number. ``concurrent.futures`` has no
delayed jobs (retries with backoff need them) and joins its threads before ``atexit``
handlers run, after every queued job; this pool instead drops queued jobs at exit and
waits only for the jobs in flight, which matters because a thread killed inside native
code (torch) at interpreter exit aborts the process.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

__all__ = ["EXIT_WAIT_SECONDS", "WorkerPool"]

logger = logging.getLogger(__name__)

EXIT_WAIT_SECONDS = 30.0
"""Longest wait at interpreter exit for the jobs in flight (an embedding batch)."""

Job = Callable[[], object]
_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


class WorkerPool:
    """``workers`` daemon threads running submitted jobs, first in first out.

    Threads start on the first job, not before. A job that raises is logged; the
    thread goes on with the next.

    Args:
        name: Prefix of the threads' names.
        workers: Number of threads (>= 1).
    """

    def __init__(self, name: str, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.name = name
        self.workers = workers
        self._cond = threading.Condition()
        self._ready: deque[Job] = deque()
        self._delayed: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._waiting = 0
        self._stopped = False
        _live_pools.add(self)

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (and nothing queued) once the pool is stopped."""
        with self._cond:
            if self._stopped:
                return False
            self._ready.append(job)
            self._start_thread(needed=len(self._ready))
            self._cond.notify()
            return True

    def call_later(self, delay: float, job: Job) -> bool:
        """Queue ``job`` to run in ``delay`` seconds; False once the pool is stopped."""
        with self._cond:
            if self._stopped:
                return False
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._order), job))
            self._start_thread(needed=len(self._ready) + 1)
            self._cond.notify()
            return True

    def _start_thread(self, *, needed: int) -> None:
        """Start one more thread (up to ``workers``) if fewer than ``needed`` are free."""
        if self._waiting < needed and len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            self._waiting += 1  # counted until it takes its first job
            thread.start()

    @property
    def threads(self) -> int:
        """Threads started so far (never more than ``workers``)."""
        return len(self._threads)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    self._ready.append(heapq.heappop(self._delayed)[2])
                if self._ready:
                    self._waiting -= 1
                    return self._ready.popleft()
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cond.wait(timeout)
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                job()
            except Exception:  # a job's own errors are its business; keep serving
                logger.exception("%s: a background job failed", self.name)
            finally:
                del job
                with self._cond:
                    self._waiting += 1

    def stop(self, timeout: float | None = EXIT_WAIT_SECONDS) -> None:
        """Drop queued jobs and wait up to ``timeout`` s for those in flight (idempotent)."""
        with self._cond:
            self._stopped = True
            self._ready.clear()
            self._delayed.clear()
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        current = threading.current_thread()
        for thread in self._threads:
            if thread is current:
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stopped


@atexit.register
def _stop_all_pools() -> None:
    for pool in list(_live_pools):
        pool.stop()
