"""Benchmark reversible tool-output compression on real tool outputs, beside ``headroom-ai``.

Reads ``../shared/data/tool_outputs/tool_outputs_dev.jsonl`` (relative to the project root;
skips cleanly when it is absent) and, for every output, opens a fresh session with the
default settings (a budget of 8,000 prompt tokens, ``compress_threshold`` 500, the bundled
MiniLM embedder), adds it as the answer to a tool call and measures:

* prompt tokens: the tool message's content as ``assemble`` sends it (header + digest)
  against the original, both counted with ``mem.counter``; target >= 85% fewer overall
  for outputs over 2,000 tokens. ``headroom-ai``'s ``compress()`` (default mode, offline)
  runs on the same outputs in its own virtualenv (``benchmarks/headroom_env.sh``), in a
  subprocess, and is counted with the same counter;
* reversibility: ``archive.get(ref)`` equals the original (target 100%);
* retrievability: of ``--spans`` random 30-token spans per output (fixed seed), how many
  one ``recall(ref, query=<first 12 words of the span>)`` returns (target >= 90%);
* fidelity: every ERROR/Traceback line of a log, every top-level def/class name of code
  and every distinct JSON key path (up to depth 3) appears in the digest (target 100%);
* speed: ``add`` of a 100 KB output (compress + archive, fake embedder) p50 <= 50 ms, and
  the MiniLM embedding throughput in chunks per second.

Usage::

    bash benchmarks/headroom_env.sh          # once: the anchor's own virtualenv
    .venv/bin/python benchmarks/tool_outputs.py
    .venv/bin/python benchmarks/tool_outputs.py --limit 14 --spans 5 --no-headroom --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from itertools import chain, cycle, zip_longest
from pathlib import Path
from typing import Any

import tiktoken
from digest_truth import Truth, check_digest, json_paths_stated
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import ToolMessage
from repeats import load_runs, measure_repeats, repeat_lines, reread_lines

from memory import ConversationMemory, seed_tiktoken_cache
from memory._archive import DEFAULT_CHUNK_TOKENS
from memory._compress import chunk, compress
from memory._compress.json import parse_lenient
from memory._embed import load_minilm
from memory._tokens import TokenCounter, counter_for_model, encoding_for_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared/data/tool_outputs/tool_outputs_dev.jsonl"
DEFAULT_TRANSCRIPTS = REPO_ROOT / ".." / "shared/data/agent_transcripts/swe_agent_dev.jsonl"
DEFAULT_OUT = REPO_ROOT / "benchmarks/results/tool_outputs.md"
DEFAULT_HEADROOM_PYTHON = REPO_ROOT / "benchmarks/.venv-headroom/bin/python"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BUDGET = 8_000
DEFAULT_SPANS = 20
DEFAULT_SEED = 0
DEFAULT_SPEED_RUNS = 20
SPAN_TOKENS = 30
QUERY_WORDS = 12
RECALL_TOKENS = 800
BIG_TOKENS = 2_000
SPEED_BYTES = 100_000
MAP_MIN_KEYS = 48  # objects this large (or mostly numeric keys) are maps in the folded check
TARGET_SAVED = 0.85
TARGET_RETRIEVED = 0.90
TARGET_ADD_P50_MS = 50.0
TARGET_KEY_PATHS = 0.90
CALL_ID = "call_1"
_BLOCK_SEAM = re.compile(r'\n</archived>\n<archived ref="[^"]*" chunk="\d+" lines="[^"]*">\n')
_ERROR_LINE = re.compile(r"\bERROR\b|\bTraceback\b")
_PLAIN_KEY = re.compile(r"[A-Za-z_$@][\w$@\-]*\Z")
FIDELITY_CHECKS = {
    "log": "ERROR/Traceback line of a log",
    "code": "top-level def/class name of code",
    "json": "distinct JSON key path (depth <= 3; folded maps count as stated)",
}
_PACKAGES = ("context-attic", "tiktoken", "sentence-transformers", "torch", "faiss-cpu")

# Runs inside headroom's virtualenv: JSON rows on stdin, JSON results on stdout.
HEADROOM_SIDECAR = r"""
import json, sys, time
from importlib import metadata
out, sys.stdout = sys.stdout, sys.stderr  # keep headroom's prints off the JSON channel
from headroom import compress
results = []
for row in json.load(sys.stdin):
    call = {"id": "call_1", "type": "function",
            "function": {"name": row["name"], "arguments": "{}"}}
    messages = [{"role": "user", "content": "Run the tool."},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": row["content"]}]
    started = time.perf_counter()
    try:
        result = compress(messages, model=row["model"])
        content = result.messages[-1]["content"]
        error, transforms = None, list(result.transforms_applied)
    except Exception as exc:
        content, error, transforms = None, f"{type(exc).__name__}: {exc}", []
    results.append({"id": row["id"], "content": content, "error": error,
                    "transforms": transforms, "seconds": time.perf_counter() - started})
out.write(json.dumps({"version": metadata.version("headroom-ai"), "results": results}))
"""


@dataclass(slots=True)
class Outcome:
    """What one tool output measured."""

    id: str
    kind: str
    tool: str
    original_tokens: int
    sent_tokens: int
    archived: bool
    in_prompt: bool
    exact: bool | None
    digest_kind: str
    spans_found: int = 0
    spans_joined: int = 0
    spans_total: int = 0
    span_misses: list[str] = field(default_factory=list)
    recall_ms: list[float] = field(default_factory=list)
    fidelity: tuple[int, int] | None = None
    folded: tuple[int, int] | None = None
    missing: list[str] = field(default_factory=list)
    truth: Truth = field(default_factory=Truth)
    headroom_tokens: int | None = None
    headroom_neutral: int | None = None
    headroom_transforms: tuple[str, ...] = ()
    headroom_error: str | None = None


@dataclass(slots=True)
class Embedding:
    """MiniLM embedding totals over the run."""

    load_s: float = 0.0
    chunks: int = 0
    embed_s: float = 0.0
    wait_s: float = 0.0


def load_rows(path: Path, limit: int | None) -> list[dict[str, str]]:
    """Read the corpus; with ``limit``, take outputs round-robin across kinds."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if limit is None or limit >= len(rows):
        return rows
    by_kind: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    mixed = chain.from_iterable(zip_longest(*by_kind.values()))
    return [row for row in mixed if row is not None][:limit]


def tool_exchange(content: str, tool: str) -> list[dict[str, Any]]:
    """Return a user turn, a tool call and its answer, as OpenAI chat dicts."""
    function = {"name": tool_name(tool), "arguments": "{}"}
    call = {"id": CALL_ID, "type": "function", "function": function}
    return [
        {"role": "user", "content": "Run the tool."},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": CALL_ID, "content": content},
    ]


def _norm(text: str) -> str:
    return " ".join(text.split())


# --- fidelity -------------------------------------------------------------------------


def log_lines(content: str) -> list[str]:
    """Distinct non-blank lines holding ``ERROR`` or ``Traceback``, stripped."""
    found = (line.strip() for line in content.splitlines() if _ERROR_LINE.search(line))
    return list(dict.fromkeys(line for line in found if line))


def code_names(content: str) -> list[str] | None:
    """Top-level def/class names, or None when the code does not parse as Python."""
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return None
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return list(dict.fromkeys(node.name for node in tree.body if isinstance(node, kinds)))


def _is_map(obj: dict[str, Any]) -> bool:
    digits = sum(1 for key in obj if any(c.isdigit() for c in key))
    return len(obj) > MAP_MIN_KEYS or (len(obj) > 12 and digits >= 0.8 * len(obj))


def json_paths(value: Any, *, max_depth: int = 3, fold_maps: bool = False) -> list[str]:
    """Distinct key paths up to ``max_depth`` keys, written ``a.b[].c``.

    Arrays do not count as a level; keys that are not identifiers are JSON-quoted. With
    ``fold_maps`` the keys of map-like objects are folded into ``*``.
    """
    paths: dict[str, None] = {}
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, list):
            stack.extend((item, path + "[]", depth) for item in reversed(node))
        elif isinstance(node, dict) and depth < max_depth:
            folded = fold_maps and _is_map(node)
            for key, child in reversed(list(node.items())):
                part = "*" if folded else key if _PLAIN_KEY.match(key) else json.dumps(key)
                child_path = f"{path}.{part}" if path else part
                paths[child_path] = None
                stack.append((child, child_path, depth + 1))
    return sorted(paths)


def _has_path(path: str, digest: str) -> bool:
    # ``a.name`` must not count as shown because ``a.name_x`` is.
    return re.search(re.escape(path) + r"(?![\w$@\-])", digest) is not None


def parse_json(content: str) -> Any:
    """Decode the JSON at the start of ``content``; truncated JSON is repaired."""
    try:
        return json.JSONDecoder().raw_decode(content.lstrip())[0]
    except json.JSONDecodeError:
        return parse_lenient(content).value


def check_fidelity(kind: str, content: str, digest: str, outcome: Outcome) -> None:
    """Fill in ``outcome.fidelity`` (kept, required) and what the digest is missing."""
    if kind == "log":
        must = log_lines(content)
        missing = [line for line in must if line not in digest]
    elif kind == "code":
        names = code_names(content)
        if names is None:
            outcome.missing = ["(does not parse as Python: not checked)"]
            return
        must = names
        missing = [n for n in names if not re.search(rf"(?<!\w){re.escape(n)}(?!\w)", digest)]
    elif kind == "json":
        value = parse_json(content)
        named = json_paths(value)
        outcome.folded = (sum(_has_path(p, digest) for p in named), len(named))
        stated, total, outcome.missing = json_paths_stated(value, digest)
        outcome.fidelity = (stated, total)
        return
    else:
        return  # FIDELITY_CHECKS names the kinds checked
    outcome.fidelity = (len(must) - len(missing), len(must))
    outcome.missing = missing


# --- one output through the memory ----------------------------------------------------


def span_queries(
    encoding: tiktoken.Encoding, content: str, spans: int, seed: str
) -> Iterator[tuple[str, str]]:
    """Yield ``(span, query)``: random 30-token windows and their first 12 words."""
    tokens = encoding.encode_ordinary(content)
    rng = random.Random(seed)
    last = max(1, len(tokens) - SPAN_TOKENS + 1)
    for _ in range(spans):
        for _attempt in range(10):
            start = rng.randrange(last)
            window = encoding.decode_bytes(tokens[start : start + SPAN_TOKENS])
            span = window.decode("utf-8", errors="ignore")  # drops only cut characters
            if span.split():
                yield span, " ".join(span.split()[:QUERY_WORDS])
                break


def measure_output(
    row: dict[str, str], args: argparse.Namespace, encoding: tiktoken.Encoding, emb: Embedding
) -> Outcome:
    """Run one tool output through a fresh session and measure it."""
    content = row["content"]
    with ConversationMemory.open(
        ":memory:", session=f"bench-{row['id']}", budget=args.budget, model=args.model
    ) as mem:
        mem.add(tool_exchange(content, row["tool"]))
        prompt = mem.assemble()
        sent = next(
            (
                m.content
                for m in prompt.messages
                if isinstance(m, ToolMessage) and m.tool_call_id == CALL_ID
            ),
            None,
        )
        refs = mem.archive.refs()
        original_tokens = mem.counter.count(content)
        outcome = Outcome(
            id=row["id"],
            kind=row["kind"],
            tool=row["tool"],
            original_tokens=original_tokens,
            sent_tokens=mem.counter.count(sent) if isinstance(sent, str) else original_tokens,
            archived=bool(refs),
            in_prompt=isinstance(sent, str),
            exact=mem.archive.get(refs[0].ref) == content if refs else None,
            digest_kind=refs[0].kind if refs else "-",
        )
        check_fidelity(row["kind"], content, sent if isinstance(sent, str) else content, outcome)
        if isinstance(sent, str) and refs:
            outcome.truth = check_digest(sent, content, refs[0].kind, mem.counter.count)
        started = time.perf_counter()
        mem.wait_until_indexed(timeout=900)
        emb.wait_s += time.perf_counter() - started
        indexer = mem.archive.indexer
        if indexer is not None:
            emb.chunks += indexer.chunks_embedded
            emb.embed_s += indexer.embed_seconds
        if refs and args.spans:
            spans = span_queries(encoding, content, args.spans, f"{args.seed}:{row['id']}")
            for span, query in spans:
                started = time.perf_counter()
                answer = mem.recall(ref=refs[0].ref, query=query, max_tokens=RECALL_TOKENS)
                outcome.recall_ms.append((time.perf_counter() - started) * 1000)
                outcome.spans_total += 1
                if _norm(span) in _norm(answer):
                    outcome.spans_found += 1
                else:
                    outcome.span_misses.append(query)
                # The same test with the wrappers between quoted chunks taken out.
                outcome.spans_joined += _norm(span) in _norm(_BLOCK_SEAM.sub("", answer))
    return outcome


# --- headroom-ai ----------------------------------------------------------------------


def tool_name(tool: str) -> str:
    """Turn the data's tool (``pip inspect``) into a function name (``pip_inspect``)."""
    return re.sub(r"\W+", "_", tool).strip("_") or "tool"


def run_headroom(
    rows: Sequence[dict[str, str]], python: Path, model: str, *, neutral: bool
) -> tuple[dict[str, dict[str, Any]], str]:
    """Compress every output with headroom-ai in its own virtualenv (one subprocess).

    Args:
        rows: The outputs.
        python: The interpreter of headroom's virtualenv.
        model: Passed to ``compress``.
        neutral: Name every tool ``tool`` instead of the data's tool (headroom leaves
            some tools, ``read_file`` among them, uncompressed by name).

    Returns:
        Results by output id, and the headroom-ai version (or why it did not run).
    """
    if not python.exists():
        return {}, f"not run: {python} not found (run benchmarks/headroom_env.sh)"
    payload = [
        {
            "id": r["id"],
            "name": "tool" if neutral else tool_name(r["tool"]),
            "content": r["content"],
            "model": model,
        }
        for r in rows
    ]
    env = {**os.environ, "HEADROOM_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    env["TRANSFORMERS_OFFLINE"] = "1"
    try:
        done = subprocess.run(
            [str(python), "-c", HEADROOM_SIDECAR],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {}, "not run: headroom-ai took more than 900 s"
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return {}, f"not run: the sidecar exited with {done.returncode}: {tail}"
    answer = json.loads(done.stdout)
    return {r["id"]: r for r in answer["results"]}, f"headroom-ai {answer['version']}"


def add_headroom(
    outcomes: Sequence[Outcome],
    results: dict[str, dict[str, Any]],
    counter: TokenCounter,
    *,
    neutral: bool,
) -> None:
    """Count headroom's tool messages with our counter."""
    for outcome in outcomes:
        result = results.get(outcome.id)
        if result is None:
            continue
        content = result["content"]
        if result["error"] is not None or content is None:
            outcome.headroom_error = result["error"] or "no content"
            continue
        tokens = counter.count(content if isinstance(content, str) else json.dumps(content))
        if neutral:
            outcome.headroom_neutral = tokens
        else:
            outcome.headroom_tokens = tokens
            outcome.headroom_transforms = tuple(result["transforms"])


# --- speed ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speed:
    """Timings of one 100 KB output (ms)."""

    label: str
    tokens: int
    digest_kind: str
    add_ms: list[float]
    compress_ms: list[float]
    chunk_ms: list[float]


def hundred_kb_outputs(rows: Sequence[dict[str, str]]) -> list[tuple[str, str]]:
    """Build 100 KB outputs: per kind (its outputs joined, repeated) and all kinds mixed."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["kind"], []).append(row["content"])
    small = ([c for c in contents if len(c) < 20_000] for contents in groups.values())
    mixed = [c for c in chain.from_iterable(zip_longest(*small)) if c is not None]
    built = []
    for label, contents in [("mixed", mixed), *groups.items()]:
        text = ""
        for piece in cycle(contents):
            text += piece + "\n"
            if len(text.encode()) >= SPEED_BYTES:
                break
        cut = text.encode()[:SPEED_BYTES].decode("utf-8", errors="ignore")
        built.append((label, cut[: cut.rfind("\n") + 1] or cut))
    return built


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def time_speed(label: str, text: str, runs: int, args: argparse.Namespace) -> Speed:
    """Time ``add`` of one tool output in fresh sessions (fake embedder), and its parts."""
    add_ms: list[float] = []
    kind = "-"
    for run in range(runs + 1):  # the first run warms caches and is dropped
        with ConversationMemory.open(
            ":memory:",
            session=f"speed-{run}",
            budget=args.budget,
            model=args.model,
            embedder=DeterministicFakeEmbedding(size=384),
        ) as mem:
            exchange = tool_exchange(text, "tool")
            mem.add(exchange[:2])
            started = time.perf_counter()
            mem.add(exchange[2])
            add_ms.append(_ms(started))
            refs = mem.archive.refs()
            kind = refs[0].kind if refs else "not archived"
            counter = mem.counter
    tokens = counter.count(text)
    # The default digest budget: 12% of the original, at most 10% of the prompt budget.
    digest_tokens = max(120, min(args.budget // 10, tokens * 12 // 100))
    compress_ms, chunk_ms = [], []
    for _ in range(max(1, runs // 2)):
        started = time.perf_counter()
        digest = compress(text, count=counter.count, max_tokens=digest_tokens)
        compress_ms.append(_ms(started))
        started = time.perf_counter()
        chunk(text, digest.kind, count=counter.count, max_tokens=DEFAULT_CHUNK_TOKENS)
        chunk_ms.append(_ms(started))
    return Speed(label, tokens, kind, add_ms[1:], compress_ms, chunk_ms)


# --- report ---------------------------------------------------------------------------


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _saved(sent: int, original: int) -> str:
    return f"{1 - sent / original:.1%}" if original else "-"


def _ratio(pairs: Sequence[tuple[int, int]]) -> str:
    kept, must = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    return f"{kept:,}/{must:,} ({kept / must:.1%})" if must else "-"


def _headroom_saved(big: Sequence[Outcome], *, neutral: bool) -> str:
    pairs = [(o.original_tokens, o.headroom_neutral if neutral else o.headroom_tokens) for o in big]
    done = [(original, sent) for original, sent in pairs if sent is not None]
    return _saved(sum(s for _, s in done), sum(o for o, _ in done)) if done else "-"


def kind_row(label: str, group: Sequence[Outcome]) -> str:
    """One row of the per-kind table."""
    big = [o for o in group if o.original_tokens > BIG_TOKENS]
    original = sum(o.original_tokens for o in big)
    ours = sum(o.sent_tokens for o in big)
    archived = [o for o in group if o.archived]
    total = sum(o.spans_total for o in group)
    found = sum(o.spans_found for o in group)
    joined = sum(o.spans_joined for o in group)
    cells = [
        label,
        f"{len(group)}",
        f"{len(big)}",
        f"{original:,}",
        f"{ours:,}",
        _saved(ours, original),
        _headroom_saved(big, neutral=False),
        _headroom_saved(big, neutral=True),
        f"{sum(bool(o.exact) for o in archived)}/{len(archived)}",
        f"{found:,}/{total:,} ({_pct(found, total)})" if total else "-",
        _pct(joined, total),
        _ratio([o.fidelity for o in group if o.fidelity is not None]),
    ]
    if cells[-1] == "-" and any(o.fidelity for o in group):
        cells[-1] = "nothing to check"
    return "| " + " | ".join(cells) + " |"


def kind_table(outcomes: Sequence[Outcome]) -> list[str]:
    """The per-kind and overall table."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.kind, []).append(outcome)
    lines = [
        "| kind | outputs | > 2k tokens | original tokens (> 2k) | ours sent | ours saved "
        "| headroom saved | headroom saved, tool `tool` | reversible | spans recalled "
        "| spans, seams joined | fidelity |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [kind_row(kind, group) for kind, group in sorted(kinds.items())]
    lines.append(kind_row("**all**", outcomes))
    return lines


def output_table(outcomes: Sequence[Outcome]) -> list[str]:
    """One row per output."""
    lines = [
        "| id | kind | tool | digest kind | original tokens | ours sent | headroom sent "
        "| headroom, tool `tool` | exact | spans | seams joined | fidelity | recall p50 ms |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        headroom = "-" if o.headroom_tokens is None else f"{o.headroom_tokens:,}"
        neutral = "-" if o.headroom_neutral is None else f"{o.headroom_neutral:,}"
        fidelity = f"{o.fidelity[0]:,}/{o.fidelity[1]:,}" if o.fidelity else "-"
        recall_ms = f"{statistics.median(o.recall_ms):.0f}" if o.recall_ms else "-"
        exact = "-" if o.exact is None else "yes" if o.exact else "**no**"
        lines.append(
            f"| {o.id} | {o.kind} | {o.tool} | {o.digest_kind} | {o.original_tokens:,} "
            f"| {o.sent_tokens:,} | {headroom} | {neutral} | {exact} "
            f"| {o.spans_found}/{o.spans_total} | {o.spans_joined}/{o.spans_total} "
            f"| {fidelity} | {recall_ms} |"
        )
    return lines


def _all(pairs: Sequence[tuple[int, int]]) -> bool:
    return all(kept == must for kept, must in pairs)


def target_rows(outcomes: Sequence[Outcome], speed: Sequence[Speed]) -> list[str]:
    """The targets, measured and judged."""
    big = [o for o in outcomes if o.original_tokens > BIG_TOKENS]
    original = sum(o.original_tokens for o in big)
    saved = 1 - sum(o.sent_tokens for o in big) / original if original else 0.0
    anchor = _headroom_saved(big, neutral=False)
    archived = [o for o in outcomes if o.archived]
    exact = sum(bool(o.exact) for o in archived)
    found, total = sum(o.spans_found for o in outcomes), sum(o.spans_total for o in outcomes)
    rows: list[tuple[str, str, bool | None]] = [
        (
            f"prompt tokens of outputs > 2,000 tokens saved >= {TARGET_SAVED:.0%}",
            f"{saved:.1%} (headroom-ai: {anchor})",
            saved >= TARGET_SAVED,
        ),
        (
            "`archive.get(ref)` == original, every output",
            f"{exact}/{len(outcomes)} ({len(outcomes) - len(archived)} not archived)",
            exact == len(outcomes),
        ),
        (
            f"spans returned by one recall >= {TARGET_RETRIEVED:.0%}",
            f"{found:,}/{total:,} ({_pct(found, total)})",
            total > 0 and found / total >= TARGET_RETRIEVED,
        ),
    ]
    checked = sum(o.truth.checked for o in outcomes)
    wrong = sum(len(o.truth.wrong) for o in outcomes)
    rows.append(
        (
            "every number a digest states equals the original's",
            f"{checked - wrong:,}/{checked:,} numbers true",
            checked > 0 and wrong == 0,
        )
    )
    for kind, what in FIDELITY_CHECKS.items():
        pairs = [o.fidelity for o in outcomes if o.kind == kind and o.fidelity]
        ok = _all(pairs) if sum(must for _, must in pairs) else None
        if kind == "json" and ok is not None:
            kept, must = sum(k for k, _ in pairs), sum(m for _, m in pairs)
            ok = kept >= TARGET_KEY_PATHS * must
            what = f">= {TARGET_KEY_PATHS:.0%} of each {what}"
        value = _ratio(pairs) if ok is not None else "none in the data: nothing to check"
        prefix = "" if what.startswith(">=") else "every "
        rows.append((f"fidelity: {prefix}{what} in the digest", value, ok))
    if speed:
        p50, label = max((statistics.median(s.add_ms), s.label) for s in speed)
        rows.append(
            (
                f"`add` of a 100 KB output p50 <= {TARGET_ADD_P50_MS:.0f} ms (every kind)",
                f"worst {p50:.1f} ms ({label})",
                p50 <= TARGET_ADD_P50_MS,
            )
        )
    lines = ["| target | measured | result |", "|---|---|---|"]
    verdicts = {True: "pass", False: "**miss**", None: "n/a"}
    lines += [f"| {name} | {value} | {verdicts[ok]} |" for name, value, ok in rows]
    return lines


def failure_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Fidelity and retrieval failures, by output id."""
    lines = ["## Fidelity failures", ""]
    for o in outcomes:
        if o.missing:
            shown = "; ".join(f"`{m[:120]}`" for m in o.missing[:8])
            more = f" (+{len(o.missing) - 8:,} more)" if len(o.missing) > 8 else ""
            folded = ""
            if o.folded:
                folded = f"; named one by one: {o.folded[0]:,}/{o.folded[1]:,}"
            lines.append(f"- {o.id} ({o.kind}, {len(o.missing):,} missing{folded}): {shown}{more}")
    for kind, what in FIDELITY_CHECKS.items():
        checked = [o for o in outcomes if o.kind == kind and o.fidelity is not None]
        if checked and not sum(o.fidelity[1] for o in checked if o.fidelity):
            lines.append(f"- no {kind} output has any {what.split(' of ')[0]}: nothing to check")
    if len(lines) == 2:
        lines.append("None.")
    lines += ["", "## Spans not recalled (first 3 queries per output)", ""]
    start = len(lines)
    for o in outcomes:
        if o.span_misses:
            queries = "; ".join(f"`{q[:100]}`" for q in o.span_misses[:3])
            lines.append(f"- {o.id} ({o.kind}, {len(o.span_misses)} missed): {queries}")
    if len(lines) == start:
        lines.append("None.")
    return lines + observation_lines(outcomes)


def observation_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Outputs not archived or not in the prompt, and what headroom-ai did."""
    lines = ["", "## Other observations", ""]
    for o in outcomes:
        if not o.archived:
            lines.append(f"- {o.id} ({o.kind}): not archived (sent as it was)")
        if not o.in_prompt:
            lines.append(f"- {o.id} ({o.kind}): its tool message is not in the prompt")
        if o.headroom_error:
            lines.append(f"- {o.id} ({o.kind}): headroom-ai failed: {o.headroom_error}")
    ran = [o for o in outcomes if o.headroom_tokens is not None]
    if ran:
        unchanged = sum(o.headroom_tokens == o.original_tokens for o in ran)
        seen: dict[str, int] = {}
        for o in ran:
            for transform in dict.fromkeys(
                re.sub(r":[\d.]+$", "", t) for t in o.headroom_transforms
            ):
                seen[transform] = seen.get(transform, 0) + 1
        listed = ", ".join(f"`{t}` x{n}" for t, n in sorted(seen.items(), key=lambda i: -i[1]))
        lines.append(
            f"- headroom-ai (tool names from the data) left {unchanged} of {len(ran)} outputs "
            f"at their original size; transforms it reported: {listed}"
        )
    return lines if len(lines) > 3 else []


def truth_table(outcomes: Sequence[Outcome]) -> list[str]:
    """Numbers stated in the digests against the originals', per digest kind."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        if outcome.archived:
            kinds.setdefault(outcome.digest_kind, []).append(outcome)
    lines = [
        "| digest kind | digests | numbers stated | true | wrong |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, group in sorted(kinds.items()):
        checked = sum(o.truth.checked for o in group)
        wrong = [f"{o.id}: {w}" for o in group for w in o.truth.wrong]
        listed = "; ".join(wrong[:3]) + (f" (+{len(wrong) - 3})" if len(wrong) > 3 else "")
        lines.append(
            f"| {kind} | {len(group)} | {checked:,} | {checked - len(wrong):,} | {listed or '-'} |"
        )
    return lines


def _versions(headroom: str) -> str:
    found = []
    for package in _PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join([*found, headroom])


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args: argparse.Namespace, rows: int, headroom: str, emb: Embedding) -> list[str]:
    """The results file's preamble."""
    command = shlex.join(["python", "benchmarks/tool_outputs.py", *sys.argv[1:]])
    rate = f"{emb.chunks / emb.embed_s:,.1f}" if emb.embed_s else "-"
    return [
        "# Tool outputs: compression, reversibility, retrieval, fidelity, speed",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {_cpu()}, {os.cpu_count()} CPUs",
        f"- load average at the start: {os.getloadavg()[0]:.2f} (a shared machine skews timings)",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- packages: {_versions(headroom)}",
        f"- data: `{args.data.name}`, {rows} outputs; model {args.model} (tiktoken counts)",
        f"- settings: the defaults: budget {args.budget:,} prompt tokens, compress_threshold "
        "500 tokens, bundled all-MiniLM-L6-v2 embedder, one fresh `:memory:` session per output",
        f"- retrieval: {args.spans} random {SPAN_TOKENS}-token spans per archived output "
        f"(seed {args.seed}), query = the span's first {QUERY_WORDS} words, one "
        f"`recall(ref, query, max_tokens={RECALL_TOKENS})` each; found = the span "
        "(whitespace-normalised) is inside the answer",
        "- headroom-ai: `compress(messages, model=...)` in its default mode, offline "
        "(HEADROOM_OFFLINE=1), in `benchmarks/.venv-headroom`; its tool message counted with "
        "our counter",
        f"- embedding: {emb.chunks:,} chunks in {emb.embed_s:.1f} s of embedding = **{rate} "
        f"chunks/s** (MiniLM load {emb.load_s:.1f} s; {emb.wait_s:.1f} s spent in "
        "`wait_until_indexed`)",
        f"- command: `{command}`",
        "",
    ]


def speed_table(speed: Sequence[Speed]) -> list[str]:
    """The 100 KB ``add`` timings, with ``compress`` and ``chunk`` alone."""
    lines = [
        "| 100 KB output | tokens | archived as | add p50 ms | add p95 ms | compress p50 ms "
        "| chunk p50 ms | runs |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in speed:
        p95 = sorted(s.add_ms)[max(0, round(0.95 * len(s.add_ms)) - 1)]
        lines.append(
            f"| {s.label} | {s.tokens:,} | {s.digest_kind} | {statistics.median(s.add_ms):.1f} "
            f"| {p95:.1f} | {statistics.median(s.compress_ms):.1f} "
            f"| {statistics.median(s.chunk_ms):.1f} | {len(s.add_ms)} |"
        )
    return lines


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--transcripts", type=Path, default=DEFAULT_TRANSCRIPTS)
    parser.add_argument("--limit", type=int, default=None, help="outputs, round-robin by kind")
    parser.add_argument("--spans", type=int, default=DEFAULT_SPANS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--speed-runs", type=int, default=DEFAULT_SPEED_RUNS, help="0 skips")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-headroom", action="store_true", help="skip headroom-ai")
    parser.add_argument("--headroom-python", type=Path, default=DEFAULT_HEADROOM_PYTHON)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables and write the results file."""
    args = parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} not found (see ../shared/data/README.md)")
        return 0
    rows = load_rows(args.data, args.limit)
    seed_tiktoken_cache()
    encoding = tiktoken.get_encoding(encoding_for_model(args.model)[0])
    emb = Embedding()
    started = time.perf_counter()
    load_minilm()
    emb.load_s = time.perf_counter() - started
    outcomes = []
    for number, row in enumerate(rows, 1):
        started = time.perf_counter()
        outcomes.append(measure_output(row, args, encoding, emb))
        print(
            f"[{number}/{len(rows)}] {row['id']} {row['kind']}: "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    headroom = "headroom-ai: skipped (--no-headroom)"
    if not args.no_headroom:
        counter = counter_for_model(args.model)
        for neutral in (False, True):
            results, headroom = run_headroom(
                rows, args.headroom_python, args.model, neutral=neutral
            )
            add_headroom(outcomes, results, counter, neutral=neutral)
    speed = (
        [time_speed(label, text, args.speed_runs, args) for label, text in hundred_kb_outputs(rows)]
        if args.speed_runs
        else []
    )
    repeats = (
        repeat_lines(
            measure_repeats(load_runs(args.transcripts), budget=args.budget, threshold=500)
        )
        if args.transcripts.exists()
        else [f"skipped: {args.transcripts} not found"]
    )
    targets = target_rows(outcomes, speed)
    lines = [
        *header(args, len(rows), headroom, emb),
        "## Targets",
        "",
        *targets,
        "",
        "## Per kind",
        "",
        "Token columns count outputs over 2,000 tokens; the others count every output.",
        "headroom-ai ran twice: with the data's tool names as the function names (the anchor;",
        "it leaves tools it knows as file reads, `read_file` among them, uncompressed by name)",
        "and with every tool named `tool`. Spans, seams joined: the same test after taking out",
        "the `</archived><archived ...>` wrappers between the chunks of one answer.",
        "Fidelity: log = distinct lines with ERROR or Traceback, code = top-level def/class",
        "names (`ast`), json = distinct key paths up to 3 keys deep (`a.b[].c`).",
        "",
        *kind_table(outcomes),
        "",
        "## Truthfulness: numbers stated vs true",
        "",
        "Every number a digest sent for a dev output states (the header's tokens; lines,",
        "error lines, repeat counts and run lengths of logs; rows of tables; matches, files",
        "and repeats of search results; lines and definitions of code; lines of text;",
        "files and +/- lines of diffs; items and keys of JSON), checked against the value",
        "computed from the original by `benchmarks/digest_truth.py`'s own code.",
        "",
        *truth_table(outcomes),
        "",
        "## Repeats: deltas on the dev agent transcripts",
        "",
        "`agent_transcripts/swe_agent_dev.jsonl` replayed into a fresh session per run, with",
        "deltas (`same as ref X except:` + a unified diff) and without; tokens are those sent",
        "for the tool outputs in the prompt right after each one was added.",
        "",
        *repeats,
        "",
        "Re-reads: each dev code output read, then read again with its middle line edited,",
        "in one session; tokens as sent in the prompt.",
        "",
        *reread_lines(
            [(r["id"], r["content"]) for r in rows if r["kind"] == "code"], budget=args.budget
        ),
        "",
        "## Speed: `add` of a 100 KB output (compress + archive; fake embedder)",
        "",
        "Each output is the kind's outputs joined (repeated as needed) and cut to 100 KB on a",
        "line (json is therefore one JSON document cut short); mixed takes the outputs under",
        "20 KB of every kind in turn. A fresh `:memory:` session per run; the tool call is",
        "added first, untimed; one warm-up run dropped. compress and chunk: the same output",
        "through `compress()` and `chunk()` alone (both are part of `add`).",
        "",
        *speed_table(speed),
        "",
        "## Per output",
        "",
        *output_table(outcomes),
        "",
        *failure_lines(outcomes),
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"written to {args.out}", file=sys.stderr)
    return 1 if args.check and "**miss**" in "\n".join(targets) else 0


if __name__ == "__main__":
    sys.exit(main())
