"""Loading transcripts (OpenAI records, LoCoMo), replaying them, totals and the plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import (
    ConversationMemory,
    InputError,
    MissingDependencyError,
    PartTokens,
    Report,
)
from memory._cli_replay import cost_lines
from memory._replay import (
    DEFAULT_PRICE_PER_MTOK,
    CallStats,
    ReplayTotals,
    load_transcript,
    locomo_messages,
    model_calls,
    replay,
    totals,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "bye"},
    {"role": "assistant", "content": "bye"},
]
CONVERSATION: dict[str, Any] = {
    "speaker_a": "Ann Lee",
    "speaker_b": "Bo",
    "session_2_date_time": "9:00 am on 9 May, 2023",
    "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "Morning."}],
    "session_10_date_time": "10:00 am on 1 June, 2023",
    "session_10": [
        {"speaker": "Ann Lee", "dia_id": "D10:1", "text": "Look!", "blip_caption": "a red kite"},
        {"speaker": "Bo", "dia_id": "D10:2", "text": "Nice."},
    ],
    "session_1_date_time": "1:56 pm on 8 May, 2023",
    "session_1": [
        {"speaker": "Ann Lee", "dia_id": "D1:1", "text": "Hi Bo!"},
        {"speaker": "Bo", "dia_id": "D1:2", "text": "Hi Ann."},
    ],
}


def write(tmp_path: Path, name: str, data: Any, *, jsonl: bool = False) -> Path:
    file = tmp_path / name
    text = "".join(json.dumps(r) + "\n" for r in data) if jsonl else json.dumps(data)
    file.write_text(text, encoding="utf-8")
    return file


@pytest.mark.parametrize(
    "data",
    [{"messages": CHAT}, CHAT, [{"id": "a", "messages": CHAT}]],
    ids=["object", "list", "one-record"],
)
def test_openai_shapes_load_as_messages(tmp_path: Path, data: Any) -> None:
    assert load_transcript(write(tmp_path, "t.json", data)) == CHAT


def test_jsonl_records_take_the_first_or_the_one_asked_for(tmp_path: Path) -> None:
    records = [{"id": "one", "messages": CHAT[:3]}, {"id": "two", "messages": CHAT}]
    file = write(tmp_path, "t.jsonl", records, jsonl=True)
    assert load_transcript(file) == CHAT[:3]
    assert load_transcript(file, record_id="two") == CHAT
    with pytest.raises(InputError, match=r"no record 'three'; it has: one, two"):
        load_transcript(file, record_id="three")


def test_a_plain_jsonl_of_messages_loads(tmp_path: Path) -> None:
    assert load_transcript(write(tmp_path, "t.jsonl", CHAT, jsonl=True)) == CHAT


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "neither JSON nor JSONL"),
        ('{"messages": "nope"}', "no list of chat messages"),
        ("[1, 2]", "no list of chat messages"),
    ],
)
def test_bad_files_are_input_errors(tmp_path: Path, text: str, match: str) -> None:
    file = tmp_path / "t.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        load_transcript(file)


def test_missing_file_and_ids_on_a_single_conversation(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read transcript"):
        load_transcript(tmp_path / "nope.json")
    with pytest.raises(InputError, match="without ids"):
        load_transcript(write(tmp_path, "t.json", CHAT), record_id="x")


def test_locomo_sessions_in_order_with_dates_speakers_and_captions() -> None:
    messages = locomo_messages(CONVERSATION)
    assert messages == [
        {"role": "user", "content": "[1:56 pm on 8 May, 2023] Hi Bo!", "name": "Ann_Lee"},
        {"role": "assistant", "content": "Hi Ann.", "name": "Bo"},
        {"role": "assistant", "content": "[9:00 am on 9 May, 2023] Morning.", "name": "Bo"},
        {
            "role": "user",
            "content": "[10:00 am on 1 June, 2023] Look! [shares an image: a red kite]",
            "name": "Ann_Lee",
        },
        {"role": "assistant", "content": "Nice.", "name": "Bo"},
    ]
    with pytest.raises(InputError, match="no session_N"):
        locomo_messages({"speaker_a": "A", "speaker_b": "B"})


def test_locomo_files_select_by_sample_id(tmp_path: Path) -> None:
    other = {"speaker_a": "X", "speaker_b": "Y", "session_1": []}
    records = [
        {"sample_id": "conv-1", "conversation": other, "qa": []},
        {"sample_id": "conv-2", "conversation": CONVERSATION, "qa": []},
    ]
    file = write(tmp_path, "locomo.json", records)
    assert load_transcript(file, record_id="conv-2") == locomo_messages(CONVERSATION)
    assert load_transcript(file) == []


@pytest.mark.skipif(not (SHARED_DATA / "locomo").is_dir(), reason="shared data absent")
def test_the_shared_locomo_file_loads() -> None:
    messages = load_transcript(SHARED_DATA / "locomo/locomo_dev.json", record_id="conv-26")
    assert messages[0]["content"].startswith("[1:56 pm on 8 May, 2023] ")
    assert messages[0]["role"] == "user"
    assert {m["role"] for m in messages} == {"user", "assistant"}
    assert len(messages) > 300


@pytest.mark.skipif(not (SHARED_DATA / "agent_transcripts").is_dir(), reason="shared data absent")
def test_the_shared_agent_transcripts_load() -> None:
    messages = load_transcript(SHARED_DATA / "agent_transcripts/swe_agent_dev.jsonl")
    assert messages[0]["role"] == "system"
    assert model_calls(messages) > 0
    assert {"user", "assistant"} <= {m["role"] for m in messages}


def test_replay_yields_a_report_per_model_call() -> None:
    assert model_calls(CHAT) == 2
    with ConversationMemory.open(
        ":memory:", session="r", budget=300, embedder=DeterministicFakeEmbedding(size=64)
    ) as mem:
        rows = list(replay(mem, CHAT))
        assert len(mem.history()) == len(CHAT) - 1  # the system prompt is not history
    assert [r.call for r in rows] == [1, 2]
    for row in rows:
        assert row.sent_tokens == row.report.tokens <= 300
        assert row.raw_tokens == row.report.raw_tokens
        assert row.tokens_saved == row.raw_tokens - row.sent_tokens
        data = row.to_dict()
        assert data["call"] == row.call
        assert json.loads(json.dumps(data))["tokens"] == row.sent_tokens


def _row(call: int, raw: int, sent: int, refs: tuple[str, ...] = (), saved: int = 0) -> CallStats:
    report = Report(
        budget=sent,
        tokens=sent,
        parts=PartTokens(turns=sent),
        turns_total=1,
        turns_kept=1,
        turns_omitted=0,
        tokens_omitted=0,
        raw_tokens=raw,
        tokens_saved=raw - sent,
        compressed_refs=refs,
        compression_saved=saved,
    )
    return CallStats(call, 1, raw, sent, 0, report)


def test_totals_sum_the_calls_and_price_the_savings() -> None:
    rows = [_row(1, 1_000, 1_000, ("a1",), 50), _row(2, 3_000_000, 1_000_000, ("a1", "b2"), 70)]
    summed = totals(rows)
    assert (summed.calls, summed.raw_tokens, summed.sent_tokens) == (2, 3_001_000, 1_001_000)
    assert (summed.archived_refs, summed.compression_saved) == (2, 120)
    assert summed.tokens_saved == 2_000_000
    assert summed.largest_prompt == 1_000_000
    assert summed.price_per_mtok == DEFAULT_PRICE_PER_MTOK == 0.15
    assert summed.dollars_saved == pytest.approx(0.30)
    assert totals(rows, price_per_mtok=2.5).dollars_saved == pytest.approx(5.0)
    empty = totals([])
    assert (empty.calls, empty.share_saved, empty.largest_prompt) == (0, 0.0, 0)


def test_totals_take_the_ledgers_dollars_which_price_cache_writes() -> None:
    with ConversationMemory.open(
        ":memory:", session="r", budget=2000, model="claude-sonnet-4",
        embedder=DeterministicFakeEmbedding(size=64),
    ) as mem:  # fmt: skip
        long_chat = [CHAT[0], *[{"role": r, "content": f"{r} says {i} " * 200}
                                for i in range(6) for r in ("user", "assistant")]]  # fmt: skip
        rows = list(replay(mem, long_chat))
    last = rows[-1].report
    assert last.session_cost_usd is not None and last.session_raw_cost_usd
    billed = totals(rows, price_per_mtok=3.0, cached_discount=0.9, billed=True)
    assert billed.billed_usd == last.session_cost_usd
    assert billed.cost_ratio == last.session_cost_usd / last.session_raw_cost_usd
    # The read discount alone leaves out the 1.25x cache writes: a different (lower) bill.
    unbilled = totals(rows, price_per_mtok=3.0, cached_discount=0.9)
    assert unbilled.billed_usd is None and unbilled.cost_ratio != billed.cost_ratio
    line = " ".join(cost_lines(billed, "claude-sonnet-4", 2000))
    assert "cache writes included" in line and f"${last.session_cost_usd:.4f}" in line
    guess = " ".join(cost_lines(unbilled, "nosuchmodel", 2000, known=False))
    assert "no known price" in guess and "Billed as" not in guess


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from memory._plot import plot_replay

    rows = [_row(i, 1_000 * i, min(1_000 * i, 2_500)) for i in range(1, 6)]
    summed = totals(rows)
    target = plot_replay(rows, tmp_path / "p.png", summed=summed, title="five", budget=2_500)
    assert target.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(InputError, match="cannot write the plot"):
        plot_replay(rows, tmp_path / "missing-dir" / "p.png", summed=summed)


def test_the_plot_subtitle_gives_the_cost_with_caching_not_tokens_saved() -> None:
    from memory._plot import subtitle

    # 40% fewer tokens sent, but a prompt whose start changes costs more once cached.
    summed = ReplayTotals(
        calls=10, raw_tokens=100_000, sent_tokens=60_000, largest_prompt=8_000,
        archived_refs=0, compression_saved=0, price_per_mtok=2.5,
        billed_usd=0.06, raw_billed_usd=0.05,
    )  # fmt: skip
    line = subtitle(summed)
    assert "1.20x the raw history's (dearer)" in line and "saved" not in line
    assert "sent 60,000" in line and "raw 100,000 tokens" in line


def test_plot_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memory._plot import check_available, plot_replay

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"context-attic\[plot\]"):
        check_available()
    with pytest.raises(MissingDependencyError, match=r"context-attic\[plot\]"):
        plot_replay([], tmp_path / "p.png", summed=totals([]))
