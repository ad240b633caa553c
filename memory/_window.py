"""Choose what a prompt holds verbatim: the fold level, the summary, the room for recall.

A pure function over the session's exchanges, the fold points (``memory._folds``) and the
summary versions. Priority, always: the system prompt; the current user turn; the latest
exchange whole; then the summary and recall get what is left; then older turns. The
conversation's opening user turn (an agent's task), when small (``policy.opening_share``),
stays verbatim in front of the summary while it fits beside the rest: it repeats in every
prompt, so a fold leaves the cached prefix reaching past it.

The verbatim turns start at the earliest fold point that lets the prompt fit, so between
two folds each prompt extends the previous one. When no fold point fits (one exchange
larger than a block), the window slides to the newest exchanges that fit. When nothing
was ever folded and the whole history fits, it is sent as it is, with no recall.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import HumanMessage, SystemMessage

from memory._context import CONVERSATION_START, SHORT_NOTE, sanitize, summary_block
from memory._errors import BudgetError
from memory._exchange_log import Exchanges
from memory._messages import Exchange
from memory._opening import current_turn, pinned_opening
from memory._policy import AssemblyPolicy
from memory._tokens import TokenCounter

__all__ = ["BLOCK_MARGIN", "Summary", "Window", "choose_window", "current_turn", "sendable"]

BLOCK_MARGIN = 4
"""Tokens added to each context block's count: merging it into a message adds a little."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A running summary version: its text and the last seq it covers."""

    text: str
    covers_upto: int


@dataclass(frozen=True, slots=True)
class Window:
    """The decision: which exchanges go verbatim, with which summary, how much recall.

    Attributes:
        kept: Indices of the exchanges sent verbatim, ascending.
        start: Index where the verbatim turns begin (the fold point or slide).
        current: Index of the current user turn (pinned even before ``start``).
        opening: Index of the opening user turn when it is pinned before ``start``
            (sent first, before the context block), else None.
        summary: The summary sent, if any.
        head: The context block at the front (summary, omitted-turns note), or "".
        head_tokens: Its counted tokens (with ``BLOCK_MARGIN``).
        used: Tokens used without recall: priming, system, head, kept exchanges.
        recall_room: Tokens recall may take (0: no recall in this prompt).
        system_tokens: Tokens of the system message.
    """

    kept: tuple[int, ...]
    start: int
    current: int | None
    summary: Summary | None
    head: str
    head_tokens: int
    used: int
    recall_room: int
    system_tokens: int
    opening: int | None = None


def sendable(exchange: Exchange) -> bool:
    """True when providers accept the exchange: complete, not an orphan tool result."""
    return exchange.complete and exchange.turns[0].kind != "tool"


def _turns_in(exchanges: Sequence[Exchange], start: int, stop: int) -> int:
    """Turns of exchanges ``start`` to ``stop - 1`` (a session's log counts them unbuilt)."""
    if isinstance(exchanges, Exchanges):
        return exchanges.turns_in(start, stop)
    return sum(len(exchanges[i].turns) for i in range(start, stop))


def _current_tokens(
    exchanges: Sequence[Exchange], current: int | None, counter: TokenCounter
) -> int:
    """Tokens the current user turn is sent with (a blank one gets a placeholder)."""
    if current is None:
        return 0
    (turn,) = exchanges[current].turns
    sent = sanitize(turn.message)
    return turn.tokens if sent is turn.message else counter.count_message(sent)


def _latest(exchanges: Sequence[Exchange], skip: int | None) -> int | None:
    for position in range(len(exchanges) - 1, -1, -1):
        if position != skip and sendable(exchanges[position]):
            return position
    return None


class _Planner:
    """Evaluates candidate starts for one call (suffix sums computed once, from the end)."""

    def __init__(
        self,
        exchanges: Sequence[Exchange],
        counter: TokenCounter,
        summaries: Sequence[Summary],
        current: int | None,
        *,
        tool: bool = False,
        opening: int | None = None,
    ) -> None:
        self.exchanges = exchanges
        self.tool = tool
        self.opening = opening
        # Stored system messages before the opening (a session's dated header) go with it.
        self._lead = (
            ()
            if opening is None
            else tuple(i for i in range(opening) if exchanges[i].turns[0].kind == "system")
        )
        self.counter = counter
        self.summaries = sorted(summaries, key=lambda s: s.covers_upto)
        self.covers = [s.covers_upto for s in self.summaries]
        self.current = current
        self._suffix: dict[int, int] = {len(exchanges): 0}
        self._lowest = len(exchanges)
        self._heads: dict[tuple[int, int], tuple[str, int]] = {}
        self._gaps: dict[tuple[int, int], int] = {}

    def starts_on_user(self, start: int) -> bool:
        """Whether the first message sent from ``start`` on is a user turn."""
        if self.current is not None and self.current < start:
            return True
        if self.opening is not None and self.opening < start:
            return True
        for exchange in self.exchanges[start:]:
            if sendable(exchange):  # a stored system message is sent as user text
                return exchange.turns[0].kind in ("human", "system")
        return True  # nothing to send: no conversation to start

    def window_tokens(self, start: int) -> int:
        """Tokens of the sendable exchanges from ``start`` on, plus a pinned current turn."""
        while self._lowest > start:
            self._lowest -= 1
            exchange = self.exchanges[self._lowest]
            add = exchange.tokens if sendable(exchange) else 0
            self._suffix[self._lowest] = self._suffix[self._lowest + 1] + add
        tokens = self._suffix[start]
        for pinned in self.pinned(start):
            tokens += self.exchanges[pinned].tokens
        return tokens

    def pinned(self, start: int) -> tuple[int, ...]:
        """The opening (with its header) and current user turns sent although they are
        before ``start``."""
        pinned = (*self._lead, self.opening, self.current)
        found = {p for p in pinned if p is not None and p < start}
        return tuple(sorted(found))

    def summary_boundaries(self) -> list[int]:
        """Index of the first exchange after each summary's coverage."""
        exchanges = self.exchanges
        if isinstance(exchanges, Exchanges):  # a session's log: remembered between calls
            return [exchanges.begun_by(c) for c in self.covers]
        return [bisect.bisect_right(exchanges, c, key=lambda e: e.first_seq) for c in self.covers]

    def summary_for(self, start: int) -> Summary | None:
        """The newest summary that covers only turns before ``start``."""
        if start >= len(self.exchanges):
            first = self.exchanges[-1].turns[-1].seq + 1 if self.exchanges else 1
        else:
            first = self.exchanges[start].first_seq
        position = bisect.bisect_left(self.covers, first) - 1
        return self.summaries[position] if position >= 0 else None

    def head(self, start: int, summary: Summary | None) -> tuple[str, int]:
        """The context block for a window starting at ``start``, and its tokens."""
        covered = summary.covers_upto if summary is not None else 0
        key = (start, covered)
        if key not in self._heads:
            first = bisect.bisect_right(
                self.exchanges, covered, hi=start, key=lambda e: e.first_seq
            )
            # Counted from the log, not by building every exchange: the summary may lag
            # thousands of exchanges behind a long session.
            unsummarized = _turns_in(self.exchanges, first, start)
            for pinned in self.pinned(start):
                if first <= pinned:
                    unsummarized -= len(self.exchanges[pinned].turns)
            text = summary_block(
                summary.text if summary else "",
                covers=(1, covered) if summary else None,
                unsummarized=unsummarized,
                tool=self.tool,
            )
            if not text and not self.starts_on_user(start):
                text = CONVERSATION_START
            tokens = self.counter.count_message(HumanMessage(text)) + BLOCK_MARGIN if text else 0
            self._heads[key] = (text, tokens)
            self._gaps[key] = unsummarized
        return self._heads[key]

    def gap(self, start: int, summary: Summary | None) -> int:
        """Messages evicted before ``start`` that ``summary`` does not cover."""
        self.head(start, summary)
        return self._gaps[(start, summary.covers_upto if summary is not None else 0)]


def choose_window(
    exchanges: Sequence[Exchange],
    limit: int,
    counter: TokenCounter,
    *,
    policy: AssemblyPolicy,
    system: str | None = None,
    summaries: Sequence[Summary] = (),
    points: Sequence[int] = (0,),
    lookup: bool = False,
    system_tokens: int | None = None,
    answering: bool = False,
    recall_reserve: int | None = None,
) -> Window:
    """Decide the verbatim window of a prompt of at most ``limit`` tokens.

    Args:
        exchanges: The session's exchanges, oldest first.
        limit: Prompt tokens allowed.
        counter: Counts the system prompt and the context block.
        policy: The shares and floors.
        system: The system prompt.
        summaries: Summary versions available (any order).
        points: Fold points, ascending (``memory._folds``).
        lookup: The caller asked about the past explicitly (``assemble(query=...)``).
        system_tokens: The system prompt's count when the caller has it (counted once
            per call: a long system prompt is the costliest text to count).
        answering: A new user turn, not stored yet, is being answered
            (``assemble(about=...)``): recall gets its room as for a stored one.
        recall_reserve: Tokens kept for recall in place of the policy's share (a
            lookup whose recall came back small gives the rest back to the window).

    Raises:
        BudgetError: the system prompt and the current user turn alone do not fit, or
            the latest exchange after that turn (an agent's tool round, or the reply)
            does not fit beside them.
    """
    if system_tokens is None:
        system_tokens = counter.count_message(SystemMessage(system)) if system else 0
    base = counter.reply_priming + system_tokens
    current = current_turn(exchanges)
    current_tokens = _current_tokens(exchanges, current, counter)
    if base + current_tokens > limit:
        raise BudgetError(
            f"the system prompt ({system_tokens} tokens) and the current user turn "
            f"({current_tokens} tokens) need {base + current_tokens} tokens with overhead, "
            f"but the budget allows {limit}: over by {base + current_tokens - limit}. Raise "
            "the budget, shorten the system prompt or split the user turn.",
            needed=base + current_tokens,
            available=limit,
        )
    latest = _latest(exchanges, current)
    chat_turn = current is not None and (latest is None or latest < current)
    if latest is not None and not chat_turn:
        round_tokens = exchanges[latest].tokens
        if base + current_tokens + round_tokens > limit:
            # The model must read the round it just ran: leaving it out makes an agent
            # call the same tools again, forever.
            tools = len(exchanges[latest].turns) > 1 or bool(exchanges[latest].open_calls)
            what = "tool round" if tools else "reply (after the current user turn)"
            advice = (
                "run fewer tools at once, or lower compress_threshold so their outputs are "
                "archived as digests"
                if tools
                else "or shorten the system prompt: the current user turn and the reply "
                "after it are always sent whole"
            )
            raise BudgetError(
                f"the latest {what} ({round_tokens} tokens) does not fit beside the "
                f"system prompt and the current user turn ({base + current_tokens} tokens "
                f"with overhead) in {limit}: over by "
                f"{base + current_tokens + round_tokens - limit}. Raise the budget, {advice}.",
                needed=base + current_tokens + round_tokens,
                available=limit,
            )
    # The room kept for recall is the same on every ordinary call, recall or not, so
    # the fold level never moves back and forth between a user's turn and a reply.
    reserve = policy.recall_room(limit, lookup=lookup) if recall_reserve is None else recall_reserve
    recalls = lookup or chat_turn or answering
    opening = pinned_opening(exchanges, current, limit - base, policy)
    planner = _Planner(
        exchanges, counter, summaries, current, tool=policy.recall_tool, opening=opening
    )
    last_start = latest if latest is not None else len(exchanges)
    if current is not None and (latest is None or current > latest):
        last_start = min(last_start, current)
    starts = list(points[: bisect.bisect_right(points, last_start)])  # (ascending)
    starts += range(starts[-1] + 1 if starts else 0, last_start + 1)
    # Where a summary ends is a start too: a summary made on another schedule (before
    # the memory knew the system prompt's size, say) still lines up with a window.
    starts += [b for b in planner.summary_boundaries() if b <= last_start]
    choice = _first_fit(planner, starts, base=base, limit=limit, reserve=reserve)
    if choice is None and opening is not None:  # the opening gives way before the rest
        planner = _Planner(exchanges, counter, summaries, current, tool=policy.recall_tool)
        choice = _first_fit(planner, starts, base=base, limit=limit, reserve=reserve)
    if choice is None:  # even the latest exchange leaves no room: give up recall, summary
        choice = _first_fit(planner, [last_start], base=base, limit=limit, reserve=0)
    if choice is None:  # no room for the notes: the latest exchange comes first
        choice = _bare_latest(planner, latest, base=base, limit=limit)
    if choice is None:  # the latest exchange does not fit beside the current turn
        start = len(exchanges)
        choice = (start, None, "", 0)
        if current is not None:
            head, head_tokens = planner.head(start, None)
            if base + current_tokens + head_tokens <= limit:
                choice = (start, None, head, head_tokens)
    start, summary, head, head_tokens = choice
    pinned = planner.pinned(start)
    kept = pinned + tuple(
        i for i in range(start, len(exchanges)) if sendable(exchanges[i]) or i == current
    )
    used = base + head_tokens + planner.window_tokens(start)
    nothing_evicted = start == 0 and summary is None
    return Window(
        kept=kept,
        start=start,
        current=current,
        summary=summary,
        head=head,
        head_tokens=head_tokens,
        used=used,
        # An explicit lookup's recall gets everything the window leaves; an ordinary
        # call's at most its share (recalled tokens are billed uncached every call).
        recall_room=0
        if nothing_evicted or not recalls
        else max(0, limit - used if lookup else min(reserve, limit - used)),
        system_tokens=system_tokens,
        opening=planner.opening if planner.opening in pinned else None,
    )


def _bare_latest(
    planner: _Planner, latest: int | None, *, base: int, limit: int
) -> tuple[int, Summary | None, str, int] | None:
    """The window of the latest exchange alone, with no note when none fits beside it."""
    if latest is None or base + planner.window_tokens(latest) > limit:
        return None
    head, head_tokens = planner.head(latest, None)
    if base + planner.window_tokens(latest) + head_tokens <= limit:
        return latest, None, head, head_tokens
    if planner.starts_on_user(latest):
        return latest, None, "", 0
    # It opens on the assistant, which providers refuse: lead with the shortest note.
    note_tokens = planner.counter.count_message(HumanMessage(SHORT_NOTE)) + BLOCK_MARGIN
    if base + planner.window_tokens(latest) + note_tokens <= limit:
        return latest, None, SHORT_NOTE, note_tokens
    return None


def _first_fit(
    planner: _Planner, starts: Sequence[int], *, base: int, limit: int, reserve: int
) -> tuple[int, Summary | None, str, int] | None:
    """The earliest start whose prompt fits, preferring one the summary reaches.

    Starts are tried from the latest down, while they fit. Among those that fit, the
    earliest whose evicted turns the summary covers wins (no turn left neither shown
    nor summarized); if none, the earliest.
    """
    fitting: list[tuple[int, Summary | None, str, int]] = []
    for start in sorted(set(starts), reverse=True):
        summary = planner.summary_for(start)
        head, head_tokens = planner.head(start, summary)
        used = base + head_tokens + planner.window_tokens(start)
        nothing_evicted = start == 0 and summary is None
        if used + (0 if nothing_evicted else reserve) <= limit:
            fitting.append((start, summary, head, head_tokens))
            continue
        if summary is not None and not fitting:
            bare, bare_tokens = planner.head(start, None)
            if base + bare_tokens + planner.window_tokens(start) + reserve <= limit:
                fitting.append((start, None, bare, bare_tokens))  # the summary does not fit
        if fitting:
            break
    if not fitting:
        return None
    covered = [f for f in fitting if planner.gap(f[0], f[1]) == 0]
    return min(covered or fitting, key=lambda f: f[0])
