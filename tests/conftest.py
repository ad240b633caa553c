"""Shared fixtures and fakes: real tiktoken counts (offline), in-memory stores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from pydantic import Field

from memory import ConversationMemory, TiktokenCounter

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150
)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def counter() -> TiktokenCounter:
    """The default o200k counter, loaded once per test session."""
    return TiktokenCounter("o200k_base")


@pytest.fixture
def mem() -> Iterator[ConversationMemory]:
    """A memory on a private in-memory store."""
    with ConversationMemory.open(
        ":memory:", session="test", budget=4000, embedder=DeterministicFakeEmbedding(size=64)
    ) as memory:
        yield memory


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path."""
    return tmp_path / "attic.db"


class FakeEmbedder(DeterministicFakeEmbedding):
    """Deterministic hash embeddings that record every call (no model, no network)."""

    calls: list[list[str]] = Field(default_factory=list)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return super().embed_documents(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    """A fresh recording fake embedder (64-d)."""
    return FakeEmbedder(size=64, calls=[])


@pytest.fixture
def archive_mem(fake_embedder: FakeEmbedder) -> Iterator[ConversationMemory]:
    """A memory that archives tool outputs above 50 tokens, with fake embeddings."""
    with ConversationMemory.open(
        ":memory:", session="agent", budget=6000, embedder=fake_embedder, compress_threshold=50
    ) as memory:
        yield memory


SYNONYMS = {"automobile": "car", "vehicle": "car"}


class SwitchableEmbedder(Embeddings):
    """Word-concept embeddings that can be switched to fail like a remote service that is down.

    Each word is one dimension, and a few synonyms share one ("automobile" is "car"), so a
    query can match a text by meaning with no word in common. Records every call.
    """

    DIM = 512

    def __init__(self) -> None:
        self.failing = False
        self.calls: list[list[str]] = []
        self._dims: dict[str, int] = {}

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.DIM
        for word in re.findall(r"\w+", text.lower()):
            concept = SYNONYMS.get(word, word)
            vector[self._dims.setdefault(concept, len(self._dims) % self.DIM)] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        if self.failing:
            raise ConnectionError("embedding service unreachable")
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@pytest.fixture
def switchable_embedder() -> SwitchableEmbedder:
    """A fresh embedder that fails while its ``failing`` is True."""
    return SwitchableEmbedder()
