"""The embedding index: an embedder outage degrades search to full-text, then recovers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage

from memory import ConversationMemory
from memory._indexer import QUERY_COOLDOWN_SECONDS

FACT = "I parked the car in bay 42."
FILLER = [
    "The weather was fine and we walked to the market for bread this morning.",
    "Work has been busy with the quarterly report that is due quite soon.",
    "I watched a long documentary about whales and their songs last night.",
    "My neighbour is repainting the old fence a pale shade of green.",
    "We cooked pasta with fresh tomatoes and basil from the garden.",
]


@pytest.fixture
def parked(switchable_embedder: Any) -> Iterator[ConversationMemory]:
    """A memory whose early fact about the car has long left the verbatim window."""
    with ConversationMemory.open(
        ":memory:",
        session="outage",
        budget=600,
        embedder=switchable_embedder,
        compress_threshold=50,
    ) as mem:
        mem.add([HumanMessage(FACT), AIMessage("Noted.")])
        for n in range(40):
            kind = HumanMessage if n % 2 == 0 else AIMessage
            mem.add(kind(f"{FILLER[n % 5]} ({n})"))
        assert mem.wait_until_indexed(30)
        yield mem


def _sent(mem: ConversationMemory, query: str) -> tuple[str, str | None]:
    prompt = mem.assemble(query=query)
    return "\n".join(str(m.content) for m in prompt.messages), prompt.report.recall_degraded


def test_an_outage_falls_back_to_full_text_and_says_so(
    parked: ConversationMemory, switchable_embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert _sent(parked, "Which bay is the car parked in?")[1] is None
    switchable_embedder.failing = True
    with caplog.at_level(logging.INFO, logger="memory._indexer"):
        sent, degraded = _sent(parked, "Where did I leave the car, which bay?")
        assert "bay 42" in sent
        assert degraded == "embedder failed: ConnectionError: embedding service unreachable"
        tries = len(switchable_embedder.calls)
        answer = parked.recall(query="car bay")
        assert "bay 42" in answer and "unavailable" in answer
        assert len(switchable_embedder.calls) == tries  # cooling down: not asked again
        assert "bay 42" not in parked.recall(query="automobile")  # no word in common
        parked._state.passage_indexer.query_cooldown_seconds = 0.0  # as if it ended
        assert "bay 42" in parked.recall(query="parked car")
        assert len(switchable_embedder.calls) > tries  # tried again, failed again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage

    switchable_embedder.failing = False
    answer = parked.recall(query="automobile")
    assert "bay 42" in answer and "unavailable" not in answer  # by meaning again
    sent, degraded = _sent(parked, "automobile")
    assert "bay 42" in sent and degraded is None


def test_the_cool_down_is_a_short_named_constant(parked: ConversationMemory) -> None:
    assert parked.archive.indexer is not None
    assert parked.archive.indexer.query_cooldown_seconds == QUERY_COOLDOWN_SECONDS
    assert 0 < QUERY_COOLDOWN_SECONDS <= 120


def test_chunks_added_during_an_outage_are_embedded_once_it_ends(
    parked: ConversationMemory, switchable_embedder: Any
) -> None:
    switchable_embedder.failing = True
    parked.add([HumanMessage("The nightly job stopped: disk quota exceeded."), AIMessage("Ok.")])
    parked.wait_until_indexed(5)  # the embedder fails: returns when it has given up
    assert parked._state.passage_indexer.last_error is not None  # turns have their own
    sent, degraded = _sent(parked, "disk quota")
    assert "disk quota exceeded" in sent and degraded is not None
    assert "disk quota exceeded" in parked.recall(query="disk quota exceeded")
    switchable_embedder.failing = False
    parked._state.passage_indexer.query_cooldown_seconds = 0.0
    assert parked.wait_until_indexed(30)
    assert _sent(parked, "disk quota")[1] is None


class _Meaning(Embeddings):
    """Texts about the gym locker point one way, the rest another: only the vector
    search can tie the question to the fact (they share no word)."""

    def _vector(self, text: str) -> list[float]:
        about = any(w in text.lower() for w in ("locker", "gym storage"))
        return [1.0, 0.0] if about else [0.0, 1.0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def test_the_first_query_after_opening_loads_the_stored_index(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with ConversationMemory.open(path, session="s", budget=600, embedder=_Meaning()) as mem:
        fact = mem.add([HumanMessage("The locker code is 4471-88."), AIMessage("Noted.")])[0]
        for n in range(40):
            mem.add((HumanMessage if n % 2 == 0 else AIMessage)(f"{FILLER[n % 5]} ({n})"))
        assert mem.wait_until_indexed(30)
    with ConversationMemory.open(path, session="s", budget=600, embedder=_Meaning()) as mem:
        indexer = mem._state.recall.ranker.indexer
        assert indexer is not None
        indexer._index = None  # as in a new process before the background worker loads it
        report = mem.assemble(query="What code opens my gym storage?").report
    assert fact in report.recalled_turns and report.recall_degraded is None


_OTHER_PROCESS = """
import sys
from langchain_core.embeddings import Embeddings
from memory import ConversationMemory

class _Meaning(Embeddings):
    def _vector(self, text):
        about = any(w in text.lower() for w in ("locker", "gym storage"))
        return [1.0, 0.0] if about else [0.0, 1.0]
    def embed_documents(self, texts):
        return [self._vector(t) for t in texts]
    def embed_query(self, text):
        return self._vector(text)

with ConversationMemory.open(sys.argv[1], session="s", budget=600, embedder=_Meaning()) as mem:
    mem.add([{"role": "user", "content": "My locker combination is 4471-88."},
             {"role": "assistant", "content": "Noted."}])
    for n in range(40):
        mem.add({"role": "user" if n % 2 == 0 else "assistant", "content": f"Filler [{n}]"})
    assert mem.wait_until_indexed(30)
"""


def test_a_process_catches_up_with_vectors_another_process_stored(tmp_path: Path) -> None:
    # Two server processes on one file: each embeds its own adds, and sees the other's.
    path, question = tmp_path / "m.db", "What opens my gym storage?"
    script = tmp_path / "other.py"
    script.write_text(_OTHER_PROCESS, encoding="utf-8")
    with ConversationMemory.open(path, session="s", budget=600, embedder=_Meaning()) as mine:
        for n in range(40):
            mine.add((HumanMessage if n % 2 == 0 else AIMessage)(f"{FILLER[n % 5]} ({n})"))
        assert mine.wait_until_indexed(30)
        assert mine.assemble(query=question).report.recall_degraded is None  # index loaded
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        subprocess.run([sys.executable, str(script), str(path)], check=True, env=env, timeout=120)
        mine.add([HumanMessage("Anything new?"), AIMessage("Not much.")])  # reads the log
        assert mine.wait_until_indexed(30)
        indexer = mine._state.recall.ranker.indexer
        assert indexer is not None and indexer._index is not None
        stored, _ = indexer._source.vectors("s", indexer.model)
        assert indexer._index.ids() == set(stored)  # the other process's vectors too
        assert "4471-88" in mine.recall(query=question)  # found by meaning alone


def test_an_embedder_of_another_dimension_under_the_same_name_never_breaks_recall(
    tmp_path: Path,
) -> None:
    # A new-user trial: reopened with DeterministicFakeEmbedding(size=32) after size=64,
    # recall raised a raw ValueError (a reshape), and size=64 again could not even read
    # the stored vectors back (two lengths in one matrix), for good.
    from langchain_core.embeddings import DeterministicFakeEmbedding

    db = tmp_path / "dims.db"
    for size in (64, 32, 64):
        with ConversationMemory.open(
            db, session="s", budget=500, embedder=DeterministicFakeEmbedding(size=size)
        ) as mem:
            mem.add([HumanMessage(f"My dog Biscuit ({size})."), AIMessage("Cute.")])
            assert "Biscuit" in mem.recall(query="Biscuit")
            assert isinstance(mem.recall_tool().invoke({"query": "what is my dog called"}), str)
            assert mem.wait_until_indexed(timeout=30)
            hits = mem.recall(query="what is my dog called")  # by meaning: its own vectors
            assert f"Biscuit ({size})" in hits, hits
