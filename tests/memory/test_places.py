"""Places: where passages belong, asked of the store once per id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pytest

from memory._recall import places
from memory._recall.places import Places
from stores.turn_index import PassageHit, TurnIndex


class _Store:
    """Holds passages 0-99 (seq = id // 2, every other one a context copy)."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def locate(self, session: str, ids: Sequence[int]) -> list[PassageHit]:
        self.asked.append(list(ids))
        return [PassageHit(i, i // 2, 0, i % 2 == 1, 10 * i) for i in ids if 0 <= i < 100]


def test_places_come_in_the_order_asked_and_each_id_is_asked_once() -> None:
    store = _Store()
    found = Places(cast(TurnIndex, store), "s")
    first = found.locate([7, 3, 500, 7, 42])
    assert first.ids.tolist() == [7, 3, 7, 42]  # 500 is not held; 7 asked twice, found twice
    assert first.seqs.tolist() == [3, 1, 3, 21] and first.chars.tolist() == [70, 30, 70, 420]
    assert first.context.tolist() == [True, True, True, False]
    assert store.asked == [[7, 3, 500, 42]]
    again = found.locate(np.array([42, 3], dtype=np.int64))
    assert again.ids.tolist() == [42, 3] and len(store.asked) == 1  # kept
    assert found.locate([500]).ids.tolist() == [] and store.asked[-1] == [500]


def test_places_start_over_past_their_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(places, "MAX_KNOWN", 4)
    store = _Store()
    found = Places(cast(TurnIndex, store), "s")
    found.locate([1, 2, 3])
    found.locate([4, 5])  # past the cap: what was kept starts over
    assert found.locate([4, 5, 1]).ids.tolist() == [4, 5, 1]
    assert store.asked == [[1, 2, 3], [4, 5], [1]]
