"""Where a session's passages belong (turn seq, passage index, context copy, length), by id.

Search by embedding answers with passage ids alone; ranking needs each one's turn. A
passage never changes once indexed (a session's are deleted only with it), so each id is
asked of the store once and kept, as sorted columns: a ranking looks up hundreds of ids
in one binary search, not one dictionary lookup (and one named tuple) at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from memory._recall.per_turn import PassageColumns
from stores.turn_index import PassageHit, TurnIndex

__all__ = ["MAX_KNOWN", "Places"]

MAX_KNOWN = 16_384
"""Passages whose place is kept (8x the similarity sample; candidates change with
queries): past it, what is kept starts over."""


def _empty() -> PassageColumns:
    none = np.zeros(0, dtype=np.int64)
    return PassageColumns(none, none, none, np.zeros(0, dtype=bool), none)


class Places:
    """The places of one session's passages, asked of ``passages`` once per id.

    Args:
        passages: The store's turn index.
        session: The session.
    """

    def __init__(self, passages: TurnIndex, session: str) -> None:
        self._passages = passages
        self._session = session
        self._known = _empty()  # sorted by id
        self._lock = threading.Lock()

    def locate(self, ids: Sequence[int] | np.typing.NDArray[np.int64]) -> PassageColumns:
        """The places of these passages, in the order of ``ids`` (ids the store does not
        hold left out)."""
        wanted = np.asarray(ids, dtype=np.int64)
        with self._lock:
            at, held = self._find(wanted)
            if not held.all():
                missing = list(dict.fromkeys(wanted[~held].tolist()))
                self._add(self._passages.locate(self._session, missing))
                at, held = self._find(wanted)
            return self._known.rows(at[held])

    def _find(
        self, ids: np.typing.NDArray[np.int64]
    ) -> tuple[np.typing.NDArray[np.int64], np.typing.NDArray[np.bool_]]:
        """Where each id is in the kept columns, and whether it is there (under the lock)."""
        known = self._known.ids
        if not len(known):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(known, ids), len(known) - 1)
        return at, known[at] == ids

    def _add(self, hits: Sequence[PassageHit]) -> None:
        """Merge new places into the kept columns (under the lock)."""
        if not hits:
            return
        if len(self._known) + len(hits) > MAX_KNOWN:
            self._known = _empty()
        both = self._known.joined(PassageColumns.of(hits))
        order = np.argsort(both.ids, kind="stable")
        ids = both.ids[order]
        self._known = both.rows(order[np.r_[True, ids[1:] != ids[:-1]]])  # each id once
