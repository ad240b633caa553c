"""A session's turns and exchanges in compact columns; ``Exchange`` objects made when read.

A long session must open without building a Python object, let alone a LangChain message,
for each of its turns. The log keeps per turn only what grouping and budgeting need (its
seq, kind, token counts, archived ref, tool call ids) in arrays and sparse maps, a few
dozen bytes a turn. Reading an exchange builds it from the columns with turns whose
messages come from the store when used (``memory._message_cache``), so holding exchanges
never holds messages. Complete exchanges never change again and are kept once built.

One thread appends (under the memory's lock) while others read snapshots: every field
of an exchange is written before the exchange is published (the count) or marked
complete (its open calls removed), and a reader checks completeness first.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np
from langchain_core.messages import BaseMessage

from memory._messages import Exchange, Turn, kind_of

__all__ = ["ExchangeLog", "Exchanges", "OutlinedTurn"]

_NO_CALLS: frozenset[str] = frozenset()
MAX_REMEMBERED = 4096
"""Seqs whose ``ExchangeLog.begun_by`` answer is kept (one per summary a session made)."""


class OutlinedTurn(Turn):
    """A turn that fetches its message whenever it is used, and keeps none.

    ``source`` returns the message of a seq (the memory's bounded cache of them).
    """

    __slots__ = ("_source",)

    _source: Callable[[int], BaseMessage]

    @property
    def message(self) -> BaseMessage:
        """The LangChain message, as prompts send it (from the cache or the store)."""
        return self._source(self.seq)

    def text_parts(self) -> tuple[str | list[Any], str | None]:
        """Return the message's ``content`` and ``name``."""
        message = self.message
        return message.content, message.name


class ExchangeLog:
    """The turns of one session, grouped into exchanges, appended in seq order.

    Args:
        messages: Returns the message (as prompts send it) of a seq.
    """

    def __init__(self, messages: Callable[[int], BaseMessage]) -> None:
        self._messages = messages
        # Per turn, by position.
        self._seqs = array("q")
        self._kinds: list[str] = []
        self._tokens = array("q")
        self._raw_tokens = array("q")
        self._times = array("d")  # epoch seconds
        self._refs: dict[int, str] = {}
        self._calls: dict[int, tuple[str, ...]] = {}
        self._answers: dict[int, str] = {}
        # Per exchange, by index.
        self._first = array("q")  # position of the exchange's first turn
        self.exchange_tokens = array("q")
        """Counted tokens of each exchange."""
        self._members: dict[int, tuple[int, ...]] = {}  # positions, when more than one
        self._open: dict[int, frozenset[str]] = {}  # calls still waiting for results
        # Exchanges with a result placed after a later exchange began: owner -> position.
        self._straddling: dict[int, int] = {}
        self._by_call: dict[str, int] = {}  # open call id -> exchange
        self._begun: dict[int, int] = {}  # seq -> exchanges begun by it (see ``begun_by``)
        self.made: dict[int, Exchange] = {}
        """Complete exchanges already built, by index (they never change again)."""
        self._count = 0
        self.latest_time = 0.0
        """The latest time any turn was sent (epoch seconds), whatever order they came in."""
        self.earliest_time = math.inf
        """The earliest time any turn was sent (epoch seconds; inf: no turn yet)."""
        self.date_tokens: dict[tuple[str, int], int] = {}
        """Tokens a user turn's date adds when it is sent dated, by counter name and seq
        (``memory._dates.dated_turns`` fills it)."""

    def extend(
        self,
        seqs: Sequence[int],
        kinds: Sequence[str],
        tokens: Sequence[int],
        raw_tokens: Sequence[int],
        refs: Sequence[str | None],
        calls: Sequence[tuple[str, ...]],
        answers: Sequence[str | None],
        times: Sequence[float],
    ) -> None:
        """Append turns, column by column, in seq order; a tool result joins the
        exchange that issued its call."""
        base = len(self._seqs)
        self._times.extend(times)
        self.latest_time = max(self.latest_time, *times) if times else self.latest_time
        self.earliest_time = min(self.earliest_time, *times) if times else self.earliest_time
        known = {k: kind_of(k) for k in set(kinds)}  # a handful of roles
        self._kinds.extend(known[k] for k in kinds)
        self._tokens.extend(tokens)
        self._raw_tokens.extend(raw_tokens)
        self._refs.update((base + i, r) for i, r in enumerate(refs) if r is not None)
        self._calls.update((base + i, c) for i, c in enumerate(calls) if c)
        self._answers.update((base + i, a) for i, a in enumerate(answers) if a is not None)
        self._seqs.extend(seqs)
        count, plain = self._count, 0  # turns before ``plain`` are placed
        # Most turns are exchanges of their own: place runs of them at once, and go turn
        # by turn only through tool calls and results.
        for i in [
            i for i, (c, a) in enumerate(zip(calls, answers, strict=True)) if c or a is not None
        ]:
            self._first.extend(range(base + plain, base + i))
            self.exchange_tokens.extend(tokens[plain:i])
            count, plain = count + i - plain, i + 1
            answer = answers[i]
            if answer is not None and answer in self._by_call:
                self._join(self._by_call.pop(answer), base + i, tokens[i], answer)
                continue
            self._first.append(base + i)
            self.exchange_tokens.append(tokens[i])
            if calls[i]:
                self._open[count] = frozenset(calls[i])
                for call in calls[i]:
                    self._by_call[call] = count
            count += 1
        self._first.extend(range(base + plain, base + len(seqs)))
        self.exchange_tokens.extend(tokens[plain:])
        self._count = count + len(seqs) - plain  # last: readers see the new exchanges whole

    def _join(self, owner: int, position: int, tokens: int, answer: str) -> None:
        self._members[owner] = (*self._members.get(owner, (self._first[owner],)), position)
        if owner + 1 < len(self._first) and self._first[owner + 1] < position:
            self._straddling[owner] = position
        self.exchange_tokens[owner] += tokens
        waiting = self._open[owner] - {answer}
        if waiting:
            self._open[owner] = waiting
        else:
            del self._open[owner]  # last: the exchange is complete, readers may keep it

    @property
    def open_calls(self) -> frozenset[str]:
        """Ids of tool calls that have no result yet."""
        return frozenset(self._by_call)

    @property
    def turn_count(self) -> int:
        """Turns appended."""
        return len(self._seqs)

    def exchanges(self) -> Exchanges:
        """The exchanges appended so far (a snapshot: later appends are not in it)."""
        return Exchanges(self, self._count)

    def first_incomplete(self, count: int) -> int:
        """Index of the first of the first ``count`` exchanges still waiting for a result."""
        return min((i for i in list(self._open) if i < count), default=count)

    def position(self, seq: int) -> int | None:
        """Position of the turn with this seq, or None."""
        seqs = self._seqs
        guess = seq - seqs[0] if seqs else -1
        if 0 <= guess < len(seqs) and seqs[guess] == seq:  # seqs have no gaps: the usual case
            return guess
        found = bisect.bisect_left(seqs, seq)
        return found if found < len(seqs) and seqs[found] == seq else None

    def seq_at(self, position: int) -> int:
        """Seq of the turn at ``position``."""
        return self._seqs[position]

    def calls_at(self, position: int) -> tuple[str, ...]:
        """Ids of the tool calls the turn at ``position`` issues."""
        return self._calls.get(position, ())

    def time_at(self, position: int) -> float:
        """When the turn at ``position`` was sent (epoch seconds)."""
        return self._times[position]

    def sent_between(self, count: int, start: float, end: float) -> list[int]:
        """Seqs of the first ``count`` turns sent in ``[start, end)`` (epoch seconds),
        ascending (the columns are copied first: an append may grow them meanwhile)."""
        times = np.frombuffer(self._times[:count], dtype=np.float64)
        seqs = np.frombuffer(self._seqs[:count], dtype=np.int64)
        return [int(seq) for seq in seqs[(times >= start) & (times < end)]]

    def kind_at(self, position: int) -> str:
        """Kind of the turn at ``position`` (``"human"``, ``"ai"``, ``"tool"``...)."""
        return self._kinds[position]

    def turn(self, position: int) -> OutlinedTurn:
        """Build the turn at ``position`` (its message fetched when used)."""
        turn = OutlinedTurn.__new__(OutlinedTurn)
        turn.seq = self._seqs[position]
        turn.tokens = self._tokens[position]
        turn.raw_tokens = self._raw_tokens[position]
        turn.ref = self._refs.get(position)
        turn.at = self._times[position]
        turn.kind = self._kinds[position]
        turn.calls = self._calls.get(position, ())
        turn.result_for = self._answers.get(position)
        turn._message, turn._stored, turn._content, turn._name = None, None, "", None
        turn._source = self._messages
        return turn

    def begun_by(self, seq: int, count: int) -> int:
        """How many of the first ``count`` exchanges begin at or before ``seq`` (the index
        of the first one after it). Remembered once an exchange after ``seq`` exists:
        appends cannot change it then (where a summary ends, asked on every call)."""
        known = self._begun.get(seq)
        if known is not None and known < count:
            return known
        seqs, first = self._seqs, self._first
        found = bisect.bisect_right(range(count), seq, key=lambda i: seqs[first[i]])
        if found < count:
            if len(self._begun) >= MAX_REMEMBERED:
                self._begun.clear()
            self._begun[seq] = found
        return found

    def seq_span(self, start: int, stop: int) -> tuple[int, int]:
        """Lowest and highest seq among the turns of exchanges ``start`` to ``stop - 1``
        (``start < stop``), without building them: the last exchange's last turn, unless a
        tool result of an earlier one came after it (few: tracked as they join)."""
        last = self._members.get(stop - 1, (self._first[stop - 1],))[-1]
        late = [p for o, p in list(self._straddling.items()) if start <= o < stop]
        return self._seqs[self._first[start]], self._seqs[max([last, *late])]

    def turns_in(self, start: int, stop: int) -> int:
        """Count the turns of exchanges ``start`` to ``stop - 1`` without building them
        (one per exchange, plus the tool results joined to a call's exchange)."""
        if stop <= start:
            return 0
        joined = sum(len(m) - 1 for i, m in self._members.items() if start <= i < stop)
        return stop - start + joined

    def exchange(self, index: int) -> Exchange:
        """Build (or return the kept) exchange at ``index``."""
        made = self.made.get(index)
        if made is not None:
            return made
        waiting = self._open.get(index, _NO_CALLS)  # first: see the module's docstring
        members = self._members.get(index) or (self._first[index],)
        exchange = Exchange(turns=tuple(self.turn(p) for p in members), open_calls=waiting)
        if not waiting:
            self.made[index] = exchange
        return exchange


class Exchanges(Sequence[Exchange]):
    """The first ``count`` exchanges of a log, built when read (see ``ExchangeLog``)."""

    __slots__ = ("_count", "log")

    def __init__(self, log: ExchangeLog, count: int) -> None:
        self.log = log
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Exchange: ...

    @overload
    def __getitem__(self, index: slice) -> list[Exchange]: ...

    def __getitem__(self, index: int | slice) -> Exchange | list[Exchange]:
        if isinstance(index, slice):
            return [self.log.exchange(i) for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("exchange index out of range")
        made = self.log.made.get(index)  # the usual case: read often, built once
        return made if made is not None else self.log.exchange(index)

    def __iter__(self) -> Iterator[Exchange]:
        for index in range(self._count):
            yield self.log.exchange(index)

    def turns_in(self, start: int, stop: int) -> int:
        """Count the turns of exchanges ``start`` to ``stop - 1`` (see ``ExchangeLog``)."""
        return self.log.turns_in(max(start, 0), min(stop, self._count))

    def begun_by(self, seq: int) -> int:
        """How many exchanges begin at or before ``seq`` (see ``ExchangeLog``)."""
        return self.log.begun_by(seq, self._count)

    def seq_span(self, start: int, stop: int) -> tuple[int, int]:
        """Lowest and highest seq of exchanges ``start`` to ``stop - 1`` (see ``ExchangeLog``)."""
        return self.log.seq_span(start, min(stop, self._count))

    def tokens(self) -> Sequence[int]:
        """Counted tokens of each exchange, without building them."""
        return self.log.exchange_tokens[: self._count]

    def first_incomplete(self) -> int:
        """Index of the first exchange still waiting for a tool result (or the length)."""
        return self.log.first_incomplete(self._count)
