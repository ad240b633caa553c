"""Check tool-output digests on real data: kind detection, token reduction, fidelity.

Reads ``../shared/data/tool_outputs/tool_outputs_dev.jsonl`` (relative to the project
root; skips cleanly when it is absent) and prints, per kind: how often ``detect_kind``
agrees with the dataset, how much smaller the digests are, and whether they keep what
must survive:

* logs: every ERROR/WARN/FAIL line and every traceback line;
* code: every top-level ``def``/``class`` name (Python that parses);
* json: every distinct key path up to depth 3 (children of map-like objects folded);
* any output digested as log or text ("errors kept"): every line the log rules flag.

The budget is 12% of the original, at least 100 and at most 1,500 tokens. Tokens are
counted with a word-and-punctuation regex, which tracks BPE counts closely enough here.

Run: ``python benchmarks/compress_check.py [--data PATH]``
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory._compress import compress, detect_kind  # noqa: E402
from memory._compress.json import key_paths, parse_lenient  # noqa: E402
from memory._compress.logs import important_lines  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tool_outputs" / "tool_outputs_dev.jsonl"
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Count words and punctuation marks, a stand-in for a BPE tokenizer."""
    return len(_TOKEN.findall(text))


def budget_for(tokens: int) -> int:
    """Return the digest budget used for an original of ``tokens`` tokens."""
    return min(1500, max(100, tokens * 12 // 100))


def _log_check(content: str, digest: str) -> tuple[int, int]:
    lines = content.split("\n")
    must = [line for line, flag in zip(lines, important_lines(lines), strict=True) if flag]
    must = [line for line in must if line.strip()]
    return sum(1 for line in must if line in digest), len(must)


def _code_check(content: str, digest: str) -> tuple[int, int]:
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return 0, 0
    names = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    kept = sum(1 for n in names if re.search(rf"\b(?:def|class) {re.escape(n)}\b", digest))
    return kept, len(names)


def _json_check(content: str, digest: str) -> tuple[int, int]:
    paths = key_paths(parse_lenient(content).value, 3)
    return sum(1 for p in paths if p in digest), len(paths)


CHECKS: dict[str, Callable[[str, str], tuple[int, int]]] = {
    "log": _log_check,
    "code": _code_check,
    "json": _json_check,
}


def run(data: Path) -> dict[str, dict[str, Any]]:
    """Compress every output in ``data`` and return per-kind results."""
    results: dict[str, dict[str, Any]] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        kind, content = row["kind"], row["content"]
        tokens = count_tokens(content)
        started = time.perf_counter()
        digest = compress(content, count=count_tokens, max_tokens=budget_for(tokens))
        elapsed = time.perf_counter() - started
        entry = results.setdefault(
            kind,
            {
                "n": 0,
                "agree": 0,
                "orig": 0,
                "dig": 0,
                "big": [],
                "kept": 0,
                "must": 0,
                "ms": [],
                "err_kept": 0,
                "err_must": 0,
            },
        )
        entry["n"] += 1
        entry["agree"] += detect_kind(content) == kind
        entry["detectable"] = kind != "agent"  # agent observations are mixed
        entry["orig"] += tokens
        entry["dig"] += digest.digest_tokens
        entry["ms"].append(elapsed * 1000)
        if tokens > 2000:
            entry["big"].append(1 - digest.digest_tokens / tokens)
        # The error rule is a log rule: "except ValueError:" in code is not an error line.
        err_kept, err_must = (0, 0)
        if digest.kind in ("log", "text"):
            err_kept, err_must = _log_check(content, digest.text)
        entry["err_kept"] += err_kept
        entry["err_must"] += err_must
        if kind in CHECKS:
            kept, must = CHECKS[kind](content, digest.text)
            entry["kept"] += kept
            entry["must"] += must
    return results


def report(results: dict[str, dict[str, Any]]) -> None:
    """Print one line per kind and a total."""
    print(
        f"{'kind':6} {'n':>3} {'detect':>7} {'orig tok':>9} {'digest':>7} {'saved':>6} "
        f"{'saved>2k':>9} {'fidelity':>14} {'errors kept':>12} {'p50 ms':>7}"
    )
    all_big: list[float] = []
    for kind, e in sorted(results.items()):
        all_big += e["big"]
        big = f"{statistics.mean(e['big']):.1%}" if e["big"] else "-"
        fidelity = f"{e['kept']}/{e['must']}" if e["must"] else "-"
        errors = f"{e['err_kept']}/{e['err_must']}" if e["err_must"] else "-"
        detect = f"{e['agree'] / e['n']:.0%}" if e["detectable"] else "n/a"
        print(
            f"{kind:6} {e['n']:>3} {detect:>7} {e['orig']:>9,} {e['dig']:>7,} "
            f"{1 - e['dig'] / e['orig']:>6.1%} {big:>9} {fidelity:>14} {errors:>12} "
            f"{statistics.median(e['ms']):>7.1f}"
        )
    orig = sum(e["orig"] for e in results.values())
    dig = sum(e["dig"] for e in results.values())
    print(
        f"total: {orig:,} -> {dig:,} tokens ({1 - dig / orig:.1%} saved); outputs over 2,000 "
        f"tokens: mean {statistics.mean(all_big):.1%} saved, min {min(all_big):.1%}"
    )


def main() -> None:
    """Parse arguments, run the check and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"skipped: {args.data} not found")
        return
    report(run(args.data))


if __name__ == "__main__":
    main()
