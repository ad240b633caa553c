"""Concurrency: processes and threads appending to one SQLite file lose and duplicate nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import reliability_harness as harness
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from memory import ConversationMemory


@pytest.mark.slow
def test_four_processes_of_two_threads_lose_nothing_and_keep_each_writers_order(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    results = harness.run_writers(db, processes=4, threads=2, seconds=3.0)
    assert len(results) == 8
    # check_writers fails on any error a writer saw ("database is locked" included).
    total = harness.check_writers(db, results)
    assert total >= sum(r.shared + r.own for r in results) > 8
    assert all(r.shared > 0 and r.own > 0 for r in results)


def test_recall_while_another_thread_adds_named_turns(tmp_path: Path) -> None:
    """The turn ranker's id map and the speakers' lists grow under a reader's feet."""
    errors: list[BaseException] = []
    stop = threading.Event()
    with ConversationMemory.open(
        str(tmp_path / "r.db"),
        session="s",
        budget=600,
        embedder=DeterministicFakeEmbedding(size=32),
    ) as mem:
        mem.add(HumanMessage("Speaker0 planted tulips by the gate.", name="Speaker0"))

        def writer() -> None:
            try:
                for n in range(300):
                    if n % 25 == 0:
                        mem.add(SystemMessage(f"Session {n // 25}"))
                    kind = HumanMessage if n % 2 == 0 else AIMessage
                    mem.add(kind(f"Turn {n}: the tulips by gate {n} grew.", name=f"Speaker{n % 7}"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                stop.set()

        def reader() -> None:
            try:
                while not stop.is_set():
                    mem.recall(query="What did Speaker3 say about the tulips by the gate?")
                    mem._state.recall.search("tulips gate", k=5)
                    prompt = mem.assemble(query="Speaker5 tulips", budget=600)
                    assert prompt.tokens <= 600
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert mem.wait_until_indexed(timeout=60)
        hits = mem._state.recall.search("the tulips by gate 299 grew", k=1, turns=True)
        assert hits and "gate 299" in hits[0].text
