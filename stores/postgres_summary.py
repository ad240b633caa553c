"""Running summaries in PostgreSQL: every version kept, failures recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stores.base import SummaryRecord
from stores.postgres import PostgresDatabase, from_db, session_lock, to_db

__all__ = ["PostgresSummaryStore"]

_COLUMNS = (
    "session, version, covers_upto, text, tokens, summarizer, input_tokens, output_tokens, "
    "created_at, error"
)


def _record(row: Sequence[Any]) -> SummaryRecord:
    error = None if row[9] is None else from_db(row[9])
    return SummaryRecord(
        from_db(row[0]), row[1], row[2], from_db(row[3]), row[4], from_db(row[5]), row[6],
        row[7], row[8], error,
    )  # fmt: skip


class PostgresSummaryStore:
    """``SummaryStore`` on a ``PostgresDatabase``; every row is scoped by session."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def add_summary(self, record: SummaryRecord) -> None:
        """Store a version (its number is the next free one for the session)."""
        session = to_db(record.session)
        error = None if record.error is None else to_db(record.error)
        with self.database.write() as conn:
            session_lock(conn, record.session)
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM attic_summaries WHERE session = %s",
                (session,),
            ).fetchone()
            last = int(row[0]) if row else 0
            conn.execute(
                f"INSERT INTO attic_summaries ({_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    session, last + 1, record.covers_upto, to_db(record.text), record.tokens,
                    to_db(record.summarizer), record.input_tokens, record.output_tokens,
                    record.created_at, error,
                ),
            )  # fmt: skip

    def latest(self, session: str) -> SummaryRecord | None:
        """Return the newest successful summary."""
        row = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM attic_summaries WHERE session = %s AND error IS NULL "
                "ORDER BY version DESC LIMIT 1",
                (to_db(session),),
            ).fetchone()
        )
        return None if row is None else _record(row)

    def attempts(self, session: str) -> list[SummaryRecord]:
        """Return every version and failed attempt, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM attic_summaries WHERE session = %s ORDER BY version",
                (to_db(session),),
            ).fetchall()
        )
        return [_record(r) for r in rows]

    def spent(self, session: str) -> tuple[int, int]:
        """Return the summarizer's input and output tokens over every attempt, summed."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) "
                "FROM attic_summaries WHERE session = %s",
                (to_db(session),),
            ).fetchone()
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def clear_summaries(self, session: str) -> None:
        """Forget a session's summaries."""
        with self.database.write() as conn:
            conn.execute("DELETE FROM attic_summaries WHERE session = %s", (to_db(session),))
