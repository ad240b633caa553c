"""The conversation's opening user turn, pinned first in every prompt while it is small.

An agent's task (or a chat's first message, with a stored system message before it such
as a session's dated header) is in every prompt: right after the system prompt, before
the summary, so folds change the prompt only after it and an agent keeps
the wording of its task. It is pinned while it takes at most
``AssemblyPolicy.opening_share`` of what the system prompt leaves, and always when it is
the current user turn (an agent's only user message); then the fold schedule sizes its
blocks from what the system prompt and the task leave (``fold_sizes``).
"""

from __future__ import annotations

from collections.abc import Sequence

from memory._messages import Exchange
from memory._policy import AssemblyPolicy
from memory._tokens import TokenCounter

__all__ = ["current_turn", "fold_sizes", "pinned_opening"]


def current_turn(exchanges: Sequence[Exchange]) -> int | None:
    """Index of the newest user turn, or None."""
    for position in range(len(exchanges) - 1, -1, -1):
        if exchanges[position].is_user_turn:
            return position
    return None


def pinned_opening(
    exchanges: Sequence[Exchange], current: int | None, room: int, policy: AssemblyPolicy
) -> int | None:
    """Index of the opening user turn to pin first, or None (none, or too large).

    The opening is pinned while it takes at most ``policy.opening_share`` of ``room``
    (the tokens the system prompt leaves), and always when it is the current user turn
    (an agent's task as its only user message), which is sent anyway.
    """
    if not exchanges or policy.opening_share <= 0:
        return None
    for position in range(min(len(exchanges), 3)):  # it opens the conversation or not at all
        exchange = exchanges[position]
        if exchange.is_user_turn:
            small = exchange.tokens <= policy.opening_share * room
            return position if small or position == current else None
    return None


def fold_sizes(
    exchanges: Sequence[Exchange],
    limit: int,
    counter: TokenCounter,
    *,
    policy: AssemblyPolicy,
    system_tokens: int = 0,
) -> tuple[int, int]:
    """``policy.fold_sizes`` for this conversation: ``(block_tokens, due_tokens)``.

    An agent whose task is its only user message sends the task in every prompt,
    however large: the fold schedule sizes its blocks from what the system prompt and
    the task leave, or folds come before their blocks are summarized. A small pinned
    opening that is not the current turn fits in the slack below the high-water mark:
    sizing blocks without it measured cheaper (17 SWE-agent dev transcripts at 8,000
    tokens, 90% off: the costliest 1.14x the raw history against 1.20x,
    benchmarks/cost.py).
    """
    current = current_turn(exchanges)
    base = counter.reply_priming + system_tokens
    opening = pinned_opening(exchanges, current, limit - base, policy)
    task = exchanges[opening].tokens if opening is not None and opening == current else 0
    return policy.fold_sizes(limit, system_tokens + task)
