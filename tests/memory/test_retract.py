"""Retracting and replacing messages: never in a prompt or history again, kept for audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage

from memory import ConversationMemory, Engine, InputError

CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def _texts(mem: ConversationMemory) -> str:
    return " ".join(str(m.content) for m in mem.assemble(system="Be brief.").messages)


def test_a_retracted_reply_leaves_prompts_and_history_but_not_the_audit(
    mem: ConversationMemory,
) -> None:
    mem.add([HumanMessage("Capital of France?", id="q1"), AIMessage("Lyon.", id="wrong")])
    assert mem.retract("wrong") == [2]
    mem.add(AIMessage("Paris.", id="right"))
    assert "Lyon" not in _texts(mem) and "Paris" in _texts(mem)
    assert [m.content for m in mem.history()] == ["Capital of France?", "Paris."]
    audit = [m.content for m in mem.history(include_retracted=True)]
    assert audit == ["Capital of France?", "Lyon.", "Paris."]
    assert mem.retract(2) == []  # already retracted: nothing to do


def test_retracting_a_call_takes_its_results_and_keeps_pairing_valid(
    mem: ConversationMemory,
) -> None:
    seqs = mem.add(
        [
            {"role": "user", "content": "look it up"},
            {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "box 14 is in Paris"},
        ]
    )
    assert mem.retract(seqs[1]) == [seqs[1], seqs[2]]
    mem.add({"role": "assistant", "content": "I could not look it up."})
    sent = mem.assemble().to_openai()
    assert not any(m.get("tool_calls") or m["role"] == "tool" for m in sent)
    assert "box 14" not in mem.assemble(query="box 14").to_openai().__repr__()
    assert "box 14 is in" not in mem.recall(query="box 14 Paris")


def test_replace_an_edited_turn(mem: ConversationMemory) -> None:
    mem.add(HumanMessage("Book a table for 4", id="u1"))
    (seq,) = mem.replace("u1", HumanMessage("Book a table for 6", id="u1b"))
    assert seq == 3  # after the message and its retraction record
    assert [m.content for m in mem.history()] == ["Book a table for 6"]


def test_unknown_targets_are_refused_and_nothing_is_retracted(mem: ConversationMemory) -> None:
    mem.add(HumanMessage("hello", id="h"))
    with pytest.raises(InputError, match="no message 'nope'"):
        mem.retract(["h", "nope"])
    assert [m.content for m in mem.history()] == ["hello"]


def test_another_handle_sees_the_retraction_and_the_summary_is_rebuilt(db_path: Path) -> None:
    with Engine(db_path, embedder=DeterministicFakeEmbedding(size=16)) as engine:
        writer = engine.open(session="s", budget=500)
        filler = "we compared ferry timetables and ticket prices at length. " * 8
        writer.add([HumanMessage("My secret code is 7731.", id="secret"), AIMessage("Noted.")])
        for n in range(12):
            writer.add([HumanMessage(f"{n}: {filler}"), AIMessage(f"ok {n}")])
        assert writer.wait_for_summary(30)
        assert "7731" in writer.summary.text  # type: ignore[union-attr]
        writer.retract("secret")
        assert writer.wait_for_summary(30)
        assert "7731" not in (writer.summary.text if writer.summary else "")
    with Engine(db_path, embedder=DeterministicFakeEmbedding(size=16)) as other:
        reader = other.open(session="s", budget=500)
        assert "7731" not in " ".join(str(m.content) for m in reader.history())
        assert "7731" not in str(reader.assemble(query="secret code").to_openai())
        # An empty answer quotes the query, so look for the retracted message's words.
        assert "My secret code is" not in reader.recall(query="secret code 7731")
