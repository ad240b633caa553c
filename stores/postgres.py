"""The scale-out store's connection layer and turns: PostgreSQL through psycopg 3's pool.

Every write is one transaction; nested ``write()`` blocks on a thread join it, so the
stores of one database write as one. Appends take a per-session advisory lock, so seqs
have no gaps and writers on any host neither lose nor duplicate a turn; a writer that
raced gets ``ConflictError`` (the memory re-reads and retries). Connections are checked
when taken from the pool; a restarted server or a dropped connection is reconnected to
for ``retry_seconds`` before a ``StoreError`` says it lasted. psycopg errors are wrapped
in ``StoreError`` here.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from stores.base import NewTurn, SessionInfo, TurnOutline, TurnRecord
from stores.errors import ConflictError, StoreError
from stores.turns import message_fields

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_RETRY_S",
    "PostgresDatabase",
    "PostgresTurnStore",
    "from_db",
    "redact",
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
        """Run the block in one transaction; roll back on any error (nested blocks join)."""
        current: Connection | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield conn
            except (psycopg.Error, UnicodeEncodeError) as exc:
                raise StoreError(f"write to PostgreSQL at {self.location} failed: {exc}") from exc
            finally:
                self._local.conn = None

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


_COLUMNS = "session, seq, role, payload, tokens, counter, created_at, compact, raw_tokens, ref"
_OUTLINE = (
    "SELECT seq, role, tokens, raw_tokens, counter, ref, calls, answers, name, created_at, "
    "CASE WHEN calls IS NULL THEN payload END FROM attic_turns WHERE session = %s AND seq > %s "
    "ORDER BY seq"
)


def _optional(text: str | None) -> str | None:
    return None if text is None else from_db(text)


def _record(row: Sequence[Any]) -> TurnRecord:
    return TurnRecord(
        session=from_db(row[0]),
        seq=row[1],
        role=from_db(row[2]),
        payload=from_db(row[3]),
        tokens=row[4],
        counter=from_db(row[5]),
        created_at=row[6],
        compact=_optional(row[7]),
        raw_tokens=row[8],
        ref=_optional(row[9]),
    )


def _ids(found: str | None) -> tuple[str, ...]:
    """The call ids of a ``calls`` column (a JSON array)."""
    if not found or found == "[]":
        return ()
    return tuple(from_db(str(i)) for i in json.loads(found) if i is not None)


def _row(record: TurnRecord) -> tuple[Any, ...]:
    compact = None if record.compact is None else to_db(record.compact)
    ref = None if record.ref is None else to_db(record.ref)
    calls, answers, name = message_fields(record.payload)
    return (
        to_db(json.dumps(calls)),
        None if answers is None else to_db(answers),
        None if name is None else to_db(name),
        to_db(record.session),
        record.seq,
        to_db(record.role),
        to_db(record.payload),
        record.tokens,
        to_db(record.counter),
        record.created_at,
        compact,
        record.raw_tokens,
        ref,
    )


class PostgresTurnStore:
    """``TurnStore`` on a ``PostgresDatabase``; every row is scoped by session."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def append(self, session: str, turns: Sequence[NewTurn], *, after_seq: int) -> list[TurnRecord]:
        """Append turns atomically after ``after_seq`` (see ``TurnStore.append``)."""
        now = time.time()
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
        rows = [_row(r) for r in records]
        with self.database.write() as conn:
            session_lock(conn, session)
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM attic_turns WHERE session = %s",
                (to_db(session),),
            ).fetchone()
            last = int(row[0]) if row else 0
            if last != after_seq:
                raise ConflictError(
                    f"session {session!r} has turns up to {last}, not {after_seq}; re-read it"
                )
            try:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        f"INSERT INTO attic_turns(calls, answers, name, {_COLUMNS}) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        rows,
                    )
            except pg_errors.UniqueViolation as exc:  # the lock makes this a backstop only
                raise ConflictError(f"session {session!r} changed while appending") from exc
        return records

    def read(self, session: str, *, after_seq: int = 0) -> list[TurnRecord]:
        """Return the session's turns after ``after_seq``, in order."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM attic_turns WHERE session = %s AND seq > %s ORDER BY seq",
                (to_db(session), after_seq),
            ).fetchall()
        )
        return [_record(row) for row in rows]

    def outline(self, session: str, *, after_seq: int = 0) -> TurnOutline:
        """Return the session's turns after ``after_seq`` without their payloads."""
        rows = self.database.read(
            lambda conn: conn.execute(_OUTLINE, (to_db(session), after_seq)).fetchall()
        )
        if not rows:
            return TurnOutline()
        seqs, roles, tokens, raw_tokens, counters, refs, found, answered, named, times, whole = zip(
            *rows, strict=True
        )
        calls = [() if c == "[]" else _ids(c) for c in found]
        answers, names = [_optional(a) for a in answered], [_optional(n) for n in named]
        for i, payload in enumerate(whole):
            if payload is not None:  # written before schema version 3, not parsed then
                calls[i], answers[i], names[i] = message_fields(from_db(payload))
        return TurnOutline(
            seqs,
            tuple(from_db(r) for r in roles),
            tokens,
            raw_tokens,
            tuple(from_db(c) for c in counters),
            tuple(_optional(r) for r in refs),
            tuple(calls),
            tuple(answers),
            tuple(names),
            times,
        )

    def read_seqs(self, session: str, seqs: Sequence[int]) -> list[TurnRecord]:
        """Return the session's turns with these seqs, in seq order."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM attic_turns WHERE session = %s AND seq = ANY(%s) "
                "ORDER BY seq",
                (to_db(session), sorted(set(seqs))),
            ).fetchall()
        )
        return [_record(row) for row in rows]

    def last_seq(self, session: str) -> int:
        """Return the session's highest seq, 0 when empty."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM attic_turns WHERE session = %s",
                (to_db(session),),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def sessions(self) -> list[SessionInfo]:
        """Return every session with its turn count and tokens."""
        rows = self.database.read(
            lambda conn: conn.execute(
                "SELECT session, COUNT(*), COALESCE(SUM(raw_tokens), 0), MIN(created_at), "
                "MAX(created_at) FROM attic_turns GROUP BY session ORDER BY session"
            ).fetchall()
        )
        infos = [SessionInfo(from_db(r[0]), r[1], int(r[2]), r[3], r[4]) for r in rows]
        return sorted(infos, key=lambda info: info.session)

    def close(self) -> None:
        """Close the underlying database."""
        self.database.close()
