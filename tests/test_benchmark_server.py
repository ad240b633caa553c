"""The traffic and readings of ``benchmarks/server.py``, on a few exchanges (nothing timed)."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from server import SYSTEM, run_exchange
from server_load import TOOL_EVERY, Recorder, exchange, percentile, read_proc, thread_names

from memory import Engine


def test_exchanges_have_sized_messages_and_a_tool_round_every_fifth() -> None:
    rng = random.Random(5)
    for number in range(3 * TOOL_EVERY):
        turn = exchange(rng, number)
        assert 30 <= len(turn.user["content"].split()) <= 80
        if number % TOOL_EVERY == TOOL_EVERY - 1:
            call, result = turn.tool_round
            assert call["tool_calls"][0]["id"] == result["tool_call_id"]
            assert 2_048 <= len(result["content"]) <= 4_400
        else:
            assert turn.tool_round == []
        assert turn.messages[0] is turn.user and turn.messages[-1] is turn.reply


def test_run_exchange_stores_every_message_and_records_the_calls() -> None:
    recorder = Recorder(0)
    rng = random.Random(1)
    with Engine(embedder=DeterministicFakeEmbedding(size=16)) as engine:
        memory = engine.open(session="s", budget=2_000, model="gpt-4o-mini")
        for number in range(TOOL_EVERY):
            run_exchange(memory, number, rng, recorder)
        assert len(memory.history()) == 2 * TOOL_EVERY + 2
        assert memory.assemble(system=SYSTEM).tokens <= 2_000
    summary = recorder.summary()
    assert summary["add_calls"] == 2 * TOOL_EVERY + 1
    assert summary["assemble_calls"] == TOOL_EVERY + 1
    assert summary["threads_max"] >= 1 and summary["open_files_max"] >= 3
    assert "session_growth_mb" not in summary


def test_process_readings() -> None:
    reading = read_proc()
    assert reading.rss_mb > 0 and reading.peak_rss_mb >= reading.rss_mb
    assert reading.threads >= reading.python_threads == threading.active_count()
    assert sum(thread_names().values()) >= 1
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0
