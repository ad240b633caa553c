"""The SQLite file's schema, version by version, and the migration that applies it.

``meta.schema_version`` names the last version applied. Opening a file applies every later
version in one transaction (DDL is transactional in SQLite), so a failed migration leaves
the file as it was; a file from a newer release is refused, never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from stores.errors import StoreError
from stores.sql_common import Dialect, apply_migrations, refuse_newer
from stores.text_search import scoped_words
from stores.turn_index import scope_token

__all__ = ["MIGRATIONS", "SQLITE", "check_version", "migrate", "read_version"]

SQLITE = Dialect(mark="?")
"""SQLite's spelling: ``?`` placeholders, plain table names, text stored as it is."""

_V1 = [
    'CREATE TABLE IF NOT EXISTS "meta" ("key" TEXT PRIMARY KEY, "value" TEXT)',
    'CREATE TABLE IF NOT EXISTS "turns" ("session" TEXT, "seq" INTEGER, "role" TEXT, '
    '"payload" TEXT, "tokens" INTEGER, "counter" TEXT, "created_at" REAL, "compact" TEXT, '
    '"raw_tokens" INTEGER, "ref" TEXT, PRIMARY KEY ("session", "seq"))',
    'CREATE TABLE IF NOT EXISTS "blobs" ("session" TEXT, "ref" TEXT, "sha256" TEXT, '
    '"size" INTEGER, "kind" TEXT, "tokens" INTEGER, "digest_tokens" INTEGER, "note" TEXT, '
    '"created_at" REAL, "data" BLOB, PRIMARY KEY ("session", "ref"))',
    'CREATE TABLE IF NOT EXISTS "chunks" ("id" INTEGER PRIMARY KEY, "session" TEXT, '
    '"ref" TEXT, "idx" INTEGER, "start" INTEGER, "end" INTEGER, "text" TEXT, "vector" BLOB, '
    '"model" TEXT)',
    "CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_ref ON chunks(session, ref, idx)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
    "text, content='chunks', content_rowid='id', tokenize='unicode61')",
    "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    'CREATE TABLE IF NOT EXISTS "summaries" ("session" TEXT, "version" INTEGER, '
    '"covers_upto" INTEGER, "text" TEXT, "tokens" INTEGER, "summarizer" TEXT, '
    '"input_tokens" INTEGER, "output_tokens" INTEGER, "created_at" REAL, "error" TEXT, '
    'PRIMARY KEY ("session", "version"))',
]
_V2 = [
    # Retention (forget_older_than) finds the sessions active since a cutoff by time.
    "CREATE INDEX IF NOT EXISTS turns_by_time ON turns(created_at)",
]
_V3 = [
    # What TurnStore.outline reads instead of the payloads (``message_fields``): the tool
    # call ids a message issues (a JSON array), the call it answers, its name. Appends
    # fill them; older rows are filled here, except those whose JSON escapes a NUL (SQLite
    # cuts text there): their ``calls`` stays NULL and the outline reads their payload.
    'ALTER TABLE turns ADD COLUMN "calls" TEXT',
    'ALTER TABLE turns ADD COLUMN "answers" TEXT',
    'ALTER TABLE turns ADD COLUMN "name" TEXT',
    "UPDATE turns SET calls = CASE WHEN json_valid(payload) THEN "
    "(SELECT json_group_array(json_extract(value, '$.id')) "
    "FROM json_each(payload, '$.data.tool_calls') WHERE type = 'object' "
    "AND json_type(payload, '$.data.tool_calls') = 'array') ELSE '[]' END, "
    "answers = CASE WHEN json_valid(payload) "
    "THEN json_extract(payload, '$.data.tool_call_id') END, "
    "name = CASE WHEN json_valid(payload) THEN json_extract(payload, '$.data.name') END "
    "WHERE instr(payload, '\\u0000') = 0",
]
_V4 = [
    # Turns get a search index of their own (``stores.turn_index``): passages, not
    # archive chunks under the sentinel refs "" and "~" that version 3 used. ``terms``
    # holds the passage's words glued to the session's token (``scoped_words``), so the
    # full-text index keeps each session's words apart: a search reads, ranks and counts
    # (BM25's document frequencies) the session's rows only.
    'CREATE TABLE IF NOT EXISTS "passages" ("id" INTEGER PRIMARY KEY, "session" TEXT NOT NULL, '
    '"seq" INTEGER NOT NULL, "idx" INTEGER NOT NULL, "context" INTEGER NOT NULL, '
    '"text" TEXT NOT NULL, "terms" TEXT NOT NULL, "created_at" REAL NOT NULL, '
    '"vector" BLOB, "model" TEXT)',
    "CREATE UNIQUE INDEX IF NOT EXISTS passages_by_seq ON passages(session, seq, context, idx)",
    "CREATE INDEX IF NOT EXISTS passages_by_session ON passages(session, id)",
    # Contentless: the words are not stored a third time.
    "CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5("
    "body, content='', tokenize='unicode61')",
    # Rows per (session's) word, read to keep a search's work bounded.
    "CREATE VIRTUAL TABLE IF NOT EXISTS passages_vocab USING fts5vocab(passages_fts, row)",
    "CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN "
    "INSERT INTO passages_fts(rowid, body) VALUES (new.id, new.terms); END",
    "CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN "
    "INSERT INTO passages_fts(passages_fts, rowid, body) VALUES ('delete', old.id, old.terms); "
    "END",
]
_V5: list[str] = []
"""Version 5 changed PostgreSQL's word index only (SQLite's already split words so)."""
_V6 = [
    # Turns are indexed by their words' stems (``stores.text_search.stem``): the words
    # indexed before are dropped here, and ``_stem_passages`` indexes every passage anew.
    "INSERT INTO passages_fts(passages_fts) VALUES ('delete-all')",
    # Renamed, so that a process of an older release still holding the file open (a
    # rolling upgrade) is refused when it indexes a turn, rather than adding words
    # unstemmed that no stemmed query finds. SQLite renames it in the triggers too.
    'ALTER TABLE passages RENAME COLUMN "terms" TO "stems"',
]
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6}
"""The statements that bring a file from the version before to this one."""
_MOVE_BATCH = 5000


def _move_turn_chunks(conn: sqlite3.Connection) -> None:
    """Move version 3's turn chunks (refs "" and "~") into the passage index, vectors
    and all, in chunk id order; each turn stays one passage (its date from the turn)."""
    cursor = conn.execute(
        "SELECT c.session, c.idx, c.ref = '~', c.text, c.vector, c.model, "
        "coalesce(t.created_at, 0) FROM chunks c LEFT JOIN turns t "
        "ON t.session = c.session AND t.seq = c.idx WHERE c.ref IN ('', '~') ORDER BY c.id"
    )
    while rows := cursor.fetchmany(_MOVE_BATCH):
        conn.executemany(
            "INSERT INTO passages(session, seq, idx, context, text, terms, created_at, "
            "vector, model) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?)",
            [
                (s, seq, context, text, scoped_words(scope_token(s), text), at, vector, model)
                for s, seq, context, text, vector, model, at in rows
            ],
        )
    conn.execute("DELETE FROM chunks WHERE ref IN ('', '~')")


def _stem_passages(conn: sqlite3.Connection) -> None:
    """Index every passage by its words' stems (``scoped_words``), in id order, a batch
    of ``_MOVE_BATCH`` at a time: the stored words are replaced, then the full-text
    index (emptied by ``_V6``) is filled from them."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, session, text FROM passages WHERE id > ? ORDER BY id LIMIT ?",
            (last, _MOVE_BATCH),
        ).fetchall()
        if not rows:
            break
        conn.executemany(
            "UPDATE passages SET stems = ? WHERE id = ?",
            [(scoped_words(scope_token(s), text), i) for i, s, text in rows],
        )
        last = rows[-1][0]
    conn.execute("INSERT INTO passages_fts(rowid, body) SELECT id, stems FROM passages")


_STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {
    4: _move_turn_chunks,
    6: _stem_passages,
}
"""Data moved by code after a version's statements ran (on files that had data)."""


def read_version(conn: sqlite3.Connection) -> int:
    """Return the file's schema version: 0 for an empty file (nothing created yet)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
    if found is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError as exc:
        raise StoreError(f"the file's schema version {row[0]!r} is not a number") from exc


def check_version(conn: sqlite3.Connection, location: str) -> int:
    """Return the file's schema version, refusing one newer than this release's.

    Raises:
        StoreError: the file was written by a newer release (schema above ours).
    """
    version = read_version(conn)
    refuse_newer(version, repr(location))
    return version


def migrate(conn: sqlite3.Connection, location: str) -> int:
    """Bring the file to ``SCHEMA_VERSION`` (the caller holds a write transaction).

    Returns:
        The version the file had before (0: it was empty).

    Raises:
        StoreError: the file was written by a newer release (schema above ours).
    """
    version = check_version(conn, location)
    apply_migrations(conn, SQLITE, MIGRATIONS, version, _STEPS)
    return version
