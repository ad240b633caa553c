"""The scale-out store's connections, turns and summaries: PostgreSQL via psycopg 3's pool.

Every write is one transaction; nested ``write()`` blocks on a thread join it, so the
stores of one database write as one. Appends take a per-session advisory lock, so seqs
have no gaps and writers on any host neither lose nor duplicate a turn; a writer that
raced gets ``ConflictError`` (the memory re-reads and retries). Connections are checked
when taken from the pool; a restarted server or a dropped connection is reconnected to
for ``retry_seconds`` before a ``StoreError`` says it lasted. A connection lost inside a
write transaction fails that write with ``StoreError`` at once (the server rolls it back:
nothing of it is kept). psycopg errors are wrapped in ``StoreError`` here. The turn and
summary logic is shared with SQLite; ``POSTGRES`` is how PostgreSQL spells it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from stores.errors import InterruptedWriteError, StoreError
from stores.sql_common import Dialect, SQLSummaryStore
from stores.sql_turns import SQLTurnStore

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_RETRY_S",
    "POSTGRES",
    "PostgresDatabase",
    "PostgresSummaryStore",
    "PostgresTurnStore",
    "from_db",
    "redact",
    "session_lock",
    "to_db",
]

DEFAULT_POOL_SIZE = 8
DEFAULT_RETRY_S = 30.0
"""How long an unreachable server is retried before ``StoreError``."""
_T = TypeVar("_T")
_ESCAPE = "\U0010fffe"  # a noncharacter: text never needs it, so escaping it is rare
_ESCAPED = re.compile("\U0010fffe(.)", re.DOTALL)
Connection = psycopg.Connection[tuple[Any, ...]]


def to_db(text: str) -> str:
    """Escape text for PostgreSQL, which cannot store NUL characters (reversibly)."""
    if "\x00" not in text and _ESCAPE not in text:
        return text
    return text.replace(_ESCAPE, _ESCAPE + _ESCAPE).replace("\x00", _ESCAPE + "0")


def from_db(text: str) -> str:
    """Invert :func:`to_db`."""
    if _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "0" else _ESCAPE, text)


def redact(url: str) -> str:
    """Return the URL without its password (for messages and ``Store.location``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


_LOST_STATES = ("08", "57P")
"""SQLSTATE classes of a lost session: connection exceptions, the server shutting it down
(``57P01`` admin_shutdown: a fast shutdown or ``pg_terminate_backend``)."""


def _connection_lost(conn: Connection, exc: BaseException) -> bool:
    """Whether ``exc`` (or the error it wraps) says the connection or session is gone."""
    if conn.broken:
        return True
    error = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_LOST_STATES)


def session_lock(conn: Connection, session: str) -> None:
    """Serialize, until commit, the transactions writing one session (any host)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (to_db(session),))


class PostgresDatabase:
    """A connection pool on one PostgreSQL database, shared by its stores, thread-safe.

    Args:
        url: A ``postgresql://`` URL (libpq's format).
        pool_size: Most connections held.
        retry_seconds: How long an unreachable server is retried before ``StoreError``.

    Raises:
        StoreError: the server cannot be reached within ``retry_seconds``.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        retry_seconds: float = DEFAULT_RETRY_S,
    ) -> None:
        self.url = url
        self.location = redact(url)
        self.retry_seconds = retry_seconds
        self._local = threading.local()
        self._closed = False
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            reconnect_timeout=max(retry_seconds, 1.0),
            open=False,
            name="context-attic",
        )
        try:
            self._pool.open(wait=True, timeout=retry_seconds)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.location} within {retry_seconds:g} s: "
                f"{exc}. Check the URL and that the server is running."
            ) from exc

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """Take a checked connection from the pool, waiting out a restart."""
        self._check_open()
        try:
            with self._pool.connection(timeout=self.retry_seconds) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreError(
                f"PostgreSQL at {self.location} stayed unreachable for "
                f"{self.retry_seconds:g} s: {exc}"
            ) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Run the block in one transaction; roll back on any error (nested blocks join).

        Raises:
            InterruptedWriteError: the connection was lost: inside the block (the server
                rolled it back, nothing was written) or while committing
                (``maybe_committed``: whether it was written is unknown).
            StoreError: the write failed otherwise; nothing was written.
        """
        current: Connection | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        committing, lost = False, False
        with self._connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    try:
                        yield conn
                    except BaseException as exc:
                        lost = _connection_lost(conn, exc)
                        raise
                    committing = True
            except (psycopg.Error, UnicodeEncodeError, StoreError) as exc:
                error = self._write_error(exc, committing, lost or _connection_lost(conn, exc))
                if error is exc:
                    raise
                raise error from exc
            finally:
                self._local.conn = None

    def _write_error(self, exc: Exception, committing: bool, lost: bool) -> Exception:
        """The error a failed write raises (``exc`` itself when it says enough)."""
        if isinstance(exc, InterruptedWriteError) or (isinstance(exc, StoreError) and not lost):
            return exc
        if lost and committing:
            return InterruptedWriteError(
                f"the connection to PostgreSQL at {self.location} was lost while committing; "
                f"whether the write was committed is unknown: {exc}",
                maybe_committed=True,
            )
        if lost:
            return InterruptedWriteError(
                f"the connection to PostgreSQL at {self.location} was lost before the write "
                f"committed (nothing was written): {exc}"
            )
        return StoreError(f"write to PostgreSQL at {self.location} failed: {exc}")

    @property
    def writing(self) -> bool:
        """Whether this thread is inside ``write()`` (what it reads may yet roll back)."""
        return getattr(self._local, "conn", None) is not None

    def read(self, action: Callable[[Connection], _T]) -> _T:
        """Run a read (inside the thread's transaction if any), retrying a lost connection.

        Raises:
            StoreError: the backend failed, or stayed unreachable for ``retry_seconds``.
        """
        current: Connection | None = getattr(self._local, "conn", None)
        deadline = time.monotonic() + self.retry_seconds
        while True:
            try:
                if current is not None:
                    return action(current)
                with self._connection() as conn:
                    return action(conn)
            except psycopg.OperationalError as exc:
                # Outside a transaction a read is safe to repeat: the pool replaces the
                # broken connection. Inside one, the transaction is lost with it.
                if current is not None or self._closed or time.monotonic() > deadline:
                    raise StoreError(f"read from {self.location} failed: {exc}") from exc
                time.sleep(0.1)
            except (psycopg.Error, UnicodeEncodeError) as exc:
                raise StoreError(f"read from {self.location} failed: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store for {self.location} is closed")

    def close(self) -> None:
        """Close the pool (idempotent)."""
        if not self._closed:
            self._closed = True
            self._pool.close()


POSTGRES = Dialect(
    mark="%s",
    prefix="attic_",
    encode=to_db,
    decode=from_db,
    lock=session_lock,
    conflicts=(pg_errors.UniqueViolation,),
)
"""PostgreSQL's spelling: ``%s`` placeholders, ``attic_`` tables, NUL-escaped text,
a per-session advisory lock."""


class PostgresTurnStore(SQLTurnStore[PostgresDatabase]):
    """``TurnStore`` on a ``PostgresDatabase``; every row is scoped by session."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, POSTGRES)


class PostgresSummaryStore(SQLSummaryStore[PostgresDatabase]):
    """``SummaryStore`` on a ``PostgresDatabase``: every version kept, failures recorded."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, POSTGRES)
