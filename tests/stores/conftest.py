"""Stores under test: SQLite (file and memory) and PostgreSQL.

PostgreSQL is a throwaway cluster started once per test run from the installed binaries,
unless ``ATTIC_TEST_POSTGRES_URL`` names a server (its ``attic_*`` tables are dropped
between tests). Without either, the PostgreSQL tests fail: they are never skipped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from stores import open_store
from stores.base import Store


def _load_cluster_module() -> None:
    if "attic_pgcluster" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "attic_pgcluster", Path(__file__).with_name("pgcluster.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_load_cluster_module()
import attic_pgcluster  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[attic_pgcluster.Cluster | None]:
    """The cluster started for this run (None when a URL was given)."""
    if os.environ.get(attic_pgcluster.URL_VARIABLE):
        yield None
        return
    cluster = attic_pgcluster.start_cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: attic_pgcluster.Cluster | None) -> Iterator[str]:
    """A PostgreSQL URL with no context-attic tables in it (dropped after each test)."""
    url = pg_cluster.url if pg_cluster is not None else os.environ[attic_pgcluster.URL_VARIABLE]
    drop_tables(url)
    yield url
    drop_tables(url)


def drop_tables(url: str) -> None:
    """Remove every context-attic table from the database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS attic_meta, attic_turns, attic_blobs, attic_chunks, "
            "attic_passages, attic_summaries"
        )


BACKENDS = ["sqlite-file", "sqlite-memory", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Open stores of one backend; every store opened shares the backend's data."""
    location: str
    if request.param == "postgres":
        location = request.getfixturevalue("pg_url")
    elif request.param == "sqlite-file":
        location = str(tmp_path / "store.db")
    else:
        location = ":memory:"
    opened: list[Store] = []

    def factory() -> Store:
        if location == ":memory:" and opened:
            return opened[0]  # a private database: one store is the whole of it
        store = open_store(location)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    """One open store of each backend."""
    return store_factory()
