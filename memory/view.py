"""The in-process view of one session's stored turns, kept up to date incrementally."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence

from langchain_core.messages import messages_from_dict

from memory.context import sanitize
from memory.folds import FoldSchedule
from memory.messages import Exchange, ExchangeBuilder, Turn
from memory.recollect import turn_text
from memory.tokens import TokenCounter
from stores.base import TurnRecord

__all__ = ["MAX_SCHEDULES", "SessionView"]

MAX_SCHEDULES = 4
"""Fold schedules kept per view (one per budget used in ``assemble``)."""


class SessionView:
    """Turns as prompts send them, grouped into exchanges, with running totals.

    Loading only appends: assembling a prompt never re-reads or re-tokenizes history.
    """

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.builder = ExchangeBuilder()
        self.first_seqs: list[int] = []
        self.issued_calls: set[str] = set()
        self.turn_count = 0
        self.last_seq = 0
        self.history_tokens = 0
        self.raw_history_tokens = 0
        self.last_user_text: str | None = None
        self._turns: dict[int, Turn] = {}
        self._segment_seqs: list[int] = []
        self._segment_texts: list[str] = []
        self._previous_text: str | None = None
        self.line_tokens: dict[int, int] = {}
        """Tokens of each turn's line in recalled snippets, counted once (by recall)."""
        self.speakers: dict[str, list[int]] = {}
        """Each named speaker's turn seqs (from the messages' ``name``)."""
        self._schedules: dict[int, FoldSchedule] = {}

    def fold_points(self, block_tokens: int) -> list[int]:
        """Fold points for blocks of ``block_tokens`` (kept per block size, a few sizes)."""
        schedule = self._schedules.get(block_tokens)
        if schedule is None:
            if len(self._schedules) >= MAX_SCHEDULES:
                self._schedules.pop(next(iter(self._schedules)))
            schedule = self._schedules[block_tokens] = FoldSchedule(block_tokens)
        return schedule.update(self.exchanges)

    @property
    def exchanges(self) -> list[Exchange]:
        """The session's exchanges, oldest first."""
        return self.builder.exchanges

    def load(
        self, records: Sequence[TurnRecord]
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """Append stored records; return ``(seq, text)`` of new searchable turns, and of
        the same turns read with the turn before them in their segment (for search only:
        an answer is found by the question it answers)."""
        turns: list[Turn] = []
        searchable: list[tuple[int, str]] = []
        contextual: list[tuple[int, str]] = []
        for record in records:
            turn = self._turn(record)
            turns.append(turn)
            self._turns[turn.seq] = turn
            self.issued_calls.update(turn.calls)
            self.history_tokens += turn.tokens
            self.raw_history_tokens += turn.raw_tokens or turn.tokens
            if turn.kind == "system" and isinstance(turn.message.content, str):
                self._segment_seqs.append(turn.seq)
                self._segment_texts.append(turn.message.content.strip()[:200])
                self._previous_text = None
            text = turn_text(turn)
            if text is not None:
                searchable.append((turn.seq, text))
                name = turn.text_parts()[1]
                if name:
                    self.speakers.setdefault(name, []).append(turn.seq)
                if self._previous_text is not None:
                    contextual.append((turn.seq, f"{self._previous_text}\n{text}"))
                self._previous_text = text
                if turn.kind == "human":
                    self.last_user_text = text.split(": ", 1)[1]
        self.builder.extend(turns)
        self.first_seqs.extend(e.first_seq for e in self.exchanges[len(self.first_seqs) :])
        self.turn_count += len(records)
        if records:
            self.last_seq = records[-1].seq
        return searchable, contextual

    def _turn(self, record: TurnRecord) -> Turn:
        payload = record.compact or record.payload
        if record.counter == self.counter.name:  # counted already: build the message lazily
            return Turn.stored(record.seq, payload, record.tokens, record.raw_tokens, record.ref)
        (message,) = messages_from_dict([json.loads(payload)])
        tokens = self.counter.count_message(sanitize(message))
        raw_tokens = tokens
        if record.compact is not None:
            (original,) = messages_from_dict([json.loads(record.payload)])
            raw_tokens = self.counter.count_message(original)
        return Turn(record.seq, message, tokens, raw_tokens, record.ref)

    def turn_at(self, seq: int) -> Turn | None:
        """Return the turn with this seq, as prompts send it."""
        return self._turns.get(seq)

    @property
    def segment_starts(self) -> list[int]:
        """Ascending seqs of the system messages that open segments."""
        return self._segment_seqs

    def layout(self) -> tuple[list[int], dict[str, list[int]]]:
        """Return the segment starts and each named speaker's turn seqs (for ranking).

        The mapping is a copy: a recall tool may rank while another thread adds turns."""
        return self._segment_seqs, dict(self.speakers)

    def segment_of(self, seq: int) -> str | None:
        """Return the nearest earlier system message (a segment's header, e.g. a date)."""
        position = bisect.bisect_right(self._segment_seqs, seq) - 1
        return self._segment_texts[position] if position >= 0 else None

    def index_after(self, seq: int) -> int:
        """Index of the first exchange whose first turn comes after ``seq``."""
        return bisect.bisect_right(self.first_seqs, seq)
