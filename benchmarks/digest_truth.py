"""Check the numbers a digest states against its original: the truthfulness benchmark.

Each checker finds the numbers one kind of digest states (lines, rows, matches, files,
repeats, items, keys, tokens) and computes the true value from the original with its
own code, not the compressor's: a wrong number is a ``Finding`` with both values.
``json_paths_stated`` counts the key paths of a JSON digest, folded maps counted as
stated when their ``N keys like ...`` line is there.

Used by ``benchmarks/tool_outputs.py``.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memory._compress.json import _collect, parse_lenient
from memory._compress.logs import IMPORTANT_LINE, _template

_SEARCH = re.compile(r"(?=[^\s:]*[A-Za-z./_])([^\s:]+):([1-9]\d*):(?:[1-9]\d*:)?(.*)\Z")
_PLAIN_KEY = re.compile(r"[A-Za-z_$@][\w$@\-]*\Z")


@dataclass(slots=True)
class Truth:
    """Numbers checked in one digest and the ones found wrong."""

    checked: int = 0
    wrong: list[str] = field(default_factory=list)

    def check(self, what: str, stated: int, true: int) -> None:
        self.checked += 1
        if stated != true:
            self.wrong.append(f"{what}: stated {stated:,}, true {true:,}")


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def check_header(sent: str, original: str, count: Callable[[str], int], truth: Truth) -> None:
    """The ``[ref … · N tokens → M …]`` header: N the original's tokens, M the sent text's."""
    found = re.search(r" · ([\d,]+) tokens → ([\d,]+) · ", sent.split("\n", 1)[0])
    if found is not None:
        truth.check("original tokens", _n(found[1]), count(original))
        truth.check("digest tokens", _n(found[2]), count(sent))


def _flagged(lines: list[str]) -> int:
    """Lines that mention an error or warning, or belong to a Python traceback block."""
    flagged, inside = 0, False
    for line in lines:
        if "Traceback (most recent call last)" in line:
            inside = True
            flagged += 1
        elif inside:
            flagged += 1
            # The block ends with its first unindented, non-blank line: the exception.
            inside = line[:1] in (" ", "\t") or not line.strip()
        else:
            flagged += bool(IMPORTANT_LINE.search(line))
    return flagged


def _check_log(sent: str, original: str, truth: Truth) -> None:
    lines = _lines(original)
    note = re.search(r"log · ([\d,]+) lines · ([\d,]+) error/warning/traceback lines", sent)
    if note is not None:
        truth.check("log lines", _n(note[1]), len(lines))
        truth.check("error/warning/traceback lines", _n(note[2]), _flagged(lines))
    repeated = re.search(r"^most repeated: (.*)$", sent, re.MULTILINE)
    if repeated is not None:
        templates = Tally(_template(line) for line in lines if line.strip())
        for n, quoted in re.findall(
            r"x(\d+) ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", repeated[1]
        ):
            template = ast.literal_eval(quoted)
            if not template.endswith("…"):
                true = sum(c for t, c in templates.items() if t.strip() == template)
                truth.check(f"repeats of {template[:40]!r}", int(n), true)
    for n, a, b in re.findall(r"⟨x(\d+) (?:identical|similar), lines (\d+)-(\d+)⟩", sent):
        truth.check(f"run at lines {a}-{b}", int(n), int(b) - int(a) + 1)


def _check_table(sent: str, original: str, truth: Truth) -> None:
    stated = re.search(r"([\d,]+) rows x (\d+) columns", sent)
    if stated is None:
        return
    lines = [line for line in original.split("\n") if line.strip()]
    outside = 0
    if len(lines) > 1 and re.match(r"^\s*-{2,}(?:\s+-{2,})+\s*$", lines[1]):
        outside = 2  # pip list: names and a rule
    elif lines and re.match(r"total \d+", lines[0]):
        outside = 1  # ls -l
    truth.check("table rows", _n(stated[1]), len(lines) - outside)


def _check_search(sent: str, original: str, truth: Truth) -> None:
    matches = [m for line in original.split("\n") if (m := _SEARCH.match(line))]
    files = Tally(m[1] for m in matches)
    head = re.search(r"([\d,]+) matching lines? in ([\d,]+) files?", sent)
    if head is not None:
        truth.check("matching lines", _n(head[1]), len(matches))
        truth.check("files", _n(head[2]), len(files))
    for path, n in re.findall(r"^  (\S+): ([\d,]+) match(?:es)?, lines", sent, re.MULTILINE):
        truth.check(f"matches in {path}", _n(n), files[path])
    texts = Tally(m[3].strip() for m in matches)
    for n, quoted in re.findall(r"^  x([\d,]+) ('.*?'|\".*?\") \(first in", sent, re.MULTILINE):
        text = ast.literal_eval(quoted)
        if not text.endswith("…"):
            truth.check(f"repeats of {text[:40]!r}", _n(n), texts[text])


def _check_code(sent: str, original: str, truth: Truth) -> None:
    note = re.search(r"· ([\d,]+) lines · (\d+) definitions(?! in the first)", sent)
    if note is None:
        return
    truth.check("code lines", _n(note[1]), len(_lines(original)))
    try:
        tree = ast.parse(original)
    except (SyntaxError, ValueError):
        return
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    truth.check("definitions", int(note[2]), sum(isinstance(n, kinds) for n in ast.walk(tree)))


def _check_text(sent: str, original: str, truth: Truth) -> None:
    note = re.search(r"text · ([\d,]+) lines?", sent)
    if note is not None:
        truth.check("text lines", _n(note[1]), len(_lines(original)))


def _check_diff(sent: str, original: str, truth: Truth) -> None:
    note = re.search(r"diff · (?:(\d+) commits · )?(\d+) files · \+(\d+) -(\d+)", sent)
    if note is None:
        return
    lines = original.split("\n")
    files = sum(1 for line in lines if line.startswith("diff --git "))
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++ "))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("--- "))
    truth.check("files changed", int(note[2]), files)
    truth.check("lines added", int(note[3]), added)
    truth.check("lines removed", int(note[4]), removed)


def _resolve(value: Any, path: str) -> Any:
    """Follow a dotted key path without ``[]`` or ``*``; None when it does not resolve."""
    node = value
    for part in re.findall(r'"(?:[^"\\]|\\.)*"|[^.]+', path):
        key = json.loads(part) if part.startswith('"') else part
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _check_json(sent: str, original: str, truth: Truth) -> None:
    try:
        parsed = parse_lenient(original)
    except ValueError:
        return
    value = parsed.value
    note = re.search(r"json (array|object) · ([\d,]+) (items|keys)", sent)
    if note is not None and not parsed.repaired:
        truth.check("top-level items/keys", _n(note[2]), len(value))
    pattern = r"^([^\s:\[\]*]+): (?:array · )?([\d,]+) (keys like|items)"
    for path, n, what in re.findall(pattern, sent, re.MULTILINE):
        node = _resolve(value, path)
        if isinstance(node, (dict, list)) and not parsed.repaired:
            truth.check(f"{what.split()[0]} of {path}", _n(n), len(node))


CHECKERS: dict[str, Callable[[str, str, Truth], None]] = {
    "log": _check_log,
    "table": _check_table,
    "search": _check_search,
    "code": _check_code,
    "text": _check_text,
    "diff": _check_diff,
    "json": _check_json,
}


def check_digest(sent: str, original: str, digest_kind: str, count: Callable[[str], int]) -> Truth:
    """Check every number ``sent`` (a header and a digest) states about ``original``."""
    truth = Truth()
    check_header(sent, original, count, truth)
    checker = CHECKERS.get(digest_kind)
    if checker is not None:
        checker(sent, original, truth)
    return truth


def _folded(value: Any, max_depth: int = 3) -> dict[str, str]:
    """Each distinct key path (depth <= 3) and its form with map keys folded into ``*``."""
    maps = {p for p, e in _collect(value).items() if e.map_keys}
    paths: dict[str, str] = {}
    stack: list[tuple[Any, str, str, int]] = [(value, "", "", 0)]
    while stack:
        node, path, folded, depth = stack.pop()
        if isinstance(node, list):
            stack.extend((item, path + "[]", folded + "[]", depth) for item in node)
        elif isinstance(node, dict) and depth < max_depth:
            is_map = folded in maps
            for key, child in node.items():
                part = key if _PLAIN_KEY.match(key) else json.dumps(key, ensure_ascii=False)
                child_path = f"{path}.{part}" if path else part
                child_folded = (
                    (f"{folded}.*" if folded else "*")
                    if is_map
                    else (f"{folded}.{part}" if folded else part)
                )
                paths.setdefault(child_path, child_folded)
                stack.append((child, child_path, child_folded, depth + 1))
    return paths


def _shown(path: str, digest: str) -> bool:
    return re.search(re.escape(path) + r"(?![\w$@\-])", digest) is not None


def json_paths_stated(value: Any, digest: str) -> tuple[int, int, list[str]]:
    """Key paths a digest states: named, or inside a map it folds as ``N keys like``.

    Returns:
        (stated, total, missing paths).
    """
    missing: list[str] = []
    paths = _folded(value)
    for path, folded in paths.items():
        if folded == path or not folded.endswith("*"):
            stated = _shown(path, digest) or _shown(folded, digest)
        else:
            owner = folded[:-2] if folded.endswith(".*") else ""
            line = re.escape(owner or "(root)") + r": [\d,.]+ keys? like "
            stated = re.search("^" + line, digest, re.MULTILINE) is not None
        if not stated:
            missing.append(path)
    return len(paths) - len(missing), len(paths), missing
