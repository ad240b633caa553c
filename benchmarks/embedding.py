"""Embedding backends side by side: chunks/s, cold start, export time and LoCoMo recall.

The bundled all-MiniLM-L6-v2 runs three ways (``MiniLMEmbeddings(backend=...)``): torch
through sentence-transformers (fp32, the model's own weights), ONNX Runtime fp32 and ONNX
Runtime int8 (the default). Every measurement runs in a fresh subprocess per backend, so
one backend's thread pools never slow another's:

- **speed**: chunks/s on the same texts, embedded 64 at a time as the indexer does: real
  tool-output chunks (``../shared/data/tool_outputs``, chunked as the archive chunks them)
  and LoCoMo turns. Rounds are interleaved across backends and the best round is kept, so
  a burst of load from other processes on the machine skews every backend alike.
- **cold start**: seconds and RSS from a new process's first import to its first vector,
  the ONNX models already cached (what every process but the first pays).
- **export**: the one-time export at first use, into an empty cache directory.
- **recall**: LoCoMo evidence recall (``benchmarks/locomo.py``'s measure) on the first
  conversations of the dev set, per budget.

Run (about 15 minutes on 2 cores):
    .venv/bin/python benchmarks/embedding.py [--rounds 3] [--conversations 2]
        [--budgets 2000 4000] [--recall-runs 2] [--no-recall] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memory._archive import approximate_tokens  # noqa: E402
from memory._compress import chunk  # noqa: E402
from memory._compress.chunk import merge_small  # noqa: E402
from memory._compress.dispatch import detect_kind  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "embedding.md"
BACKENDS = ("torch", "onnx", "onnx-int8")
CHUNK_TOKENS = 160  # the archive's DEFAULT_CHUNK_TOKENS
BATCH = 64  # the indexer's DEFAULT_EMBED_BATCH


def tool_chunks(limit: int) -> list[str]:
    """Chunk every dev tool output as the archive does; keep ``limit`` evenly spaced chunks."""
    pieces: list[str] = []
    path = DATA / "tool_outputs" / "tool_outputs_dev.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        text = json.loads(line)["content"]
        found = chunk(text, detect_kind(text), count=approximate_tokens, max_tokens=CHUNK_TOKENS)
        pieces += [c.text for c in merge_small(found, CHUNK_TOKENS // 4, count=approximate_tokens)]
    step = max(1, len(pieces) // limit)
    return pieces[::step][:limit]


def locomo_turns(limit: int) -> list[str]:
    """The first ``limit`` turns of the first LoCoMo dev conversation."""
    sample = json.loads((DATA / "locomo" / "locomo_dev.json").read_text(encoding="utf-8"))[0]
    conversation = sample["conversation"]
    turns = [
        turn["text"]
        for key, value in conversation.items()
        if key.startswith("session_") and isinstance(value, list)
        for turn in value
    ]
    return turns[:limit]


def rss_mb() -> tuple[float, float]:
    """This process's resident set and its peak, in MB (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def cpu_per_chunk(backend: str, sets: dict[str, list[str]]) -> dict[str, float]:
    """Chunks per CPU-second on one thread: what other processes on the machine disturb
    least (they delay a thread, they barely change the CPU time its work takes)."""
    from memory._embed import FLOAT_BATCH, INT8_BATCH, load_minilm
    from memory._onnx import open_onnx_minilm

    per_run = INT8_BATCH if backend == "onnx-int8" else FLOAT_BATCH  # as MiniLMEmbeddings
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        model: Any = load_minilm("torch")
    else:
        model = open_onnx_minilm("int8" if backend == "onnx-int8" else "fp32", threads=1)
    model.encode(["warm up", "the model"])
    result = {}
    for name, texts in sets.items():
        begin = time.process_time()
        for start in range(0, len(texts), BATCH):
            model.encode(texts[start : start + BATCH], batch_size=per_run)
        result[name] = len(texts) / (time.process_time() - begin)
    return result


def worker(mode: str, backend: str, payload: Path | None) -> dict[str, Any]:
    """Run one measurement in this (fresh) process."""
    started = time.perf_counter()
    from memory._embed import MiniLMEmbeddings

    embedder = MiniLMEmbeddings(backend=backend)  # type: ignore[arg-type]
    if mode == "cold":
        embedder.embed_query("first vector")
        seconds = time.perf_counter() - started
        rss, peak = rss_mb()
        return {"seconds": seconds, "rss_mb": rss, "peak_mb": peak}
    if mode == "export":
        from memory._onnx import open_onnx_minilm

        open_onnx_minilm("int8" if backend == "onnx-int8" else "fp32")
        return {"seconds": time.perf_counter() - started}
    assert payload is not None
    if mode == "cpu":
        return cpu_per_chunk(backend, json.loads(payload.read_text(encoding="utf-8")))
    if mode == "speed":
        sets: dict[str, list[str]] = json.loads(payload.read_text(encoding="utf-8"))
        embedder.matrix(["warm up", "the model"])
        result = {}
        for name, texts in sets.items():
            begin = time.perf_counter()
            for start in range(0, len(texts), BATCH):
                embedder.matrix(texts[start : start + BATCH])
            result[name] = len(texts) / (time.perf_counter() - begin)
        return result
    sys.path.insert(0, str(REPO / "benchmarks"))
    from locomo import evidence_recall

    options = json.loads(payload.read_text(encoding="utf-8"))
    samples = json.loads((DATA / "locomo" / "locomo_dev.json").read_text(encoding="utf-8"))
    recall: dict[str, list[float]] = {str(b): [] for b in options["budgets"]}
    for sample in samples[: options["conversations"]]:
        for budget, values in evidence_recall(
            sample, options["budgets"], "markers", embedder
        ).items():
            recall[str(budget)] += [r for _, r, _ in values]
    questions = len(recall[str(options["budgets"][0])])
    return {"recall": {b: statistics.mean(v) for b, v in recall.items()}, "questions": questions}


def run(
    mode: str, backend: str, payload: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``worker`` in a subprocess and return what it printed."""
    command = [sys.executable, __file__, "--worker", mode, "--backend", backend]
    if payload is not None:
        command += ["--payload", str(payload)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {backend} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every measurement, backends interleaved where they are timed."""
    sets = {"tool-output chunks": tool_chunks(args.chunks), "LoCoMo turns": locomo_turns(256)}
    texts = work / "texts.json"
    texts.write_text(json.dumps(sets), encoding="utf-8")
    results: dict[str, Any] = {"sets": {k: len(v) for k, v in sets.items()}}
    results["export"] = {
        b: run("export", b, env={"CONTEXT_ATTIC_CACHE_DIR": str(work / f"export-{b}")})["seconds"]
        for b in ("onnx", "onnx-int8")
    }
    for backend in BACKENDS:  # fills the user's cache, so cold starts below load, not export
        run("cold", backend)
    speed: dict[str, dict[str, list[float]]] = {b: {k: [] for k in sets} for b in BACKENDS}
    cpu: dict[str, dict[str, list[float]]] = {b: {k: [] for k in sets} for b in BACKENDS}
    cold: dict[str, list[dict[str, float]]] = {b: [] for b in BACKENDS}
    for round_number in range(args.rounds):
        for backend in BACKENDS:
            for name, value in run("speed", backend, texts).items():
                speed[backend][name].append(value)
            for name, value in run("cpu", backend, texts).items():
                cpu[backend][name].append(value)
            cold[backend].append(run("cold", backend))
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    results["speed"], results["cpu"], results["cold"] = speed, cpu, cold
    if args.recall:
        options = work / "recall.json"
        options.write_text(json.dumps(vars(args) | {"out": None}), encoding="utf-8")
        results["recall"] = {b: [] for b in BACKENDS}
        # int8 vectors moved with their batch-mates (activations are quantized per run)
        # while it ran batches; one text a run (INT8_BATCH), repeat runs should agree.
        for _ in range(args.recall_runs):
            for backend in BACKENDS:
                results["recall"][backend].append(run("recall", backend, options))
                print(f"recall {backend}: {results['recall'][backend][-1]}", file=sys.stderr)
    return results


def ratios(
    runs: dict[str, list[float]],
    torch: dict[str, list[float]],
    pick: Callable[[list[float]], float],
) -> str:
    """Each set's chunks/s over torch's, ``pick`` (best or median) of the rounds on each side."""
    return " / ".join(f"{pick(values) / pick(torch[name]):.2f}x" for name, values in runs.items())


def _speed_table(
    speeds: dict[str, dict[str, list[float]]], sets: dict[str, int], *, best: bool
) -> list[str]:
    """One row per backend: chunks/s per set (best of the rounds with the median in
    brackets, or the median alone) and the ratios to torch."""
    lines = [
        "| backend | " + " | ".join(f"{k} ({n})" for k, n in sets.items()) + " | vs torch |",
        "|---|" + "---:|" * (len(sets) + 1),
    ]
    for backend in BACKENDS:
        runs = speeds[backend]
        if best:
            cells = [f"{max(v):.1f} ({statistics.median(v):.1f})" for v in runs.values()]
        else:
            cells = [f"{statistics.median(v):.1f}" for v in runs.values()]
        ratio = ratios(runs, speeds["torch"], max if best else statistics.median)
        lines.append(f"| {backend} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def report(results: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    """The results as Markdown."""
    import onnxruntime
    import torch

    sets = results["sets"]
    lines = [
        "# Embedding backends: speed, cold start, recall",
        "",
        f"Run {date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other processes: load average {results['load'][0]:.1f} at the start, "
        f"{results['load'][1]:.1f} at the end), Python {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}; {seconds:.0f} s in all.",
        "",
        "```sh",
        f"python benchmarks/embedding.py {' '.join(sys.argv[1:])}".rstrip(),
        "```",
        "",
        "## Chunks per second",
        "",
        f"The same texts per backend, {BATCH} per call as the indexer embeds them; best of "
        f"{args.rounds} interleaved rounds (median in brackets), each round a fresh process "
        "per backend. torch uses its default threads (one per core) and batches of 32; ONNX "
        "Runtime `DEFAULT_ONNX_THREADS` (2), float32 in batches of like token counts "
        "(`DEFAULT_BATCH_TOKENS`), int8 one text per run (`INT8_BATCH`: its activations are "
        "quantized per run). vs torch: each set's ratio, in the table's order.",
        "",
        *_speed_table(results["speed"], sets, best=True),
        "",
        "The same on one thread, per CPU-second of the process (median of the rounds): "
        "less disturbed by the other processes on the machine than the wall clock.",
        "",
        *_speed_table(results["cpu"], sets, best=False),
    ]
    lines += [
        "",
        "## Cold start (cache warm) and export (first use)",
        "",
        "From a new process's first import of the library to its first vector; median of "
        f"{args.rounds} processes.",
        "",
        "| backend | seconds to first vector | RSS MB | peak RSS MB | first-use export s |",
        "|---|---:|---:|---:|---:|",
    ]
    for backend in BACKENDS:
        runs = results["cold"][backend]
        cells = [statistics.median(r[k] for r in runs) for k in ("seconds", "rss_mb", "peak_mb")]
        export = results["export"].get(backend)
        lines.append(
            f"| {backend} | {cells[0]:.2f} | {cells[1]:.0f} | {cells[2]:.0f} | "
            + (f"{export:.1f} |" if export is not None else "- |")
        )
    if "recall" in results:
        budgets = [str(b) for b in args.budgets]
        lines += [
            "",
            f"## LoCoMo evidence recall ({args.conversations} dev conversations, "
            f"{results['recall']['torch'][0]['questions']} questions of categories 1-4; mean of "
            f"{args.recall_runs} runs, range in brackets; loss: the largest drop from torch)",
            "",
            "| backend | " + " | ".join(f"@{int(b):,}" for b in budgets) + " | loss vs torch |",
            "|---|" + "---:|" * (len(budgets) + 1),
        ]

        def mean(backend: str, budget: str) -> float:
            return statistics.mean(r["recall"][budget] for r in results["recall"][backend])

        for backend in BACKENDS:
            runs = [r["recall"] for r in results["recall"][backend]]
            loss = max(mean("torch", b) - mean(backend, b) for b in budgets)
            spans = {b: (min(r[b] for r in runs), max(r[b] for r in runs)) for b in budgets}
            cells = " | ".join(
                f"{mean(backend, b):.3f} ({spans[b][0]:.3f}-{spans[b][1]:.3f})" for b in budgets
            )
            lines.append(f"| {backend} | {cells} | {loss:+.3f} |")
    lines += [
        "",
        "Targets (issue 15): the default embeds >= 3x today's (torch) chunks/s with <= 0.005 "
        "recall loss.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one measurement) and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=256, help="tool-output chunks to embed")
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--recall-runs", type=int, default=2, help="LoCoMo runs per backend")
    parser.add_argument("--no-recall", dest="recall", action="store_false")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.backend, args.payload)))
        return 0
    if not (DATA / "locomo" / "locomo_dev.json").exists():
        print(f"skipped: data not found under {DATA}")
        return 0
    started = time.time()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        results = measure(args, Path(work))
    results["load"] = (load, os.getloadavg()[0])
    text = report(results, args, time.time() - started)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
