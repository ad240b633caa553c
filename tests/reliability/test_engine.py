"""One engine per store per process: bounded threads, collected handles, clean exits."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from memory import ClosedError, ConversationMemory, Engine
from memory._pool import WorkerPool

from ..conftest import REPO

FILLER = "We talked about the harbour, the ferry timetable and the price of {n} tickets. " * 6


def _chat(mem: ConversationMemory, turns: int, *, start: int = 0) -> None:
    for n in range(start, start + turns):
        mem.add([{"role": "user", "content": FILLER.format(n=n)}])
        mem.add([{"role": "assistant", "content": f"Noted, {n} tickets."}])


def test_handles_on_one_path_share_one_engine_until_the_last_closes(db_path: Path) -> None:
    embedder = DeterministicFakeEmbedding(size=16)
    first = ConversationMemory.open(db_path, session="a", embedder=embedder)
    second = ConversationMemory.open(db_path, session="b", embedder=embedder)
    assert first.engine is second.engine
    engine = first.engine
    first.close()
    assert not engine.closed
    second.close()
    assert engine.closed
    with ConversationMemory.open(db_path, session="a", embedder=embedder) as again:
        assert again.engine is not engine


def test_many_sessions_never_closed_use_a_fixed_number_of_threads(db_path: Path) -> None:
    embedder = DeterministicFakeEmbedding(size=16)
    before = threading.active_count()
    with Engine(db_path, embedder=embedder, max_sessions=32) as engine:
        for n in range(300):
            mem = engine.open(session=f"user-{n}", budget=2000)
            _chat(mem, 2)
            mem.assemble(system="Be brief.")
            del mem  # never closed: the handle is simply collected
        during = threading.active_count() - before
        assert engine.handles == 0
        assert engine.sessions_held <= 32 + 1  # the LRU (and one in flight at most)
    assert during <= engine.pool.workers + 2  # background workers and model calls


def test_an_unclosed_handle_is_collected_and_a_private_engine_with_it() -> None:
    mem = ConversationMemory.open(
        ":memory:", session="s", embedder=DeterministicFakeEmbedding(size=8)
    )
    _chat(mem, 3)
    engine = mem.engine
    handle = weakref.ref(mem)
    del mem
    gc.collect()
    assert handle() is None
    assert engine.closed  # nothing else could ever reach a private in-memory store


def test_a_forgotten_session_closes_its_other_handles(db_path: Path) -> None:
    with Engine(db_path, embedder=DeterministicFakeEmbedding(size=8)) as engine:
        one, two = engine.open(session="s"), engine.open(session="s")
        _chat(one, 2)
        assert len(two.history()) == 4
        report = one.forget()
        assert report.turns == 4
        with pytest.raises(ClosedError):
            two.assemble()
        with engine.open(session="s") as fresh:
            assert fresh.history() == []


def test_the_interpreter_exits_cleanly_with_handles_open(tmp_path: Path) -> None:
    """Default MiniLM embedder busy in the background, handles never closed."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from memory import ConversationMemory
        line = "2024-05-01 10:00:{{:02d}} INFO worker {{}} done"
        log = "\\n".join(line.format(n % 60, n) for n in range(400))
        handles = []
        for n in range(30):
            mem = ConversationMemory.open({str(tmp_path / "exit.db")!r}, session=f"s{{n}}",
                                          compress_threshold=50)
            mem.add([{{"role": "user", "content": "run it"}},
                     {{"role": "assistant", "content": "", "tool_calls": [
                         {{"id": "c1", "type": "function",
                           "function": {{"name": "run", "arguments": "{{}}"}}}}]}},
                     {{"role": "tool", "tool_call_id": "c1", "content": log}}])
            handles.append(mem)
        print("added", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "added" in done.stdout
    assert "terminate called" not in done.stderr
    assert "failed" not in done.stderr, done.stderr[-2000:]  # no error line per session


class _StalledModel(GenericFakeChatModel):
    """A summarizer whose endpoint hangs far longer than any deadline."""

    stall_seconds: float = 30.0

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.stall_seconds)
        return super()._generate(messages, *args, **kwargs)


def test_a_stalled_summarizer_times_out_and_close_does_not_wait_for_it(db_path: Path) -> None:
    model = _StalledModel(messages=iter([AIMessage("summary")] * 10))
    engine = Engine(db_path, embedder=DeterministicFakeEmbedding(size=8), summary_timeout=0.5)
    mem = engine.open(session="s", budget=600, summarizer=model)
    _chat(mem, 12)
    assert mem.wait_for_summary(timeout=30)
    report = mem.assemble().report
    assert report.summary_error is not None
    assert "did not answer within 0.5 s" in report.summary_error
    mem.rebuild_summary()  # a fresh call is in flight, stalled
    started = time.monotonic()
    engine.close()
    assert time.monotonic() - started < model.stall_seconds / 2


def test_async_calls_run_off_the_event_loop(db_path: Path) -> None:
    loop_thread: list[int] = []

    class Recording(DeterministicFakeEmbedding):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            loop_thread.append(threading.get_ident())
            return super().embed_documents(texts)

    async def main() -> tuple[int, str, str]:
        with Engine(db_path, embedder=Recording(size=16)) as engine:
            mems = [await engine.aopen(session=f"s{n}", budget=500) for n in range(20)]
            await asyncio.gather(
                *(
                    m.aadd([{"role": "user", "content": f"My locker is {n}17."}])
                    for n, m in enumerate(mems)
                )
            )
            for mem in mems:
                await mem.aadd([{"role": "assistant", "content": "Noted."}])
                _chat(mem, 3, start=1)
            prompts = await asyncio.gather(*(m.aassemble(query="locker") for m in mems))
            found = await mems[3].arecall(query="locker number")
            history = await mems[3].ahistory()
            return (
                threading.get_ident(),
                " ".join(str(m.content) for m in prompts[3].messages),
                found + str(history[0].content),
            )

    loop_ident, text, found = asyncio.run(main())
    assert "317" in text and "317" in found
    assert loop_thread and loop_ident not in loop_thread


def test_worker_pool_runs_delayed_jobs_and_drops_queued_work_on_stop() -> None:
    pool = WorkerPool("test", 2)
    ran: list[str] = []
    gate = threading.Event()
    pool.submit(gate.wait)
    pool.call_later(0.05, lambda: ran.append("later"))
    deadline = time.monotonic() + 5
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == ["later"]
    assert pool.threads <= 2
    pool.call_later(60, lambda: ran.append("never"))
    gate.set()
    pool.stop(timeout=5)
    assert not pool.submit(lambda: ran.append("after stop"))
    assert ran == ["later"]


def test_free_heap_pages_are_given_back_after_an_embedding_batch() -> None:
    """On glibc the indexer trims the heap after each batch (RSS measured in the note of
    ``memory._embed.return_free_memory``); elsewhere it is a no-op."""
    import platform

    from memory._embed import _malloc_trim, return_free_memory

    if platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
    return_free_memory()


def test_minilm_runs_on_one_thread_whoever_calls_it() -> None:
    """torch starts an OpenMP team per calling thread: every call runs on one thread."""
    from concurrent.futures import ThreadPoolExecutor

    from memory._embed import MiniLMEmbeddings

    ran: set[str] = set()
    embedder = MiniLMEmbeddings()
    original = embedder._encode_here

    def recording(texts: list[str]) -> Any:
        ran.add(threading.current_thread().name)
        return original(texts)

    embedder._encode_here = recording  # type: ignore[method-assign]
    with ThreadPoolExecutor(4) as callers:
        vectors = list(callers.map(embedder.embed_query, ["ferry", "harbour", "ticket", "box"]))
    assert len(vectors) == 4 and all(len(v) == 384 for v in vectors)
    assert len(ran) == 1 and next(iter(ran)).startswith("attic-minilm")


def test_async_with_and_a_clear_error_once_the_engine_is_closed(db_path: Path) -> None:
    async def main() -> None:
        async with Engine(db_path, embedder=DeterministicFakeEmbedding(size=8)) as engine:
            async with await engine.aopen(session="s") as mem:
                await mem.aadd({"role": "user", "content": "hello"})
            straggler = engine.open(session="s")
        with pytest.raises(ClosedError, match="create a new Engine"):
            straggler.add({"role": "user", "content": "too late"})

    asyncio.run(main())


def test_exiting_never_waits_for_a_stalled_summarizer(tmp_path: Path) -> None:
    """Handles left open, a summarizer call stalled for 60 s: the process exits at once."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_core.messages import AIMessage
        from tests.reliability.test_engine import _StalledModel, _chat
        from memory import Engine
        engine = Engine({str(tmp_path / "stall.db")!r}, embedder=DeterministicFakeEmbedding(size=8))
        model = _StalledModel(messages=iter([AIMessage("s")] * 5), stall_seconds=60)
        mem = engine.open(session="s", budget=600, summarizer=model)
        _chat(mem, 12)
        time.sleep(1)  # the summary call is in flight
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - started < 30
    # The call cut short by the exit is no failure: nothing claims a timeout it never hit.
    assert "did not answer" not in done.stderr and "failed" not in done.stderr, done.stderr
