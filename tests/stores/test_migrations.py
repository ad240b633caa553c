"""Schema versions: read on open, older stores migrated forward, newer ones refused."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from stores import open_store
from stores.base import SCHEMA_VERSION, NewPassage, Store
from stores.errors import StoreError
from stores.sqlite import SQLiteDatabase
from stores.text_search import search_words
from stores.turn_index import scope_token
from stores.turns import message_fields

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
    assert database.conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
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


OLD_PAYLOADS = [
    json.dumps({"type": "ai", "data": {"content": "", "tool_calls": [{"id": "k1"}, {"id": 2}]}}),
    json.dumps({"type": "tool", "data": {"content": "ok", "tool_call_id": "k1"}}),
    json.dumps({"type": "human", "data": {"content": "hi \u0000", "name": "Zoe"}}),
    json.dumps({"type": "tool", "data": {"content": "", "tool_call_id": "nul\u0000id"}}),
    "{not json",
    "plain text",
]


def outline_matches_payloads(store: Store, session: str) -> None:
    outline = store.turns.outline(session)
    fields = list(zip(outline.calls, outline.answers, outline.names, strict=True))
    assert fields == [message_fields(r.payload) for r in store.turns.read(session)]


def test_older_sqlite_turns_get_their_outline_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO turns(session, seq, role, payload, tokens, counter, created_at, raw_tokens) "
        "VALUES ('odd', ?, 'x', ?, 1, 'c', 0, 1)",
        list(enumerate(OLD_PAYLOADS, start=1)),
    )
    conn.commit()
    conn.close()
    store = open_store(db)
    try:
        unfilled = store.turns.database.conn.execute(  # type: ignore[attr-defined]
            "SELECT seq FROM turns WHERE calls IS NULL"
        ).fetchall()
        assert unfilled == [(3,), (4,)]  # NUL escapes: read from the payload instead
        for session in ("alice", "bob", "odd"):
            outline_matches_payloads(store, session)
        assert store.turns.outline("odd").calls[0] == ("k1", "2")
    finally:
        store.close()


def test_older_postgres_turns_get_their_outline_columns(pg_url: str) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to a version 2 table
        conn.execute(
            "ALTER TABLE attic_turns DROP COLUMN calls, DROP COLUMN answers, DROP COLUMN name"
        )
        conn.execute("UPDATE attic_meta SET value = '2'")
        conn.execute("ALTER TABLE attic_passages RENAME COLUMN stems TO terms")  # as before 6
        for session, payloads in (("good", OLD_PAYLOADS[:2]), ("odd", OLD_PAYLOADS)):
            conn.cursor().executemany(
                "INSERT INTO attic_turns(session, seq, role, payload, tokens, counter, created_at, "
                "raw_tokens) VALUES (%s, %s, 'x', %s, 1, 'c', 0, 1)",
                [(session, i, p) for i, p in enumerate(payloads, start=1)],
            )
    store = open_store(pg_url)
    try:
        for session in ("good", "odd"):
            outline_matches_payloads(store, session)
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        unfilled = "SELECT session, count(*) FROM attic_turns WHERE calls IS NULL GROUP BY session"
        assert conn.execute(unfilled).fetchall() == [
            ("odd", 5)
        ]  # "{not json" stops its session only


def test_turn_chunks_of_older_files_move_to_the_turn_index(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copy(FIXTURE, db)
    with sqlite3.connect(db) as conn:
        before = conn.execute(
            "SELECT session, idx, ref = '~', text FROM chunks WHERE ref IN ('', '~') ORDER BY id"
        ).fetchall()
    assert len(before) == 8
    store = open_store(db)
    try:
        assert store.blobs.chunks("alice", "") == [] and store.blobs.chunks("alice", "~") == []
        moved = [
            (p.session, p.seq, p.context, p.text)
            for session in ("alice", "bob")
            for p in store.passages.passages(session, range(1, 20))
        ]
        assert sorted(moved) == sorted(before)
        hits = store.passages.search("alice", "marmalade")
        assert hits and hits[0].seq == 1 and not hits[0].context
        dated = store.passages.passages("alice", [hits[0].id])[0]
        assert dated.created_at == store.turns.read_seqs("alice", [1])[0].created_at
    finally:
        store.close()
    with ConversationMemory.open(
        db, session="alice", embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        assert "marmalade-v1" in mem.recall(query="marmalade")


def test_turn_chunks_of_older_postgres_databases_move_to_the_turn_index(pg_url: str) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to a version 3 database
        conn.execute("DROP TABLE attic_passages")
        conn.execute("UPDATE attic_meta SET value = '3'")
        conn.execute(
            "INSERT INTO attic_turns(session, seq, role, payload, tokens, counter, created_at, "
            "raw_tokens, calls) VALUES ('s', 1, 'human', '{}', 1, 'c', 1234.5, 1, '[]'), "
            "('s', 2, 'ai', '{}', 1, 'c', 1240.0, 1, '[]')"
        )
        conn.execute(
            'INSERT INTO attic_chunks(session, ref, idx, start, "end", text) VALUES '
            "('s', '', 1, 0, 20, 'user: 我住在北京大学附近'), "
            "('s', '', 2, 0, 20, 'ai: noted kiwi'), "
            "('s', '~', 2, 0, 40, 'user: 我住在北京大学附近\nai: noted kiwi'), "
            "('s', 'r1', 0, 0, 5, 'an output')"
        )
    store = open_store(pg_url)
    try:
        assert [c.ref for c in store.blobs.chunks("s")] == ["r1"]
        hits = store.passages.search("s", "北京")
        assert {(h.seq, h.context) for h in hits} == {(1, False), (2, True)}
        (kiwi,) = [h for h in store.passages.search("s", "kiwi") if not h.context]
        assert store.passages.passages("s", [kiwi.id])[0].created_at == 1240.0
    finally:
        store.close()


def _postgres_at(pg_url: str, version: int, *rows: str) -> Store:
    """A new database set back to ``version`` with ``rows`` inserted, opened again."""
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE attic_meta SET value = %s", (str(version),))
        if version < 6:
            conn.execute("ALTER TABLE attic_passages RENAME COLUMN stems TO terms")
        for statement in rows:
            conn.execute(statement)
    return open_store(pg_url)


def test_older_postgres_passages_and_chunks_get_their_words(pg_url: str) -> None:
    store = _postgres_at(
        pg_url,
        4,
        "INSERT INTO attic_passages(session, seq, idx, context, text, created_at) VALUES "
        "('s', 1, 0, false, 'user: ticket INC-5521 expired', 1.0), "
        "('s', 2, 0, false, 'user: 我住在北京大学附近', 2.0)",
        'INSERT INTO attic_chunks(session, ref, idx, start, "end", text) VALUES '
        "('s', 'r1', 0, 0, 20, 'job ERR-5521 failed')",
    )
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert [h.seq for h in store.passages.search("s", "5521")] == [1]
        assert [h.seq for h in store.passages.search("s", "北京")] == [2]
        assert [c.ref for c in store.blobs.search_text("s", "5521")] == ["r1"]
    finally:
        store.close()


def _unstemmed(conn: sqlite3.Connection) -> None:
    """Index a file's passages by their words as written, as version 5 did."""
    conn.execute("INSERT INTO passages_fts(passages_fts) VALUES ('delete-all')")
    for i, session, text in conn.execute("SELECT id, session, text FROM passages").fetchall():
        prefix = scope_token(session)
        words = " ".join(prefix + w for w in search_words(text).split())
        conn.execute("UPDATE passages SET stems = ? WHERE id = ?", (words, i))
    conn.execute("INSERT INTO passages_fts(rowid, body) SELECT id, stems FROM passages")
    conn.execute('ALTER TABLE passages RENAME COLUMN "stems" TO "terms"')
    conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")


def test_older_sqlite_passages_are_indexed_by_their_stems(tmp_path: Path) -> None:
    db = tmp_path / "v5.db"
    store = open_store(db)
    with store.write():
        store.passages.add(
            "s",
            [NewPassage(1, 0, "user: painting landscapes", 1.0),
             NewPassage(2, 0, "user: ticket INC-5521 expired", 2.0)],
        )  # fmt: skip
    store.close()
    with sqlite3.connect(db) as conn:
        _unstemmed(conn)
    old = open_store(db)  # "paints" is no word the version 5 index holds
    try:
        assert old.schema_version == SCHEMA_VERSION
        assert [h.seq for h in old.passages.search("s", "paints")] == [1]
        assert [h.seq for h in old.passages.phrase("s", "painted landscape")] == [1]
        assert [h.seq for h in old.passages.search("s", "5521")] == [2]
    finally:
        old.close()


def test_older_postgres_passages_are_indexed_by_their_stems(pg_url: str) -> None:
    store = _postgres_at(  # words as written, as version 5 indexed them
        pg_url,
        5,
        "INSERT INTO attic_passages(session, seq, idx, context, text, terms, created_at) "
        "VALUES ('s', 1, 0, false, 'user: painting landscapes', 'user painting landscapes', 1.0)",
    )
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert [h.seq for h in store.passages.search("s", "paints")] == [1]
        assert [h.seq for h in store.passages.phrase("s", "painted landscape")] == [1]
    finally:
        store.close()


def test_a_process_of_the_previous_release_cannot_index_a_turn_unstemmed(
    tmp_path: Path, pg_url: str
) -> None:
    # A rolling upgrade: a process of release 5 still holding the store open, once it is
    # migrated, is refused when it indexes a turn (its words would be found by no stemmed
    # query), rather than writing it.
    db = tmp_path / "s.db"
    open_store(db).close()
    v5_insert = (
        "INSERT INTO {table}(session, seq, idx, context, text, terms, created_at) "
        "VALUES ('s', 1, 0, {false}, 'user: painting', 'user painting', 1.0)"
    )
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.OperationalError, match="terms"):
        conn.execute(v5_insert.format(table="passages", false=0))
    open_store(pg_url).close()
    refused = pytest.raises(psycopg.errors.UndefinedColumn, match="terms")
    with psycopg.connect(pg_url, autocommit=True) as conn, refused:
        conn.execute(v5_insert.format(table="attic_passages", false="false"))
