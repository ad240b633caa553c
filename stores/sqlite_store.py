"""The SQLite ``Store``: one file holding turns, archive, search index, vectors, summaries.

Forgetting deletes a session's rows with ``secure_delete`` on (freed space is zeroed),
merges the full-text index so no stale entry keeps a deleted word, rewrites the file
(``VACUUM``: a page rebuilt by a B-tree balance can keep a deleted cell's bytes in its
unused area, which ``secure_delete`` does not clear) and checkpoints the write-ahead log,
so the text is gone from the file itself, not merely unlinked. The rewrite costs time in
proportion to the file's size.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from stores.base import ForgetReport
from stores.errors import StoreError
from stores.faiss_index import PASSAGES, index_path
from stores.sql_common import delete_sessions, forget_report
from stores.sql_store import SQLStore
from stores.sqlite import SQLITE, SQLiteDatabase, SQLiteSummaryStore, SQLiteTurnStore
from stores.sqlite_archive import SQLiteBlobStore
from stores.sqlite_passages import SQLiteTurnIndex

__all__ = ["CHECKPOINT_WAIT_S", "SQLiteStore"]

CHECKPOINT_WAIT_S = 5.0
"""How long ``forget`` waits for other readers to let the write-ahead log be emptied."""


class SQLiteStore(SQLStore):
    """``Store`` on one SQLite file (or ``":memory:"``); FAISS files in ``<path>.faiss/``.

    Args:
        path: The SQLite file, created if missing, or ``":memory:"``.

    Raises:
        StoreError: the file cannot be opened, is not a SQLite database, or was written
            by a newer release.
    """

    def __init__(self, path: str | Path) -> None:
        self.database = SQLiteDatabase(path)
        try:
            self.database.conn.execute("PRAGMA secure_delete=ON")
        except sqlite3.Error as exc:  # pragma: no cover - every build supports it
            self.database.close()
            raise StoreError(f"cannot enable secure delete on {self.location!r}: {exc}") from exc
        self._turn_index = SQLiteTurnIndex(self.database)
        super().__init__(
            self.database,
            SQLITE,
            turns=SQLiteTurnStore(self.database),
            blobs=SQLiteBlobStore(self.database),
            passages=self._turn_index,
            summaries=SQLiteSummaryStore(self.database),
        )

    @property
    def location(self) -> str:
        """The file path, or ``":memory:"``."""
        return self.database.path

    @property
    def index_directory(self) -> Path | None:
        """``<path>.faiss/`` beside the file; None for ``":memory:"``."""
        return None if self.location == ":memory:" else Path(self.location + ".faiss")

    @property
    def schema_version(self) -> int:
        """The schema version of the file (migrated on open)."""
        return self.database.schema_version

    def _forget(self, sessions: Sequence[str]) -> ForgetReport:
        """Delete the sessions' rows, then their words from the file and their FAISS files.

        Raises:
            StoreError: the backend failed (nothing was deleted), or other connections
                kept the write-ahead log busy (the rows are deleted; forget again).
        """
        counts: dict[str, int] = {}
        models: set[tuple[str, str, str | None]] = set()
        if sessions:
            with self.database.write() as conn:
                for session in sessions:
                    for table, kind in (("chunks", None), ("passages", PASSAGES)):
                        found = conn.execute(
                            f"SELECT DISTINCT model FROM {table} WHERE session = ? "
                            "AND model IS NOT NULL",
                            (session,),
                        ).fetchall()
                        models.update((session, str(m[0]), kind) for m in found)
                counts = delete_sessions(conn, SQLITE, sessions)
                # Deleted rows leave delete markers in older FTS5 segments (holding the
                # words); merging every segment drops them.
                conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
                conn.execute("INSERT INTO passages_fts(passages_fts) VALUES ('optimize')")
            self._turn_index.forget_counts()
            self.database.read(lambda conn: conn.execute("VACUUM"))
            self._empty_log()
        return forget_report(sessions, counts, index_files=self._remove_index_files(models))

    def _empty_log(self) -> None:
        """Copy the log into the file and truncate it: deleted text lived in its frames.

        Raises:
            StoreError: another connection kept reading for ``CHECKPOINT_WAIT_S``.
        """
        if self.location == ":memory:":
            return
        deadline = time.monotonic() + CHECKPOINT_WAIT_S
        while True:
            row = self.database.read(
                lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            )
            if row is None or row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise StoreError(
                    f"the session was deleted from {self.location!r}, but other connections "
                    "kept the write-ahead log busy; close them and call forget again"
                )
            time.sleep(0.05)

    def _remove_index_files(self, models: set[tuple[str, str, str | None]]) -> int:
        directory = self.index_directory
        if directory is None:
            return 0
        removed = 0
        for session, model, kind in sorted(models, key=str):
            path = index_path(directory, session, model, kind=kind)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot remove the index file {path}: {exc}") from exc
        return removed
