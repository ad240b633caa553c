"""Measure repeated tool outputs in real agent runs, and what deltas save beyond digests.

Each transcript of ``agent_transcripts/swe_agent_dev.jsonl`` is replayed into a fresh
``:memory:`` session twice, with deltas on and off; every output the archive prepares is
recorded (tokens sent for it). Transcripts that answer with ``user`` observations instead
of ``tool`` messages get a tool call per observation, so every observation is a tool
output. Separately, each output is compared with every earlier one of its run: the best
line similarity, and whether a diff against that one would be smaller than its digest
(what ``DEFAULT_DELTA_SIMILARITY`` is set from).

Used by ``benchmarks/tool_outputs.py``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import ToolMessage

from memory import ConversationMemory
from memory._compress import compress
from memory._compress.delta import DEFAULT_DELTA_SIMILARITY, best_match, delta_body
from memory._ingest import max_digest_tokens
from memory._tokens import counter_for_model

BUCKETS = (0.0, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)


@dataclass(slots=True)
class Repeats:
    """What the replays of the transcripts measured."""

    transcripts: int = 0
    outputs: int = 0
    identical: int = 0
    similar: int = 0  # best similarity >= the threshold, not identical
    same_call: int = 0  # answers a call with the same name and arguments as an earlier one
    output_tokens: int = 0
    archived: int = 0
    sent_without: int = 0  # tokens of every output as sent, digests only
    sent_with: int = 0  # the same with deltas
    deltas: int = 0
    # (best similarity to an earlier output, tokens of a fresh digest, tokens of a delta)
    pairs: list[tuple[float, int, int]] = field(default_factory=list)


def load_runs(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """Read the transcripts; observations sent as ``user`` turns become tool results."""
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        runs.append((record["id"], _as_tool_calls(record["messages"])))
    return runs


def _as_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(m.get("role") == "tool" for m in messages):
        return messages
    out: list[dict[str, Any]] = []
    seen_user = False
    for number, message in enumerate(messages):
        role = message.get("role")
        previous = out[-1] if out else None
        if (
            role == "user"
            and seen_user
            and previous is not None
            and previous["role"] == "assistant"
        ):
            call_id = f"obs{number}"
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": "shell", "arguments": json.dumps({"observation": number})},
            }
            previous["tool_calls"] = [call]
            out.append({"role": "tool", "tool_call_id": call_id, "content": message["content"]})
            continue
        seen_user = seen_user or role == "user"
        out.append(dict(message))
    return out


def _replay(messages: list[dict[str, Any]], *, deltas: bool, budget: int) -> tuple[int, int, int]:
    """Replay one run; return (tokens sent for its tool outputs, archived, deltas)."""
    sent = archived = delta_count = 0
    with ConversationMemory.open(
        ":memory:", session="r", budget=budget, embedder=DeterministicFakeEmbedding(size=8)
    ) as mem:
        mem.archive.deltas = deltas
        for message in messages:
            mem.add(message)
            if message.get("role") != "tool":
                continue
            call_id = message["tool_call_id"]
            shown = [
                m.content
                for m in mem.assemble().messages
                if isinstance(m, ToolMessage) and m.tool_call_id == call_id
            ]
            content = str(shown[-1]) if shown else str(message["content"])
            head = content.split("\n", 1)[0]
            sent += mem.counter.count(content)
            archived += head.startswith("[ref ")
            delta_count += "same as ref " in head
    return sent, archived, delta_count


def measure_repeats(
    runs: Sequence[tuple[str, list[dict[str, Any]]]], *, budget: int, threshold: int
) -> Repeats:
    """Replay every run with and without deltas; compare each output with earlier ones."""
    result = Repeats(transcripts=len(runs))
    for _, messages in runs:
        with_deltas = _replay(messages, deltas=True, budget=budget)
        without = _replay(messages, deltas=False, budget=budget)
        result.sent_with += with_deltas[0]
        result.sent_without += without[0]
        result.archived += without[1]
        result.deltas += with_deltas[2]
        _compare(messages, result, budget=budget, threshold=threshold)
    return result


def _compare(
    messages: list[dict[str, Any]], result: Repeats, *, budget: int, threshold: int
) -> None:
    counter = counter_for_model("gpt-4o-mini")
    earlier: list[tuple[str, str]] = []
    keys: dict[str, str] = {}  # tool-call id → name and arguments
    answered: set[str] = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            keys[call["id"]] = function["name"] + " " + function["arguments"]
        if message.get("role") != "tool" or not isinstance(message["content"], str):
            continue
        key = keys.get(message["tool_call_id"], "")
        result.same_call += key in answered
        answered.add(key)
        text = message["content"]
        tokens = counter.count(text)
        result.outputs += 1
        result.output_tokens += tokens
        match = best_match(text, earlier, threshold=0.0)
        if match is not None and match.ratio == 1.0:
            result.identical += 1
        elif match is not None and match.ratio >= DEFAULT_DELTA_SIMILARITY:
            result.similar += 1
        if match is not None and tokens > threshold:
            digest = compress(
                text, count=counter.count, max_tokens=max_digest_tokens(tokens, budget)
            )
            delta = counter.count(delta_body(match.text, text))
            result.pairs.append((match.ratio, digest.digest_tokens, delta))
        earlier.insert(0, (str(len(earlier)), text))


def repeat_lines(result: Repeats) -> list[str]:
    """The repeats section of the results file."""
    share = (result.identical + result.similar) / max(1, result.outputs)
    saved = 1 - result.sent_with / max(1, result.sent_without)
    lines = [
        f"{result.transcripts} transcripts, {result.outputs:,} tool outputs "
        f"({result.output_tokens:,} tokens); {result.archived} archived (over the threshold).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| outputs identical to an earlier one of the run | {result.identical} |",
        f"| outputs similar to an earlier one (line similarity >= "
        f"{DEFAULT_DELTA_SIMILARITY}) | {result.similar} |",
        f"| share of outputs that repeat (identical or similar) | {share:.1%} |",
        f"| outputs answering the same call (name, arguments) as an earlier one | "
        f"{result.same_call} |",
        f"| tokens sent for tool outputs, digests only | {result.sent_without:,} |",
        f"| tokens sent for tool outputs, digests and deltas | {result.sent_with:,} |",
        f"| outputs sent as deltas | {result.deltas} |",
        f"| saved by deltas beyond digests | {saved:.1%} |",
        "",
        "Threshold: archived outputs with an earlier output of the run, by best line",
        "similarity; a delta wins when its diff is smaller than the fresh digest.",
        "",
        "| similarity | outputs | delta smaller | digest tokens | delta tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for low, high in itertools.pairwise(BUCKETS):
        group = [p for p in result.pairs if low <= p[0] < high or (high == 1.0 and p[0] == 1.0)]
        wins = sum(1 for _, digest, delta in group if delta < digest)
        lines.append(
            f"| {low:.2f}-{high:.2f} | {len(group)} | {wins} | "
            f"{sum(p[1] for p in group):,} | {sum(p[2] for p in group):,} |"
        )
    return lines


def _sent_for(mem: ConversationMemory, call_id: str, content: str) -> int:
    call = {"id": call_id, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    mem.add(
        [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ]
    )
    mem.add({"role": "tool", "tool_call_id": call_id, "content": content})
    (sent,) = [
        m.content
        for m in mem.assemble().messages
        if isinstance(m, ToolMessage) and m.tool_call_id == call_id
    ]
    return mem.counter.count(str(sent))


def reread_lines(outputs: Sequence[tuple[str, str]], *, budget: int) -> list[str]:
    """Re-read after a one-line edit: each output, then itself with its middle line changed.

    Returns the table rows: tokens of the original, of its digest, and of the second
    read (a delta), each counted as sent in the prompt.
    """
    lines = [
        "| output | original tokens | first read (digest) | re-read after a one-line edit |",
        "|---|---:|---:|---:|",
    ]
    for name, content in outputs:
        rows = content.split("\n")
        middle = len(rows) // 2
        rows[middle] = rows[middle] + "  # edited"
        with ConversationMemory.open(
            ":memory:", session="r", budget=budget, embedder=DeterministicFakeEmbedding(size=8)
        ) as mem:
            first = _sent_for(mem, "c1", content)
            second = _sent_for(mem, "c2", "\n".join(rows))
            original = mem.counter.count(content)
        lines.append(f"| {name} | {original:,} | {first:,} | {second:,} |")
    return lines
