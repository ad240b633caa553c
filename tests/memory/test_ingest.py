"""Ingest: block content, bulky tool-call arguments and repeated outputs, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memory import ConversationMemory
from memory._compress.delta import best_match

SOURCE = "\n".join(f"def handler_{i}(event):\n    return process(event, {i})\n" for i in range(120))
LISTING = "\n".join(
    f"-rw-r--r-- 1 dev dev {i * 37:>6} Jan  1 12:00 file_{i}.txt" for i in range(150)
)


def _call(call_id: str, name: str = "run", args: str = "{}") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
        ],
    }


def _sent(mem: ConversationMemory, kind: type[BaseMessage]) -> list[BaseMessage]:
    mem.add({"role": "user", "content": "go on"})
    return [m for m in mem.assemble().messages if isinstance(m, kind)]


def test_block_content_is_archived_and_digested_with_images_kept(
    archive_mem: ConversationMemory,
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    blocks = [
        {"type": "text", "text": SOURCE[:3000]},
        image,
        {"type": "text", "text": SOURCE[3000:]},
    ]
    archive_mem.add([{"role": "user", "content": "read it"}, _call("c1")])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": blocks})
    assert archive_mem.history()[-1].content == blocks  # unchanged, blocks and all
    (record,) = archive_mem.archive.refs()
    assert archive_mem.archive.get(record.ref) == SOURCE[:3000] + "\n" + SOURCE[3000:]
    (result,) = _sent(archive_mem, ToolMessage)
    assert isinstance(result.content, list)
    assert result.content[1] == image
    assert result.content[0]["text"].startswith(f"[ref {record.ref} · ")
    assert len(result.content) == 2


def test_small_block_content_stays_as_it_is(archive_mem: ConversationMemory) -> None:
    blocks = [{"type": "text", "text": "ok"}]
    archive_mem.add([{"role": "user", "content": "x"}, _call("c1")])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": blocks})
    assert archive_mem.archive.refs() == []
    (result,) = _sent(archive_mem, ToolMessage)
    assert result.content == blocks


def test_a_bulky_call_argument_is_archived_and_the_call_keeps_a_trace(
    archive_mem: ConversationMemory,
) -> None:
    args = json.dumps({"path": "app/handlers.py", "content": SOURCE})
    archive_mem.add([{"role": "user", "content": "write it"}, _call("c1", "write_file", args)])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": "written"})
    stored = archive_mem.history()[1]
    assert isinstance(stored, AIMessage)
    assert stored.tool_calls[0]["args"]["content"] == SOURCE  # the original is exact
    (record,) = archive_mem.archive.refs()
    assert archive_mem.archive.get(record.ref) == SOURCE
    (sent,) = [m for m in _sent(archive_mem, AIMessage) if m.tool_calls]
    call = sent.tool_calls[0]
    assert call["name"] == "write_file"
    assert call["args"]["path"] == "app/handlers.py"
    assert call["args"]["content"].startswith(f"[ref {record.ref} · ")
    assert "def handler_0" in call["args"]["content"]
    assert len(call["args"]["content"]) < len(SOURCE) // 4


def test_a_repeated_output_is_sent_as_unchanged_and_keeps_its_ref(
    archive_mem: ConversationMemory,
) -> None:
    archive_mem.add([{"role": "user", "content": "ls"}, _call("c1", "ls")])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": LISTING})
    archive_mem.add([{"role": "user", "content": "again"}, _call("c2", "ls")])
    archive_mem.add({"role": "tool", "tool_call_id": "c2", "content": LISTING})
    (record,) = archive_mem.archive.refs()
    second = _sent(archive_mem, ToolMessage)[-1]
    assert str(second.content).startswith(f"[ref {record.ref} · ")
    assert "sent before, now:" in str(second.content)  # not "same as" its own ref
    assert "same as ref" not in str(second.content)
    assert str(second.content).endswith("\nunchanged")


def test_a_changed_output_is_sent_as_a_diff_under_its_own_ref(
    archive_mem: ConversationMemory,
) -> None:
    edited = SOURCE.replace("return process(event, 57)", "return process(event, 570)")
    archive_mem.add([{"role": "user", "content": "cat"}, _call("c1", "cat")])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": SOURCE})
    archive_mem.add([{"role": "user", "content": "cat again"}, _call("c2", "cat")])
    archive_mem.add({"role": "tool", "tool_call_id": "c2", "content": edited})
    first, second = archive_mem.archive.refs()
    assert archive_mem.archive.get(second.ref) == edited  # exact, under its own ref
    assert "delta of " + first.ref in second.note
    body = str(_sent(archive_mem, ToolMessage)[-1].content)
    assert body.startswith(f"[ref {second.ref} · ")
    assert f"same as ref {first.ref} except:" in body
    assert "-    return process(event, 57)" in body
    assert "+    return process(event, 570)" in body
    assert second.digest_tokens < first.digest_tokens
    page = archive_mem.recall(ref=second.ref, max_tokens=4000)
    assert "process(event, 570)" in page


def test_a_reopened_memory_sends_deltas_against_earlier_outputs(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    options: dict[str, Any] = {"embedder": DeterministicFakeEmbedding(size=8)}
    with ConversationMemory.open(path, session="s", compress_threshold=50, **options) as mem:
        mem.add([{"role": "user", "content": "ls"}, _call("c1", "ls")])
        mem.add({"role": "tool", "tool_call_id": "c1", "content": LISTING})
    with ConversationMemory.open(path, session="s", compress_threshold=50, **options) as mem:
        mem.add([{"role": "user", "content": "again"}, _call("c2", "ls")])
        mem.add({"role": "tool", "tool_call_id": "c2", "content": LISTING + "\nnew.txt"})
        (_, second) = mem.archive.refs()
        assert "delta of" in second.note


def test_an_anthropic_tool_result_of_blocks_keeps_its_image(
    archive_mem: ConversationMemory,
) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": SOURCE}, image],
    }
    archive_mem.add(
        [
            {"role": "user", "content": "look"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}],
            },
            {"role": "user", "content": [result]},
        ]
    )
    (record,) = archive_mem.archive.refs()
    assert archive_mem.archive.get(record.ref) == SOURCE
    stored = archive_mem.history()[-1]
    assert isinstance(stored.content, list)
    assert stored.content[0]["text"] == SOURCE
    sent = archive_mem.assemble().messages[-1]
    assert isinstance(sent, ToolMessage)
    assert isinstance(sent.content, list)
    assert sent.content[0]["text"].startswith(f"[ref {record.ref} · ")
    # Normalization turns the Anthropic image into an OpenAI image_url block; it stays.
    images = [b for b in sent.content if isinstance(b, dict) and b.get("type") == "image_url"]
    assert images == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]


def test_a_rerun_of_the_same_call_is_diffed_whatever_the_similarity(
    archive_mem: ConversationMemory,
) -> None:
    first = "\n".join(f"test_{i} PASSED" for i in range(200))
    second = "\n".join(f"test_{i} {'FAILED' if i % 4 == 0 else 'PASSED'}" for i in range(200))
    args = json.dumps({"cmd": "pytest -v"})
    archive_mem.add([{"role": "user", "content": "test"}, _call("c1", "shell", args)])
    archive_mem.add({"role": "tool", "tool_call_id": "c1", "content": first})
    archive_mem.add([{"role": "user", "content": "again"}, _call("c2", "shell", args)])
    archive_mem.add({"role": "tool", "tool_call_id": "c2", "content": second})
    assert archive_mem.archive.recent.answering(archive_mem.archive.calls["c2"])
    earlier = archive_mem.archive.refs()[0].ref
    # 75% of the lines are unchanged: too few for a delta between unrelated calls.
    match = best_match(second, archive_mem.archive.recent.items()[1:])
    assert match is None
    rerun = best_match(
        second,
        archive_mem.archive.recent.items()[1:],
        same_call=archive_mem.archive.recent.answering(archive_mem.archive.calls["c1"]),
    )
    assert rerun is not None and rerun.ref == earlier
