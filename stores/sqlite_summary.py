"""Running summaries in the SQLite file: every version kept, failures recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stores.base import SummaryRecord
from stores.sqlite import SQLiteDatabase

__all__ = ["SQLiteSummaryStore"]

_COLUMNS = (
    "session, version, covers_upto, text, tokens, summarizer, input_tokens, output_tokens, "
    "created_at, error"
)


def _record(row: Sequence[Any]) -> SummaryRecord:
    return SummaryRecord(*row)


class SQLiteSummaryStore:
    """``SummaryStore`` on a ``SQLiteDatabase``; every row is scoped by session."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self.database = database

    def add_summary(self, record: SummaryRecord) -> None:
        """Store a version (its number is the next free one for the session)."""
        with self.database.write() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM summaries WHERE session = ?",
                (record.session,),
            ).fetchone()
            conn.execute(
                f"INSERT INTO summaries({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.session,
                    last + 1,
                    record.covers_upto,
                    record.text,
                    record.tokens,
                    record.summarizer,
                    record.input_tokens,
                    record.output_tokens,
                    record.created_at,
                    record.error,
                ),
            )

    def latest(self, session: str) -> SummaryRecord | None:
        """Return the newest successful summary."""
        row = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM summaries WHERE session = ? AND error IS NULL "
                "ORDER BY version DESC LIMIT 1",
                (session,),
            ).fetchone()
        )
        return None if row is None else _record(row)

    def attempts(self, session: str) -> list[SummaryRecord]:
        """Return every version and failed attempt, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM summaries WHERE session = ? ORDER BY version",
                (session,),
            ).fetchall()
        )
        return [_record(r) for r in rows]

    def spent(self, session: str) -> tuple[int, int]:
        """Return the summarizer's input and output tokens over every attempt, summed."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) "
                "FROM summaries WHERE session = ?",
                (session,),
            ).fetchone()
        )
        return int(row[0]), int(row[1])

    def clear_summaries(self, session: str) -> None:
        """Forget a session's summaries."""
        with self.database.write() as conn:
            conn.execute("DELETE FROM summaries WHERE session = ?", (session,))
