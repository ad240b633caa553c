"""Dates a query names: read as spans of time, and the turns sent then recalled."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memory import ConversationMemory, Prompt
from memory._recall.layout import Layout
from memory._recall.when import MAX_SPANS, _a_year_before, header_span, query_spans, sent_when

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
        ("Feb 30, 2022", date(2022, 2, 1), date(2022, 3, 1)),  # ... in the year it names
        ("what did I do in June of 2022?", date(2022, 6, 1), date(2022, 7, 1)),
        ("on 3-Jun-2022", date(2022, 6, 3), date(2022, 6, 4)),
        ("sent at 2022-06-03T10:00:00Z", date(2022, 6, 3), date(2022, 6, 4)),
        ("during the month of July", date(2023, 7, 1), date(2023, 8, 1)),
    ],
)
def test_a_named_day_or_month_is_its_span_in_utc(query: str, first: date, end: date) -> None:
    assert _days(query) == [(first, end)]


@pytest.mark.parametrize(
    "query",
    ["What may happen next?", "the mayor's march", "Will we march?", "a junction in Octavia",
     "on 3 June 1899", "June 3rd, '23", "3 junes ago", "in 2023", "version 10.2",
     "version 2023-10", "build 2023-13-01",
     "ticket 2019-00-12", "2023-06-00", "What did June recommend?", "What did April say?",
     "What did Jan say?", "the August heat", "Step 2 may fail", "We march 10 miles",
     "what happened in march", "39 June", "0 June"],
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
    # Nothing in the fact's words matches the question: only its date does (day 33 is 3
    # June 2023).
    with ConversationMemory.open(
        ":memory:", session="d", budget=600, embedder=switchable_embedder
    ) as mem:
        _daily(mem, lambda day: "Booked the ferry to Hydra, cabin 12B." if day == 33 else None)
        for query in ("What did I sort out on 3 June 2023?", "What did I sort out on June 3?"):
            assert "cabin 12B" in _recalled(mem.assemble(query=query)), query
        assert "cabin 12B" in mem.recall(query="What did I sort out on 3 June 2023?")
        # Without the date the fact is not singled out: the lift comes from the date.
        assert "cabin 12B" not in _recalled(mem.assemble(query="What did I sort out?"))


def _daily(mem: ConversationMemory, said: Callable[[int], str | None]) -> None:
    """Sixty days from 1 May 2023, a user turn a day (``said(day)``, or a filler) and a
    reply a minute later, each sent at its time; then wait for the index."""
    start = datetime(2023, 5, 1, 9, tzinfo=UTC)
    for day in range(60):
        at = start + timedelta(days=day)
        text = said(day) or FILLERS[day % len(FILLERS)]
        mem.add({"role": "user", "content": text}, timestamp=at)
        mem.add({"role": "assistant", "content": "Noted."}, timestamp=at + timedelta(minutes=1))
    mem.wait_until_indexed(timeout=30)


def _asked_of_the_tool(mem: ConversationMemory, query: str) -> tuple[str, list[str]]:
    """The recall tool's answer to ``query``, and the turns it labels found by date."""
    answer = str(mem.recall_tool().invoke({"query": query}))
    return answer, re.findall(r'<archived turn="(\d+)"[^>]*found="by its date', answer)


def _kitten_among_day_numbers(day: int) -> str:
    """Day 33 (3 June 2023) adopts a kitten; the others hold day numbers and counts."""
    if day == 33:
        return "I adopted a grey kitten named Pixel."
    return f"Day {day % 31 + 1}: worked on the report, shipped {day % 5 + 1} boxes."


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


def test_date_shaped_text_never_breaks_a_call(switchable_embedder: Any) -> None:
    # Months 00 and 13-19 fit an ISO date's shape: read as dates they raised from the
    # calendar module through assemble, recall and the tool, and a stored user turn or
    # header holding one broke every later call.
    with ConversationMemory.open(
        ":memory:", session="x", budget=300, embedder=switchable_embedder
    ) as mem:
        mem.add({"role": "system", "content": "Release notes 2024-13-01 loaded."})
        for n in range(30):
            mem.add([{"role": "user", "content": f"Build 2023-13-0{n % 9 + 1} failed, {n}."},
                     {"role": "assistant", "content": "Looking."}])  # fmt: skip
        mem.add({"role": "user", "content": "What changed in build 2023-13-01?"})
        assert mem.assemble().tokens <= 300  # the pending question is the query
        for query in ("What changed in build 2023-13-01?", "Ticket 2019-00-12 on 3 June 2023?"):
            assert mem.assemble(query=query).tokens <= 300
            assert isinstance(mem.recall(query=query), str)
            assert isinstance(mem.recall_tool().invoke({"query": query}), str)


def test_an_app_prompt_naming_a_month_does_not_date_turns_that_carry_times(
    switchable_embedder: Any,
) -> None:
    # "Knowledge cutoff: June 2023" stored as a system message opens a segment: it is no
    # date for the turns under it, which carry their own.
    foods = ["pasta", "sushi", "tacos", "curry", "ramen", "paella", "pho"]
    with ConversationMemory.open(
        ":memory:", session="k", budget=1500, embedder=switchable_embedder
    ) as mem:
        mem.add({"role": "system", "content": "A food diary. Knowledge cutoff: June 2023."})
        _daily(mem, lambda day: f"I cooked {foods[day % 7]}.")
        answer = mem.recall(query="What did I cook on 3 June 2023?")
        assert 'date="2023-06-03"' in answer
        assert set(re.findall(r'date="([\d-]+)"', answer)) == {"2023-06-03"}


def test_header_dated_turns_take_year_less_dates_and_show_their_header(
    switchable_embedder: Any,
) -> None:
    # Turns stored at once under dated headers: "9 June" is the headers' June, and the
    # tool shows the header, not the day they were stored.
    days = ["8 May, 2023", "25 May, 2023", "9 June, 2023", "27 June, 2023", "20 July, 2023"]
    acts = ["went to the pottery class", "visited grandma", "painted the fence",
            "went camping by the lake", "read a mystery novel"]  # fmt: skip
    with ConversationMemory.open(
        ":memory:", session="m", budget=1500, embedder=switchable_embedder
    ) as mem:
        for number, (day, act) in enumerate(zip(days, acts, strict=True), 1):
            mem.add({"role": "system", "content": f"Session {number} · 1:56 pm on {day}"})
            mem.add([{"role": "user", "content": f"Hey! Today I {act}."},
                     {"role": "assistant", "content": "That sounds lovely."}])  # fmt: skip
            for k in range(12):
                mem.add([{"role": "user", "content": f"Filler remark {number}.{k}."},
                         {"role": "assistant", "content": "Okay."}])  # fmt: skip
        mem.wait_until_indexed(timeout=30)
        answer = mem.recall_tool().invoke({"query": "What did I do on 9 June?"})
        assert "painted the fence" in answer
        assert 'session="Session 3 · 1:56 pm on 9 June, 2023"' in answer
        assert 'found="by its date' in answer and "date=" not in answer  # no import day


def test_when_turns_were_sent_is_their_time_unless_headers_date_an_import() -> None:
    june_3 = datetime(2023, 6, 3, tzinfo=UTC).timestamp()
    asked: list[tuple[float, float]] = []

    def sent_between(start: float, end: float) -> list[int]:
        asked.append((start, end))
        return [5, 6]

    headers = ["Session 1 · 2 June, 2023", "Session 2 · 3 June, 2023"]
    one_day = Layout([1, 4], sent_between=sent_between, latest=june_3, own_times=False)
    assert sent_when("What did I say on 3 June 2023?", one_day, 100) == [5, 6]  # a live day
    imported = dataclasses.replace(one_day, segment_texts=headers)
    assert sent_when("What did I say on 3 June 2023?", imported, 100) == list(range(5, 100))
    assert sent_when("What did I say on June 2?", imported, 100) == [2, 3]
    spanning = dataclasses.replace(imported, own_times=True)  # the turns' own times rule
    assert sent_when("What did I say on 3 June 2023?", spanning, 100) == [5, 6]
    assert len(asked) == 2 and sent_when("What did I say?", spanning, 100) == []


def test_the_days_number_in_other_turns_does_not_outrank_the_turn_sent_that_day(
    switchable_embedder: Any,
) -> None:
    # "3" in "on 3 June 2023" matched every "Day 3:" by words, and the recall tool's
    # relative floor then cut the turn sent on 3 June: the date is searched as a date.
    with ConversationMemory.open(
        ":memory:", session="n", budget=1500, embedder=switchable_embedder
    ) as mem:
        _daily(mem, _kitten_among_day_numbers)
        for query in ("What did I say on 3 June 2023?", "What did I say on June 3, 2023?"):
            answer, dated = _asked_of_the_tool(mem, query)
            assert "Pixel" in answer, query
            assert dated[:2] == ["67", "68"]  # the turn and its reply, both labelled


def test_the_bundled_embedder_finds_the_turn_sent_that_day_first() -> None:
    # With the bundled MiniLM the whole query's embedding ("What did I say on 3 June
    # 2023?") put a "Day 3" turn first and the kitten 44th of 120; the word-count test
    # embedder had hidden it. A query of nothing but a date gets that day's turns alone.
    with ConversationMemory.open(":memory:", session="b", budget=1500) as mem:
        _daily(mem, _kitten_among_day_numbers)
        for query in ("What did I say on 3 June 2023?", "2023-06-03", "What happened on June 3?"):
            answer, dated = _asked_of_the_tool(mem, query)
            assert dated[:2] == ["67", "68"] and "Pixel" in answer, (query, answer[:300])
            assert answer.count("<archived") == 2, query  # that day's turns, nothing else
        topic = mem.recall_tool().invoke({"query": "Which kitten did I adopt on 3 June 2023?"})
        assert "Pixel" in topic


def test_one_dated_system_message_dates_no_turn(switchable_embedder: Any) -> None:
    # A one-day chat whose stored prompt names a date: the turns keep their own day.
    at = datetime(2023, 6, 3, 9, tzinfo=UTC)
    with ConversationMemory.open(
        ":memory:", session="p", budget=1500, embedder=switchable_embedder
    ) as mem:
        mem.add({"role": "system", "content": "Current date: 15 January 2024."})
        for n in range(40):
            mem.add([{"role": "user", "content": f"{FILLERS[n % 7]} ({n})"},
                     {"role": "assistant", "content": "Noted."}], timestamp=at)  # fmt: skip
        mem.wait_until_indexed(timeout=30)
        assert 'found="by its date' not in mem.recall(query="What did I say on 15 January 2024?")
        assert 'found="by its date' in mem.recall(query="What did I say on 3 June 2023?")


def test_a_date_without_a_year_is_placed_by_the_latest_time_not_the_last_added(
    switchable_embedder: Any,
) -> None:
    # December 2023's turns added first, an older June 2023 turn last: "in December" is
    # December 2023, the latest December the session has lived through.
    with ConversationMemory.open(
        ":memory:", session="o", budget=1500, embedder=switchable_embedder
    ) as mem:
        for day in range(1, 11):
            at = datetime(2023, 12, day, 9, tzinfo=UTC)
            text = "Bought a sledge for the twins." if day == 5 else FILLERS[day % 7]
            mem.add({"role": "user", "content": text}, timestamp=at)
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=at)
        mem.add({"role": "user", "content": "Went swimming."}, timestamp="2023-06-01T09:00Z")
        mem.add({"role": "assistant", "content": "Noted."}, timestamp="2023-06-01T09:01Z")
        mem.wait_until_indexed(timeout=30)
        answer = mem.recall_tool().invoke({"query": "What did I buy for the twins in December?"})
        assert "sledge" in answer and 'found="by its date' in answer


def test_a_date_without_a_year_no_turn_was_sent_on_is_the_one_a_year_before(
    switchable_embedder: Any,
) -> None:
    # The new-user trial: a history from June 2023 continued today. "June 3" of this
    # year has no turns; its "3" was searched as a word, and "Chat 3 ..." came first.
    with ConversationMemory.open(
        ":memory:", session="y", budget=700, embedder=switchable_embedder
    ) as mem:
        mem.add({"role": "user", "content": "I painted room 2 green."}, timestamp="2023-06-03")
        mem.add({"role": "assistant", "content": "Nice colour!"}, timestamp="2023-06-03T00:01Z")
        for i in range(25):
            at = f"2023-06-{10 + i % 15:02d}T09:00Z"
            mem.add({"role": "user", "content": f"Chat {i} about pasta shape {i}."}, timestamp=at)
            mem.add({"role": "assistant", "content": f"Shape {i} is great."}, timestamp=at)
        mem.add({"role": "user", "content": "Let's continue."})  # sent now
        mem.wait_until_indexed(timeout=30)
        found = mem.recall(query="painting on June 3").split("</archived>")[0]
        assert "painted room 2" in found and 'found="by its date' in found
        assert "2023-06-03" in mem.recall(query="What did I say on June 3?")
        # Nothing was sent on June 4: its "4" is no word to search ("Chat 4 ..." came
        # back, the painting did not; second new-user trial).
        for query in ("painting on June 4", "painting on 4 June 2023"):
            found = mem.recall(query=query)
            assert "painted room 2" in found and "Chat 4 " not in found, query


def test_a_year_before_a_leap_day_or_the_first_year() -> None:
    leap = datetime(2024, 2, 29, 9, tzinfo=UTC).timestamp()
    assert _a_year_before(leap) == datetime(2023, 2, 28, 9, tzinfo=UTC).timestamp()
    first = datetime(1, 6, 1, tzinfo=UTC).timestamp()
    assert _a_year_before(first) == first and _a_year_before(1e20) == 1e20  # none earlier


def test_date_questions_from_threads_on_one_file_engine(tmp_path: Path) -> None:
    # A server's shape: sessions of one SQLite file written and asked about dates from
    # several threads at once, one handle never closed.
    path = str(tmp_path / "chat.db")
    errors: list[BaseException] = []

    def session(number: int) -> None:
        try:
            mem = ConversationMemory.open(path, session=f"s{number}", budget=700)
            start = datetime(2023, 5, 1, 9, tzinfo=UTC)
            for day in range(30):
                at = start + timedelta(days=day)
                text = f"Walked {day + number} km." if day != 20 else f"Found key {number}."
                mem.add([{"role": "user", "content": text},
                         {"role": "assistant", "content": "Noted."}], timestamp=at)  # fmt: skip
                prompt = mem.assemble(query="What did I find on 21 May 2023?")
                assert prompt.tokens <= 700
            mem.wait_until_indexed(timeout=60)
            assert f"key {number}" in mem.recall(query="What did I find on 21 May 2023?")
            if number:
                mem.close()  # session 0's handle is left open
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
