"""The PostgreSQL ``Store``: many app servers, one memory.

Open it with a ``postgresql://`` URL (``stores.open_store``). The schema is migrated on
open; FAISS indexes are per-process caches rebuilt from the vectors stored here, so no
index file is written. Forgetting deletes the session's rows in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from stores.postgres_passages import PostgresTurnIndex
from stores.postgres_schema import migrate
from stores.sql_store import SQLStore

__all__ = ["PostgresStore"]


class PostgresStore(SQLStore):
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
        self._turn_index = PostgresTurnIndex(self.database)
        super().__init__(
            self.database,
            POSTGRES,
            turns=PostgresTurnStore(self.database),
            blobs=PostgresBlobStore(self.database),
            passages=self._turn_index,
            summaries=PostgresSummaryStore(self.database),
        )

    def _forget(self, sessions: Sequence[str]) -> ForgetReport:
        """Delete the sessions' rows, then the word counts remembered for them."""
        report = super()._forget(sessions)
        for session in sessions:
            self._turn_index.forget_counts(session)
        return report

    @property
    def location(self) -> str:
        """The URL, without its password."""
        return self.database.location

    @property
    def index_directory(self) -> Path | None:
        """None: FAISS indexes are rebuilt in each process from the stored vectors."""
        return None

    @property
    def schema_version(self) -> int:
        """The schema version of the database (migrated on open)."""
        return SCHEMA_VERSION
