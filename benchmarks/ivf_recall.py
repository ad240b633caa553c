"""What the inverted file misses: approximate against exact vector search, side by side.

Above ``stores.faiss_ivf.EXACT_MAX`` vectors a session's FAISS index is an inverted file
that scans a few percent of them (``stores.faiss_ivf``). This benchmark embeds real
texts with the default embedder (bundled all-MiniLM-L6-v2, ONNX int8): every LoCoMo dev
turn as the turn index holds it ("Speaker: text", and a context copy after the turn
before), and the lines of the dev tool outputs and agent transcripts (30 to 600
characters). The LoCoMo questions are the queries. For each number of cells scanned
(``nprobe``) it reports the share of the exact top 5, top 20 and top 264 (the ranker's
vector pool, ``memory._recall.rank.POOL`` + slack) that the inverted file returns in
its top 264, and milliseconds per query for both, measured in one run on one thread.
The setting the library uses is marked.

Run (about 3 minutes on 2 cores, most of it embedding; ``--cache`` keeps the vectors)::

    .venv/bin/python benchmarks/ivf_recall.py [--cache /tmp/ivf.npz] [--out FILE.md]

The data is not part of the repository; without it the script says so and exits with 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memory._embed import MiniLMEmbeddings  # noqa: E402
from stores import faiss_ivf  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "ivf_recall.md"
POOL = 264
PROBES = (8, 16, 32, 64, 128, 256)
Matrix = npt.NDArray[np.float32]


def corpus() -> tuple[list[str], list[str]]:
    """The texts to index and the questions to ask (see the module docstring)."""
    texts: list[str] = []
    questions: list[str] = []
    for sample in json.loads((DATA / "locomo" / "locomo_dev.json").read_text("utf-8")):
        conversation = sample["conversation"]
        for key, turns in conversation.items():
            if not key.startswith("session_") or not isinstance(turns, list):
                continue
            previous = None
            for turn in turns:
                line = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    line += f" [shares {turn['blip_caption']}]"
                texts.append(line)
                if previous is not None:
                    texts.append(f"{previous}\n{line}")
                previous = line
        questions += [qa["question"] for qa in sample["qa"]]
    for name in ("tool_outputs/tool_outputs_dev.jsonl", "agent_transcripts/swe_agent_dev.jsonl"):
        for row in (DATA / name).read_text("utf-8").splitlines():
            flat = json.dumps(json.loads(row)).replace("\\n", "\n")
            texts += [p.strip()[:600] for p in flat.split("\n") if len(p.strip()) >= 30]
    return list(dict.fromkeys(texts)), questions


def vectors(cache: Path | None) -> tuple[Matrix, Matrix, float]:
    """Embed the corpus and the questions (or read them from ``cache``); embedding s."""
    if cache is not None and cache.exists():
        held = np.load(cache)
        return held["texts"], held["questions"], float(held["seconds"])
    texts, questions = corpus()
    embedder = MiniLMEmbeddings()
    started = time.perf_counter()
    matrix = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    seconds = time.perf_counter() - started
    asked = np.asarray(embedder.embed_documents(questions), dtype=np.float32)
    if cache is not None:
        np.savez(cache, texts=matrix, questions=asked, seconds=seconds)
    return matrix, asked, seconds


def per_query_ms(index: Any, queries: Matrix) -> tuple[float, npt.NDArray[np.int64]]:
    """Search each query alone (as the ranker does); ms of thread CPU per query."""
    found = np.zeros((len(queries), POOL), dtype=np.int64)
    started = time.thread_time()
    for row, query in enumerate(queries):
        found[row] = index.search(query[None, :], POOL)[1][0]
    return (time.thread_time() - started) / len(queries) * 1e3, found


def share(exact: npt.NDArray[np.int64], found: npt.NDArray[np.int64], top: int) -> float:
    """Mean share of each query's exact top ``top`` among its found ids."""
    pairs = zip(exact, found, strict=True)
    return float(np.mean([len(set(e[:top]) & set(f)) / top for e, f in pairs]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="an .npz to keep vectors in")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not (DATA / "locomo" / "locomo_dev.json").exists():
        print(f"no data under {DATA}: nothing to measure")
        return 0
    faiss.omp_set_num_threads(1)  # as stores.faiss_index runs it
    matrix, questions, embed_s = vectors(args.cache)
    count, dim = matrix.shape
    flat = faiss.IndexFlatIP(dim)
    flat.add(matrix)
    started = time.perf_counter()
    ivf = faiss_ivf.build(dim, np.arange(count, dtype=np.int64), matrix)
    build_s = time.perf_counter() - started
    used = faiss_ivf.probes(ivf.nlist)
    lines = [
        "# Inverted file against exact search",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.platform()}, "
        f"faiss {faiss.__version__}, one thread",
        f"- {count:,} texts ({dim} dimensions, embedded in {embed_s:.0f} s), "
        f"{len(questions):,} LoCoMo questions; {ivf.nlist} cells "
        f"(`stores.faiss_ivf.lists`), trained and filled in {build_s:.1f} s",
        f"- command: `python benchmarks/ivf_recall.py`; the library scans {used} cells",
        "",
        "| cells scanned | exact top 5 found | top 20 | top 264 | ms / query | exact ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for probes in sorted({*PROBES, used}):
        ivf.nprobe = probes
        flat_ms, exact = per_query_ms(flat, questions)  # interleaved: load skews both alike
        ivf_ms, found = per_query_ms(ivf, questions)
        mark = " (library)" if probes == used else ""
        lines.append(
            f"| {probes}{mark} | {share(exact, found, 5):.4f} | {share(exact, found, 20):.4f} "
            f"| {share(exact, found, POOL):.4f} | {ivf_ms:.3f} | {flat_ms:.3f} |"
        )
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
