"""Pick a kind from the content and make a digest that fits, failing open.

:func:`compress` never raises for any string: a compressor that fails falls back to a
head/tail digest of kind ``"text"``; a digest that would be larger than the original is
replaced by the original itself (marked lossless).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from memory._compress.base import (
    Counter,
    Digest,
    DigestKind,
    Draft,
    safe_count,
    sanitize,
    tokens_of_original,
)
from memory._compress.fit import head_tail
from memory._compress.json import repair_truncated
from memory._compress.search import MIN_SHARE as SEARCH_SHARE
from memory._compress.search import search_share
from memory._compress.table import parse_table
from memory._errors import ConfigError

__all__ = ["compress", "detect_kind"]

SAMPLE_CHARS = 64_000  # detection looks at this much of the start of the text
_MIN_SCORE = 0.3
_DIFF = re.compile(r"^diff --git |^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
_DIFF_FILES = re.compile(r"^--- \S.*\n\+\+\+ \S", re.MULTILINE)
_HTML_START = re.compile(r"<!doctype html|<html[\s>]|<\?xml", re.IGNORECASE)
_HTML_TAG = re.compile(
    r"</?(?:html|head|body|div|span|p|a|ul|ol|li|table|tr|td|th|h[1-6]|script|style|meta|"
    r"link|br|img|section|article|nav|pre|code|form|input)\b[^>]*>",
    re.IGNORECASE,
)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |return\b|if .*:$|elif |else:|for .* in .*:$|"
    r"while .*:$|try:|except\b|finally:|with .*:$|raise |yield\b|@\w|async |await |self\.|# |"
    r"(?:const|let|var|function|fn|func|pub|public|private|protected|static|package|using|"
    r"#include|#define|struct|enum|impl|interface|type)\b|//|/\*|\*/|[})\]];?$)"
    r"|[;{]\s*$|^\s*[\w.\[\]]+\s*[+\-*/|&]?=\s*\S"
)
_LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d[T ]+\d\d:\d\d|\b\d\d:\d\d:\d\d\b|^\[\s*\d+\.\d+\]"
    r"|\b(?:DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|FATAL|CRITICAL|TRACE)\b"
    r"|\.\.\. ?(?:ok|FAIL|ERROR|skipped|done)\b|^(?:Ran \d+ tests?|OK|FAILED)\b"
    r"|^commit [0-9a-f]{7,40}|^(?:Author|Date|Merge):|^ \S.*\|\s+\d+ ?[+-]*$"
    r"|^\s*\d+ files? changed|^(?:Get|Hit|Ign|Err):\d|Reading (?:package lists|database)"
    r"|^(?:Unpacking|Setting up|Preparing to unpack|Selecting previously|Processing triggers"
    r"|Removing|Purging|Log started|Log ended)\b"
    r"|^\s*(?:Collecting|Downloading|Installing|Requirement already satisfied|Successfully"
    r"|Building|Using cached|Obtaining|Getting requirements|Attempting|Found existing)\b"
    r"|^npm (?:warn|ERR!|error)|^\s*(?:Compiling|Finished|Running|Fresh)\s"
    r"|^\s*Traceback|^\s+File \".*\", line \d+|^(?:PASS|FAIL)\b|\b\d+ (?:passed|failed)\b"
)
_TABLE_LINE = re.compile(
    r"^[-dlcbps][rwxsStT-]{9}[.+@]?\s+\d+\s"
    r"|^\s*\d+\s+\d+\s+[-dlcbps][rwxsStT-]{9}"
    r"|^\S+ - \S|^\s*\|.*\|\s*$"
)
_HINTS: tuple[tuple[DigestKind, tuple[str, ...]], ...] = (
    ("diff", ("diff", "git log -p", "git show", "patch")),
    ("table", ("ls", "find", "pip list", "apt-cache", "csv", "tsv", "ps", "df")),
    ("log", ("log", "test", "build", "install", "make", "npm", "cargo")),
    ("code", ("read_file", "cat", ".py", ".js", ".ts", ".rs", ".go", ".java", ".c")),
    ("html", ("fetch", "curl", "http", "browse")),
)


def _looks_binary(sample: str) -> bool:
    controls = sum(1 for c in sample[:4096] if c < " " and c not in "\n\r\t\f\v\x1b")
    return controls > 0.05 * min(len(sample), 4096)


def _json_like(sample: str) -> bool:
    stripped = sample.lstrip()
    if stripped[:1] not in ("{", "["):
        return False
    try:
        json.JSONDecoder().raw_decode(stripped)
        return True
    except json.JSONDecodeError as exc:
        error = exc
    # A cut-off document fails near its end or inside its last string; a log line that
    # starts with "[" fails at once.
    cut_in_string = error.msg.startswith("Unterminated string")
    if len(stripped) < 200 or not (cut_in_string or error.pos >= 0.9 * len(stripped)):
        return False
    repaired = repair_truncated(stripped[: error.pos])
    if repaired is None:
        return False
    try:
        json.loads(repaired)
    except ValueError:
        return False
    return True


def _aligned_share(lines: list[str]) -> float:
    """Share of lines whose column starts (after 2+ spaces) match the most common set."""
    signatures: dict[tuple[int, ...], int] = {}
    for line in lines:
        starts = tuple(m.end() for m in re.finditer(r"\S {2,}(?=\S)", line.rstrip()))
        if starts:
            signatures[starts] = signatures.get(starts, 0) + 1
    return max(signatures.values(), default=0) / max(1, len(lines))


def _delimited_share(lines: list[str]) -> float:
    best = 0.0
    for delimiter in ("\t", ",", ";"):
        tally: dict[int, int] = {}
        for line in lines:
            # Code and JSON end lines with commas; CSV rows do not.
            width = -1 if line.rstrip().endswith(delimiter) else line.count(delimiter)
            tally[width] = tally.get(width, 0) + 1
        width = max(tally, key=lambda w: (tally[w], w))
        if width >= 1 and len(lines) >= 3:
            best = max(best, tally[width] / len(lines))
    return best


def _share(lines: list[str], pattern: re.Pattern[str]) -> float:
    return sum(1 for line in lines if pattern.search(line)) / max(1, len(lines))


def _outside_docstrings(lines: list[str]) -> list[str]:
    """Drop lines inside triple-quoted strings: prose that says nothing about the kind."""
    kept: list[str] = []
    inside = False
    for line in lines:
        quotes = line.count('"""') + line.count("'''")
        if not inside and not quotes:
            kept.append(line)
        inside = inside != (quotes % 2 == 1)
    # An excerpt that starts inside a docstring flips the parity: then keep everything.
    return kept if len(kept) >= 0.3 * len(lines) else lines


def _line_scores(lines: list[str]) -> dict[DigestKind, float]:
    code_lines = _outside_docstrings([re.sub(r"^\d+:", "", line) for line in lines])
    dashed = len(lines) > 2 and bool(re.match(r"^\s*-{2,}(?:\s+-{2,})+\s*$", lines[1]))
    table = max(
        _share(lines, _TABLE_LINE),
        _delimited_share(lines),
        0.8 * _aligned_share(lines),
        1.0 if dashed else 0.0,
    )
    return {"table": table, "log": _share(lines, _LOG_LINE), "code": _share(code_lines, _CODE_LINE)}


def _parses_as_table(lines: list[str]) -> bool:
    try:
        parse_table("\n".join(lines[:200]))
    except ValueError:
        return False
    return True


def detect_kind(text: str, *, hint: str | None = None) -> DigestKind:
    """Guess the kind of a tool output from its content.

    Args:
        text: The tool output.
        hint: The tool's name or command line, used only to break near-ties.

    Returns:
        One of ``json``, ``diff``, ``html``, ``search``, ``table``, ``log``, ``code`` or
        ``text``.
    """
    sample = text[:SAMPLE_CHARS]
    if not sample.strip() or _looks_binary(sample):
        return "text"
    if _json_like(sample):
        return "json"
    if _DIFF.search(sample) and (_DIFF_FILES.search(sample) or "diff --git" in sample):
        return "diff"
    head = sample[:2048]
    if _HTML_START.search(head) or len(_HTML_TAG.findall(sample)) >= max(20, len(sample) // 400):
        return "html"
    lines = [line for line in sample.split("\n")[:400] if line.strip()]
    if len(text) > len(sample) and len(lines) > 1:
        lines.pop()  # the sample may end mid-line
    if search_share(lines) >= SEARCH_SHARE:
        return "search"
    scores = _line_scores(lines)
    if scores["table"] >= _MIN_SCORE and not _parses_as_table(lines):
        scores["table"] = 0.0
    if hint:
        lowered = hint.lower()
        for kind, words in _HINTS:
            if kind in scores and any(word in lowered for word in words):
                scores[kind] += 0.15
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= _MIN_SCORE else "text"


def _drafter(kind: DigestKind) -> Callable[..., Draft]:
    # Imported here so one broken optional backend (selectolax) cannot break the others.
    if kind == "json":
        from memory._compress.json import draft_json

        return draft_json
    if kind == "log":
        from memory._compress.logs import draft_log

        return draft_log
    if kind == "code":
        from memory._compress.code import draft_code

        return draft_code
    if kind == "table":
        from memory._compress.table import draft_table

        return draft_table
    if kind == "search":
        from memory._compress.search import draft_search

        return draft_search
    if kind == "diff":
        from memory._compress.diff import draft_diff

        return draft_diff
    if kind == "html":
        from memory._compress.html import draft_html

        return draft_html
    from memory._compress.text import draft_text

    return draft_text


def _fallback(text: str, count: Counter, max_tokens: int) -> Draft:
    """Digest as plain text; if even that fails, keep the head and the tail."""
    from memory._compress.text import draft_text

    try:
        return draft_text(text, count=count, max_tokens=max_tokens)
    except Exception:
        pass
    try:
        body = head_tail(text, count=count, max_tokens=max_tokens)
    except Exception:
        body = text[: max_tokens * 2]
    return Draft(body, None, False, f"text · head and tail of {len(text):,} chars")


def compress(
    text: str, *, count: Counter, max_tokens: int, kind: DigestKind | None = None
) -> Digest:
    """Make a digest of a tool output that fits ``max_tokens``, lossless when possible.

    An output that already fits is returned whole. Otherwise the kind's compressor runs
    (detected from the content unless ``kind`` is given); if it fails, a head/tail
    digest of kind ``"text"`` is made instead. A digest is never larger than its
    original: when it would be, the original is returned.

    Args:
        text: The tool output.
        count: Counts the tokens of a string.
        max_tokens: The budget for the digest body.
        kind: The content kind, to skip detection.

    Returns:
        The digest; deterministic for a given input, counter and budget.

    Raises:
        ConfigError: ``max_tokens`` is less than 1.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    original_tokens = tokens_of_original(count, text)
    try:
        chosen: DigestKind = kind or detect_kind(text)
    except Exception:
        chosen = "text"
    if original_tokens <= max_tokens:
        return Digest(text, chosen, original_tokens, original_tokens, None, True, "verbatim")
    try:
        draft = _drafter(chosen)(text, count=count, max_tokens=max_tokens)
    except Exception:
        chosen, draft = "text", _fallback(text, count, max_tokens)
    body = draft.text if draft.lossless else sanitize(draft.text)
    tokens = safe_count(count, body)
    if tokens > max_tokens and not draft.lossless:
        body = head_tail(body, count=count, max_tokens=max_tokens)
        tokens = safe_count(count, body)
    if tokens >= original_tokens:
        return Digest(text, chosen, original_tokens, original_tokens, None, True, "verbatim")
    return Digest(body, chosen, original_tokens, tokens, draft.items, draft.lossless, draft.note)
