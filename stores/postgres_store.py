"""The PostgreSQL ``Store``: many app servers, one memory.

Open it with a ``postgresql://`` URL (``stores.open_store``). The schema is migrated on
open; FAISS indexes are per-process caches rebuilt from the vectors stored here, so no
index file is written. Forgetting deletes the session's rows in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from stores.base import SCHEMA_VERSION, ForgetReport
from stores.postgres import (
    DEFAULT_POOL_SIZE,
    DEFAULT_RETRY_S,
    PostgresDatabase,
    PostgresTurnStore,
    from_db,
    session_lock,
    to_db,
)
from stores.postgres_archive import PostgresBlobStore
from stores.postgres_passages import PostgresTurnIndex
from stores.postgres_schema import migrate
from stores.postgres_summary import PostgresSummaryStore

__all__ = ["PostgresStore"]


class PostgresStore:
    """``Store`` on one PostgreSQL database (tables prefixed ``attic_``).

    Args:
        url: A ``postgresql://user[:password]@host[:port]/db`` URL.
        pool_size: Most connections this process holds.
        retry_seconds: How long an unreachable server is retried before ``StoreError``.

    Raises:
        StoreError: the server cannot be reached, or its schema is newer than this
            release's.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        retry_seconds: float = DEFAULT_RETRY_S,
    ) -> None:
        self.database = PostgresDatabase(url, pool_size=pool_size, retry_seconds=retry_seconds)
        try:
            with self.database.write() as conn:
                self.migrated_from = migrate(conn, self.database.location)
        except BaseException:
            self.database.close()
            raise
        self._turns = PostgresTurnStore(self.database)
        self._blobs = PostgresBlobStore(self.database)
        self._passages = PostgresTurnIndex(self.database)
        self._summaries = PostgresSummaryStore(self.database)

    @property
    def location(self) -> str:
        """The URL, without its password."""
        return self.database.location

    @property
    def turns(self) -> PostgresTurnStore:
        """The sessions' messages."""
        return self._turns

    @property
    def blobs(self) -> PostgresBlobStore:
        """Archived originals, their chunks and the chunks' vectors."""
        return self._blobs

    @property
    def passages(self) -> PostgresTurnIndex:
        """The turn search index: passages of the sessions' turns, and their vectors."""
        return self._passages

    @property
    def summaries(self) -> PostgresSummaryStore:
        """The sessions' running summaries."""
        return self._summaries

    @property
    def index_directory(self) -> Path | None:
        """None: FAISS indexes are rebuilt in each process from the stored vectors."""
        return None

    @property
    def schema_version(self) -> int:
        """The schema version of the database (migrated on open)."""
        return SCHEMA_VERSION

    @contextmanager
    def write(self) -> Iterator[None]:
        """Run the block as one transaction over every table (see ``Store.write``)."""
        with self.database.write():
            yield

    def forget(self, session: str) -> ForgetReport:
        """Delete every row of one session, in one transaction (see ``Store.forget``)."""
        return self._forget([session])

    def forget_older_than(self, cutoff: float) -> ForgetReport:
        """Forget the sessions whose newest turn is older than ``cutoff`` (epoch seconds)."""
        rows = self.database.read(
            lambda conn: conn.execute(
                "SELECT session FROM attic_turns GROUP BY session HAVING MAX(created_at) < %s",
                (cutoff,),
            ).fetchall()
        )
        return self._forget(sorted(from_db(r[0]) for r in rows))

    def _forget(self, sessions: Sequence[str]) -> ForgetReport:
        counts = {"turns": 0, "blobs": 0, "chunks": 0, "passages": 0, "summaries": 0}
        if sessions:
            with self.database.write() as conn:
                for session in sessions:
                    session_lock(conn, session)  # waits for a write in flight to commit
                    for table in counts:
                        cursor = conn.execute(
                            f"DELETE FROM attic_{table} WHERE session = %s", (to_db(session),)
                        )
                        counts[table] += max(cursor.rowcount, 0)
        return ForgetReport(
            sessions=tuple(sessions),
            turns=counts["turns"],
            blobs=counts["blobs"],
            chunks=counts["chunks"],
            summaries=counts["summaries"],
            index_files=0,
            passages=counts["passages"],
        )

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        self.database.close()
