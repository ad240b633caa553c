"""Dates in the verbatim part of a prompt: a user turn that starts a new day says its date.

Only once turns are left out (``memory._assemble``): while the whole history fits it is
sent as it is, so a prompt never costs more than the app's own raw history.

A conversation that spans days (messages added over time, or imported with their
timestamps) loses *when* things were said once it is only text: "what did I do last
week?" needs the dates. A user turn whose day differs from the previous user turn's (in
the whole history, not only the prompt) is sent with its date first (``[2023-05-08] ...``),
as is the first user turn after turns left out of the prompt, when the history spans more
than that day. A pinned opening turn (``AssemblyPolicy.opening_share``) with turns left
out after it says its date once the conversation has reached another day: its mark
appears at most once in a session's life (the cached prefix restarts there once), and
temporal questions about it see when it was said. All of this depends only on the
history and the window's start, so a prompt's prefix stays the same between folds. The
stored messages never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from memory._messages import Exchange, Turn
from memory._timestamps import format_time
from memory._tokens import TokenCounter

__all__ = ["MAX_KNOWN", "DatedTurns", "dated_turns", "day_marks", "day_of", "with_day"]

DatedTurns = dict[int, tuple[BaseMessage, int]]
"""``{seq: (the user turn sent with its date, the tokens its date adds)}``."""
MAX_KNOWN = 65_536
"""Most turns whose date's tokens a session remembers (the memo starts over past it)."""


def day_of(at: float) -> str:
    """The UTC date of epoch seconds, ``"2023-05-08"``."""
    return format_time(at)[:10]


def day_marks(exchanges: Sequence[Exchange], kept: Sequence[int]) -> dict[int, str]:
    """Return ``{seq: date}`` of the kept user turns that are sent with their date.

    Args:
        exchanges: The session's exchanges, oldest first (turns carry ``at``).
        kept: Indexes of the exchanges the prompt sends, ascending.
    """
    marks: dict[int, str] = {}
    if len(kept) > 1 and kept[1] > kept[0] + 1:  # a pinned opening, turns left out after it
        opening = next((t for t in exchanges[kept[0]].turns if t.kind == "human"), None)
        if opening is not None and opening.at is not None:
            latest = exchanges[-1].turns[-1].at if exchanges[-1].turns else None
            if latest is not None and day_of(latest) != day_of(opening.at):
                marks[opening.seq] = day_of(opening.at)
    previous = -1
    after_gap = False  # turns are left out before this point (the next user turn says so)
    for index in kept:
        after_gap = after_gap or index > previous + 1
        previous = index
        for turn in exchanges[index].turns:
            if turn.kind != "human" or turn.at is None:
                continue
            day = day_of(turn.at)
            before = _previous_user_turn(exchanges, index, turn)
            previous_at = None if before is None else before.at
            if previous_at is not None and (
                day_of(previous_at) != day or (after_gap and _spans_days(exchanges, day))
            ):
                marks[turn.seq] = day
            after_gap = False
    return marks


def dated_turns(
    exchanges: Sequence[Exchange],
    kept: Sequence[int],
    counter: TokenCounter,
    known: dict[tuple[str, int], int] | None = None,
) -> DatedTurns:
    """The kept user turns sent with their date (``day_marks``), each with the tokens its
    date adds to its stored count: the window is planned with them. Planned without, a
    prompt came out over its budget and was planned again with less room: at a lower
    fold level (a quarter of the budget left unused), or with its recall block short
    of a whole snippet, the newest however good (LoCoMo's plain feeding, 15% of prompts).

    ``known``: what each turn's date adds, by counter name and seq, filled as turns are
    counted (a turn's text and day never change): each is counted once a session."""
    marks = day_marks(exchanges, kept)
    if not marks:
        return {}
    known = {} if known is None else known
    if len(known) > MAX_KNOWN:
        known.clear()
    dated: DatedTurns = {}
    for index in kept:
        for turn in exchanges[index].turns:
            if turn.seq in marks:
                message = with_day(turn.message, marks[turn.seq])
                key = (counter.name, turn.seq)
                extra = known.get(key)  # (another thread may clear the memo meanwhile)
                if extra is None:
                    extra = known[key] = counter.count_message(message) - turn.tokens
                dated[turn.seq] = (message, extra)
    return dated


def with_day(message: BaseMessage, day: str) -> BaseMessage:
    """A copy of a user message whose text starts with ``[day] ``."""
    content: Any = message.content
    if isinstance(content, str):
        content = f"[{day}] {content}"
    else:
        content = [{"type": "text", "text": f"[{day}]"}, *content]
    return message.model_copy(update={"content": content})


def _previous_user_turn(exchanges: Sequence[Exchange], index: int, turn: Turn) -> Turn | None:
    """The user turn before ``turn`` in the history (a few steps back, as a rule)."""
    for i in range(index, -1, -1):
        for candidate in reversed(exchanges[i].turns):
            if candidate.seq < turn.seq and candidate.kind == "human":
                return candidate
    return None


def _spans_days(exchanges: Sequence[Exchange], day: str) -> bool:
    """Whether the session's first message was sent on another day than ``day``."""
    first = exchanges[0].turns[0].at if exchanges and exchanges[0].turns else None
    return first is not None and day_of(first) != day
