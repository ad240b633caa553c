"""Hostile and broken input: a typed error or a correct result, and a consistent store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import reliability_fuzz as fuzz
import reliability_harness as harness
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage

from memory import ConversationMemory
from memory._errors import BudgetError, InputError, StoreError
from memory.agent import AgentLoop

EXAMPLES = 150


def test_hostile_text_in_every_field_is_stored_exactly_or_refused() -> None:
    outcomes: list[str] = []
    with harness.open_memory(":memory:", "fuzz", budget=4000) as mem:

        @settings(max_examples=EXAMPLES)
        @given(fuzz.openai_messages())
        def run(messages: list[dict[str, Any]]) -> None:
            outcomes.append(fuzz.add_or_refuse(mem, messages))

        run()
        assert mem.add({"role": "user", "content": "still works"})
    assert len(outcomes) >= EXAMPLES // 2 and "stored" in outcomes


def test_malformed_payloads_end_in_a_typed_error_or_a_consistent_store() -> None:
    outcomes: list[str] = []
    with harness.open_memory(":memory:", "fuzz", budget=4000) as mem:

        @settings(max_examples=EXAMPLES)
        @given(fuzz.malformed)
        def run(payload: Any) -> None:
            outcomes.append(fuzz.add_or_refuse(mem, payload, exact=False))

        run()
    assert "refused" in outcomes


def test_random_json_as_tool_output_and_arguments_round_trips() -> None:
    with harness.open_memory(":memory:", "fuzz", budget=4000, compress_threshold=50) as mem:
        counter = iter(range(10**9))

        @settings(max_examples=EXAMPLES)
        @given(fuzz.json_values, st.dictionaries(st.text(max_size=10), fuzz.json_values))
        def run(output: Any, arguments: dict[str, Any]) -> None:
            call_id = f"c{next(counter)}"
            text = json.dumps(output, indent=1)
            call = {"id": call_id, "type": "function"}
            call["function"] = {"name": "f", "arguments": json.dumps(arguments)}
            messages = [
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call_id, "content": text},
            ]
            if fuzz.add_or_refuse(mem, messages) == "stored":
                ai, tool = mem.history()[-2:]
                # JSON itself joins an escaped surrogate pair into one character.
                expected = json.loads(json.dumps(arguments))
                assert isinstance(ai, AIMessage) and ai.tool_calls[0]["args"] == expected
                assert tool.content == text

        run()
        for record in mem.archive.refs():
            mem.archive.get(record.ref)


@pytest.mark.parametrize("depth", [10, 1000, 200_000])
def test_deeply_nested_json_tool_output_is_kept_exactly(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    with harness.open_memory(":memory:", "deep", budget=4000) as mem:
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        mem.add(
            [
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": nested},
            ]
        )
        assert mem.history()[-1].content == nested
        for record in mem.archive.refs():
            assert mem.archive.get(record.ref) == nested


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def _deep_arguments(form: str, depth: int) -> Any:
    if form == "openai":
        arguments = '{"a": ' + "[" * depth + "]" * depth + "}"
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        return [
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ]
    if form == "anthropic":
        use = {"type": "tool_use", "id": "c", "name": "f", "input": _deep_dict(depth)}
        result = {"type": "tool_result", "tool_use_id": "c", "content": "ok"}
        return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    return AIMessage(content="", tool_calls=[{"id": "c", "name": "f", "args": _deep_dict(depth)}])


@pytest.mark.parametrize("form", ["openai", "anthropic", "langchain"])
def test_nested_tool_call_arguments_round_trip(form: str) -> None:
    with harness.open_memory(":memory:", "deep", budget=4000) as mem:
        assert fuzz.add_or_refuse(mem, _deep_arguments(form, 50), exact=False) == "stored"


@pytest.mark.parametrize("form", ["openai", "anthropic", "langchain"])
def test_tool_call_arguments_nested_too_deep_are_refused_with_input_error(form: str) -> None:
    with harness.open_memory(":memory:", "deep", budget=4000) as mem:
        mem.add({"role": "user", "content": "hi"})
        with pytest.raises(InputError):
            mem.add(_deep_arguments(form, 5000))
        assert len(mem.history()) == 1


@pytest.mark.slow
def test_a_few_megabytes_of_tool_output_and_user_text_are_stored_exactly(tmp_path: Path) -> None:
    log = "\n".join(
        f"12:00:{i % 60:02d} INFO request {i} served in {i % 97} ms" for i in range(80_000)
    )
    log += "\n12:59:59 ERROR needle-in-the-haystack quota exceeded"
    assert len(log) > 3_000_000
    with harness.open_memory(tmp_path / "big.db", "big", budget=4000) as mem:
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        started = time.perf_counter()
        mem.add(
            [
                {"role": "user", "content": "why? " * 400_000},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": log},
            ]
        )
        assert time.perf_counter() - started < 60
        (record,) = mem.archive.refs()
        assert mem.archive.get(record.ref) == log
        assert mem.history()[-1].content == log
        assert "needle-in-the-haystack" in mem.recall(
            ref=record.ref, query="needle in the haystack"
        )
        with pytest.raises(BudgetError) as refused:  # the pinned user turn cannot fit
            mem.assemble(query="why?")
        assert refused.value.over_by > 0
        mem.add({"role": "user", "content": "so what failed?"})
        assert mem.assemble().tokens <= 4000


@pytest.mark.parametrize("role", ["user", "assistant"])
def test_a_lone_surrogate_in_chat_text_is_stored_or_refused_as_input(role: str) -> None:
    with harness.open_memory(":memory:", "surrogate", budget=4000) as mem:
        text = "broken \ud800 half of a pair"
        try:
            mem.add({"role": role, "content": text})
        except StoreError as exc:
            pytest.fail(f"bad input reported as a store failure: {exc}")
        except InputError:
            assert mem.history() == []
        else:
            assert mem.history()[-1].content == text


def test_a_prompt_with_a_lone_surrogate_encodes_for_the_wire_as_counted() -> None:
    # Stored as sent, but a prompt's dicts must encode as UTF-8 JSON: it goes as "?",
    # which is what was counted.
    with harness.open_memory(":memory:", "wire", budget=4000) as mem:
        mem.add([{"role": "user", "content": "bad \ud800 text"},
                 {"role": "assistant", "content": "ok \udfff"}])  # fmt: skip
        prompt = mem.assemble(system="sys")
    sent = prompt.to_openai()
    json.dumps(sent, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError
    json.dumps(prompt.to_anthropic(), ensure_ascii=False).encode("utf-8")
    assert [m["content"] for m in sent[1:]] == ["bad ? text", "ok ?"]
    enc = tiktoken.get_encoding("o200k_base")
    counted = 3 + sum(3 + sum(len(enc.encode(str(v))) for v in m.values()) for m in sent)
    assert prompt.tokens == counted


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": "hi", "name": "ab\ud800"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c\ud800", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "l\udfffs", "arguments": "{}"}}]},
    ],
)  # fmt: skip
def test_a_lone_surrogate_in_an_identifier_is_refused_as_input(message: dict[str, Any]) -> None:
    # Ids and names are stored and sent exactly: no "?" may stand in for part of one.
    with harness.open_memory(":memory:", "ids", budget=4000) as mem:
        with pytest.raises(InputError, match="lone surrogate") as refused:
            mem.add([{"role": "user", "content": "go"}, message])
        assert refused.value.index == 1 and mem.history() == []


def test_an_agent_loops_anthropic_request_encodes_a_lone_surrogate() -> None:
    with harness.open_memory(":memory:", "wire-agent", budget=4000) as mem:
        loop = AgentLoop(mem, system="sys")
        loop.add_user("bad \ud800 text")
        request = loop.anthropic_request()
        assert request == loop.prompt().to_anthropic()
    json.dumps(request, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError


class _Strict(Embeddings):
    """Refuses text that is not valid UTF-8, as a tokenizer written in Rust does."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        text.encode("utf-8")
        return [1.0, float(len(text) % 7), 0.5]


def test_a_lone_surrogate_in_a_query_does_not_switch_embeddings_off() -> None:
    with ConversationMemory.open(":memory:", session="q", budget=300, embedder=_Strict()) as mem:
        for i in range(30):
            mem.add([{"role": "user", "content": f"My cat sleeps on shelf {i}."},
                     {"role": "assistant", "content": "Noted."}])  # fmt: skip
        mem.wait_until_indexed(timeout=30)
        assert mem.assemble(query="where does my cat \ud800 sleep?").report.recall_degraded is None
        assert mem.assemble(query="where does my cat sleep?").report.recall_degraded is None


def test_hostile_session_names_scope_rows_and_never_become_paths(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    seen: dict[str, list[str]] = {}

    @settings(max_examples=60)
    @given(fuzz.hostile_text)
    def run(session: str) -> None:
        try:
            mem = harness.open_memory(db, session, budget=4000)
        except InputError:
            return
        with mem:
            text = f"secret of session #{len(seen)}"
            assert fuzz.add_or_refuse(mem, {"role": "user", "content": text}) == "stored"
            seen.setdefault(session, []).append(text)
            assert [m.content for m in mem.history()] == seen[session]

    run()
    assert len(seen) > 10
    allowed = {db.name, db.name + "-wal", db.name + "-shm", db.name + ".faiss"}
    assert {p.name for p in tmp_path.iterdir()} <= allowed


def test_an_accepted_lone_surrogate_does_not_stall_the_running_summary() -> None:
    with harness.open_memory(":memory:", "stall", budget=1500) as mem:
        mem.add({"role": "system", "content": "Session 42 of probe \ud800 on 2024-05-01."})
        for day in range(1, 80):
            mem.add({"role": "user", "content": f"Day {day}: box {day * 7} goes to Paris."})
        mem.wait_for_summary(timeout=20)
        assert mem._summaries.last_error is None and mem._summaries.covers_upto > 3
