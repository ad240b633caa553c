"""A rare identifier the query names lifts the turns holding it (``memory._recall.exact``)."""

from __future__ import annotations

import re

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from memory._recall import exact
from memory._recall.exact import MAX_HOLDERS, identifiers

CODES = [35049, 25597, 73700, 91242]


def test_identifiers_are_words_with_a_digit_but_not_years() -> None:
    assert identifiers("What was ticket INC-5521 about, in 2023?") == ["5521"]
    assert identifiers("deploy v2 and build 1987b twice: v2") == ["v2", "1987b"]
    assert identifiers("Where did Anna go?") == []
    assert identifiers("1 2 3 4 5") == ["1", "2", "3"]  # at most MAX_IDENTIFIERS
    pasted = "Traceback: line 41 in run, line 97 in main " * 5  # a paste, not a lookup
    assert identifiers(pasted) == []


@pytest.mark.parametrize("fill", [(5, 5), (5, 30), (5, 60), (30, 60), (60, 5)])
@pytest.mark.parametrize("query", ["what was code 35049?", "which turn has 35049"])
def test_the_one_short_turn_holding_a_code_is_recalled_first(
    fill: tuple[int, int], query: str
) -> None:
    """A short session whose turns each quote a code: the turn holding the code asked for
    comes first, however long the others are (it came after longer turns quoting other
    codes in 6 of 27 layouts before)."""
    with ConversationMemory.open(
        ":memory:", session="s", budget=300, model="gpt-4o-mini",
        embedder=DeterministicFakeEmbedding(size=64),
    ) as mem:  # fmt: skip
        for i, filler in enumerate([*fill, 20, 20]):
            text = f"Turn {i}: my code is {CODES[i]}. " + "filler words " * filler
            mem.add({"role": "user", "content": text})
            mem.add({"role": "assistant", "content": f"Got turn {i}. " + "ok " * 10})
        assert mem.wait_until_indexed(30)
        answer = mem.recall(query=query)
        assert re.findall(r'turn="(\d+)"', answer)[0] == "1"


def test_a_number_many_turns_hold_lifts_none_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with ConversationMemory.open(
        ":memory:", session="s", budget=300, model="gpt-4o-mini",
        embedder=DeterministicFakeEmbedding(size=64),
    ) as mem:  # fmt: skip
        for i in range(MAX_HOLDERS + 3):
            mem.add({"role": "user", "content": f"Step 7 of plan {i}: water the ferns."})
            mem.add({"role": "assistant", "content": "Done."})
        mem.add({"role": "user", "content": "The greenhouse key is under the blue pot."})
        mem.add({"role": "assistant", "content": "Noted."})
        assert mem.wait_until_indexed(30)
        state = mem._state

        def ranking() -> list[tuple[int, float]]:
            query, last = "where is the greenhouse key, step 7?", state.view.last_seq + 1
            return [(r.seq, r.score) for r in state.recall.ranker.rank(query, before_seq=last)]

        lifted = ranking()
        monkeypatch.setattr(exact, "MAX_IDENTIFIERS", 0)  # identifiers not looked up
        assert ranking() == lifted
        monkeypatch.setattr(exact, "MAX_HOLDERS", MAX_HOLDERS + 3)  # now rare enough
        monkeypatch.setattr(exact, "MAX_IDENTIFIERS", 3)
        assert ranking() != lifted
