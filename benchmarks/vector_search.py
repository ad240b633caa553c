"""Exact (flat) against graph (HNSW) vector search on real MiniLM vectors, side by side.

Why ``stores.faiss_index`` searches exactly: this measures what an HNSW graph
(``faiss.IndexHNSWFlat``, M = 32, efConstruction = 80, efSearch = max(400, 1.5 k)) keeps
and saves on the vectors the bundled embedder (``MiniLMEmbeddings()``) makes of public
data, and what it loses where a chat repeats itself:

- **corpus**: every LoCoMo dev turn (``speaker: text``) and each turn with the one before
  it (the context copy the turn index keeps), plus every line of 30 characters or more of
  the dev tool outputs and SWE-agent transcripts (``../shared/data``), de-duplicated;
- **queries**: the LoCoMo dev questions;
- **kept**: the share of the exact top ``k`` the graph returns in its top ``k``, for
  k = 20 and 264 (264 is what the turn ranker asks for), and how often both put the same
  vector first;
- **evidence**: how often a question's evidence turn is in the top 20 / top 264, exact
  and graph (the answer the ranker needs to see);
- **repeats**: the same corpus with ``--copies`` identical copies of one reply ("OK.")
  added in its middle, as a chat's thousands of short replies embed to few distinct
  vectors: how often the graph still puts the exact best first, for the questions whose
  best was added before the copies and after them;
- **time**: thread-CPU ms per query for each, median of the questions, at growing
  prefixes of the (shuffled) corpus. Both run in one process, one after the other on the
  same queries, so their ratio holds on a noisy machine.

The corpus is embedded once (minutes) and kept in ``--cache`` (a ``.npz``).

Run:
    .venv/bin/python benchmarks/vector_search.py [--cache FILE.npz] [--links 16 32]
        [--sizes 4096 16384 32768] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memory._embed import MiniLMEmbeddings  # noqa: E402

DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "vector_search.md"
DEFAULT_CACHE = Path("/tmp/context-attic-vector-search.npz")
K_RANKER = 264  # what memory._recall.rank asked for when measured (now 164: POOL 100 + 2 * 32)
LINKS = 32  # HNSW's M (FAISS's default)
BUILD_BREADTH = 80  # efConstruction
SEARCH_BREADTH = max(400, K_RANKER * 3 // 2)  # efSearch

Matrix = npt.NDArray[np.float32]


def corpus() -> tuple[list[str], list[str], list[list[int]]]:
    """Texts, questions, and each question's evidence as positions in the texts."""
    texts: dict[str, int] = {}
    questions: list[str] = []
    evidence: list[list[int]] = []

    def put(text: str) -> int:
        return texts.setdefault(text, len(texts))

    for sample in json.loads((DATA / "locomo" / "locomo_dev.json").read_text("utf-8")):
        where: dict[str, int] = {}
        for key, session in sample["conversation"].items():
            if not key.startswith("session_") or not isinstance(session, list):
                continue
            before = None
            for turn in session:
                line = f"{turn['speaker']}: {turn['text']}"
                where[turn["dia_id"]] = put(line)
                if before is not None:
                    put(f"{before}\n{line}")
                before = line
        for qa in sample["qa"]:
            questions.append(qa["question"])
            evidence.append([where[e] for e in qa.get("evidence", []) if e in where])
    for name in ("tool_outputs/tool_outputs_dev.jsonl", "agent_transcripts/swe_agent_dev.jsonl"):
        for row in (DATA / name).read_text("utf-8").splitlines():
            for piece in json.dumps(json.loads(row)).replace("\\n", "\n").split("\n"):
                if len(piece.strip()) >= 30:
                    put(piece.strip()[:600])
    return list(texts), questions, evidence


def embedded(cache: Path) -> tuple[Matrix, Matrix, list[list[int]]]:
    """The corpus's and the questions' vectors (from ``cache`` when it holds them)."""
    texts, questions, evidence = corpus()
    if cache.exists():
        held = np.load(cache)
        if held["texts"].shape[0] == len(texts):
            return held["texts"], held["questions"], evidence
    embedder = MiniLMEmbeddings()
    started = time.perf_counter()
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    asked = np.asarray(embedder.embed_documents(questions), dtype=np.float32)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(cache, texts=vectors, questions=asked)
    return vectors, asked, evidence


def timed(index: Any, queries: Matrix, k: int) -> tuple[npt.NDArray[np.int64], float]:
    """Each query searched alone, as a prompt asks; median thread-CPU ms per query."""
    found, spent = [], []
    for query in queries:
        started = time.thread_time()
        found.append(index.search(query[None, :], k)[1][0])
        spent.append(time.thread_time() - started)
    return np.vstack(found), statistics.median(spent) * 1e3


def kept(exact: npt.NDArray[np.int64], graph: npt.NDArray[np.int64], k: int) -> float:
    pairs = zip(exact, graph, strict=True)
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in pairs]))


def evidence_found(found: npt.NDArray[np.int64], evidence: Sequence[list[int]], k: int) -> float:
    asked = [(row, e) for row, e in zip(found, evidence, strict=True) if e]
    return float(np.mean([bool(set(row[:k]) & set(e)) for row, e in asked]))


def measure(args: argparse.Namespace) -> str:
    faiss.omp_set_num_threads(1)
    vectors, questions, evidence = embedded(args.cache)
    dim, total = vectors.shape[1], len(vectors)
    lines = [
        "# Vector search: exact scan against HNSW graph",
        "",
        f"{date.today()}, {total:,} MiniLM vectors ({dim}-d), {len(questions):,} LoCoMo dev "
        f"questions; graph efSearch = {SEARCH_BREADTH}, efConstruction = {BUILD_BREADTH}. "
        "`python benchmarks/vector_search.py`",
        "",
        "## Whole corpus: what the graph keeps",
        "",
        "| M | build s | top 1 same | top 20 kept | top 264 kept | evidence in top 20 "
        "(exact / graph) | evidence in top 264 (exact / graph) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    exact, _ = timed(flat, questions, K_RANKER)
    for links in args.links:
        graph = faiss.IndexHNSWFlat(dim, links, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = BUILD_BREADTH
        started = time.perf_counter()
        graph.add(vectors)
        built = time.perf_counter() - started
        graph.hnsw.efSearch = SEARCH_BREADTH
        found, _ = timed(graph, questions, K_RANKER)
        same = float(np.mean(exact[:, 0] == found[:, 0]))
        lines.append(
            f"| {links} | {built:.1f} | {same:.3f} | {kept(exact, found, 20):.4f} | "
            f"{kept(exact, found, K_RANKER):.4f} | {evidence_found(exact, evidence, 20):.3f} / "
            f"{evidence_found(found, evidence, 20):.3f} | "
            f"{evidence_found(exact, evidence, K_RANKER):.3f} / "
            f"{evidence_found(found, evidence, K_RANKER):.3f} |"
        )
        print(lines[-1], flush=True)
    lines += ["", *repeats(vectors, questions, evidence, args.copies)]
    lines += [
        "",
        f"## Time per query (k = {K_RANKER}, M = {LINKS}), one process",
        "",
        "| vectors | exact ms | graph ms | exact / graph |",
        "|---:|---:|---:|---:|",
    ]
    order = np.random.default_rng(0).permutation(total)
    sample = questions[:: max(1, len(questions) // args.queries)]
    for size in [s for s in args.sizes if s <= total] + [total]:
        part = np.ascontiguousarray(vectors[order[:size]])
        flat = faiss.IndexFlatIP(dim)
        flat.add(part)
        graph = faiss.IndexHNSWFlat(dim, LINKS, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = BUILD_BREADTH
        graph.add(part)
        graph.hnsw.efSearch = SEARCH_BREADTH
        _, exact_ms = timed(flat, sample, K_RANKER)
        _, graph_ms = timed(graph, sample, K_RANKER)
        lines.append(f"| {size:,} | {exact_ms:.2f} | {graph_ms:.2f} | {exact_ms / graph_ms:.1f}x |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def repeats(
    vectors: Matrix, questions: Matrix, evidence: Sequence[list[int]], copies: int
) -> list[str]:
    """The corpus with ``copies`` identical vectors of one short reply in its middle."""
    reply = np.asarray(MiniLMEmbeddings().embed_query("assistant: OK."), dtype=np.float32)
    half = len(vectors) // 2
    corpus = np.concatenate([vectors[:half], np.repeat(reply[None, :], copies, 0), vectors[half:]])
    moved = [[e if e < half else e + copies for e in row] for row in evidence]
    flat = faiss.IndexFlatIP(corpus.shape[1])
    flat.add(corpus)
    graph = faiss.IndexHNSWFlat(corpus.shape[1], LINKS, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = BUILD_BREADTH
    graph.add(corpus)
    graph.hnsw.efSearch = SEARCH_BREADTH
    exact, _ = timed(flat, questions, K_RANKER)
    found, _ = timed(graph, questions, K_RANKER)
    before = exact[:, 0] < half
    lines = [
        f'## Repeats: {copies:,} copies of one reply ("OK.") in the middle',
        "",
        "| top 1 same, best added before the copies | after | top 20 kept | evidence in top "
        "20 (exact / graph) | evidence in top 264 (exact / graph) |",
        "|---:|---:|---:|---:|---:|",
        f"| {np.mean(found[before, 0] == exact[before, 0]):.3f} | "
        f"{np.mean(found[~before, 0] == exact[~before, 0]):.3f} | {kept(exact, found, 20):.4f} | "
        f"{evidence_found(exact, moved, 20):.3f} / {evidence_found(found, moved, 20):.3f} | "
        f"{evidence_found(exact, moved, K_RANKER):.3f} / "
        f"{evidence_found(found, moved, K_RANKER):.3f} |",
    ]
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--links", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4_096, 16_384])
    parser.add_argument("--queries", type=int, default=300, help="questions timed per size")
    parser.add_argument("--copies", type=int, default=4_000, help="repeated replies added")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    report = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
