"""Resource limits: the largest archived output, the summary and recall sizes are capped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import reliability_harness as harness
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from memory import ConversationMemory
from memory._core import DEFAULT_SUMMARY_SHARE
from memory._errors import ConfigError, InputError
from memory.tool import MAX_RECALL_TOKENS, MIN_RECALL_TOKENS, handle_tool_call


def _tool_exchange(call_id: str, output: str) -> list[dict[str, object]]:
    call = {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
    return [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": output},
    ]


def _log(lines: int) -> str:
    return "\n".join(f"12:00:{k % 60:02d} INFO row {k} value {k * 7} needle" for k in range(lines))


def test_outputs_over_max_output_bytes_are_refused_and_nothing_is_stored() -> None:
    with harness.open_memory(":memory:", "cap", budget=4000, max_output_bytes=20_000) as mem:
        mem.add(_tool_exchange("small", _log(300)))  # ~12 KB: archived
        before = mem.history()
        with pytest.raises(InputError, match="max_output_bytes"):
            mem.add(_tool_exchange("big", _log(1000)))  # ~40 KB
        assert mem.history() == before and len(mem.archive.refs()) == 1


def test_max_output_bytes_holds_for_outputs_that_are_not_archived() -> None:
    with (
        harness.open_memory(
            ":memory:", "cap", budget=4000, max_output_bytes=1_000, compress_threshold=100_000
        ) as mem,
        pytest.raises(InputError, match="max_output_bytes"),
    ):
        mem.add(_tool_exchange("big", _log(100)))  # ~4 KB, ~1,400 tokens


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "64"])
def test_a_bad_max_output_bytes_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="max_output_bytes"):
        harness.open_memory(":memory:", "cap", max_output_bytes=value)


def test_the_running_summary_stays_within_its_share_of_the_budget() -> None:
    budget = 1500
    cap = int(budget * DEFAULT_SUMMARY_SHARE)
    with harness.open_memory(":memory:", "sum", budget=budget) as mem:
        for day in range(120):
            mem.add({"role": "user", "content": f"Day {day}: box {day * 7} goes to Paris."})
            mem.add({"role": "assistant", "content": f"Noted, box {day * 7} is in Paris."})
        assert mem.wait_for_summary(timeout=60)
        versions = [a for a in mem.summary_attempts() if a.error is None]
        assert versions and all(0 < v.tokens <= cap for v in versions)
        # plus the quoted block's framing (source, kind) and the omitted-turns note
        assert mem.assemble().report.parts.summary <= cap + 80


def test_a_summarizer_answering_over_the_cap_is_refused_not_sent() -> None:
    chatty = FakeListChatModel(responses=["Paris " * 3000] * 50)
    with harness.open_memory(":memory:", "sum", budget=1500, summarizer=chatty) as mem:
        mem._summaries.backoff = 0.01
        for day in range(120):  # enough history for a block to come due
            mem.add({"role": "user", "content": f"Day {day}: box {day * 7} goes to Paris."})
        assert mem.wait_for_summary(timeout=30)
        assert mem.summary is None
        assert any(a.error for a in mem.summary_attempts())
        report = mem.assemble().report
        assert report.summary_error and not report.summary_included


@pytest.fixture
def archived() -> Iterator[tuple[ConversationMemory, str]]:
    with harness.open_memory(":memory:", "recall", budget=4000) as mem:
        mem.add(_tool_exchange("c", _log(20_000)))
        yield mem, mem.archive.refs()[0].ref


@pytest.mark.parametrize("asked", [-5, 0, 1, 64, 800, 8000, 10**9])
def test_recall_by_query_stays_within_max_tokens_clamped(
    archived: tuple[ConversationMemory, str], asked: int
) -> None:
    mem, ref = archived
    limit = max(MIN_RECALL_TOKENS, min(MAX_RECALL_TOKENS, asked))
    for text in (
        mem.recall(query="needle value row", max_tokens=asked),
        mem.recall(ref=ref, query="needle value row", max_tokens=asked),
        handle_tool_call(mem.archive, {"query": "needle", "max_tokens": asked}),
    ):
        assert mem.counter.count(text) <= limit


@pytest.mark.parametrize("asked", [-5, 0, 64, 800])
def test_recall_by_page_stays_within_max_tokens_clamped(
    archived: tuple[ConversationMemory, str], asked: int
) -> None:
    mem, ref = archived
    limit = max(MIN_RECALL_TOKENS, min(MAX_RECALL_TOKENS, asked))
    assert mem.counter.count(mem.recall(ref=ref, max_tokens=asked)) <= limit


@pytest.mark.parametrize("asked", [100, 8000, 10**9])
def test_a_full_recall_page_stays_within_max_tokens(
    archived: tuple[ConversationMemory, str], asked: int
) -> None:
    mem, ref = archived
    limit = max(MIN_RECALL_TOKENS, min(MAX_RECALL_TOKENS, asked))
    assert mem.counter.count(mem.recall(ref=ref, max_tokens=asked)) <= limit


def test_recall_rejects_non_numeric_max_tokens_from_the_model(
    archived: tuple[ConversationMemory, str],
) -> None:
    mem, _ = archived
    text = handle_tool_call(mem.archive, '{"query": "needle", "max_tokens": "lots"}')
    assert text.startswith("recall: bad arguments")
