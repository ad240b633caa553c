"""Dates a query names: read as spans of time, and the turns sent then recalled."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from memory import ConversationMemory, Prompt
from memory._recall.when import MAX_SPANS, header_span, query_spans

LATEST = datetime(2023, 10, 20, 12, tzinfo=UTC).timestamp()
FILLERS = [
    "Walked the dog and answered some mail.", "Cooked pasta with the neighbours tonight.",
    "Rain all day, read a novel.", "Fixed the squeaky door in the hall.",
    "Long call with my sister about her garden.", "Went to the gym, legs are sore.",
    "Watched a documentary about octopuses.",
]  # fmt: skip


def _days(query: str) -> list[tuple[date, date]]:
    return [
        (datetime.fromtimestamp(a, UTC).date(), datetime.fromtimestamp(b, UTC).date())
        for a, b in query_spans(query, LATEST)
    ]


@pytest.mark.parametrize(
    ("query", "first", "end"),
    [
        ("What did Maria start, as mentioned on 3 June, 2023?", date(2023, 6, 3), date(2023, 6, 4)),
        ("the painting she showed on October 13, 2023", date(2023, 10, 13), date(2023, 10, 14)),
        ("on the 5th of Sept 2022", date(2022, 9, 5), date(2022, 9, 6)),
        ("what happened on 2023-02-28?", date(2023, 2, 28), date(2023, 3, 1)),
        ("the class she took in December 2022", date(2022, 12, 1), date(2023, 1, 1)),
        ("a workout in Dec. 2023", date(2023, 12, 1), date(2024, 1, 1)),
        ("When did Melanie go camping in June?", date(2023, 6, 1), date(2023, 7, 1)),
        ("our talk in November", date(2022, 11, 1), date(2022, 12, 1)),  # the latest November
        ("what did I say on Jan 5", date(2023, 1, 5), date(2023, 1, 6)),
        ("the plan for May 2023", date(2023, 5, 1), date(2023, 6, 1)),
        ("the party on 3 May", date(2023, 5, 3), date(2023, 5, 4)),
        ("on 31 June 2023", date(2023, 6, 1), date(2023, 7, 1)),  # no such day: its month
    ],
)
def test_a_named_day_or_month_is_its_span_in_utc(query: str, first: date, end: date) -> None:
    assert _days(query) == [(first, end)]


@pytest.mark.parametrize(
    "query",
    ["What may happen next?", "the mayor's march", "Will we march?", "a junction in Octavia",
     "3 junes ago", "in 2023", "version 10.2"],
)  # fmt: skip
def test_words_and_numbers_that_name_no_date_are_no_span(query: str) -> None:
    assert query_spans(query, LATEST) == []


def test_several_dates_each_once_in_order_at_most_max_spans() -> None:
    query = "Compare 2 March 2023, 2 March 2023, 1 Feb 2023, April 2023 and 9 Jan 2023"
    assert [first for first, _ in _days(query)] == [
        date(2023, 3, 2), date(2023, 2, 1), date(2023, 4, 1),
    ]  # fmt: skip
    assert MAX_SPANS == 3


def test_the_turns_sent_on_the_day_a_query_names_are_recalled(switchable_embedder: Any) -> None:
    # Nothing in the fact's words matches the question: only its date does.
    start = datetime(2023, 5, 1, 9, tzinfo=UTC)
    with ConversationMemory.open(
        ":memory:", session="d", budget=600, embedder=switchable_embedder
    ) as mem:
        for day in range(60):
            at = start + timedelta(days=day)
            text = (
                "Booked the ferry to Hydra, cabin 12B."
                if day == 33  # 3 June 2023
                else FILLERS[day % len(FILLERS)]
            )
            mem.add({"role": "user", "content": text}, timestamp=at)
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=at + timedelta(minutes=1))
        mem.wait_until_indexed(timeout=30)
        for query in ("What did I sort out on 3 June 2023?", "What did I sort out on June 3?"):
            assert "cabin 12B" in _recalled(mem.assemble(query=query)), query
        assert "cabin 12B" in mem.recall(query="What did I sort out on 3 June 2023?")
        # Without the date the fact is not singled out: the lift comes from the date.
        assert "cabin 12B" not in _recalled(mem.assemble(query="What did I sort out?"))


def _recalled(prompt: Prompt) -> str:
    """The prompt's recall block ("" when it has none)."""
    texts = [
        str(b.get("text", "")) if isinstance(b, dict) else str(b)
        for m in prompt.messages
        for b in (m.content if isinstance(m.content, list) else [m.content])
    ]
    return next((t for t in texts if "recalled from earlier" in t), "")


def test_a_segment_header_dates_its_turns(switchable_embedder: Any) -> None:
    assert header_span("Session 5 · 1:56 pm on 8 May, 2023") == (
        datetime(2023, 5, 8, tzinfo=UTC).timestamp(),
        datetime(2023, 5, 9, tzinfo=UTC).timestamp(),
    )
    assert header_span("Session 2") is None and header_span("Day 3 of May") is None
    # Turns stored now, under headers that say when their sessions were: the header's
    # date is theirs.
    with ConversationMemory.open(
        ":memory:", session="h", budget=600, embedder=switchable_embedder
    ) as mem:
        for number in range(30):
            day = date(2023, 5, 1) + timedelta(days=number)
            mem.add(
                {"role": "system", "content": f"Session {number} · 10:00 am on {day:%d %B, %Y}"}
            )
            text = "Booked the ferry to Hydra, cabin 12B." if number == 7 else FILLERS[number % 7]
            mem.add([{"role": "user", "content": text}, {"role": "assistant", "content": "Noted."}])
        mem.wait_until_indexed(timeout=30)
        assert "cabin 12B" in _recalled(mem.assemble(query="What did I sort out on 8 May 2023?"))
        assert "cabin 12B" not in _recalled(mem.assemble(query="What did I sort out?"))
