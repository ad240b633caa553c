"""The in-process view of one session's stored turns, kept up to date incrementally.

Opening a session reads its turns' outline (``TurnStore.outline``: seqs, kinds, token
counts, tool call ids, names), never the messages: a 50,000-turn session opens in a
fraction of a second and a few megabytes. Messages are read when a prompt sends them,
a summary folds them or recall quotes them (``memory._message_cache``).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import fields

from langchain_core.messages import messages_from_dict

from memory._context import sanitize
from memory._dates import day_of
from memory._exchange_log import ExchangeLog, Exchanges
from memory._folds import FoldSchedule
from memory._message_cache import MessageCache, prompt_form
from memory._messages import Turn, kind_of
from memory._recall.layout import Layout
from memory._recall.passages import passage_count, searchable, turn_text
from memory._seq_column import SeqColumn
from memory._tokens import TokenCounter
from stores.base import TurnOutline, TurnRecord, TurnStore

__all__ = ["MAX_SCHEDULES", "MAX_TEXT_WALK", "RETRACTION_ROLE", "SessionView"]

MAX_SCHEDULES = 4
"""Fold schedules kept per view (one per budget used in ``assemble``)."""
MAX_TEXT_WALK = 64
"""Turns read back, at most, to find the text a new turn is searched with."""
_RECOUNT_BATCH = 1000
_SPEAKING = ("human", "ai")
"""The kinds of turn with a speaker (their seqs are ``roles``; names, ``speakers``)."""
_SEARCHABLE_KINDS = (*_SPEAKING, "tool")
RETRACTION_ROLE = "retraction"
"""Role of a control record that retracts earlier messages (payload ``{"retract": [seq,
...]}``): they stay stored for audit until forgotten, but no prompt or history shows them."""
_SYSTEM_ROLES = frozenset({"system", "SystemMessageChunk"})


class SessionView:
    """Turns as prompts send them, grouped into exchanges, with running totals.

    Loading only appends: assembling a prompt never re-reads or re-tokenizes history.

    Args:
        counter: Counts tokens (turns counted by another counter are counted again).
        turns: Where the session's turns are stored.
        session: The session.
        hidden: Seqs of retracted messages to leave out (retraction records themselves
            are always left out).
    """

    def __init__(
        self,
        counter: TokenCounter,
        turns: TurnStore,
        session: str,
        hidden: frozenset[int] = frozenset(),
    ) -> None:
        self.counter = counter
        self.session = session
        self.hidden = hidden
        """Seqs of retracted messages, left out of the view."""
        self._turns = turns
        self.messages = MessageCache(turns, session)
        self.log = ExchangeLog(self.messages.get)
        self.issued_calls: set[str] = set()
        self.last_seq = 0
        self.history_tokens = 0
        self.raw_history_tokens = 0
        self._segment_seqs: list[int] = []
        self._segment_texts: list[str] = []
        self._spans: tuple[int, bool] = (0, False)  # (turn count, spans days) when last asked
        # The text of the latest searchable turn in the segment, and the newest user
        # text, each known up to a seq (found by reading back when turns came in bare).
        self._previous: tuple[int, str | None] = (0, None)
        self._user: tuple[int, str | None] = (0, None)
        self.line_tokens: dict[int, int] = {}
        """Tokens of each turn's line in recalled snippets, counted once (by recall)."""
        self.lines: dict[int, str] = {}
        """Lines of recently recalled turns, rendered once (recall bounds it)."""
        self.speakers: dict[str, list[int]] = {}
        """Each named speaker's turn seqs (from the messages' ``name``)."""
        self.roles: dict[str, list[int]] = {kind: [] for kind in _SPEAKING}
        """The user's (``"human"``) and the assistant's (``"ai"``) turn seqs."""
        self._searchable: tuple[SeqColumn, list[int]] = (SeqColumn(), [])
        """The seqs of the turns searched as turns (theirs, and tool results kept as they
        are: ``searchable``), ascending, and the running count of their passages
        (estimated from their tokens: ``passage_count``)."""
        self._schedules: dict[int, FoldSchedule] = {}

    @property
    def exchanges(self) -> Exchanges:
        """The session's exchanges, oldest first (a snapshot, built when read)."""
        return self.log.exchanges()

    @property
    def open_calls(self) -> frozenset[str]:
        """Ids of tool calls stored and not answered yet."""
        return self.log.open_calls

    @property
    def turn_count(self) -> int:
        """Turns in the view."""
        return self.log.turn_count

    def fold_points(self, block_tokens: int) -> list[int]:
        """Fold points for blocks of ``block_tokens`` (kept per block size, a few sizes)."""
        schedule = self._schedules.get(block_tokens)
        if schedule is None:
            if len(self._schedules) >= MAX_SCHEDULES:
                self._schedules.pop(next(iter(self._schedules)))
            schedule = self._schedules[block_tokens] = FoldSchedule(block_tokens)
        return schedule.update(self.exchanges)

    def refresh(self, outline: TurnOutline | None = None) -> None:
        """Append the turns stored since the view last looked, from their outline.

        ``outline``: those turns' outline when the caller has just read it (records the
        view leaves out may precede it), so it is not read twice.
        """
        if outline is None:
            outline = self._turns.outline(self.session, after_seq=self.last_seq)
        outline = self._visible(outline)
        if not len(outline):
            return
        wanted = [s for s, r in zip(outline.seqs, outline.roles, strict=True) if r in _SYSTEM_ROLES]
        found = self._turns.read_seqs(self.session, wanted) if wanted else []
        systems = [self._stored(r) for r in found]
        self._append(outline, self._counts(outline), systems)

    def _visible(self, outline: TurnOutline) -> TurnOutline:
        """The outline without retraction records and retracted messages."""
        keep = [
            i
            for i, (seq, role) in enumerate(zip(outline.seqs, outline.roles, strict=True))
            if role != RETRACTION_ROLE and seq not in self.hidden
        ]
        if len(keep) == len(outline):
            return outline
        return TurnOutline(
            **{f.name: tuple(getattr(outline, f.name)[i] for i in keep) for f in fields(outline)}
        )

    def _counts(self, outline: TurnOutline) -> tuple[Sequence[int], Sequence[int]]:
        """Tokens and raw tokens of the outlined turns, counting again what another
        counter counted (reading those messages, a batch at a time)."""
        name = self.counter.name
        stale = {
            s: i
            for i, (s, c) in enumerate(zip(outline.seqs, outline.counters, strict=True))
            if c != name
        }
        if not stale:
            return outline.tokens, outline.raw_tokens
        tokens, raw_tokens = list(outline.tokens), list(outline.raw_tokens)
        seqs = list(stale)
        for start in range(0, len(seqs), _RECOUNT_BATCH):
            for record in self._turns.read_seqs(self.session, seqs[start : start + _RECOUNT_BATCH]):
                tokens[stale[record.seq]], raw_tokens[stale[record.seq]] = self._count(record)
        return tokens, raw_tokens

    def _count(self, record: TurnRecord) -> tuple[int, int]:
        (message,) = messages_from_dict([json.loads(prompt_form(record))])
        tokens = self.counter.count_message(sanitize(message))
        if record.compact is None:
            return tokens, tokens
        (original,) = messages_from_dict([json.loads(record.payload)])
        return tokens, self.counter.count_message(original)

    def _append(
        self,
        outline: TurnOutline,
        counts: tuple[Sequence[int], Sequence[int]],
        systems: Sequence[Turn],
    ) -> None:
        """Append outlined turns; ``systems`` are their system messages (segment headers)."""
        tokens, raw_tokens = counts
        self.log.extend(
            outline.seqs, outline.roles, tokens, raw_tokens, outline.refs, outline.calls,
            outline.answers, outline.times,
        )  # fmt: skip
        self.issued_calls.update(c for calls in outline.calls for c in calls)
        self.history_tokens += sum(tokens)
        self.raw_history_tokens += sum(r or t for r, t in zip(raw_tokens, tokens, strict=True))
        seqs, totals = self._searchable
        for seq, role, name, size, ref in zip(
            outline.seqs, outline.roles, outline.names, tokens, outline.refs, strict=True
        ):
            kind = kind_of(role)
            if searchable(kind, ref, name):
                totals.append((totals[-1] if totals else 0) + passage_count(size))
                seqs.append(seq)
            if kind in _SPEAKING:
                self.roles[kind].append(seq)
                if name:
                    self.speakers.setdefault(name, []).append(seq)
        for turn in systems:
            content = turn.text_parts()[0]
            if isinstance(content, str):
                self._segment_seqs.append(turn.seq)
                self._segment_texts.append(content.strip()[:200])
        self.last_seq = outline.seqs[-1]

    def load(self, records: Sequence[TurnRecord]) -> list[tuple[int, str, str | None]]:
        """Append records just stored; return ``(seq, text, previous)`` of the new
        searchable turns: ``previous`` is the text of the turn before it in its segment
        (None at a segment's start), which the turn is also searched with (an answer is
        found by the question it answers)."""
        if not records:
            return []
        previous = self._previous_text()
        user_seq, user_text = self._user
        turns = [self._stored(record, keep=True) for record in records]
        found: list[tuple[int, str, str | None]] = []
        names: list[str | None] = []  # a speaker's or a tool's name (the outline's)
        for turn in turns:
            if turn.kind == "system" and isinstance(turn.text_parts()[0], str):
                previous = None
            text = turn_text(turn)
            names.append(turn.text_parts()[1] if turn.kind == "tool" or text else None)
            if text is None:
                continue
            found.append((turn.seq, text, previous))
            previous = text
            if turn.kind == "human":
                user_seq, user_text = turn.seq, text.split(": ", 1)[1]
        outline = TurnOutline(
            seqs=tuple(t.seq for t in turns),
            roles=tuple(t.kind for t in turns),
            tokens=tuple(t.tokens for t in turns),
            raw_tokens=tuple(t.raw_tokens or 0 for t in turns),
            counters=(self.counter.name,) * len(turns),
            refs=tuple(t.ref for t in turns),
            calls=tuple(t.calls for t in turns),
            answers=tuple(t.result_for for t in turns),
            names=tuple(names),
            times=tuple(r.created_at for r in records),
        )
        known = self.last_seq
        systems = [t for t in turns if t.kind == "system"]
        self._append(outline, (outline.tokens, outline.raw_tokens), systems)
        self._previous = (self.last_seq, previous)
        if user_seq > known or self._user[0] == known:
            self._user = (self.last_seq, user_text)
        return found

    def _stored(self, record: TurnRecord, *, keep: bool = False) -> Turn:
        """The record as a turn (counted again if another counter counted it); ``keep``:
        its message goes to the cache too (a turn just added is likely sent next)."""
        payload = prompt_form(record)
        if keep:
            self.messages.put(record.seq, payload)
        if record.counter == self.counter.name:  # counted already
            tokens, raw_tokens = record.tokens, record.raw_tokens
        else:
            tokens, raw_tokens = self._count(record)
        return Turn.stored(record.seq, payload, tokens, raw_tokens, record.ref, record.created_at)

    def _previous_text(self) -> str | None:
        """The text of the latest searchable turn of the current segment (None at a
        segment's start), reading back over turns that came in bare."""
        known, text = self._previous
        position = self.log.turn_count - 1
        for _ in range(MAX_TEXT_WALK):
            if position < 0 or self.log.seq_at(position) <= known:
                return text
            kind = self.log.kind_at(position)
            if kind == "system":
                return None
            if kind in _SEARCHABLE_KINDS:
                found = turn_text(self.log.turn(position))
                if found is not None:
                    return found
            position -= 1
        return None

    @property
    def last_user_text(self) -> str | None:
        """The newest user turn's text (without its speaker), or None."""
        known, text = self._user
        if known == self.last_seq:
            return text
        for position in range(self.log.turn_count - 1, -1, -1):
            if self.log.seq_at(position) <= known:
                break
            if self.log.kind_at(position) == "human":
                found = turn_text(self.log.turn(position))
                if found is not None:
                    text = found.split(": ", 1)[1]
                    break
        self._user = (self.last_seq, text)
        return text

    def prefetch(self, seqs: Iterable[int]) -> None:
        """Read the messages of these turns in one query (a prompt's window, say)."""
        self.messages.prefetch(seqs)

    def text_between(self, start: int, end: int, *, limit: int) -> bool:
        """Whether a turn with text (the user's, or the assistant's: one that calls tools
        is read) lies between seqs ``start`` and ``end``, not retracted; past ``limit``
        seqs read, one is taken to (a recalled snippet's gap lines)."""
        log = self.log
        for seq in range(start + 1, end):
            if seq - start > limit:
                return True
            position = None if seq in self.hidden else log.position(seq)
            if position is None:
                continue
            kind = log.kind_at(position)
            if kind == "human" or (kind == "ai" and not log.calls_at(position)):
                return True
            if kind == "ai" and turn_text(log.turn(position)) is not None:
                return True
        return False

    def turn_at(self, seq: int) -> Turn | None:
        """Return the turn with this seq, as prompts send it."""
        position = self.log.position(seq)
        return None if position is None else self.log.turn(position)

    @property
    def segment_starts(self) -> list[int]:
        """Ascending seqs of the system messages that open segments."""
        return self._segment_seqs

    def layout(self) -> Layout:
        """Return the segment starts, each named speaker's and each role's turn seqs (for
        ranking).

        The mappings are copies: a recall tool may rank while another thread adds turns."""
        log = self.log
        count = log.turn_count
        return Layout(
            self._segment_seqs, dict(self.speakers), dict(self.roles), self._searchable,
            sent_between=lambda start, end: log.sent_between(count, start, end),
            segment_texts=self._segment_texts, own_times=self.spans_days(),
            latest=log.latest_time,
        )  # fmt: skip

    def segment(self, seq: int) -> tuple[int, str] | None:
        """Return the seq and text of the nearest earlier system message (a segment's
        header, e.g. a date), None before the first."""
        position = bisect.bisect_right(self._segment_seqs, seq) - 1
        if position < 0:
            return None
        return self._segment_seqs[position], self._segment_texts[position]

    def segment_of(self, seq: int) -> str | None:
        """Return the nearest earlier system message (a segment's header, e.g. a date)."""
        found = self.segment(seq)
        return found[1] if found is not None else None

    def pending_user_seq(self) -> int | None:
        """The seq of the latest user turn while it waits for its answer (only tool calls
        and results after it: the question in front of the model), else None."""
        log = self.log
        for position in range(log.turn_count - 1, -1, -1):
            kind = log.kind_at(position)
            if kind == "human":
                return log.seq_at(position)
            if kind == "ai" and not log.calls_at(position):
                return None  # answered
        return None

    def spans_days(self) -> bool:
        """Whether the session's earliest and latest turns were sent on different UTC days."""
        log = self.log
        count = log.turn_count
        if self._spans[0] != count:  # asked per recalled turn: worked out once per length
            # Earliest and latest, not first and last: turns may come out of order (an old
            # transcript's stamped turns after ones stamped now), and once a session spans
            # days it always does, so dated turns stay dated (the prompt's prefix holds).
            spans = bool(count) and day_of(log.earliest_time) != day_of(log.latest_time)
            self._spans = (count, spans)
        return self._spans[1]

    def time_of(self, seq: int) -> float | None:
        """When the turn ``seq`` was sent (epoch seconds), None for an unknown seq."""
        position = self.log.position(seq)
        return None if position is None else self.log.time_at(position)

    def index_after(self, seq: int) -> int:
        """Index of the first exchange whose first turn comes after ``seq``."""
        return bisect.bisect_right(self.exchanges, seq, key=lambda e: e.first_seq)
