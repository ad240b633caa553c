"""Message times: given by the message or by ``add``, stored, shown as dates."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import HumanMessage

import memory._assemble as assembling
from memory import AssemblyPolicy, ConversationMemory, InputError
from memory._timestamps import format_time, parse_timestamp

FAKE = DeterministicFakeEmbedding(size=16)
MAY_8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "value",
    [
        "2023-05-08T13:56:00Z",
        "2023-05-08T15:56:00+02:00",
        "2023-05-08 13:56",  # no offset: UTC
        MAY_8,
        int(MAY_8),
        datetime(2023, 5, 8, 13, 56),  # naive: UTC
        datetime(2023, 5, 8, 8, 56, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_every_form_of_a_time_reads_the_same(value: object) -> None:
    assert parse_timestamp(value) == MAY_8


def test_a_date_alone_is_its_midnight_and_shows_as_a_date() -> None:
    assert format_time(parse_timestamp(date(2023, 5, 8))) == "2023-05-08"
    assert format_time(parse_timestamp("2023-05-08")) == "2023-05-08"
    assert format_time(MAY_8) == "2023-05-08 13:56 UTC"


@pytest.mark.parametrize("value", ["yesterday", "", True, float("nan"), -5, [2023], "2023-13-01"])
def test_what_is_not_a_time_is_refused_with_the_message_index(value: object) -> None:
    with ConversationMemory.open(":memory:", session="s", budget=500, embedder=FAKE) as mem:
        with pytest.raises(InputError, match="message 1: timestamp"):
            mem.add(
                [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b", "timestamp": value},
                ]
            )
        assert mem.history() == []  # all or nothing
        with pytest.raises(InputError, match="timestamp"):
            mem.add({"role": "user", "content": "c"}, timestamp=value)  # type: ignore[arg-type]


def test_each_way_of_giving_a_time_is_stored_with_the_message() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=2000, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "openai dict", "timestamp": "2023-05-08T13:56:00Z"})
        mem.add({"role": "assistant", "content": [{"type": "text", "text": "anthropic"}],
                 "timestamp": MAY_8 + 60})  # fmt: skip
        mem.add(HumanMessage("langchain", additional_kwargs={"timestamp": MAY_8 + 120}))
        mem.add({"role": "assistant", "content": "argument"}, timestamp=MAY_8 + 180)
        own = {"role": "user", "content": "its own wins", "timestamp": MAY_8 + 240}
        mem.add(own, timestamp=MAY_8 + 999)
        before = datetime.now(UTC).timestamp()
        mem.add({"role": "assistant", "content": "no time: now"})
        records = mem._state.messages()
        assert [r.created_at for r in records[:5]] == [MAY_8 + 60 * i for i in range(5)]
        assert records[5].created_at >= before - 1
        # history keeps the message as given, its time as ISO 8601 UTC text
        assert mem.history()[2].additional_kwargs["timestamp"] == "2023-05-08T13:58:00Z"
        assert mem.history()[3].additional_kwargs["timestamp"] == "2023-05-08T13:59:00Z"
        assert "timestamp" not in mem.history()[5].additional_kwargs  # the time of add
        # times never reach the provider's messages
        assert all("timestamp" not in m for m in mem.assemble().to_openai())
    with ConversationMemory.open(":memory:", session="t", budget=2000, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "reopened view"}, timestamp="2023-05-08T13:56:00Z")
        turns = [t for e in mem._state.view.exchanges for t in e.turns]
        assert [t.at for t in turns] == [MAY_8]


def test_aadd_takes_a_timestamp_too() -> None:
    async def main() -> float:
        mem = ConversationMemory.open(":memory:", session="s", budget=500, embedder=FAKE)
        async with mem:
            await mem.aadd({"role": "user", "content": "hi"}, timestamp=MAY_8)
            return mem._state.messages()[0].created_at

    assert asyncio.run(main()) == MAY_8


CAT_DAYS = [
    ("user", "I adopted a cat.", "2023-05-08T10:00Z"),
    ("assistant", "Lovely!", "2023-05-08T10:01Z"),
    ("user", "Same day.", "2023-05-08T18:00Z"),
    ("assistant", "Yes?", "2023-05-08T18:01Z"),
    ("user", "The cat is sick.", "2023-05-10T09:00Z"),
]


def test_a_user_turn_that_starts_a_new_day_is_sent_with_its_date() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=4000, embedder=FAKE) as mem:
        for role, text, at in CAT_DAYS:
            mem.add({"role": role, "content": text}, timestamp=at)
        # While the whole history fits it is sent as it is: dates would only add tokens
        # to what the app's own raw history costs.
        prompt = mem.assemble()
        assert [m["content"] for m in prompt.to_openai()] == [t for _, t, _ in CAT_DAYS]
        assert prompt.tokens == prompt.report.raw_tokens
    with ConversationMemory.open(":memory:", session="s", budget=200, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "Moving notes. " * 70}, timestamp="2023-05-07T09:00Z")
        mem.add({"role": "assistant", "content": "Noted."}, timestamp="2023-05-07T09:01Z")
        for role, text, at in CAT_DAYS:
            mem.add({"role": role, "content": text}, timestamp=at)
        prompt = mem.assemble()
        assert prompt.report.omitted_ranges  # turns left out: now dates are shown
        sent = [m["content"] for m in prompt.to_openai()]
        assert sent[-5:] == [
            "[2023-05-08] I adopted a cat.",  # the first user turn after left-out turns
            "Lovely!",
            "Same day.",
            "Yes?",
            "[2023-05-10] The cat is sick.",  # a new day
        ]
        assert mem.history()[6].content == "The cat is sick."  # stored as given
        mem.policy = AssemblyPolicy(dates=False)
        assert [m["content"] for m in mem.assemble().to_openai()][-1] == "The cat is sick."


def test_the_first_user_turn_after_left_out_turns_says_its_date() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=700, embedder=FAKE) as mem:
        for day in range(1, 21):
            when = f"2023-05-{day:02d}T10:00Z"
            mem.add({"role": "user", "content": f"Day {day}: " + "news " * 20}, timestamp=when)
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=when)
        sent = "\n".join(str(m.content) for m in mem.assemble().messages if m.type == "human")
        # The pinned opening turn, verbatim turns and summary lines carry their dates.
        assert sent.startswith("[2023-05-01] Day 1: ")
        days = re.findall(r"\[2023-05-(\d\d)\] (?:human: )?Day (\d+):", sent)
        assert len(days) == sent.count("Day ") > 1
        assert all(int(mark) == int(day) for mark, day in days)


def test_a_pinned_opening_says_its_date_only_once_the_chat_reaches_another_day() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=700, embedder=FAKE) as mem:
        for minute in range(10, 40):  # one day: the opening stays as stored
            when = f"2023-05-01T10:{minute}:00Z"
            mem.add({"role": "user", "content": f"Hour {minute}: " + "news " * 20}, timestamp=when)
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=when)
        prompt = mem.assemble()
        assert prompt.report.omitted_ranges  # folded: the opening is pinned
        assert prompt.messages[0].content == "Hour 10: " + "news " * 20
        mem.add({"role": "user", "content": "Good morning"}, timestamp="2023-05-02T08:00Z")
        assert str(mem.assemble().messages[0].content).startswith("[2023-05-01] Hour 10: ")


def test_recalled_turns_show_the_day_they_were_sent() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=900, embedder=FAKE) as mem:
        for day in range(1, 10):
            text = "I adopted a cat named Miso" if day == 3 else "weather chat " * 100
            mem.add({"role": "user", "content": f"Day {day}: {text}"}, timestamp=f"2024-03-0{day}")
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=f"2024-03-0{day}T01:00Z")
        prompt = mem.assemble(query="When was the cat adopted?")
        assert 5 in prompt.report.recalled_turns
        block = next(str(m.content) for m in prompt.messages if "recalled from" in str(m.content))
        assert re.search(r"\[2024-03-03\]\n[^\n]*Miso", block)
        assert "[messages" not in block  # the day says where; the turns keep their order


def test_the_first_user_turn_after_a_fold_says_its_date_when_an_answer_comes_first() -> None:
    # The verbatim turns after a fold may open on the assistant's reply: the date goes on
    # the first user turn after it, not on nothing.
    with ConversationMemory.open(":memory:", session="s", budget=700, embedder=FAKE) as mem:
        for n in range(30):
            when = f"2023-05-{8 + n // 5:02d}T{9 + 2 * (n % 5):02d}:00Z"  # 5 a day
            mem.add({"role": "user", "content": f"Note {n}: " + "word " * 40}, timestamp=when)
            mem.add({"role": "assistant", "content": f"Got it, {n}."}, timestamp=when)
        prompt = mem.assemble()
        assert prompt.report.omitted_ranges
        kept = [m for m in prompt.messages if m.type == "human" and "Note " in str(m.content)]
        first_after_gap = next(m for m in kept if "Note 0:" not in str(m.content))
        # Note 24 is not the first of its day: only the gap before it earns the date.
        assert str(first_after_gap.content).startswith("[2023-05-12] Note 24:")


def test_the_window_plans_the_dates_its_turns_are_sent_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A user turn sent with its date costs a few tokens more than its stored count. The
    # plan counts them: planned without, the prompt came out over, was planned again
    # with less room, and its recall block lost a whole snippet (the newest, however
    # good) to fit: LoCoMo's plain feeding lost evidence in 15% of its prompts.
    replans: list[int] = []
    planned = assembling.assemble

    def plan(*args: object, **kwargs: object) -> object:
        replans.append(1)
        return planned(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(assembling, "assemble", plan)  # re-plans only: the first is not
    start = datetime(2024, 1, 1, 10, tzinfo=UTC)
    with ConversationMemory.open(":memory:", session="s", budget=2000, embedder=FAKE) as mem:
        for day in range(40):
            at = start + timedelta(days=day)
            text = f"Day {day}: the garden had {day} tulips and a robin on the fence."
            mem.add({"role": "user", "content": text}, timestamp=at)
            mem.add({"role": "assistant", "content": "Noted."}, timestamp=at)
        for budget in range(500, 2001, 50):
            prompt = mem.assemble(budget=budget)
            sent = [str(m.content) for m in prompt.messages if m.type == "human"]
            assert budget > 1000 or any(s.startswith("[2024-") for s in sent)  # dated turns
            assert prompt.tokens <= budget
            prompt = mem.assemble(query="How many tulips were in the garden?", budget=budget)
            assert prompt.tokens <= budget
    assert not replans


def test_turns_left_out_between_two_recalled_ones_are_marked_by_a_gap_line() -> None:
    # A day's snippet lists no message numbers: a "…" line says turns were left out, so
    # a question is not read as answered by a later, unrelated reply.
    with ConversationMemory.open(":memory:", session="g", budget=900, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "Hello"}, timestamp="2024-03-01T09:00Z")
        said = ["My cat Miso is grey."] + ["weather chat " * 30] * 12 + ["Miso eats tuna."]
        for minute, text in enumerate(said):
            mem.add({"role": "user", "content": text}, timestamp=f"2024-03-03T10:{minute:02d}Z")
            mem.add(
                {"role": "assistant", "content": "Noted."},
                timestamp=f"2024-03-03T10:{minute:02d}:30Z",
            )
        for day in range(4, 8):
            mem.add({"role": "user", "content": "weather chat " * 60}, timestamp=f"2024-03-0{day}")
        mem.wait_for_summary()  # the fold settled: the room for recall is known
        mem.wait_until_indexed()
        prompt = mem.assemble(query="What about Miso?")
        block = next(str(m.content) for m in prompt.messages if "recalled from" in str(m.content))
    day = block[block.index("[2024-03-03]") :]
    grey, tuna = day.index("Miso is grey"), day.index("Miso eats tuna")
    assert "\n…\n" in day[grey:tuna]  # the weather chat between them is left out
    lines = day.splitlines()
    reply = lines.index(next(line for line in lines if "Miso is grey" in line)) + 1
    assert lines[reply] == "assistant: Noted."  # sent right after it: no gap line


def test_tool_rounds_and_retracted_turns_between_two_recalled_ones_make_no_gap() -> None:
    # Only turns that would be shown count as left out: a tool round without text and a
    # retracted reply (with its retraction's record) between a question and its answer
    # are no gap (second trial of the fixes: a "…" made the question look unanswered).
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with ConversationMemory.open(":memory:", session="h", budget=900, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "Hello"}, timestamp="2024-03-01T09:00Z")
        at = "2024-03-03T10:00Z"
        mem.add({"role": "user", "content": "Where does Miso sleep?"}, timestamp=at)
        round_ = [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "basket"},
        ]
        mem.add(round_, timestamp=at)
        wrong = mem.add({"role": "assistant", "content": "On the sofa."}, timestamp=at)[-1]
        mem.retract(wrong)
        mem.add({"role": "assistant", "content": "Miso sleeps in the basket."}, timestamp=at)
        for day in range(4, 20):
            mem.add(
                {"role": "user", "content": "weather chat " * 60}, timestamp=f"2024-03-{day:02d}"
            )
        mem.wait_for_summary()  # the fold settled: the room for recall is known
        mem.wait_until_indexed()
        prompt = mem.assemble(query="Where does Miso sleep?")
        block = next(str(m.content) for m in prompt.messages if "recalled from" in str(m.content))
    day = block[block.index("[2024-03-03]") :]
    # The tool's result is quoted too (a tool result kept as it is is searched as a turn).
    said = "user: Where does Miso sleep?\ntool: basket\nassistant: Miso sleeps in the basket."
    assert said in day
