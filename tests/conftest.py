"""Shared fixtures and fakes: real tiktoken counts (offline), in-memory stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
    with ConversationMemory.open(":memory:", session="test", budget=4000) as memory:
        yield memory


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path."""
    return tmp_path / "attic.db"
