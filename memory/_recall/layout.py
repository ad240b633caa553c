"""What the session's view knows that ranking uses, handed over once per ranking."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from memory._seq_column import SeqColumn

__all__ = ["Layout"]


@dataclass(frozen=True, slots=True)
class Layout:
    """What the session's view knows that ranking uses (from ``SessionView.layout``).

    ``segment_starts``: ascending seqs where segments begin (their header messages);
    ``speakers``: each named speaker's turn seqs, ascending; ``roles``: the user's
    (``"human"``) and the assistant's (``"ai"``) turn seqs, ascending, for the names
    that no message carries (``memory._recall.speakers``); ``searchable``: the seqs of
    the turns indexed as passages, ascending, and the running count of their passages
    (estimated: a long message is cut into several); ``sent_between(start, end)``: the
    seqs of the turns sent in ``[start, end)`` (epoch seconds), ascending (None: no
    times known); ``latest``: the latest time a turn was sent (epoch seconds; turns may
    be added out of order);
    ``segment_texts``: the segments' headers, as ``segment_starts``; ``own_times``:
    whether the turns' times span more than one day (else they were stored without
    times of their own, all at once, and only headers can date them).
    """

    segment_starts: Sequence[int] = ()
    speakers: Mapping[str, Sequence[int]] | None = None
    roles: Mapping[str, Sequence[int]] | None = None
    searchable: tuple[Sequence[int] | SeqColumn, Sequence[int]] = ((), ())
    sent_between: Callable[[float, float], list[int]] | None = field(default=None, compare=False)
    latest: float = 0.0
    segment_texts: Sequence[str] = ()
    own_times: bool = True

    def in_scope(self, before_seq: int) -> tuple[int, int]:
        """How many passages, and context copies (one per turn), the turns before
        ``before_seq`` have: the populations word scores are measured over (without the
        view's count, every turn before it, one passage each)."""
        seqs, totals = self.searchable
        if not seqs:
            return max(before_seq - 1, 1), max(before_seq - 1, 1)
        turns = bisect.bisect_left(seqs, before_seq)
        return max(totals[turns - 1] if turns else 0, 1), max(turns, 1)
