"""Fit a rendering to a token budget: the budget arithmetic shared by every compressor.

:func:`select_lines` keeps the most important lines of a long list in their original
order, :func:`fit_levels` picks the richest rendering that fits, :func:`fit_graded`
renders every line at the richest common detail level and spends what is left on the
best-ranked lines, and :func:`head_tail` is the last resort of every kind.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from memory._compress.base import Counter, safe_count

__all__ = ["fit_graded", "fit_levels", "head_tail", "select_lines"]


def _gap(n: int) -> str:
    return f"[… {n} line{'s' if n != 1 else ''} omitted …]"


def _render_kept(
    lines: Sequence[str],
    kept: list[int],
    gap: Callable[[int], str],
    weights: Sequence[int] | None,
) -> str:
    def dropped(start: int, end: int) -> int:
        return end - start if weights is None else sum(weights[start:end])

    out: list[str] = []
    previous = -1
    for i in kept:
        if i - previous > 1:
            out.append(gap(dropped(previous + 1, i)))
        out.append(lines[i])
        previous = i
    if len(lines) - previous > 1:
        out.append(gap(dropped(previous + 1, len(lines))))
    return "\n".join(out)


def select_lines(
    lines: Sequence[str],
    ranks: Sequence[float],
    *,
    count: Counter,
    max_tokens: int,
    header: str = "",
    gap: Callable[[int], str] = _gap,
    weights: Sequence[int] | None = None,
) -> str:
    """Keep the best-ranked lines (lowest rank first) that fit, in their original order.

    Dropped runs are replaced by one ``gap`` marker each. The number of lines kept is found
    by binary search, so ``count`` runs on budget-sized strings only, about log2(n) times.

    Args:
        lines: The candidate lines, in output order.
        ranks: One rank per line; lower ranks are kept first, ties by position.
        count: The token counter.
        max_tokens: The budget for the whole result, ``header`` included.
        header: Text put before the kept lines.
        gap: Makes the marker for a run of ``n`` dropped lines.
        weights: How many original lines each candidate stands for (a collapsed run of
            similar lines stands for all of them), so a marker counts original lines;
            None: one each.

    Returns:
        The header and the kept lines; just the header (and a gap) when nothing fits.
    """
    order = sorted(range(len(lines)), key=lambda i: (ranks[i], i))
    prefix = header + "\n" if header else ""

    def render(k: int) -> str:
        kept = sorted(order[:k])
        return prefix + _render_kept(lines, kept, gap, weights) if lines else header

    # Bound the search by a generous character estimate so huge inputs stay cheap.
    char_budget = max_tokens * 8 + 200
    sizes = [len(lines[i]) + 1 for i in order]
    cumulative = list(_accumulate(sizes))
    hi = min(len(lines), bisect.bisect_right(cumulative, char_budget) + 1)
    lo = 0
    best = render(0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best


def _accumulate(sizes: Sequence[int]) -> list[int]:
    total = 0
    out: list[int] = []
    for size in sizes:
        total += size
        out.append(total)
    return out


def fit_levels(
    render: Callable[[int], str], levels: int, *, count: Counter, max_tokens: int
) -> str:
    """Return the richest of ``render(0..levels-1)`` that fits (higher level = richer).

    Assumes size grows with the level; returns ``render(0)`` when nothing fits.
    """
    lo, hi = 0, levels - 1
    best = render(0)
    if safe_count(count, best) > max_tokens:
        return best
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best


def fit_graded(
    line: Callable[[int, int], str | None],
    ranks: Sequence[float],
    levels: int,
    *,
    count: Counter,
    max_tokens: int,
    footer: Sequence[str] = (),
) -> str | None:
    """Show every line at the richest detail level that fits, the best-ranked ones richer.

    All lines get one level ``l``, then the best-ranked (lowest rank first, ties by
    position) get ``l + 1`` as far as the budget allows. The search is binary over
    ``levels * len(ranks)`` steps; ``count`` never sees text over eight characters per
    token of budget (such text is taken not to fit).

    Args:
        line: ``line(i, level)`` renders line ``i`` at a level (``None`` hides it); a
            line must not shrink as its level grows.
        ranks: One rank per line; lower ranks are upgraded first.
        levels: The number of detail levels.
        count: The token counter.
        max_tokens: The budget for the whole result, ``footer`` included.
        footer: Lines always put after the others.

    Returns:
        The lines in their original order, or ``None`` when level 0 does not fit.
    """
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    upgrade_at = {index: position for position, index in enumerate(order)}
    rendered: dict[tuple[int, int], str | None] = {}
    counted: dict[str, int] = {}
    max_chars = max_tokens * 8 + 200

    def render(step: int) -> str:
        level, upgraded = divmod(step, max(1, len(ranks)))
        out: list[str] = []
        size = 0  # characters so far
        for i in range(len(ranks)):
            key = (i, min(levels - 1, level + (upgrade_at[i] < upgraded)))
            if key not in rendered:
                rendered[key] = line(*key)
            text = rendered[key]
            if text is not None:
                out.append(text)
                size += len(text) + 1
                if size > max_chars + 1:
                    break  # already too long to fit: the other lines need not be made
        return "\n".join([*out, *footer])

    def bounded(text: str) -> int:
        if text not in counted:
            too_long = len(text) > max_chars
            counted[text] = max_tokens + 1 if too_long else safe_count(count, text)
        return counted[text]

    steps = (levels - 1) * len(ranks) + 1
    best = fit_levels(render, steps, count=bounded, max_tokens=max_tokens)
    return best if bounded(best) <= max_tokens else None


def head_tail(text: str, *, count: Counter, max_tokens: int) -> str:
    """Keep the start and the end of ``text`` within ``max_tokens``, marking the cut.

    This never raises and is the fallback of every compressor; it works on characters,
    so it also handles text without lines.
    """
    total = len(text)
    if total == 0:
        return ""

    def render(keep: int) -> str:
        if keep >= total:
            return text
        head = text[: (keep * 2) // 3]
        tail = text[total - (keep - len(head)) :] if keep > len(head) else ""
        return f"{head}\n[… {total - len(head) - len(tail)} chars omitted …]\n{tail}"

    lo, hi = 0, min(total, max_tokens * 8 + 64)
    best = render(0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best
