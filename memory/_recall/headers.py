"""How a recalled snippet says where it comes from: its header, and gaps between its turns.

Turns are shown under their conversation segment's header (the nearest earlier system
message, e.g. a session and its date), else under the day they were sent (a session
spanning days), else under their message numbers (a session of one day).
"""

from __future__ import annotations

from memory._archive import Hit
from memory._dates import day_of
from memory._view import SessionView

__all__ = [
    "DAY",
    "GAP",
    "GAP_READ",
    "NUMBERS_HEADER",
    "chunk_block",
    "number_tokens",
    "segment_key",
    "where",
    "with_gaps",
]

GAP = "…"
"""A line between two turns of a snippet where a turn with text was left out between
them (a question is not read as answered by a later reply; tool rounds and retracted
turns make none: ``SessionView.text_between``). A header of message numbers shows the
gaps itself."""
GAP_READ = 16
"""Most turns read between two recalled ones to see whether one was left out."""
NUMBERS_HEADER = "[messages 1]\n"
"""A snippet's header when neither a segment header nor a day heads it (a session of one
day): each run of message numbers adds to it."""
DAY = "\x00day "
"""Marks a segment made by the day turns were sent (no system message heads it): the day
is its header ("[2023-05-08]"), without the messages' numbers, which took 8% of a
4,000-token lookup on LoCoMo (the order is the turns' own; ``benchmarks/locomo.py``, all 7
dev conversations, plain feeding, evidence recall at 2,000 / 4,000 tokens: 0.900 / 0.946
-> 0.905 / 0.950)."""


def number_tokens(number: int) -> int:
    """About how many tokens ``number`` takes in a header of message numbers."""
    return -(-len(str(number)) // 3)  # tokenizers split numbers in threes


def chunk_block(hit: Hit) -> str:
    """An archived tool-output chunk as a snippet, headed by its ref and part."""
    return f"[tool output {hit.ref}, part {hit.idx + 1}]\n{hit.text}"


def segment_key(view: SessionView, seq: int) -> str:
    """What a recalled turn is shown under: its segment's header (the nearest earlier
    system message, e.g. a session and its date), else the day it was sent when the
    session spans more than one day."""
    header = view.segment_of(seq)
    if header:
        return header
    at = view.time_of(seq)
    if at is None or not view.spans_days():
        return DAY  # a one-day session: the day tells nothing (and costs every call)
    return f"{DAY}{day_of(at)}"


def where(seqs: list[int], header: str) -> str:
    """Say where a snippet comes from: its segment's header, or else the day its turns
    were sent, or else its messages' numbers (as runs)."""
    if header != DAY:
        return f"[{header.removeprefix(DAY)}]"
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][-1] + 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    spans = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"[message {spans}]" if len(seqs) == 1 else f"[messages {spans}]"


def with_gaps(view: SessionView, seqs: list[int], lines: list[str], gaps: bool) -> list[str]:
    """``lines`` (of the turns ``seqs``, ascending), with a ``GAP`` line wherever a turn
    that would be shown (text of the user or the assistant, not retracted) was left out
    between two of them (when ``gaps``): tool rounds and retractions make none."""
    if not gaps:
        return lines
    shown = lines[:1]
    for previous, seq, line in zip(seqs, seqs[1:], lines[1:], strict=False):
        if view.text_between(previous, seq, limit=GAP_READ):
            shown.append(GAP)
        shown.append(line)
    return shown
