"""PostgreSQL against SQLite: many writers, latency, and what a SIGKILL or a restart loses.

- throughput: 4 processes x 2 threads add messages (a memory per thread, sessions shared
  between processes) for ``--seconds``, on a throwaway PostgreSQL cluster and on one
  SQLite file; turns/s over the span in which writers acknowledged adds (process start-up
  left out), ``add`` p50/p95, and ``assemble`` p50/p95 on a 400-turn session;
- crash safety: the same writers print each acknowledged add. Each round waits until
  every writer has acknowledged one, then SIGKILLs each at a random moment within
  ``KILL_WINDOW_S``; in the middle round the PostgreSQL server is restarted while they
  write (and the kills wait for acks after the restart). Afterwards every acknowledged add
  must be in the store exactly once (the counts lost and duplicated are the result;
  target 0).

Usage::

    .venv/bin/python benchmarks/postgres.py [--seconds 10] [--kills 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
from memory import ConversationMemory  # noqa: E402

PROCESSES, THREADS, SESSIONS = 4, 2, 4
KILL_WINDOW_S = 3.0
"""Each writer is killed at a random moment this long after the round's acks start."""
FIRST_ACK_TIMEOUT_S = 120.0
"""How long a round waits for its writers' first acks (imports are slow on 2 cores)."""


def _cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("pgcluster", REPO / "tests/stores/pgcluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _open(location: str, session: str) -> ConversationMemory:
    return ConversationMemory.open(
        location, session=session, budget=2000, embedder=DeterministicFakeEmbedding(size=16)
    )


def child(location: str, name: str, seconds: float) -> None:
    """A writer process: THREADS threads add until time is up, printing every ack.

    Prints ``ack MARKER SESSION SECONDS_TAKEN WALL_TIME`` after each add returns, and
    ``error MARKER TYPE`` for an add that raised (the writer goes on).
    """
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def writer(t: int) -> None:
        mem = _open(location, f"s{(hash(name) + t) % SESSIONS}")
        i = 0
        while time.monotonic() < deadline:
            marker = f"{name}-{t}-{i}"
            started = time.perf_counter()
            try:
                mem.add({"role": "user", "content": f"message {marker} about the quota"})
            except Exception as exc:  # a dropped connection or a lasting outage: go on
                with lock:
                    print(f"error {marker} {type(exc).__name__}", flush=True)
                    print(f"error {marker}: {exc!r}", file=sys.stderr, flush=True)
                i += 1
                continue
            elapsed = time.perf_counter() - started
            with lock:
                print(f"ack {marker} {mem.session} {elapsed:.6f} {time.time():.6f}", flush=True)
            i += 1
        mem.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class Writer:
    """A writer process and what it has printed so far (read by a thread, as it comes)."""

    proc: subprocess.Popen[str]
    acks: list[tuple[str, str, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acked: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 5 and parts[0] == "ack":
                self.acks.append((parts[1], parts[2], float(parts[3]), float(parts[4])))
                self.acked.set()
            elif len(parts) == 3 and parts[0] == "error":
                self.errors.append(parts[2])


def _spawn(location: str, name: str, seconds: float) -> tuple[Writer, threading.Thread]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "--child", location, name, str(seconds)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    writer = Writer(proc)
    reader = threading.Thread(target=writer.read, daemon=True)
    reader.start()
    return writer, reader


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def throughput(location: str, seconds: float) -> dict[str, float]:
    spawned = [_spawn(location, f"p{n}", seconds) for n in range(PROCESSES)]
    for writer, reader in spawned:
        writer.proc.wait()
        reader.join()
    acks = [a for writer, _ in spawned for a in writer.acks]
    span = max(a[3] for a in acks) - min(a[3] for a in acks)
    latencies = [a[2] for a in acks]
    with _open(location, "assemble") as mem:
        for i in range(200):
            question = f"question {i} about run {i} and its quota"
            mem.add([{"role": "user", "content": question},
                     {"role": "assistant", "content": f"answer {i}: run {i}"}])  # fmt: skip
        times = []
        for i in range(40):
            t0 = time.perf_counter()
            mem.assemble(query=f"what about run {i * 5}?")
            times.append(time.perf_counter() - t0)
    return {
        "turns": len(acks), "turns_per_s": len(acks) / span,
        "add_p50": _pct(latencies, 50), "add_p95": _pct(latencies, 95),
        "assemble_p50": _pct(times, 50), "assemble_p95": _pct(times, 95),
    }  # fmt: skip


def _wait_for_acks(writers: list[Writer]) -> None:
    deadline = time.monotonic() + FIRST_ACK_TIMEOUT_S
    for writer in writers:
        if not writer.acked.wait(max(deadline - time.monotonic(), 0.0)):
            raise RuntimeError(f"a writer acknowledged nothing in {FIRST_ACK_TIMEOUT_S:g} s")


def _kill_round(
    location: str, name: str, rng: random.Random, cluster: Any
) -> tuple[list[Writer], float | None]:
    """Start writers; once each has acked, (restart the server,) kill each at random.

    Returns:
        The writers (killed, their output read) and when the restarted server was up
        again (epoch seconds; None: no restart).
    """
    spawned = [_spawn(location, f"{name}p{n}", 600) for n in range(PROCESSES)]
    writers = [w for w, _ in spawned]
    restarted_at: float | None = None
    try:
        _wait_for_acks(writers)
        if cluster is not None:
            time.sleep(rng.uniform(0.0, 1.0))
            cluster.restart(down_seconds=1.0)  # every writer's connections drop mid-write
            restarted_at = time.time()
            for writer in writers:
                writer.acked.clear()
            _wait_for_acks(writers)  # they write again before they are killed
        moments = sorted((rng.uniform(0.0, KILL_WINDOW_S), n) for n in range(PROCESSES))
        started = time.monotonic()
        for moment, n in moments:
            time.sleep(max(started + moment - time.monotonic(), 0.0))
            writers[n].proc.send_signal(signal.SIGKILL)
    finally:
        for writer, reader in spawned:
            writer.proc.kill()  # no-op for those already killed
            writer.proc.wait()
            reader.join()
    return writers, restarted_at


@dataclass(frozen=True)
class Crashes:
    """The kill phase's result for one store."""

    acked: int
    lost: int
    duplicated: int
    failed_adds: Counter[str]
    acked_after_restart: int


def crashes(location: str, kills: int, cluster: Any) -> Crashes:
    """Run ``kills`` rounds (the middle one restarts ``cluster`` if given); count losses."""
    rng = random.Random(7)
    writers: list[Writer] = []
    after_restart = 0
    for round_ in range(kills):
        restart = cluster if round_ == kills // 2 else None
        done, restarted_at = _kill_round(location, f"k{round_}", rng, restart)
        if restarted_at is not None:
            after_restart = sum(1 for w in done for a in w.acks if a[3] > restarted_at)
        writers += done
    acked = [a for w in writers for a in w.acks]
    stored: Counter[str] = Counter()
    for session in sorted({a[1] for a in acked}):
        with _open(location, session) as mem:
            stored.update(str(m.content).split()[1] for m in mem.history())
    return Crashes(
        acked=len(acked),
        lost=sum(1 for a in acked if stored[a[0]] == 0),
        duplicated=sum(1 for marker, n in stored.items() if n > 1),
        failed_adds=Counter(e for w in writers for e in w.errors),
        acked_after_restart=after_restart,
    )


def report(args: argparse.Namespace, results: dict[str, dict[str, float]],
           kills: dict[str, Crashes]) -> str:  # fmt: skip
    """The results as Markdown."""
    lines = [
        "# PostgreSQL vs SQLite: writers, latency, kills",
        "",
        f"`python benchmarks/postgres.py --seconds {args.seconds:g} --kills {args.kills}` on "
        f"{os.cpu_count()} cores; {PROCESSES} processes x {THREADS} threads, {SESSIONS} "
        "shared sessions, fake embeddings, offline summarizer. turns/s counts acknowledged "
        "adds over the span from the first to the last (process start-up left out).",
        "",
        "| store | turns | turns/s | add p50 ms | add p95 ms | assemble p50 ms | assemble p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['turns']:.0f} | {r['turns_per_s']:.1f} | {r['add_p50']:.1f} | "
            f"{r['add_p95']:.1f} | {r['assemble_p50']:.1f} | {r['assemble_p95']:.1f} |"
        )
    lines += [
        "",
        f"Kills: {args.kills} rounds of {PROCESSES} writers; each round waits until every "
        f"writer has acknowledged an add, then SIGKILLs each at a random moment within "
        f"{KILL_WINDOW_S:g} s. In round {args.kills // 2 + 1} the PostgreSQL server is "
        "restarted (down 1 s) while the writers write, and the kills wait until every "
        "writer has acknowledged an add again. A failed add raised to its writer (by "
        "exception type) and was not acknowledged; lost and duplicated count acknowledged "
        "adds missing from the store or stored twice.",
        "",
        "| store | acknowledged adds | lost | duplicated | failed adds | acked after restart |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in kills.items():
        after = str(c.acked_after_restart) if name == "PostgreSQL" else "-"
        failed = ", ".join(f"{n} {kind}" for kind, n in c.failed_adds.items()) or "0"
        lines.append(f"| {name} | {c.acked} | {c.lost} | {c.duplicated} | {failed} | {after} |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/postgres.md"))
    args = parser.parse_args()
    cluster = _cluster_module().start_cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_file = str(Path(tmp) / "bench.db")
            results = {"PostgreSQL": throughput(cluster.url, args.seconds),
                       "SQLite": throughput(sqlite_file, args.seconds)}  # fmt: skip
            kills = {"PostgreSQL": crashes(cluster.url, args.kills, cluster),
                     "SQLite": crashes(str(Path(tmp) / "kill.db"), args.kills, None)}  # fmt: skip
    finally:
        cluster.remove()
    text = report(args, results, kills)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
