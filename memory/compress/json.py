"""Digest JSON: lossless rows or minified JSON when they fit, else a typed schema.

The schema lists every key path (``installed[].metadata.name``) with its types, how often
it occurs and its value range, so a model can see the whole shape of a 400 KB document
in a few hundred tokens. Truncated JSON (a tool that cut its output) is repaired by
closing the open brackets at the last complete value; text after the JSON (``npm warn``)
is kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from memory.compress.base import (
    Counter,
    Draft,
    DraftCompressor,
    clip,
    fit_levels,
    safe_count,
    select_lines,
)

__all__ = [
    "JSONCompressor",
    "ParsedJSON",
    "draft_json",
    "key_paths",
    "parse_lenient",
    "repair_truncated",
]

MAX_PARSE_CHARS = 2_000_000  # beyond this only a prefix is parsed (repaired as truncated)
MAX_NODES = 200_000  # values visited when building the schema
MAP_MIN_KEYS = 48  # an object with more keys is summarised as a map
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{},]')
_PLAIN_KEY = re.compile(r"[A-Za-z_$@][\w$@\-]*\Z")
_CLOSER = {"{": "}", "[": "]"}
_NAMES = "null bool int float str array"
_TYPE_NAMES = dict(zip((type(None), bool, int, float, str, list), _NAMES.split(), strict=True))


@dataclass(frozen=True, slots=True)
class ParsedJSON:
    """A leniently parsed JSON document.

    Attributes:
        value: The decoded value.
        end: Offset in the input where the JSON (or its repaired prefix) stops.
        repaired: Whether brackets were closed to make a truncated prefix parse.
        trailing: Text after the JSON value, stripped.
    """

    value: Any
    end: int
    repaired: bool
    trailing: str


def repair_truncated(text: str) -> str | None:
    """Close the open brackets of a truncated JSON prefix at its last complete value.

    Returns:
        The repaired JSON text, or ``None`` when brackets do not match.
    """
    stack: list[str] = []
    safe_end, safe_closers = -1, ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            break  # an unterminated string: the text was cut inside it
        if token in "[{":
            stack.append(_CLOSER[token])
            safe_end, safe_closers = match.end(), "".join(reversed(stack))
        elif token in "]}":
            if not stack or stack.pop() != token:
                return None
            safe_end, safe_closers = match.end(), "".join(reversed(stack))
            if not stack:
                return text[:safe_end]
        elif token == ",":
            safe_end, safe_closers = match.start(), "".join(reversed(stack))
    if safe_end < 0:
        return None
    return text[:safe_end] + safe_closers


def parse_lenient(text: str) -> ParsedJSON:
    """Parse the JSON value at the start of ``text``, repairing truncation.

    Raises:
        ValueError: ``text`` does not start with a JSON object or array.
    """
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] not in ("{", "["):
        raise ValueError("not a JSON object or array")
    window = text[: start + MAX_PARSE_CHARS]
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(window, start)
        return ParsedJSON(value, end, False, text[end:].strip())
    except json.JSONDecodeError as exc:
        error_at = exc.pos
        # Only a document cut short is repaired; a syntax error mid-way is not JSON.
        at_end = error_at >= len(window.rstrip()) or exc.msg.startswith("Unterminated string")
        if not at_end:
            raise ValueError(f"invalid JSON at char {error_at}: {exc.msg}") from None
    fixed = repair_truncated(window[start:error_at])
    if fixed is None:
        raise ValueError("JSON could not be repaired")
    value = json.loads(fixed)
    if not isinstance(value, (dict, list)):
        raise ValueError("not a JSON object or array")
    return ParsedJSON(value, error_at, True, text[error_at:].strip())


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), "object")


def _is_map(obj: dict[str, Any]) -> bool:
    if len(obj) > MAP_MIN_KEYS:
        return True
    digit_keys = sum(1 for k in obj if any(c.isdigit() for c in k))
    return len(obj) > 12 and digit_keys >= 0.8 * len(obj)


def _join(path: str, key: str, *, wildcard: bool = False) -> str:
    plain = wildcard or _PLAIN_KEY.match(key)
    part = key if plain else json.dumps(key, ensure_ascii=False)
    return f"{path}.{part}" if path else part


class _Stats:
    """Accumulates what one key path holds across all its occurrences."""

    __slots__ = ("depth", "distinct", "examples", "high", "low", "seen", "sizes", "types")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.seen = 0
        self.types: dict[str, int] = {}
        self.low: Any = None
        self.high: Any = None
        self.examples: list[Any] = []
        self.distinct: set[str] = set()
        self.sizes: list[int] = []

    def add(self, value: Any) -> None:
        self.seen += 1
        name = _type_name(value)
        self.types[name] = self.types.get(name, 0) + 1
        if name in ("int", "float"):
            self._widen(float(value), value)
        elif name == "str":
            if not isinstance(self.low, (int, float)):
                self.low = value if self.low is None else min(self.low, value)
                self.high = value if self.high is None else max(self.high, value)
            if len(self.distinct) < 1000:
                self.distinct.add(value)
        elif name in ("array", "object") and len(self.sizes) < 100_000:
            self.sizes.append(len(value))
        small = name not in ("array", "object") and len(self.examples) < 3
        if small and value not in self.examples:
            self.examples.append(value)

    def _widen(self, number: float, value: Any) -> None:
        # Numbers win over strings for the range: a numeric range says more.
        if not isinstance(self.low, (int, float)):
            self.low = self.high = value
        elif number < self.low:
            self.low = value
        elif number > self.high:
            self.high = value


def _collect(value: Any) -> dict[str, _Stats]:
    stats: dict[str, _Stats] = {}
    budget = [MAX_NODES]

    def visit(node: Any, path: str, depth: int) -> None:
        if budget[0] <= 0:
            return
        budget[0] -= 1
        entry = stats.get(path)
        if entry is None:
            entry = stats[path] = _Stats(depth)
        entry.add(node)
        if isinstance(node, list):
            for item in node:
                visit(item, path + "[]", depth)
        elif isinstance(node, dict):
            if _is_map(node):
                for child in node.values():
                    visit(child, _join(path, "*", wildcard=True), depth + 1)
            else:
                for key, child in node.items():
                    visit(child, _join(path, str(key)), depth + 1)

    visit(value, "", 0)
    return stats


def _short(value: Any, width: int) -> str:
    return clip(json.dumps(value, ensure_ascii=False), width)


def _describe(path: str, entry: _Stats, parent_seen: int, width: int) -> str:
    types = "|".join(entry.types)
    parts = [types]
    if entry.seen > 1:
        parts.append(f"x{entry.seen}")
    if parent_seen and entry.seen < parent_seen and not path.endswith("[]"):
        parts.append(f"optional ({entry.seen}/{parent_seen})")
    if entry.sizes:
        low, high = min(entry.sizes), max(entry.sizes)
        unit = "items" if "array" in entry.types else "keys"
        if low == high:
            parts.append(f"{low} {unit[:-1] if low == 1 else unit}")
        else:
            parts.append(f"{low}..{high} {unit}")
    if entry.seen == 1 and entry.examples:
        parts.append(_short(entry.examples[0], width))
    elif entry.low is not None and entry.low != entry.high:
        parts.append(f"{_short(entry.low, width // 2)}..{_short(entry.high, width // 2)}")
    elif entry.examples:
        parts.append("e.g. " + ", ".join(_short(e, width // 2) for e in entry.examples[:2]))
    if "str" in entry.types and entry.seen > 1:
        many = "1000+" if len(entry.distinct) >= 1000 else str(len(entry.distinct))
        parts.append(f"{many} distinct")
    return f"{path or '(root)'}: " + " · ".join(parts)


def _parent(path: str) -> str:
    return path[:-2] if path.endswith("[]") else path[: max(path.rfind("."), 0)]


def _outliers(items: list[Any], limit: int, width: int) -> list[str]:
    """Describe the object items whose key set differs from the majority's."""
    signatures: dict[tuple[str, ...], int] = {}
    for item in items:
        if isinstance(item, dict):
            sig = tuple(item)
            signatures[sig] = signatures.get(sig, 0) + 1
    if not signatures:
        return []
    majority = max(signatures, key=lambda s: signatures[s])
    common = set(majority)
    out: list[str] = []
    for index, item in enumerate(items):
        if len(out) >= limit:
            break
        if not isinstance(item, dict):
            out.append(f"  [{index}] {_type_name(item)}: {_short(item, width)}")
        elif tuple(item) != majority:
            missing = [k for k in majority if k not in item]
            extra = {k: v for k, v in item.items() if k not in common}
            shown = _short(extra, width) if extra else "-"
            out.append(f"  [{index}] missing {missing or '-'}; extra {shown}")
    return out


def _samples(value: Any, level: int, width: int) -> list[str]:
    if not isinstance(value, list) or len(value) < 2 or level < 3:
        return []
    lines = [f"first item: {_short(value[0], width * 3)}"]
    if level >= 4:
        lines.append(f"last item [{len(value) - 1}]: {_short(value[-1], width * 3)}")
        outliers = _outliers(value, 3 + level, width)
        if outliers:
            lines.append("outliers (keys differ from the majority):")
            lines.extend(outliers)
    return lines


_LEVELS = ((1, 24), (2, 32), (3, 40), (3, 60), (4, 60), (6, 80), (99, 120))


def _schema_lines(stats: dict[str, _Stats], max_depth: int, width: int) -> list[str]:
    lines = []
    for path, entry in stats.items():
        if entry.depth <= max_depth:
            parent = stats.get(_parent(path)) if path else None
            lines.append(_describe(path, entry, parent.seen if parent else 0, width))
    return lines


def _lossless(parsed: ParsedJSON) -> list[str]:
    """Return lossless renderings of the document, the most compact first."""
    if parsed.repaired:
        return []
    value = parsed.value
    tail = f"\n{parsed.trailing}" if parsed.trailing else ""
    out = [json.dumps(value, ensure_ascii=False, separators=(",", ":")) + tail]
    rows = _as_rows(value)
    if rows is not None:
        out.insert(0, rows + tail)
    return out


def _cell(value: Any) -> str:
    """Write a row cell: plain strings as they are, anything ambiguous as JSON."""
    plain = isinstance(value, str) and value and value == value.strip()
    if plain and not any(c in value for c in '|\n\r"'):
        try:
            json.loads(value)
        except ValueError:
            return str(value)
    # "|" only occurs inside JSON strings, where its escape keeps the cells splittable.
    return json.dumps(value, ensure_ascii=False).replace("|", "\\u007c")


def _as_rows(value: Any) -> str | None:
    """Render an array of flat objects sharing one key order as ``a|b`` rows."""
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        return None
    keys = list(value[0])
    if not keys:
        return None
    lines = ["|".join(_cell(k) for k in keys)]
    for item in value:
        if not isinstance(item, dict) or list(item) != keys:
            return None
        if any(isinstance(v, (dict, list)) for v in item.values()):
            return None
        lines.append("|".join(_cell(v) for v in item.values()))
    return "\n".join(lines)


def draft_json(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a JSON digest: lossless if it fits, else a schema with samples and outliers.

    Raises:
        ValueError: ``text`` is not (a possibly truncated) JSON object or array.
    """
    parsed = parse_lenient(text)
    items = len(parsed.value)
    shape = "array · {} items" if isinstance(parsed.value, list) else "object · {} keys"
    note = "json " + shape.format(items)
    for candidate in _lossless(parsed):
        if safe_count(count, candidate) <= max_tokens:
            return Draft(candidate, items, True, note + " · lossless")
    stats = _collect(parsed.value)
    extra: list[str] = []
    if parsed.repaired:
        extra.append(f"[JSON cut short at char {parsed.end:,} of {len(text):,}; repaired]")
    if parsed.trailing:
        extra.append("after the JSON: " + clip(parsed.trailing.replace("\n", " ⏎ "), 400))

    def render(level: int) -> str:
        depth, width = _LEVELS[level]
        body = _schema_lines(stats, depth, width) + _samples(parsed.value, level, width)
        return "\n".join(body + extra)

    best = fit_levels(render, len(_LEVELS), count=count, max_tokens=max_tokens)
    if safe_count(count, best) > max_tokens:
        lines = _schema_lines(stats, 99, 24)
        ranks = [float(entry.depth) for entry in stats.values()]
        best = select_lines(
            lines + extra, ranks + [0.0] * len(extra), count=count, max_tokens=max_tokens
        )
    return Draft(best, items, False, note + (" · truncated" if parsed.repaired else ""))


def key_paths(value: Any, max_depth: int = 3) -> list[str]:
    """List the distinct key paths of ``value`` up to ``max_depth`` keys, as digests show them.

    Children of map-like objects (many data-like keys) are folded into ``path.*``.
    """
    return [p for p, e in _collect(value).items() if p and 0 < e.depth <= max_depth]


class JSONCompressor(DraftCompressor):
    """Digest JSON documents (see :func:`draft_json`)."""

    kind = "json"
    draft = staticmethod(draft_json)
