# ruff: noqa: RUF001  (Chinese punctuation in a summary is the point of one case)
"""Running summaries: folded in blocks, off the hot path, failures visible, nothing lost."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory import ConversationMemory, Report, TiktokenCounter
from memory._answer_check import check_on_task
from memory._folding import choose_block
from memory._folds import fold_points
from memory._messages import ExchangeBuilder, Turn
from memory._summarize import (
    SUMMARY_PROMPT,
    ExtractiveSummarizer,
    LLMSummarizer,
    SummaryResult,
    render_transcript,
)
from memory._supersede import supersessions

FAKE = DeterministicFakeEmbedding(size=64)
COUNTER = TiktokenCounter("o200k_base")


def chat(n: int) -> Iterator[dict[str, str]]:
    for i in range(n):
        yield {"role": "user", "content": f"On day {i} Alice moved box number {i * 7} to Paris."}
        yield {"role": "assistant", "content": f"Noted: box {i * 7} is in Paris since day {i}."}


class GatedSummarizer:
    """A summarizer that blocks until released: proves assemble never waits for it."""

    name = "gated"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        self.release.wait(30)
        self.calls += 1
        return SummaryResult(f"{previous_summary} [{len(evicted)} messages]".strip(), 10, 5, 1)


def test_offline_default_folds_old_turns_into_a_summary() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=1200, embedder=FAKE) as mem:
        for message in chat(40):
            mem.add(message)
        assert mem.wait_for_summary(30)
        summary = mem.summary
        assert summary is not None and summary.covers_upto > 0
        assert summary.summarizer == "extractive"
        prompt = mem.assemble(system="sys")
        assert prompt.report.summary_included
        # The newest version may already cover the next fold's block (summarized ahead).
        versions = {v.covers_upto for v in mem._summaries.versions}
        assert prompt.report.summary_covers_upto in versions
        assert prompt.report.summary_covers_upto < prompt.report.window_start_seq
        assert prompt.tokens <= 1200
        # The opening turn is pinned first; the summary follows it, its own user turn or
        # leading the first verbatim one.
        assert prompt.messages[1].content == next(chat(1))["content"]
        content = prompt.messages[2].content
        lead = content if isinstance(content, str) else content[0]["text"]
        assert lead.startswith('<memory source="running summary')
        assert len(mem.history()) == 80  # summaries never delete turns


def test_folds_come_in_blocks_so_the_prefix_stays_stable() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=1500, embedder=FAKE) as mem:
        prefixes = []
        for message in chat(60):
            mem.add(message)
            mem.wait_for_summary(30)
            prompt = mem.assemble(system="sys")
            prefixes.append(str(prompt.messages[:2]))
        versions = [a for a in mem.summary_attempts() if a.error is None]
    changes = sum(1 for a, b in itertools.pairwise(prefixes) if a != b)
    assert 1 <= len(versions) <= len(prefixes) // 6  # many turns per fold
    assert changes <= len(versions) + 1


def test_assemble_never_waits_for_a_slow_summarizer() -> None:
    gated = GatedSummarizer()
    with ConversationMemory.open(
        ":memory:", session="s", budget=1000, embedder=FAKE, summarizer=gated
    ) as mem:
        for message in chat(40):
            mem.add(message)
            prompt = mem.assemble()  # would hang if it waited for the summarizer
            assert prompt.tokens <= 1000
        assert gated.calls == 0 and mem.summary is None
        # meanwhile the evicted turns stay reachable through recall
        assert "box number 7 to" in mem.recall(query="Alice moved box number 7 to Paris")
        gated.release.set()
        assert mem.wait_for_summary(30)
        assert gated.calls >= 1
        assert mem.assemble().report.summarizer_input_tokens >= 10


class Broken:
    name = "broken"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        if isinstance(self.reply, Exception):
            raise self.reply
        return SummaryResult(self.reply)


@pytest.mark.parametrize(
    ("model_reply", "error"),
    [
        ("", "empty"),
        ("word " * 5000, "over the cap"),
        (RuntimeError("rate limited"), "rate"),
        ("I'm sorry, but I can't help with summarizing this conversation.", "refused"),
        ("I\u2019m sorry, but I can\u2019t help with that.", "refused"),  # as models write it
        ("Unfortunately, I cannot summarize this.", "refused"),
        ("I apologize, but I must decline this request.", "refused"),
        ("Sorry, that is not something I am allowed to do.", "refused"),
        ("As a language model, I do not summarize private chats.", "refused"),
        ("抱歉，我无法提供该对话的摘要。", "refused"),
        ("Je suis désolé, mais je ne peux pas résumer cette conversation.", "refused"),
        ("Lo siento, no puedo resumir esta conversación.", "refused"),
        ("Unfortunately, I'm unable to summarize this.", "refused"),
        ("Summary: I'm sorry, I can't summarize this.", "refused"),  # its own label
        ("Leider kann ich das nicht zusammenfassen.", "refused"),
        ("すみませんが、要約はできません。", "refused"),
        (
            "Autumn leaves drift gently over quiet rivers; mountains sleep beneath silver "
            "clouds while lanterns glow softly.",
            "off-task",
        ),
    ],
)
def test_bad_summaries_are_refused_visibly_and_turns_stay(
    model_reply: str | Exception, error: str
) -> None:
    responses = [model_reply] if isinstance(model_reply, str) else ["x"]
    model = FakeListChatModel(responses=responses * 20)
    if isinstance(model_reply, Exception):
        summarizer: object = Broken(model_reply)
    else:
        summarizer = LLMSummarizer(model, COUNTER, max_summary_tokens=200)
    with ConversationMemory.open(
        ":memory:",
        session="s",
        budget=1000,
        embedder=FAKE,
        summarizer=summarizer,  # type: ignore[arg-type]
    ) as mem:
        mem._summaries.retries = 2
        mem._summaries.backoff = 0.01
        for message in chat(30):
            mem.add(message)
        mem.wait_for_summary(30)
        attempts = mem.summary_attempts()
        assert attempts and all(a.error for a in attempts)
        assert error in (attempts[0].error or "")
        assert mem.summary is None  # the summary is not corrupted
        prompt = mem.assemble()
        assert prompt.report.summary_error is not None
        assert not prompt.report.summary_included
        if isinstance(model_reply, str):  # the model answered: each refused call was billed
            assert all(a.input_tokens > 0 for a in attempts)
            assert prompt.report.summarizer_input_tokens >= sum(a.input_tokens for a in attempts)
        assert len(mem.history()) == 60
        assert "box number 0 to" in mem.recall(query="Alice moved box number 0 to Paris")


def test_llm_summarizer_prompt_and_pieces() -> None:
    model = FakeListChatModel(responses=["Alice moved boxes to Paris."] * 50)
    summarizer = LLMSummarizer(model, COUNTER, max_summary_tokens=100, context_tokens=600)
    evicted: list[BaseMessage] = [HumanMessage("fact " * 400), AIMessage("ok " * 400)]
    result = summarizer.summarize("earlier", evicted)
    assert result.text == "Alice moved boxes to Paris."
    assert result.calls > 1  # too long for one call: summarized in pieces, never dropped
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert "Previous conversation was too long" not in result.text


def test_extractive_keeps_facts_with_numbers_and_dates() -> None:
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=40)
    evicted = [
        HumanMessage("hi there how are you doing today friend"),
        HumanMessage("My flight is on 12 May 2024 at 09:40 from Lisbon."),
        AIMessage("that sounds nice and fun and good"),
    ]
    text = summarizer.summarize("", evicted).text
    assert "12 May 2024" in text and "Lisbon" in text
    assert COUNTER.count(text) <= 40


def test_an_extractive_summary_keeps_at_most_a_quarter_of_a_long_input() -> None:
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=2_000)
    evicted: list[BaseMessage] = [
        HumanMessage(f"Order {n} of {n * 3} crates left Lyon on day {n} for depot {n % 7}.")
        for n in range(1, 120)
    ]
    # The input as the summarizer reads it: one "speaker: sentence" line each.
    source = sum(COUNTER.count(f"human: {m.text}") + 1 for m in evicted)
    text = summarizer.summarize("", evicted).text
    assert source > 2_000  # the cap alone would keep most of it
    assert 0 < COUNTER.count(text) <= source // 4
    # A short input keeps its facts whole: the quarter never goes under EXTRACT_FLOOR.
    short = summarizer.summarize("", [HumanMessage("My flight is on 12 May 2024 at 09:40.")])
    assert short.text == "human: My flight is on 12 May 2024 at 09:40."


def test_a_changed_fact_replaces_the_old_one_in_the_offline_summary() -> None:
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=200)
    evicted = [
        HumanMessage("The project budget is 18,000 euros for the whole year."),
        AIMessage("Understood, I noted the budget for the project."),
        HumanMessage("Change of plan: the budget is now 15,000, not 18,000."),
    ]
    text = summarizer.summarize("", evicted).text
    assert "15,000" in text
    assert "budget is 18,000 euros" not in text
    # and across folds: the old value in the previous summary goes too
    later = summarizer.summarize("human: The project budget is 18,000 euros.", evicted[2:]).text
    assert "budget is 18,000 euros" not in later and "now 15,000" in later


def test_a_correction_replaces_the_old_value_and_what_restated_it() -> None:
    """ "Scratch that" says the old value was wrong: one shared word relates the two; the
    reply that restated the old value goes too, and the correction takes the rank of
    what it supersedes."""
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=120)
    evicted: list[BaseMessage] = [
        HumanMessage("Our project budget is 18,000 euros for the whole renovation."),
        AIMessage("Got it, 18,000 euros in total."),
    ]
    for place in ("Alfama", "Belem", "Chiado", "Graca", "Baixa", "Estrela", "Lapa", "Ajuda"):
        evicted.append(AIMessage(f"The old tram climbs slowly through {place} most mornings."))
    before = summarizer.summarize("", evicted).text
    assert "budget is 18,000" in before  # the old value is what the summary would keep
    evicted.append(HumanMessage("Scratch that, the budget is 15k."))
    text = summarizer.summarize("", evicted).text
    assert "budget is 15k" in text and "18,000" not in text


def test_a_correction_drops_only_what_it_corrects() -> None:
    """A correction related to one value leaves other values alone: one shared name
    ("Lyon") relates nothing, an idiom ("make it to") or a regret ("was a mistake") is no
    correction, and "Flat 2" does not restate the rent of 2 rooms."""
    cases = [
        ["human: The hotel in Lisbon costs 120 euros a night.",
         "human: Our flight lands in Lisbon at 14:30 on May 3.",
         "human: Scratch that, the hotel in Lisbon costs 135 euros a night."],
        ["human: Flat 2 in Lyon has a balcony.", "human: The Lyon office opens at 9.",
         "human: The Lyon rent is 900 euros for 2 rooms.",
         "human: Scratch that, the Lyon rent is 950 euros."],
        ["human: The team meeting is at 10 am on Monday in room 4.",
         "human: Can you make it to the 3 pm meeting with the landlord?"],
        ["human: The kitchen tiles cost 2,400 euros.",
         "human: Buying 3 extra boxes of bathroom tiles was a mistake."],
    ]  # fmt: skip
    dropped = [set().union(*supersessions(case).values()) for case in cases]
    assert dropped == [{0}, {2}, set(), set()]


def test_a_new_value_of_the_same_subject_replaces_the_old_and_its_echo() -> None:
    """A new-user trial: "The budget is 18,000." then "The budget is now 15,000." share one
    content word and no number, and the summary kept both; "Got it, 18,000." stayed too."""
    summarizer = ExtractiveSummarizer(COUNTER)
    cases = [
        ("The budget is 18,000.", "Noted.", "The budget is now 15,000."),
        ("The budget is 18,000 euros.", "Got it, 18,000.", "The budget is now 15,000, not 18,000."),
        ("Our rent is 900 euros.", "OK, 900 it is.", "Update: our rent is now 950 euros."),
        ("The meeting is at 14:00.", "Noted.", "The meeting moved to 15:30."),
        ("The budget is 18,000.", "Noted.", "Actually the budget is 15,000."),
        ("The budget is 18,000.", "Noted.", "The budget has been reduced to 15,000."),
    ]
    for old, reply, new in cases:
        text = summarizer.summarize("", [HumanMessage(old), AIMessage(reply), HumanMessage(new)])
        assert text.text.splitlines() == [f"human: {new}"], text.text
    # Another subject's value stays: "the meeting" is not "the budget".
    kept = [
        "human: The meeting is at 14:00 on Friday.",
        "human: The budget is now 15,000.",
        "human: It is 2 weeks until the move.",
        "human: It is now 3 years since we met.",  # "it" names nothing
    ]
    assert supersessions(kept) == {}
    # A sentence holding more than the changed value stays whole (a second trial: the
    # deadline went with the old budget).
    partly = [
        "human: The budget is 18,000 and the deadline is March 3.",
        "human: The budget is now 15,000.",
        "human: The meeting is at 2pm on Thursday.",
        "human: The meeting is at 4pm instead.",
    ]
    assert supersessions(partly) == {}


def test_a_sentence_said_again_on_another_day_is_summarized_once() -> None:
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=400)
    line = "Lisbon's tram 28 runs from Martim Moniz to Campo de Ourique every 12 minutes."
    evicted: list[BaseMessage] = []
    for day in range(1, 4):
        at = {"timestamp": f"2026-05-0{day}T10:00:00Z"}
        evicted += [HumanMessage(f"Trams, part {day}?", additional_kwargs=at),
                    AIMessage(line, additional_kwargs=at)]  # fmt: skip
    text = summarizer.summarize("", evicted).text
    assert text.count("tram 28") == 1 and "[2026-05-03] ai: Lisbon's tram 28" in text


def test_a_sentence_said_again_is_summarized_once() -> None:
    summarizer = ExtractiveSummarizer(COUNTER, max_summary_tokens=200)
    line = "Lisbon's tram 28 runs from Martim Moniz to Campo de Ourique every 12 minutes."
    previous = f"ai: {line}"
    text = summarizer.summarize(previous, [AIMessage(line), HumanMessage("Thanks, noted it.")]).text
    assert text.count("tram 28") == 1


def test_the_llm_summarizer_is_told_to_keep_the_new_value_and_dates() -> None:
    model = FakeListChatModel(responses=["The budget changed to 15,000 on 2024-03-02."])
    summarizer = LLMSummarizer(model, COUNTER, max_summary_tokens=100)
    first = HumanMessage("The budget is 18,000.", additional_kwargs={"timestamp": "2024-03-01"})
    second = HumanMessage("It is now 15,000.", additional_kwargs={"timestamp": 1709337600})
    transcript = render_transcript([first, second])
    assert (
        transcript
        == "[2024-03-01] human: The budget is 18,000.\n[2024-03-02] human: It is now 15,000."
    )
    assert summarizer.summarize("", [first, second]).text.startswith("The budget changed")
    assert "keep only the new value" in SUMMARY_PROMPT


def test_summaries_show_the_dates_of_the_messages_they_fold() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=900, embedder=FAKE) as mem:
        for day, message in enumerate(chat(30)):
            mem.add(message, timestamp=f"2024-05-{day // 2 + 1:02d}T10:00:00Z")
        assert mem.wait_for_summary(30)
        assert mem.summary is not None
        dated = re.findall(r"\[2024-05-(\d\d)\] human: On day (\d+) ", mem.summary.text)
        assert dated and all(int(d) == int(n) + 1 for d, n in dated)  # each fact's own date


def test_choose_block_folds_oldest_first_and_never_the_latest() -> None:
    builder = ExchangeBuilder()
    messages: list[BaseMessage] = [HumanMessage("a"), AIMessage("b")] * 5 + [HumanMessage("now")]
    builder.extend(Turn(i + 1, m, 100) for i, m in enumerate(messages))
    exchanges = builder.exchanges
    points = fold_points(exchanges, 300)
    assert points == [0, 3, 6, 9]
    block = choose_block(exchanges, covers_upto=0, points=points, due_tokens=500)
    assert [e.first_seq for e in block] == [1, 2, 3]  # up to the next fold point
    assert choose_block(exchanges, covers_upto=3, points=points, due_tokens=500) == exchanges[3:6]
    # Not due yet: the turns since the block's start are under due_tokens.
    assert choose_block(exchanges, covers_upto=0, points=points, due_tokens=5000) == []
    # The latest exchange is never in a block.
    assert choose_block(exchanges, covers_upto=9, points=points, due_tokens=0) == []
    assert "human: a" in render_transcript(messages[:1])


def test_agent_runs_with_one_task_get_summaries_too() -> None:
    with ConversationMemory.open(":memory:", session="s", budget=1500, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": "Fix the failing test in parser.py"})
        for i in range(30):
            call = {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "run", "arguments": "{}"},
            }
            mem.add(
                [
                    {"role": "assistant", "content": f"step {i}", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": f"c{i}", "content": f"line {i}: ok " * 30},
                ]
            )
        assert mem.wait_for_summary(30)
        assert mem.summary is not None and mem.summary.covers_upto > 10
        prompt = mem.assemble()
        # The task leads as stored (the cached prefix reaches past it), the summary after it.
        assert prompt.messages[0].content == "Fix the failing test in parser.py"
        assert str(prompt.messages[1].content).startswith('<memory source="running summary')
        assert prompt.tokens <= 1500


def test_summarizer_spend_survives_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "spend.db")
    model = FakeListChatModel(responses=["Alice moved boxes to Paris."] * 100)
    with ConversationMemory.open(
        path, session="s", budget=1000, embedder=FAKE, summarizer=model
    ) as mem:
        for message in chat(40):
            mem.add(message)
        assert mem.wait_for_summary(30)
        spent = (
            mem.assemble().report.summarizer_input_tokens,
            mem.assemble().report.summarizer_output_tokens,
        )
        attempts = mem.summary_attempts()
    assert spent[0] > 0 and spent[1] > 0
    assert spent == (
        sum(a.input_tokens for a in attempts),
        sum(a.output_tokens for a in attempts),
    )
    with ConversationMemory.open(path, session="s", budget=1000, embedder=FAKE) as again:
        report = again.assemble().report
        assert (report.summarizer_input_tokens, report.summarizer_output_tokens) == spent


def test_a_large_task_as_the_only_user_turn_folds_in_whole_summarized_blocks() -> None:
    """The fold schedule sizes its blocks from what the system prompt and the pinned task
    leave: with the summarizer keeping up, prompts rarely leave turns unsummarized (9 of
    these 40 did, over 10 folds, when blocks were sized without the task; now 2, over 6)."""
    task = "Fix the date parser. " + "It drops the offset of ISO dates in dates.py. " * 120
    with ConversationMemory.open(":memory:", session="s", budget=4000, embedder=FAKE) as mem:
        mem.add({"role": "user", "content": task})
        gaps, starts = 0, set()
        for i in range(40):
            mem.wait_for_summary(30)
            prompt = mem.assemble(system="You are a coding agent.")
            assert prompt.messages[1].content == task  # after the system prompt, as stored
            starts.add(prompt.report.window_start_seq)
            gaps += "neither verbatim nor in a summary" in str(prompt.to_openai())
            call = {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "read", "arguments": "{}"},
            }
            output = "x = f(y) " * (20 + 13 * (i % 5))
            mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": output}])  # fmt: skip
        assert prompt.report.omitted_ranges and gaps <= 2 and len(starts) - 1 <= 6


class _Billed(FakeListChatModel):
    """A fake chat model under a provider's name, as ChatOpenAI carries one."""

    model_name: str = "gpt-4o-mini"


REPLY = ["Alice moved boxes to Paris."] * 100


def _summarized(summarizer: Any) -> Report:
    """The report after 40 messages and a fold by ``summarizer`` (priced as gpt-4o-mini)."""
    with ConversationMemory.open(
        ":memory:", session="s", budget=1000, embedder=FAKE, summarizer=summarizer,
        model="gpt-4o-mini",
    ) as mem:  # fmt: skip
        for message in chat(40):
            mem.add(message)
        assert mem.wait_for_summary(30)
        return mem.assemble().report


def test_money_saved_is_net_of_the_summarizer_models_spend() -> None:
    report = _summarized(_Billed(responses=REPLY))
    assert report.summarizer_input_tokens > 0
    spent = (report.summarizer_input_tokens * 0.15 + report.summarizer_output_tokens * 0.60) / 1e6
    assert report.session_cost_usd is not None and report.session_raw_cost_usd is not None
    gross = report.session_raw_cost_usd - report.session_cost_usd
    assert report.money_saved_usd == pytest.approx(gross - spent)  # was the gross saving
    # A summarizer model whose price is unknown: the net saving cannot be told.
    assert _summarized(_Billed(responses=REPLY, model_name="acme-tiny-1")).money_saved_usd is None


def test_a_wrapped_summarizer_is_accepted_and_an_unnamed_one_is_not_free() -> None:
    for summarizer, netted in (
        (_Billed(responses=REPLY).with_retry(), True),
        (FakeListChatModel(responses=REPLY), False),
    ):
        report = _summarized(summarizer)
        assert report.summarizer_input_tokens > 0  # the wrapped model wrote the summary
        # Priced through the wrapper as gpt-4o-mini; a model with no name has no price,
        # so the saving net of its spend is unknown (it was the gross saving).
        assert (report.money_saved_usd is not None) is netted


def test_a_good_summary_is_not_taken_for_a_refusal_or_off_task() -> None:
    """Words compared by their stems ("batches" is "batch"); quoted words and a speaker's
    words after a label are theirs, not a refusal."""
    source = (
        "The batch shipped to the warehouse. The invoice was paid monthly; a penalty is "
        "charged for late delivery. I can't wait to move to Lisbon next month with the boxes."
    )
    for summary in (
        "The user described batches shipped to warehouses, with invoices paid monthly and "
        "penalties charged for late deliveries.",
        'User: "I can\'t wait to move to Lisbon next month," with the boxes in a batch.',
        "User: I can't make the delivery, so the batch shipped late to the warehouse.",
        "Unfortunately the batch shipped late, so a penalty was charged on the invoice.",
        "The batch is not allowed to ship late; the invoice carries a penalty.",
        "Apologies were exchanged for the late batch; the invoice carries a penalty.",
        "用户对延误表示抱歉，批次已发往仓库。",  # a summary may report an apology
    ):
        check_on_task(summary, source, "model")  # raises SummarizerError if refused
