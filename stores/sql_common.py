"""What the SQLite and PostgreSQL stores share: the logic, written once, over two dialects.

The two stores differ in SQL dialect (placeholders, table names, how text is escaped, how
a session's writers are serialized), not in what they decide. ``Dialect`` names those
differences; the summary store, the schema bookkeeping and forgetting here take one, as
does the turn store in ``stores.sql_turns``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from stores.base import SCHEMA_VERSION, ForgetReport, SummaryRecord
from stores.errors import StoreError

__all__ = [
    "FORGOTTEN_TABLES",
    "Database",
    "Dialect",
    "SQLSummaryStore",
    "SessionTable",
    "apply_migrations",
    "delete_sessions",
    "forget_report",
    "idle_sessions",
    "refuse_newer",
]

_T = TypeVar("_T")
FORGOTTEN_TABLES = ("turns", "blobs", "chunks", "passages", "summaries")
"""The tables holding a session's rows, by their unprefixed names."""


class Database(Protocol):
    """A store's connections: ``write()`` is one transaction, ``read`` runs a query.

    Both wrap the backend's errors in ``StoreError``; connections are ``sqlite3`` or
    psycopg ones, which share ``execute(...).fetchone()/fetchall()`` and ``cursor()``.
    """

    def write(self) -> AbstractContextManager[Any]:
        """Run the block in one transaction, yielding its connection."""
        ...

    def read(self, action: Callable[[Any], _T]) -> _T:
        """Run ``action(connection)`` and return what it returns."""
        ...

    def close(self) -> None:
        """Close the connections (idempotent); later calls raise ``StoreError``."""
        ...


def _no_lock(conn: Any, session: str) -> None:
    """SQLite's write transactions are serialized already (``BEGIN IMMEDIATE``)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend spells what the stores share.

    Attributes:
        mark: The query parameter placeholder (``?`` or ``%s``).
        prefix: Prepended to every table name (``attic_`` on PostgreSQL).
        encode: Text on its way into the database (None: stored as it is).
        decode: The inverse of ``encode`` (None: read as it is).
        lock: Serializes, until commit, the transactions writing one session.
        conflicts: Backend errors that mean another writer took the same key first.
    """

    mark: str
    prefix: str = ""
    encode: Callable[[str], str] | None = None
    decode: Callable[[str], str] | None = None
    lock: Callable[[Any, str], None] = _no_lock
    conflicts: tuple[type[Exception], ...] = ()

    def table(self, name: str) -> str:
        """Return a table's name in this backend."""
        return self.prefix + name

    def marks(self, count: int) -> str:
        """Return ``count`` placeholders, comma-separated."""
        return ", ".join([self.mark] * count)

    def put(self, text: str) -> str:
        """Return text as stored."""
        return text if self.encode is None else self.encode(text)

    def put_optional(self, text: str | None) -> str | None:
        """Return optional text as stored."""
        return None if text is None else self.put(text)

    def get(self, text: str) -> str:
        """Return stored text as it was given."""
        return text if self.decode is None else self.decode(text)

    def get_optional(self, value: object) -> str | None:
        """Return a stored optional text (a number stored there reads as its digits)."""
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        return text if self.decode is None else self.decode(text)

    def column(self, values: Sequence[str]) -> tuple[str, ...]:
        """Return a column of stored texts as given."""
        decode = self.decode
        return tuple(values) if decode is None else tuple(decode(v) for v in values)

    def optional_column(self, values: Sequence[object]) -> list[str | None]:
        """Return a column of stored optional texts as given (see ``get_optional``)."""
        texts = [v if v is None or isinstance(v, str) else str(v) for v in values]
        decode = self.decode
        return texts if decode is None else [None if v is None else decode(v) for v in texts]


def executemany(conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement for many rows (``sqlite3`` and psycopg connections alike)."""
    if not rows:
        return
    cursor = conn.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _one_int(row: Sequence[Any] | None) -> int:
    return int(row[0]) if row is not None and row[0] is not None else 0


_SUMMARY_COLUMNS = (
    "session, version, covers_upto, text, tokens, summarizer, input_tokens, output_tokens, "
    "created_at, error"
)
_D = TypeVar("_D", bound=Database)


class SessionTable(Generic[_D]):
    """A store over one table whose rows are scoped by session (``TABLE``, unprefixed)."""

    TABLE = ""

    def __init__(self, database: _D, dialect: Dialect) -> None:
        self.database = database
        self.dialect = dialect
        self._table = dialect.table(self.TABLE)

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Return every row a read query finds."""
        return self.database.read(lambda conn: conn.execute(sql, params).fetchall())

    def _fetch_one(self, sql: str, params: Sequence[Any]) -> Any:
        """Return the first row a read query finds, None if none."""
        return self.database.read(lambda conn: conn.execute(sql, params).fetchone())


class SQLSummaryStore(SessionTable[_D]):
    """``SummaryStore`` over a ``Database`` in a ``Dialect``; every row is scoped by session."""

    TABLE = "summaries"

    def _record(self, row: Sequence[Any]) -> SummaryRecord:
        get = self.dialect.get
        return SummaryRecord(
            get(row[0]), row[1], row[2], get(row[3]), row[4], get(row[5]), row[6], row[7],
            row[8], self.dialect.get_optional(row[9]),
        )  # fmt: skip

    def add_summary(self, record: SummaryRecord) -> None:
        """Store a version (its number is the next free one for the session)."""
        put, mark, error = self.dialect.put, self.dialect.mark, record.error
        with self.database.write() as conn:
            self.dialect.lock(conn, record.session)
            last = _one_int(
                conn.execute(
                    f"SELECT MAX(version) FROM {self._table} WHERE session = {mark}",
                    (put(record.session),),
                ).fetchone()
            )
            conn.execute(
                f"INSERT INTO {self._table} ({_SUMMARY_COLUMNS}) "
                f"VALUES ({self.dialect.marks(10)})",
                (
                    put(record.session), last + 1, record.covers_upto, put(record.text),
                    record.tokens, put(record.summarizer), record.input_tokens,
                    record.output_tokens, record.created_at, self.dialect.put_optional(error),
                ),
            )  # fmt: skip

    def latest(self, session: str) -> SummaryRecord | None:
        """Return the newest successful summary, None if there is none."""
        row = self._fetch_one(
            f"SELECT {_SUMMARY_COLUMNS} FROM {self._table} WHERE session = {self.dialect.mark} "
            "AND error IS NULL ORDER BY version DESC LIMIT 1",
            (self.dialect.put(session),),
        )
        return None if row is None else self._record(row)

    def attempts(self, session: str) -> list[SummaryRecord]:
        """Return every version and failed attempt, oldest first."""
        rows = self._fetch(
            f"SELECT {_SUMMARY_COLUMNS} FROM {self._table} WHERE session = {self.dialect.mark} "
            "ORDER BY version",
            (self.dialect.put(session),),
        )
        return [self._record(r) for r in rows]

    def spent(self, session: str) -> tuple[int, int]:
        """Return the summarizer's input and output tokens over every attempt, summed."""
        row = self._fetch_one(
            "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) "
            f"FROM {self._table} WHERE session = {self.dialect.mark}",
            (self.dialect.put(session),),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def clear_summaries(self, session: str) -> None:
        """Forget a session's summaries (to rebuild them from the turns)."""
        with self.database.write() as conn:
            conn.execute(
                f"DELETE FROM {self._table} WHERE session = {self.dialect.mark}",
                (self.dialect.put(session),),
            )


def refuse_newer(version: int, where: str) -> None:
    """Refuse a store written by a newer release, before anything is changed.

    Raises:
        StoreError: ``version`` is above ``SCHEMA_VERSION``.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has context-attic schema version {version}, newer than this release "
            f"reads ({SCHEMA_VERSION}); upgrade context-attic to open it. Nothing was changed."
        )


def apply_migrations(
    conn: Any,
    dialect: Dialect,
    migrations: dict[int, list[str]],
    version: int,
    steps: Mapping[int, Callable[[Any], None]] | None = None,
) -> None:
    """Run every migration above ``version`` in order and record ``SCHEMA_VERSION``.

    ``steps`` are data moves in Python run after a version's statements, only when an
    existing schema (``version > 0``) is brought forward. The caller holds the
    transaction (all or nothing) and has called ``refuse_newer``.
    """
    for target in sorted(migrations):
        if target > version:
            for statement in migrations[target]:
                conn.execute(statement)
            if version > 0 and steps and target in steps:
                steps[target](conn)
    if version < SCHEMA_VERSION:
        conn.execute(
            f"INSERT INTO {dialect.table('meta')} (key, value) "
            f"VALUES ('schema_version', {dialect.mark}) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def idle_sessions(database: Database, dialect: Dialect, cutoff: float) -> list[str]:
    """Return the sessions whose newest turn is older than ``cutoff`` (epoch s), by name."""
    rows = database.read(
        lambda conn: conn.execute(
            f"SELECT session FROM {dialect.table('turns')} GROUP BY session "
            f"HAVING MAX(created_at) < {dialect.mark}",
            (cutoff,),
        ).fetchall()
    )
    return sorted(dialect.get(r[0]) for r in rows)


def delete_sessions(conn: Any, dialect: Dialect, sessions: Sequence[str]) -> dict[str, int]:
    """Delete the sessions' rows inside the caller's transaction; rows deleted by table.

    Each session's lock is taken first, so a write in flight commits before its rows go.
    """
    counts = dict.fromkeys(FORGOTTEN_TABLES, 0)
    for session in sessions:
        dialect.lock(conn, session)
        for table in FORGOTTEN_TABLES:
            cursor = conn.execute(
                f"DELETE FROM {dialect.table(table)} WHERE session = {dialect.mark}",
                (dialect.put(session),),
            )
            counts[table] += max(cursor.rowcount, 0)
    return counts


def forget_report(
    sessions: Sequence[str], counts: dict[str, int], *, index_files: int = 0
) -> ForgetReport:
    """Return what forgetting ``sessions`` deleted (``counts`` from ``delete_sessions``)."""
    return ForgetReport(
        sessions=tuple(sessions),
        turns=counts.get("turns", 0),
        blobs=counts.get("blobs", 0),
        chunks=counts.get("chunks", 0),
        summaries=counts.get("summaries", 0),
        index_files=index_files,
        passages=counts.get("passages", 0),
    )
