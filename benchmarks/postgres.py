"""PostgreSQL against SQLite: many writers, latency, and what a SIGKILL or a restart loses.

- throughput: 4 processes x 2 threads add messages (a memory per thread, sessions shared
  between processes) for ``--seconds``, on a throwaway PostgreSQL cluster and on one
  SQLite file; turns/s and ``add`` p50/p95, and ``assemble`` p50/p95 on a 400-turn session;
- crash safety: the same writers print each acknowledged add; they are SIGKILLed at random
  moments, and the PostgreSQL server is restarted mid-run; afterwards every acknowledged
  add must be in the store (the count lost is the result; target 0).

Usage::

    .venv/bin/python benchmarks/postgres.py [--seconds 15] [--kills 8] [--out FILE]
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
from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
from memory import ConversationMemory  # noqa: E402

PROCESSES, THREADS, SESSIONS = 4, 2, 4


def _cluster_module():  # type: ignore[no-untyped-def]
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
    """A writer process: THREADS threads add until time is up, printing every ack."""
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
            except Exception as exc:  # a lasting outage: report it and go on
                with lock:
                    print(f"error {marker} {type(exc).__name__}", flush=True)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                print(f"ack {marker} {mem.session} {elapsed:.6f}", flush=True)
            i += 1
        mem.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _spawn(location: str, name: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE), "--child", location, name, str(seconds)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def _acks(output: str) -> list[tuple[str, str, float]]:
    rows = [line.split() for line in output.splitlines() if line.startswith("ack ")]
    return [(r[1], r[2], float(r[3])) for r in rows if len(r) == 4]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def throughput(location: str, seconds: float) -> dict[str, float]:
    procs = [_spawn(location, f"p{n}", seconds) for n in range(PROCESSES)]
    started = time.monotonic()
    acks = [a for p in procs for a in _acks(p.communicate()[0])]
    wall = time.monotonic() - started
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
        "turns": len(acks), "turns_per_s": len(acks) / wall,
        "add_p50": _pct(latencies, 50), "add_p95": _pct(latencies, 95),
        "assemble_p50": _pct(times, 50), "assemble_p95": _pct(times, 95),
    }  # fmt: skip


def crashes(location: str, kills: int, cluster) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Kill writers at random (and restart the server once); return (acked, lost)."""
    acked: list[tuple[str, str, float]] = []
    rng = random.Random(7)
    for round_ in range(kills):
        procs = [_spawn(location, f"k{round_}p{n}", 30) for n in range(PROCESSES)]
        time.sleep(rng.uniform(7.0, 11.0))  # past start-up (imports take ~5 s on 2 cores)
        if round_ == kills // 2 and cluster is not None:
            cluster.restart(down_seconds=1.0)  # every writer's connections drop
            time.sleep(1.0)
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            acked.extend(_acks(proc.communicate()[0]))
    stored: set[str] = set()
    for session in {a[1] for a in acked}:
        with _open(location, session) as mem:
            stored.update(str(m.content).split()[1] for m in mem.history())
    return len(acked), sum(1 for a in acked if a[0] not in stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/postgres.md"))
    args = parser.parse_args()
    cluster = _cluster_module().start_cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_file = str(Path(tmp) / "bench.db")
            results = {"PostgreSQL": throughput(cluster.url, args.seconds),
                       "SQLite": throughput(sqlite_file, args.seconds)}  # fmt: skip
            acked, lost = crashes(cluster.url, args.kills, cluster)
            sqlite_acked, sqlite_lost = crashes(str(Path(tmp) / "kill.db"), args.kills, None)
    finally:
        cluster.remove()
    lines = [
        "# PostgreSQL vs SQLite: writers, latency, kills",
        "",
        f"`python benchmarks/postgres.py --seconds {args.seconds:g} --kills {args.kills}` on "
        f"{os.cpu_count()} cores; {PROCESSES} processes x {THREADS} threads, {SESSIONS} "
        "shared sessions, fake embeddings, offline summarizer; turns/s counts from spawn "
        "(process start-up included, alike for both stores).",
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
        f"Kills: {args.kills} rounds of 4 writers SIGKILLed at random moments "
        "(PostgreSQL restarted once mid-run).",
        "",
        "| store | acknowledged adds | lost |",
        "|---|---|---|",
        f"| PostgreSQL | {acked} | {lost} |",
        f"| SQLite | {sqlite_acked} | {sqlite_lost} |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
