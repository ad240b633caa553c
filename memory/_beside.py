"""Run a short job on a helper thread while the caller does other work.

A ranking waits on two independent things: the search by meaning (embedding the query,
then FAISS's scan of every vector) and the search by words (SQLite). The job never waits
for a free helper: whoever gets to it first runs it, so when every helper is busy (a
server ranking for many sessions at once) the caller runs it itself when it needs the
answer, as it would without a helper.

What it buys, measured: faiss-cpu 1.15's Python binding holds the GIL during a search
(another thread's Python stalls for the whole scan), so the two searches do not truly
run at once; an embedder's call (ONNX Runtime, a remote API) does release it. The scan
still gains from running on another core: it streams the whole index through that
core's caches instead of the caller's, whose SQLite pages and arrays stay cached. At
50,000 turns of ``benchmarks/assembly_latency.py`` (100,000 vectors), ``assemble`` with
the helper against without, side by side in one process: p10 4.22 / 5.00 ms, p50 4.91 /
5.62 ms; at 10,000 turns p10 2.52 / 2.84 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from memory._pool import WorkerPool

__all__ = ["HELPERS", "Beside"]

HELPERS = 2
"""Helper threads for the whole process (started on first use): the machines this is
measured on have two cores, and a job needs one."""

_T = TypeVar("_T")
_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def _helpers() -> WorkerPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool("attic-search", HELPERS)
        return _pool


class Beside(Generic[_T]):
    """``job`` started on a helper thread; ``result()`` returns its value (or raises its
    error), running it on the caller's thread if no helper has started it yet.

    Args:
        job: A function of no arguments, safe to run on any thread.
        helper: False runs it on the caller's thread, when ``result()`` is called (a job
            too short to be worth handing over: a helper takes ~0.1 ms to start it).
    """

    def __init__(self, job: Callable[[], _T], *, helper: bool = True) -> None:
        self._job: Callable[[], _T] | None = job
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._value: _T | None = None
        self._error: BaseException | None = None
        if helper:  # a stopped pool (at exit) takes nothing: the caller runs it
            _helpers().submit(self._run)

    def _claim(self) -> Callable[[], _T] | None:
        """The job, for the one thread that runs it (None for every other)."""
        with self._lock:
            job, self._job = self._job, None
            return job

    def _run(self) -> None:
        if (job := self._claim()) is None:
            return
        try:
            self._value = job()
        except BaseException as exc:  # handed to the caller, who raises it
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> _T:
        """The job's value; its exception is raised here, on the caller's thread."""
        self._run()  # no-op when a helper took it first
        self._done.wait()
        if self._error is not None:
            raise self._error
        return cast(_T, self._value)
