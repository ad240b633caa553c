"""The session's append: a write whose connection was lost is retried, never doubled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ClosedError, Engine
from memory.forget import forget_stored
from stores import open_store
from stores.errors import InterruptedWriteError


class AnswerLostStore:
    """A ``:memory:`` store whose next ``write()`` loses its connection while committing.

    With ``committed`` the block commits and then the error comes (the server committed,
    its answer was lost); without, the error comes instead of the commit (rolled back).
    Everything else is the real store's.
    """

    def __init__(self, *, committed: bool) -> None:
        self.inner = open_store(":memory:")
        self.committed = committed
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def write(self) -> Iterator[None]:
        armed, self.armed = self.armed, False
        lost = InterruptedWriteError("lost while committing", maybe_committed=True)
        with self.inner.write():
            yield
            if armed and not self.committed:
                raise lost  # inside the transaction: rolled back
        if armed:
            raise lost


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
def test_an_add_whose_commit_answer_was_lost_is_stored_once(committed: bool) -> None:
    store = AnswerLostStore(committed=committed)
    with Engine(store, embedder=DeterministicFakeEmbedding(size=16)) as engine:  # type: ignore[arg-type]
        mem = engine.open(session="s")
        mem.add({"role": "user", "content": "first"})
        store.armed = True
        seqs = mem.add([{"role": "user", "content": "second"},
                        {"role": "assistant", "content": "answer"}])  # fmt: skip
        assert seqs == [2, 3] and not store.armed  # the lost write did happen
        assert [m.content for m in mem.history()] == ["first", "second", "answer"]
        assert [r.seq for r in store.inner.turns.read("s")] == [1, 2, 3]
        mem.add({"role": "user", "content": "third"})  # the session reads on as usual
        assert [m.content for m in mem.history()][-1] == "third"
    store.inner.close()


def test_a_session_forgotten_by_another_process_is_closed_here_and_opens_anew(
    tmp_path: Any,
) -> None:
    path = str(tmp_path / "f.db")
    engine = Engine(path, embedder=DeterministicFakeEmbedding(size=8))
    try:
        mem = engine.open(session="s1", budget=2_000)
        mem.add([{"role": "user", "content": "The spare key is under the flowerpot."},
                 {"role": "assistant", "content": "Noted."}])  # fmt: skip
        assert "flowerpot" in str(mem.assemble().messages)
        forget_stored(path, session="s1")  # as `attic forget` in another process does
        calls = (mem.assemble, lambda: mem.add({"role": "user", "content": "hi"}),
                 lambda: mem.history_tokens, lambda: mem.summary,
                 mem.summary_attempts)  # fmt: skip
        for call in calls:
            with pytest.raises(ClosedError, match="was forgotten"):
                call()
        fresh = engine.open(session="s1", budget=2_000)  # the server's next request: a new start
        assert fresh.history() == [] and "flowerpot" not in str(fresh.assemble().messages)
        fresh.add({"role": "user", "content": "Hello again."})
        assert [m.content for m in fresh.history()] == ["Hello again."]
    finally:
        engine.close()


class _Alike(DeterministicFakeEmbedding):
    """One vector for every text: search by words alone decides, whenever it embeds."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * (self.size - 1) for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0] + [0.0] * (self.size - 1)


def test_a_handle_sees_a_session_forgotten_and_started_anew_elsewhere(tmp_path: Any) -> None:
    path = str(tmp_path / "f.db")
    ours = Engine(path, embedder=_Alike(size=8))
    theirs = Engine(path, embedder=_Alike(size=8))  # another process
    try:
        mem = ours.open(session="s1", budget=2_000)
        mem.add([{"role": "user", "content": "The spare key is under the flowerpot."},
                 {"role": "assistant", "content": "Noted."}])  # fmt: skip
        other = theirs.open(session="s1", budget=2_000)
        before = mem.history_tokens
        other.add([{"role": "user", "content": "The boat is moored at pier 9."},
                   {"role": "assistant", "content": "Good to know."}])  # fmt: skip
        assert "pier 9" in mem.recall(query="Where is the boat moored?")  # no add needed
        assert mem.history_tokens > before  # the other process's turns count
        forget_stored(path, session="s1")
        anew = theirs.open(session="s1", budget=2_000)  # started anew, with more turns
        for n in range(5):
            anew.add({"role": "user" if n % 2 == 0 else "assistant", "content": f"new {n}"})
        for call in (mem.assemble, lambda: mem.recall(query="spare key")):
            with pytest.raises(ClosedError, match="was forgotten"):
                call()
        fresh = ours.open(session="s1", budget=2_000)
        assert "flowerpot" not in str(fresh.assemble().messages)
        assert [m.content for m in fresh.history()] == [f"new {n}" for n in range(5)]
    finally:
        ours.close()
        theirs.close()


def test_a_refresh_waits_for_the_thread_that_holds_the_session() -> None:
    """The summarizer's thread refreshes the view under the session's lock; a refresh
    (or a rebuild after a failed write) from another thread waits for it, so one never
    reads the view's newest turn while the other moves it (that raised "was forgotten"
    on a live session)."""
    engine = Engine(":memory:", embedder=DeterministicFakeEmbedding(size=8))
    try:
        mem = engine.open(session="s1", budget=2_000)
        mem.add([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
        state = mem._state
        for call in (state.refresh, state.reload):
            done = threading.Event()
            worker = threading.Thread(target=lambda c=call, d=done: (c(), d.set()))
            with state.lock:
                worker.start()
                assert not done.wait(0.2)  # held: it waits
            worker.join(5)
            assert done.is_set() and not state.closed
        assert [m.content for m in mem.history()] == ["one", "two"]
    finally:
        engine.close()
