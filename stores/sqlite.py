"""The embedded default store: one SQLite file (WAL mode) through sqlite-utils.

Every write is one ``BEGIN IMMEDIATE`` transaction, so a crash or a failure leaves either
all of an ``append`` or none of it. ``sqlite3`` errors are wrapped in ``StoreError``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from stores.base import SCHEMA_VERSION, NewTurn, SessionInfo, TurnOutline, TurnRecord
from stores.errors import ConflictError, StoreError
from stores.sqlite_schema import check_version, migrate
from stores.turns import message_fields

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "SQLiteDatabase", "SQLiteTurnStore"]

DEFAULT_BUSY_TIMEOUT_S = 30.0
_T = TypeVar("_T")


class _Reader(sqlite3.Connection):
    """A thread's read connection (a subclass, so the database can hold it weakly)."""


class SQLiteDatabase:
    """The SQLite connections of a file, shared by its stores, safe across threads.

    Writes go through one connection, one transaction at a time. A file's reads use a
    connection of the reading thread's own, so a background thread reading the index or
    the vectors never holds up a prompt (WAL readers run beside the writer and each
    other); reads inside a write, and every read of ``":memory:"``, use the writer's.

    Args:
        path: A file path, or ``":memory:"`` for a private in-memory database.
        busy_timeout: Seconds a writer waits for another process's lock.

    Raises:
        StoreError: the file cannot be opened or is not a SQLite database.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._writer: int | None = None  # the thread in a write transaction
        self._closed = False
        self._busy_timeout = busy_timeout
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()  # closed with their thread
        self._local = threading.local()
        self.schema_version = SCHEMA_VERSION
        self.migrated_from = SCHEMA_VERSION
        """The schema version the file had when opened (0: new)."""
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from exc
        try:
            self.db = sqlite_utils.Database(self.conn)
            check_version(self.conn, self.path)  # before any pragma changes the file
            if self.path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
            with self.write() as conn:
                self.migrated_from = migrate(conn, self.path)
        except BaseException as exc:
            self.conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._unreadable(exc) from exc
            raise

    def _unreadable(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"cannot open {self.path!r} as a SQLite database: {exc}. Check the path, or "
            "move the file aside if it is not a context-attic database."
        )

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one immediate transaction; roll back on any error.

        Nested ``write()`` blocks on the same thread join the outer transaction, so
        several stores can write as one (all or nothing).
        """
        with self._lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a write on {self.path!r}: {exc}") from exc
            self._depth, self._writer = 1, threading.get_ident()
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | UnicodeEncodeError):
                    raise StoreError(f"write to {self.path!r} failed: {exc}") from exc
                raise
            finally:
                self._depth, self._writer = 0, None

    def read(self, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run a read on the thread's connection (see the class), wrapping backend errors."""
        if self.path == ":memory:" or self._writer == threading.get_ident():
            with self._lock:
                self._check_open()
                return self._wrapped(action, self.conn)
        return self._wrapped(action, self._reader())

    def _wrapped(self, action: Callable[[sqlite3.Connection], _T], conn: sqlite3.Connection) -> _T:
        try:
            return action(conn)
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise StoreError(f"read from {self.path!r} failed: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        """The calling thread's read connection, opened on its first read."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        with self._lock:
            self._check_open()
            if conn is None:
                try:
                    reader = sqlite3.connect(
                        self.path,
                        timeout=self._busy_timeout,
                        isolation_level=None,
                        check_same_thread=False,  # closed by whichever thread closes the store
                        factory=_Reader,
                    )
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read {self.path!r}: {exc}") from exc
                self._readers.add(reader)
                self._local.conn = conn = reader
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store for {self.path!r} is closed")

    def close(self) -> None:
        """Close the connections (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                for reader in list(self._readers):
                    reader.close()
                self.conn.close()


def _record(row: Sequence[Any]) -> TurnRecord:
    return TurnRecord(
        session=row[0],
        seq=row[1],
        role=row[2],
        payload=row[3],
        tokens=row[4],
        counter=row[5],
        created_at=row[6],
        compact=row[7],
        raw_tokens=row[8],
        ref=row[9],
    )


_COLUMNS = "session, seq, role, payload, tokens, counter, created_at, compact, raw_tokens, ref"
_OUTLINE = (
    "SELECT seq, role, tokens, raw_tokens, counter, ref, calls, answers, name, created_at, "
    "CASE WHEN calls IS NULL THEN payload END FROM turns WHERE session = ? AND seq > ? "
    "ORDER BY seq"
)
_MAX_PARAMETERS = 500
"""Seqs per ``IN (...)`` list (SQLite limits a statement's parameters)."""


def _outlined(payload: str) -> tuple[str, str | None, str | None]:
    """The outline columns of a payload: call ids (a JSON array), answer, name."""
    calls, answers, name = message_fields(payload)
    return json.dumps(calls), answers, name


def _ids(found: str | None) -> tuple[str, ...]:
    if found is None or found == "[]":
        return ()
    return tuple(str(i) for i in json.loads(found) if i is not None)


def _texts(column: Sequence[object]) -> list[str | None]:
    return [v if v is None or type(v) is str else str(v) for v in column]


class SQLiteTurnStore:
    """``TurnStore`` on a ``SQLiteDatabase``; every row is scoped by session."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self.database = database

    def append(self, session: str, turns: Sequence[NewTurn], *, after_seq: int) -> list[TurnRecord]:
        """Append turns atomically after ``after_seq`` (see ``TurnStore.append``)."""
        now = time.time()
        with self.database.write() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE session = ?", (session,)
            ).fetchone()
            if last != after_seq:
                raise ConflictError(
                    f"session {session!r} has turns up to {last}, not {after_seq}; re-read it"
                )
            records = [
                TurnRecord(
                    session=session,
                    seq=after_seq + i + 1,
                    role=t.role,
                    payload=t.payload,
                    tokens=t.tokens,
                    counter=t.counter,
                    created_at=now if t.created_at is None else t.created_at,
                    compact=t.compact,
                    raw_tokens=t.raw_tokens if t.raw_tokens is not None else t.tokens,
                    ref=t.ref,
                )
                for i, t in enumerate(turns)
            ]
            conn.executemany(
                f"INSERT INTO turns({_COLUMNS}, calls, answers, name) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.session,
                        r.seq,
                        r.role,
                        r.payload,
                        r.tokens,
                        r.counter,
                        r.created_at,
                        r.compact,
                        r.raw_tokens,
                        r.ref,
                        *_outlined(r.payload),
                    )
                    for r in records
                ],
            )
        return records

    def read(self, session: str, *, after_seq: int = 0) -> list[TurnRecord]:
        """Return the session's turns after ``after_seq``, in order."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM turns WHERE session = ? AND seq > ? ORDER BY seq",
                (session, after_seq),
            ).fetchall()
        )
        return [_record(row) for row in rows]

    def outline(self, session: str, *, after_seq: int = 0) -> TurnOutline:
        """Return the session's turns after ``after_seq`` without their payloads."""
        rows = self.database.read(
            lambda conn: conn.execute(_OUTLINE, (session, after_seq)).fetchall()
        )
        if not rows:
            return TurnOutline()
        seqs, roles, tokens, raw_tokens, counters, refs, found, answered, named, times, whole = zip(
            *rows, strict=True
        )
        calls = [() if c == "[]" else _ids(c) for c in found]
        answers, names = _texts(answered), _texts(named)
        for i, payload in enumerate(whole) if any(whole) else ():
            if payload is not None:
                calls[i], answers[i], names[i] = message_fields(payload)
        return TurnOutline(
            seqs,
            roles,
            tokens,
            raw_tokens,
            counters,
            refs,
            tuple(calls),
            tuple(answers),
            tuple(names),
            times,
        )

    def read_seqs(self, session: str, seqs: Sequence[int]) -> list[TurnRecord]:
        """Return the session's turns with these seqs, in seq order."""
        wanted = sorted(set(seqs))

        def read(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(wanted), _MAX_PARAMETERS):
                part = wanted[start : start + _MAX_PARAMETERS]
                marks = ",".join("?" * len(part))
                sql = f"SELECT {_COLUMNS} FROM turns WHERE session = ? AND seq IN ({marks})"
                rows += conn.execute(sql + " ORDER BY seq", (session, *part)).fetchall()
            return rows

        return [_record(row) for row in self.database.read(read)]

    def last_seq(self, session: str) -> int:
        """Return the session's highest seq, 0 when empty."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE session = ?", (session,)
            ).fetchone()
        )
        return int(row[0])

    def sessions(self) -> list[SessionInfo]:
        """Return every session with its turn count and tokens."""
        rows = self.database.read(
            lambda conn: conn.execute(
                "SELECT session, COUNT(*), SUM(raw_tokens), MIN(created_at), MAX(created_at) "
                "FROM turns GROUP BY session ORDER BY session"
            ).fetchall()
        )
        return [SessionInfo(r[0], r[1], r[2] or 0, r[3], r[4]) for r in rows]

    def close(self) -> None:
        """Close the underlying database."""
        self.database.close()
