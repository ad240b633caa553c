"""The ``Store`` face both SQL backends share: four stores over one database.

``SQLiteStore`` and ``PostgresStore`` differ in how they open and where they live;
what they hand out, the transaction across their parts, retention and forgetting (rows
deleted in one transaction, under each session's lock) are here. SQLite forgets more: it
rewrites its file and removes FAISS files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from stores.base import BlobStore, ForgetReport, SummaryStore, TurnIndex, TurnStore
from stores.sql_common import Database, Dialect, delete_sessions, forget_report, idle_sessions

__all__ = ["SQLStore"]


class SQLStore:
    """A ``Store`` whose turns, blobs, passages and summaries share one ``Database``.

    Args:
        database: The open database (closed by ``close()``).
        dialect: How the backend spells SQL.
        turns: The turn store on ``database``.
        blobs: The archive of tool outputs, their chunks and vectors on ``database``.
        passages: The turn search index on ``database``.
        summaries: The summary store on ``database``.
    """

    def __init__(
        self,
        database: Database,
        dialect: Dialect,
        *,
        turns: TurnStore,
        blobs: BlobStore,
        passages: TurnIndex,
        summaries: SummaryStore,
    ) -> None:
        self._database = database
        self._dialect = dialect
        self._turns = turns
        self._blobs = blobs
        self._passages = passages
        self._summaries = summaries

    @property
    def turns(self) -> TurnStore:
        """The sessions' messages."""
        return self._turns

    @property
    def blobs(self) -> BlobStore:
        """Archived originals, their chunks and the chunks' vectors."""
        return self._blobs

    @property
    def passages(self) -> TurnIndex:
        """The turn search index: passages of the sessions' turns, and their vectors."""
        return self._passages

    @property
    def summaries(self) -> SummaryStore:
        """The sessions' running summaries."""
        return self._summaries

    @contextmanager
    def write(self) -> Iterator[None]:
        """Run the block as one transaction over every table (see ``Store.write``).

        Raises:
            StoreError: the transaction could not start or commit; nothing was written.
        """
        with self._database.write():
            yield

    def forget(self, session: str) -> ForgetReport:
        """Delete every trace of one session (see ``Store.forget``).

        Raises:
            StoreError: the backend failed; nothing was deleted.
        """
        return self._forget([session])

    def forget_older_than(self, cutoff: float) -> ForgetReport:
        """Forget the sessions whose newest turn is older than ``cutoff`` (epoch seconds).

        Raises:
            StoreError: the backend failed; nothing was deleted.
        """
        return self._forget(idle_sessions(self._database, self._dialect, cutoff))

    def _forget(self, sessions: Sequence[str]) -> ForgetReport:
        """Delete the sessions' rows in one transaction (a backend adds what else it keeps)."""
        counts: dict[str, int] = {}
        if sessions:
            with self._database.write() as conn:
                counts = delete_sessions(conn, self._dialect, sessions)
        return forget_report(sessions, counts)

    def close(self) -> None:
        """Release the backend (idempotent); later calls raise ``StoreError``."""
        self._database.close()
