"""Shared by the reliability tests and ``benchmarks/reliability.py``.

Run as a script it is a child process: ``crash`` adds turns and tool outputs in a loop
until it is killed, printing each acknowledged ``add``; ``append`` is one of the
concurrent writers. Imported, it gives the checks run on the store afterwards.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memory import ConversationMemory

HERE = Path(__file__).resolve()
CRASH_BUDGET = 1500
EMBED_DIM = 64
_MARKER = re.compile(r"zq(\d{6})x")
FAISS_FOURCC = b"IxM2"  # faiss.write_index's header for an IndexIDMap2


def embedder() -> DeterministicFakeEmbedding:
    """The fake embedder every reliability check uses (no model load)."""
    return DeterministicFakeEmbedding(size=EMBED_DIM)


def open_memory(path: str | Path, session: str, **options: Any) -> ConversationMemory:
    """Open a memory with the fake embedder."""
    options.setdefault("embedder", embedder())
    return ConversationMemory.open(path, session=session, **options)


def marker(i: int) -> str:
    """A unique word for item ``i``, one FTS5 token."""
    return f"zq{i:06d}x{hashlib.sha256(str(i).encode()).hexdigest()[:8]}"


def log_output(i: int) -> str:
    """A ~3 KB log (well above the 500-token archive threshold) holding item i's marker."""
    lines = [f"12:{k // 60:02d}:{k % 60:02d} INFO worker {i} step {k} ok" for k in range(90)]
    lines.insert(47, f"12:00:47 ERROR item {marker(i)} failed: disk quota exceeded")
    return "\n".join(lines)


def item_messages(i: int) -> list[dict[str, Any]]:
    """The messages of item ``i``: a user turn, a tool exchange or an assistant reply."""
    if i % 3 == 0:
        return [{"role": "user", "content": f"user turn {marker(i)}: what failed in run {i}?"}]
    if i % 3 == 1:
        call = {"id": f"call{i}", "type": "function", "function": {"name": "tail_log"}}
        call["function"]["arguments"] = json.dumps({"run": i})
        return [
            {"role": "assistant", "content": f"reading the log {marker(i)}", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call{i}", "content": log_output(i)},
        ]
    return [{"role": "assistant", "content": f"run {i} stopped: quota ({marker(i)})."}]


def item_of(message: BaseMessage) -> int:
    """Return the item a stored message belongs to."""
    found = _MARKER.search(str(message.content))
    if found is None:
        raise AssertionError(f"message without a marker: {str(message.content)[:80]!r}")
    return int(found.group(1))


def stored_seqs(path: Path, session: str) -> list[int]:
    """Read the session's seqs straight from SQLite (the checker's own connection)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT seq FROM turns WHERE session = ? ORDER BY seq", (session,))
        return [r[0] for r in rows]


def stored_vectors(path: Path, session: str, table: str = "chunks") -> dict[int, bytes]:
    """Chunk (or, with ``table="passages"``, turn passage) id -> stored vector bytes."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f"SELECT id, vector FROM {table} WHERE session = ? AND vector IS NOT NULL", (session,)
        )
        return {r[0]: r[1] for r in rows}


@dataclass
class CrashCheck:
    """What one reopen after a kill found."""

    turns: int
    items: int
    archived: int
    summary_covers_upto: int


def check_after_crash(path: Path, session: str, acked: dict[int, list[int]]) -> CrashCheck:
    """Reopen the store and check that nothing acknowledged was lost or half-written.

    Raises:
        AssertionError: naming what is wrong.
    """
    seqs = stored_seqs(path, session)
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not contiguous: {seqs[:5]}..."
    with open_memory(path, session, budget=CRASH_BUDGET) as mem:
        history = mem.history()
        assert len(history) == len(seqs)
        items = [item_of(m) for m in history]
        order = list(dict.fromkeys(items))
        assert order == list(range(len(order))), "items missing, duplicated or out of order"
        for i in order:
            expected = [m["content"] for m in item_messages(i)]
            got = [m.content for m in history if item_of(m) == i]
            assert got == expected, f"item {i} is half-written or altered"
        for i, acked_seqs in acked.items():
            for seq, content in zip(acked_seqs, item_messages(i), strict=True):
                assert history[seq - 1].content == content["content"], f"acked item {i} lost"
        _check_pairs(history)
        shas = set()
        for record in mem.archive.refs():
            original = mem.archive.get(record.ref)  # raises if the SHA-256 check fails
            shas.add(hashlib.sha256(original.encode()).hexdigest())
        for i in order:
            if i % 3 == 1:
                assert hashlib.sha256(log_output(i).encode()).hexdigest() in shas
        covers = mem._summaries.covers_upto
        assert covers <= len(seqs)
        return CrashCheck(len(seqs), len(order), len(shas), covers)


def _check_pairs(history: Sequence[BaseMessage]) -> None:
    issued: set[str] = set()
    answered: set[str] = set()
    for message in history:
        if isinstance(message, AIMessage):
            issued.update(str(c["id"]) for c in message.tool_calls)
        elif isinstance(message, ToolMessage):
            assert message.tool_call_id in issued, "a tool result without its call"
            answered.add(message.tool_call_id)
    assert issued == answered, f"tool calls without results: {issued - answered}"


def faiss_dir(path: Path) -> Path:
    """Where the FAISS files of a database live."""
    return Path(str(path) + ".faiss")


def tamper_index(path: Path, how: str, rng: random.Random) -> int:
    """Delete, truncate or overwrite the FAISS files; return how many were touched."""
    files = sorted(faiss_dir(path).glob("*.faiss"))
    if how == "delete":
        shutil.rmtree(faiss_dir(path), ignore_errors=True)
        return len(files)
    for file in files:
        data = file.read_bytes()
        if how == "truncate":
            file.write_bytes(data[: rng.randrange(0, max(1, len(data)))])
        else:
            file.write_bytes(data[:8] + bytes(rng.randrange(256) for _ in range(64)))
    return len(files)


def check_index_rebuilt(path: Path, session: str, acked: dict[int, list[int]]) -> None:
    """Reopen, wait for indexing, and check the FAISS file matches the stored vectors."""
    with open_memory(path, session, budget=CRASH_BUDGET) as mem:
        assert mem.wait_until_indexed(timeout=60), "indexing did not finish"
        chunks = stored_vectors(path, session)
        passages = stored_vectors(path, session, "passages")
        files = sorted(faiss_dir(path).glob("*.faiss"))
        assert len(files) == 2  # archive chunks and turn passages: separate id spaces
        for file in files:
            head = file.read_bytes()[:4]
            assert head == FAISS_FOURCC, f"not a FAISS file: {head!r}"
            index = faiss.read_index(str(file))
            held = {int(i) for i in faiss.vector_to_array(index.id_map)}
            vectors = chunks if held == set(chunks) else passages
            assert held == set(vectors)
            some_id, some_vector = next(iter(vectors.items()))
            query = np.frombuffer(some_vector, dtype=np.float32).reshape(1, -1)
            _, ids = index.search(query, 1)
            assert int(ids[0][0]) == some_id or vectors[int(ids[0][0])] == some_vector
        tools = [i for i in acked if i % 3 == 1]
        if tools:
            word = marker(tools[-1])
            found = mem.recall(query=f"ERROR item {word} failed")
            assert word in found, f"recall lost {word}"


@dataclass
class Kill:
    """One SIGKILL of the crash child: what was in flight when it landed."""

    phase: str  # what the child was doing: "add", "archive" (a tool-output add), "idle"...
    acked: int


def kill_once(path: Path, session: str, acked: dict[int, list[int]], delay: float) -> Kill:
    """Start the crash child, SIGKILL it ``delay`` seconds after it is ready, record acks."""
    child = subprocess.Popen(
        [sys.executable, str(HERE), "crash", str(path), session],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    ready = child.stdout.readline()
    assert ready.startswith("READY"), f"crash child failed to start: {ready!r}"
    time.sleep(delay)
    child.kill()
    child.wait()
    phase, count = "startup", 0
    for line in child.stdout.read().splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # the kill cut this line short: not an acknowledgement
        word, number, *seqs = line.split()
        if word == "BEGIN":
            phase = "archive" if int(number) % 3 == 1 else "add"
        elif word == "ACK":
            acked[int(number)] = [int(s) for s in seqs]
            phase, count = "between adds", count + 1
        elif word == "IDLE":
            phase = "idle (background folds)"
    child.stdout.close()
    return Kill(phase, count)


def crash_child(path: str, session: str) -> None:
    """Add items forever, printing ``BEGIN i`` before and ``ACK i seqs`` after each add."""
    with open_memory(path, session, budget=CRASH_BUDGET) as mem:
        history = mem.history()
        i = item_of(history[-1]) + 1 if history else 0
        print("READY", i, flush=True)
        while True:
            print("BEGIN", i, flush=True)
            seqs = mem.add(item_messages(i))
            print("ACK", i, *seqs, flush=True)
            i += 1
            if i % 4 == 0:  # an agent thinks between turns: background folds run then
                print("IDLE", i, flush=True)
                time.sleep(0.03)


@dataclass
class WriterResult:
    """What one concurrent writer thread did."""

    name: str
    shared: int = 0
    own: int = 0
    errors: list[str] = field(default_factory=list)


def _writer(path: str, name: str, start: float, seconds: float, out: WriterResult) -> None:
    try:
        with (
            open_memory(path, "shared", budget=100_000) as shared,
            open_memory(path, f"own/{name}", budget=100_000) as own,
        ):
            time.sleep(max(0.0, start - time.time()))
            # A loaded machine may open the memories after ``start``: each writer still
            # writes for ``seconds``, so the run never ends with nothing written.
            deadline = max(start, time.time()) + seconds
            while time.time() < deadline:
                shared.add({"role": "user", "content": f"{name} n{out.shared}"})
                out.shared += 1
                if out.own % 10 == 9:
                    call = {"id": f"{name}c{out.own}", "type": "function"}
                    call["function"] = {"name": "tail_log", "arguments": "{}"}
                    own.add(
                        [
                            {"role": "assistant", "content": f"{name} n{out.own}"},
                            {"role": "assistant", "content": "", "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": call["id"], "content": "ok"},
                        ]
                    )
                else:
                    own.add({"role": "user", "content": f"{name} n{out.own}"})
                out.own += 1
    except Exception as exc:  # reported to the parent, which fails the run
        out.errors.append(f"{type(exc).__name__}: {exc}")


def append_child(path: str, process: str, threads: int, start: float, seconds: float) -> None:
    """Run ``threads`` writers in this process; print their results as one JSON line."""
    results = [WriterResult(f"p{process}t{t}") for t in range(threads)]
    workers = [
        threading.Thread(target=_writer, args=(path, r.name, start, seconds, r)) for r in results
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps([r.__dict__ for r in results]), flush=True)


def run_writers(path: Path, *, processes: int, threads: int, seconds: float) -> list[WriterResult]:
    """Run ``processes`` child processes of ``threads`` writers each, all started together."""
    start = time.time() + 2.5 + 0.5 * processes  # after every child has imported the library
    numbers = [str(threads), str(start), str(seconds)]
    children = [
        subprocess.Popen(
            [sys.executable, str(HERE), "append", str(path), str(p), *numbers],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    results: list[WriterResult] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        assert child.returncode == 0, f"writer process failed: {out[-500:]}"
        results.extend(WriterResult(**r) for r in json.loads(out.strip().splitlines()[-1]))
    return results


def check_writers(path: Path, results: Sequence[WriterResult]) -> int:
    """Check every writer's turns are there once, in its order; return the turn count."""
    total = 0
    with open_memory(path, "shared") as shared:
        by_writer: dict[str, list[int]] = {}
        history = shared.history()
        for message in history:
            name, n = str(message.content).split(" n")
            by_writer.setdefault(name, []).append(int(n))
        total += len(history)
    for result in results:
        assert not result.errors, f"{result.name}: {result.errors}"
        assert by_writer.get(result.name, []) == list(range(result.shared)), result.name
        with open_memory(path, f"own/{result.name}") as own:
            history = own.history()
            total += len(history)
            mine = [str(m.content) for m in history if str(m.content).startswith(result.name)]
            numbers = [int(text.split(" n")[1]) for text in mine]
            assert numbers == list(range(result.own)), f"own/{result.name}"
            _check_pairs(history)
    return total


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crash":
        crash_child(args[0], args[1])
    elif command == "append":
        append_child(args[0], args[1], int(args[2]), float(args[3]), float(args[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")
