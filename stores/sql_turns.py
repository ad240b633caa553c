"""The turn store of both SQL backends, written once over a ``Dialect``.

An append reads the session's last seq inside its write transaction (after the dialect's
session lock: SQLite's ``BEGIN IMMEDIATE`` serializes writers already, PostgreSQL takes an
advisory lock), so seqs have no gaps and a writer that raced gets ``ConflictError``. Each
row keeps its outline columns (``message_fields``: the tool call ids as a JSON array, the
call it answers, its name) beside the payload, so ``outline`` reads no payload except
those of rows written before schema version 3 (``calls`` NULL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from stores.base import NewTurn, SessionInfo, TurnOutline, TurnRecord
from stores.errors import ConflictError
from stores.sql_common import Database, SessionTable, executemany
from stores.turns import message_fields

__all__ = ["MAX_PARAMETERS", "SQLTurnStore", "new_records"]

MAX_PARAMETERS = 500
"""Seqs per ``IN (...)`` list (SQLite limits a statement's parameters)."""
_COLUMNS = "session, seq, role, payload, tokens, counter, created_at, compact, raw_tokens, ref"
_D = TypeVar("_D", bound=Database)


def new_records(
    session: str, turns: Sequence[NewTurn], *, after_seq: int, now: float
) -> list[TurnRecord]:
    """Return the records of turns appended after ``after_seq``, sent at ``now`` (epoch s)
    unless a turn carries its own ``created_at``."""
    return [
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


class SQLTurnStore(SessionTable[_D]):
    """``TurnStore`` over a ``Database`` in a ``Dialect``; every row is scoped by session."""

    TABLE = "turns"

    def _record(self, row: Sequence[Any]) -> TurnRecord:
        if self.dialect.decode is None:
            return TurnRecord(*row)
        get, optional = self.dialect.get, self.dialect.get_optional
        return TurnRecord(
            get(row[0]), row[1], get(row[2]), get(row[3]), row[4], get(row[5]), row[6],
            optional(row[7]), row[8], optional(row[9]),
        )  # fmt: skip

    def _row(self, record: TurnRecord) -> tuple[Any, ...]:
        put, optional = self.dialect.put, self.dialect.put_optional
        calls, answers, name = message_fields(record.payload)
        return (
            put(record.session), record.seq, put(record.role), put(record.payload),
            record.tokens, put(record.counter), record.created_at, optional(record.compact),
            record.raw_tokens, optional(record.ref), put(json.dumps(calls)), optional(answers),
            optional(name),
        )  # fmt: skip

    def append(self, session: str, turns: Sequence[NewTurn], *, after_seq: int) -> list[TurnRecord]:
        """Append turns in one transaction, all or nothing, after ``after_seq``.

        Raises:
            ConflictError: the session's last seq is not ``after_seq``; nothing was written.
            StoreError: the backend failed; nothing was written.
        """
        records = new_records(session, turns, after_seq=after_seq, now=time.time())
        rows = [self._row(r) for r in records]
        with self.database.write() as conn:
            self.dialect.lock(conn, session)
            last = conn.execute(
                f"SELECT COALESCE(MAX(seq), 0) FROM {self._table} WHERE session = "
                f"{self.dialect.mark}",
                (self.dialect.put(session),),
            ).fetchone()[0]
            if last != after_seq:
                raise ConflictError(
                    f"session {session!r} has turns up to {last}, not {after_seq}; re-read it"
                )
            try:
                executemany(
                    conn,
                    f"INSERT INTO {self._table} ({_COLUMNS}, calls, answers, name) "
                    f"VALUES ({self.dialect.marks(13)})",
                    rows,
                )
            except self.dialect.conflicts as exc:  # the lock makes this a backstop only
                raise ConflictError(f"session {session!r} changed while appending") from exc
        return records

    def read(self, session: str, *, after_seq: int = 0) -> list[TurnRecord]:
        """Return the session's turns with ``seq > after_seq``, in order."""
        mark = self.dialect.mark
        rows = self._fetch(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE session = {mark} AND seq > {mark} "
            "ORDER BY seq",
            (self.dialect.put(session), after_seq),
        )
        return [self._record(row) for row in rows]

    def outline(self, session: str, *, after_seq: int = 0) -> TurnOutline:
        """Return the session's turns with ``seq > after_seq`` without their payloads."""
        mark = self.dialect.mark
        rows = self._fetch(
            "SELECT seq, role, tokens, raw_tokens, counter, ref, calls, answers, name, created_at, "
            f"CASE WHEN calls IS NULL THEN payload END FROM {self._table} "
            f"WHERE session = {mark} AND seq > {mark} ORDER BY seq",
            (self.dialect.put(session), after_seq),
        )
        if not rows:
            return TurnOutline()
        seqs, roles, tokens, raw_tokens, counters, refs, found, answered, named, times, whole = zip(
            *rows, strict=True
        )
        dialect = self.dialect
        calls = [() if c == "[]" else self._ids(c) for c in found]
        answers, names = dialect.optional_column(answered), dialect.optional_column(named)
        for i, payload in enumerate(whole) if any(p is not None for p in whole) else ():
            if payload is not None:  # written before schema version 3 and not filled then
                calls[i], answers[i], names[i] = message_fields(dialect.get(payload))
        return TurnOutline(
            seqs,
            dialect.column(roles),
            tokens,
            raw_tokens,
            dialect.column(counters),
            tuple(dialect.optional_column(refs)),
            tuple(calls),
            tuple(answers),
            tuple(names),
            times,
        )

    def _ids(self, found: str | None) -> tuple[str, ...]:
        """The call ids of a ``calls`` column (a JSON array)."""
        if not found or found == "[]":
            return ()
        return tuple(self.dialect.get(str(i)) for i in json.loads(found) if i is not None)

    def read_seqs(self, session: str, seqs: Sequence[int]) -> list[TurnRecord]:
        """Return the session's turns with these seqs, in seq order (unknown ones left out)."""
        wanted = sorted(set(seqs))
        mark = self.dialect.mark

        def read(conn: Any) -> list[Any]:
            rows: list[Any] = []
            for start in range(0, len(wanted), MAX_PARAMETERS):
                part = wanted[start : start + MAX_PARAMETERS]
                rows += conn.execute(
                    f"SELECT {_COLUMNS} FROM {self._table} WHERE session = {mark} "
                    f"AND seq IN ({self.dialect.marks(len(part))}) ORDER BY seq",
                    (self.dialect.put(session), *part),
                ).fetchall()
            return rows

        return [self._record(row) for row in self.database.read(read)]

    def last_seq(self, session: str) -> int:
        """Return the session's highest seq, 0 when it has none."""
        row = self._fetch_one(
            f"SELECT COALESCE(MAX(seq), 0) FROM {self._table} WHERE session = {self.dialect.mark}",
            (self.dialect.put(session),),
        )
        return int(row[0]) if row else 0

    def sessions(self) -> list[SessionInfo]:
        """Return every session in the store with its turn count and tokens, by name."""
        rows = self._fetch(
            "SELECT session, COUNT(*), COALESCE(SUM(raw_tokens), 0), MIN(created_at), "
            f"MAX(created_at) FROM {self._table} GROUP BY session",
            (),
        )
        infos = [SessionInfo(self.dialect.get(r[0]), r[1], int(r[2]), r[3], r[4]) for r in rows]
        return sorted(infos, key=lambda info: info.session)

    def close(self) -> None:
        """Release the backend (idempotent); later calls raise ``StoreError``."""
        self.database.close()
