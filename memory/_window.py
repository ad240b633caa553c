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
was ever folded and the whole history fits, it is sent as it is, with no recall. What
each candidate start costs (its turns, their dates, its context block) is
``memory._starts``'s.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import HumanMessage, SystemMessage

from memory._context import SHORT_NOTE, sanitize
from memory._dates import DatedTurns
from memory._errors import BudgetError
from memory._messages import Exchange
from memory._opening import current_turn, pinned_opening
from memory._policy import AssemblyPolicy
from memory._starts import BLOCK_MARGIN, StartCosts, Summary, sendable
from memory._tokens import TokenCounter

__all__ = ["BLOCK_MARGIN", "Summary", "Window", "choose_window", "current_turn", "sendable"]


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
        used: Tokens used without recall: priming, system, head, kept exchanges (their
            dates included).
        recall_room: Tokens recall may take (0: no recall in this prompt).
        system_tokens: Tokens of the system message.
        dated: The kept user turns sent with their date (``memory._dates``).
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
    dated: DatedTurns = field(default_factory=dict)


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
    planner = StartCosts(
        exchanges, counter, summaries, current, tool=policy.recall_tool, opening=opening,
        dates=policy.dates,
    )  # fmt: skip
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
        planner = StartCosts(
            exchanges, counter, summaries, current, tool=policy.recall_tool, dates=policy.dates
        )
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
    kept = planner.kept(start)
    # Once turns are left out, a user turn starting a new day is sent with its date.
    dated = planner.dated(start, summary)
    used = base + head_tokens + planner.window_tokens(start) + planner.date_tokens(start, summary)
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
        dated=dated,
    )


def _bare_latest(
    planner: StartCosts, latest: int | None, *, base: int, limit: int
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
    planner: StartCosts, starts: Sequence[int], *, base: int, limit: int, reserve: int
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
    while fitting:  # the best one whose turns' dates fit too (counted only for it)
        covered = [f for f in fitting if planner.gap(f[0], f[1]) == 0]
        best = min(covered or fitting, key=lambda f: f[0])
        start, summary, _, head_tokens = best
        dates = planner.date_tokens(start, summary)
        used = base + head_tokens + planner.window_tokens(start) + dates
        if not dates or used + reserve <= limit:
            return best
        fitting.remove(best)
    return None
