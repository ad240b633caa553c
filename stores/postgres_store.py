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
    POSTGRES,
    PostgresDatabase,
    PostgresSummaryStore,
    PostgresTurnStore,
)
from stores.postgres_archive import PostgresBlobStore
from stores.postgres_schema import migrate
from stores.sql_common import delete_sessions, forget_report, idle_sessions

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
        """Archived originals, chunks, the turn search index and chunk vectors."""
        return self._blobs

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
        return self._forget(idle_sessions(self.database, POSTGRES, cutoff))

    def _forget(self, sessions: Sequence[str]) -> ForgetReport:
        counts: dict[str, int] = {}
        if sessions:
            with self.database.write() as conn:
                counts = delete_sessions(conn, POSTGRES, sessions)
        return forget_report(sessions, counts)

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        self.database.close()
