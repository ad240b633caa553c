"""Send a repeated tool output as a change to an earlier one: "same as ref X except: diff".

Agents re-read a file after editing one line, re-run the same tests, list a directory
again. :class:`RecentOutputs` remembers a session's latest archived outputs (bounded), with
the tool call each answered; :func:`best_match` finds the earlier output most like a new
one (any earlier answer to the same call qualifies), and :func:`delta_body`
writes the new one as a unified diff against it (or says it is unchanged). The caller
sends the delta only when it is smaller than a fresh digest; the new output is archived
byte-exact under its own ref either way.
"""

from __future__ import annotations

import difflib
import itertools
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_DELTA_SIMILARITY",
    "MAX_DELTA_CHARS",
    "RECENT_OUTPUTS",
    "Match",
    "RecentOutputs",
    "best_match",
    "call_key",
    "delta_body",
    "similarity",
]

DEFAULT_DELTA_SIMILARITY = 0.9
"""Least line similarity (``difflib`` ratio) at which a delta is tried against a fresh digest.

Measured on the dev agent transcripts (``benchmarks/tool_outputs.py``, repeats): of the
archived outputs with an earlier output in their run, no diff below a similarity of 0.9
was smaller than the digest (0 of 16), above it 3 of 4 were; diffing less similar
outputs only costs time.
"""
RECENT_OUTPUTS = 32
"""Earlier outputs of a session compared with a new one (the most recent first)."""
MAX_DELTA_CHARS = 400_000
"""Outputs longer than this are not diffed (the diff would cost more than it saves)."""
_CONTEXT_LINES = 1


@dataclass(frozen=True, slots=True)
class Match:
    """The earlier output most like a new one.

    Attributes:
        ref: The earlier output's ref.
        text: The earlier output.
        ratio: Line similarity in [0, 1]; 1.0 means the outputs are identical.
    """

    ref: str
    text: str
    ratio: float


class RecentOutputs:
    """A session's latest archived outputs (ref → text), bounded, most recent last.

    Each may carry the key of the tool call it answered (:func:`call_key`), so a rerun of
    the same call is compared with its earlier answer whatever their similarity.
    """

    def __init__(self, limit: int = RECENT_OUTPUTS) -> None:
        self.limit = limit
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._calls: dict[str, str] = {}

    def remember(self, ref: str, text: str, call: str | None = None) -> None:
        """Note an archived output; the oldest one is forgotten past ``limit``."""
        if len(text) > MAX_DELTA_CHARS:
            return
        self._texts[ref] = text
        self._texts.move_to_end(ref)
        if call is not None:
            self._calls[ref] = call
        while len(self._texts) > self.limit:
            forgotten, _ = self._texts.popitem(last=False)
            self._calls.pop(forgotten, None)

    def items(self) -> list[tuple[str, str]]:
        """Return ``(ref, text)`` pairs, most recent first."""
        return list(reversed(self._texts.items()))

    def answering(self, call: str | None) -> frozenset[str]:
        """Return the refs of the outputs that answered the same call (name and arguments)."""
        return frozenset(r for r, c in self._calls.items() if c == call and call is not None)

    def __len__(self) -> int:
        return len(self._texts)


def call_key(name: str, args: Mapping[str, Any]) -> str:
    """Identify a tool call by its name and arguments (the key order does not matter)."""
    return json.dumps([name, args], sort_keys=True, default=str, ensure_ascii=False)


def similarity(old: str, new: str, *, floor: float = DEFAULT_DELTA_SIMILARITY / 2) -> float:
    """Line similarity of two outputs: ``difflib``'s ratio over their lines (0.0 when a
    quick upper bound is already below ``floor``)."""
    if old == new:
        return 1.0
    a, b = old.split("\n"), new.split("\n")
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
        return 0.0
    return matcher.ratio()


def best_match(
    text: str,
    recent: list[tuple[str, str]],
    *,
    threshold: float = DEFAULT_DELTA_SIMILARITY,
    same_call: frozenset[str] = frozenset(),
) -> Match | None:
    """Find the earlier output most like ``text`` with a similarity of at least ``threshold``.

    An identical output wins at once. Outputs of ``same_call`` (refs of earlier answers
    to the same tool call) are matched at any similarity; others only when their sizes
    are less than 2x apart.
    """
    if len(text) > MAX_DELTA_CHARS:
        return None
    best: Match | None = None
    for ref, old in recent:
        if old == text:
            return Match(ref, old, 1.0)
        rerun = ref in same_call
        if not rerun and not 0.5 <= (len(old) + 1) / (len(text) + 1) <= 2.0:
            continue
        ratio = similarity(old, text, floor=0.0 if rerun else threshold / 2)
        if (rerun or ratio >= threshold) and (best is None or ratio > best.ratio):
            best = Match(ref, old, ratio)
    return best


def delta_body(old: str, new: str) -> str:
    """Write ``new`` as a unified diff against ``old`` (``@@`` hunks with one line of
    context), or ``"unchanged"`` when they are equal."""
    if old == new:
        return "unchanged"
    lines = difflib.unified_diff(old.split("\n"), new.split("\n"), lineterm="", n=_CONTEXT_LINES)
    return "\n".join(itertools.islice(lines, 2, None))  # past the ---/+++ file names
