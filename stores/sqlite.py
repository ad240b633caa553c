"""The embedded default store's connections, turns and summaries: one SQLite file (WAL).

Every write is one ``BEGIN IMMEDIATE`` transaction, so a crash or a failure leaves either
all of an ``append`` or none of it. ``sqlite3`` errors are wrapped in ``StoreError``. The
turn and summary logic is shared with PostgreSQL (``stores.sql_turns``,
``stores.sql_common``); ``SQLITE`` is how SQLite spells it.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from stores.base import SCHEMA_VERSION
from stores.errors import StoreError
from stores.sql_common import SQLSummaryStore
from stores.sql_turns import SQLTurnStore
from stores.sqlite_schema import SQLITE, check_version, migrate

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "SQLITE",
    "SQLiteDatabase",
    "SQLiteSummaryStore",
    "SQLiteTurnStore",
]

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


class SQLiteTurnStore(SQLTurnStore[SQLiteDatabase]):
    """``TurnStore`` on a ``SQLiteDatabase``; every row is scoped by session."""

    def __init__(self, database: SQLiteDatabase) -> None:
        super().__init__(database, SQLITE)


class SQLiteSummaryStore(SQLSummaryStore[SQLiteDatabase]):
    """``SummaryStore`` on a ``SQLiteDatabase``: every version kept, failures recorded."""

    def __init__(self, database: SQLiteDatabase) -> None:
        super().__init__(database, SQLITE)
