"""Shared fixtures and fakes: real tiktoken counts (offline), in-memory stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from langchain_core.embeddings import DeterministicFakeEmbedding
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
