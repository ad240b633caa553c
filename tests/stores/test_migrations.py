"""Schema versions: read on open, older stores migrated forward, newer ones refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from stores import open_store
from stores.base import SCHEMA_VERSION
from stores.errors import StoreError
from stores.sqlite import SQLiteDatabase

FIXTURE = Path(__file__).with_name("fixtures") / "schema_v1.db"  # written by the v1 code


def test_a_file_from_schema_1_is_migrated_and_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    store = open_store(db)
    assert store.schema_version == SCHEMA_VERSION
    store.close()
    database = SQLiteDatabase(db)
    assert database.migrated_from == SCHEMA_VERSION  # already migrated by the first open
    names = {r[0] for r in database.conn.execute("SELECT name FROM sqlite_master")}
    assert "turns_by_time" in names
    assert database.conn.execute("SELECT value FROM meta").fetchall() == [("2",)]
    database.close()
    with ConversationMemory.open(
        db, session="alice", embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        history = mem.history()
        assert len(history) == 4 and "marmalade-v1" in str(history[0].content)
        ref = mem.archive.refs()[0].ref
        assert mem.archive.get(ref).endswith("fixture-v1 kiwi quota exceeded")
        assert "kiwi" in mem.recall(ref=ref, query="kiwi quota")
        mem.add({"role": "user", "content": "new words after the upgrade"})
    with ConversationMemory.open(
        db, session="bob", embedder=DeterministicFakeEmbedding(size=16)
    ) as bob:
        assert "turnips-v1" in str(bob.history()[0].content)


def test_the_migration_is_recorded_as_from_version_1(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    database = SQLiteDatabase(db)
    assert database.migrated_from == 1
    database.close()
    fresh = SQLiteDatabase(tmp_path / "new.db")
    assert fresh.migrated_from == 0
    fresh.close()


def test_a_newer_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    shutil.copy(FIXTURE, db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match=r"schema version 99, newer .*upgrade context-attic"):
        ConversationMemory.open(db, session="s", embedder=DeterministicFakeEmbedding(size=16))
    assert db.read_bytes() == before and not Path(f"{db}-wal").exists()


def test_postgres_schema_is_versioned_and_a_newer_one_refused(pg_url: str) -> None:
    open_store(pg_url).close()
    open_store(pg_url).close()  # a second open finds the current version: no change
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM attic_meta").fetchall() == [(str(SCHEMA_VERSION),)]
        conn.execute("UPDATE attic_meta SET value = '99'")
    with pytest.raises(StoreError, match=r"schema version 99, newer"):
        open_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM attic_meta").fetchall() == [("99",)]
