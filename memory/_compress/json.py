"""Digest JSON: lossless rows or minified JSON when they fit, else a key tree.

The key tree gives every distinct key path (``installed[].metadata.author``, array items
merged as ``[]``) a line with its types: all paths up to three keys deep come first, then
the budget left buys, shallow paths first, their counts and values, the first and last
items of the main array with outliers, and deeper paths. If not even that fits, key names
are grouped by parent (``a[].b.{c,d}``). Map-like objects (over 48 keys, or mostly keys
with digits, like npm's ``time.<version>``) fold into ``path.*`` with a key count and a
few example keys: that is how a digest "shows every key path"; :func:`key_paths` lists
them. Truncated JSON (a tool that cut its output) is repaired by closing the open
brackets at the last complete value; text after the JSON (``npm warn``) is kept.
"""

from __future__ import annotations

import json
import re
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

from memory._compress.base import Counter, Draft, DraftCompressor, clip, safe_count
from memory._compress.fit import fit_graded, select_lines
from memory._compress.json_parse import ParsedJSON, parse_lenient, repair_truncated

__all__ = [
    "JSONCompressor",
    "ParsedJSON",
    "draft_json",
    "key_paths",
    "parse_lenient",
    "repair_truncated",
]

MAX_NODES = 200_000  # values visited when building the schema
MAP_MIN_KEYS = 48  # an object with more keys is summarised as a map
_PLAIN_KEY = re.compile(r"[A-Za-z_$@][\w$@\-]*\Z")
_NAMES = "null bool int float str array"
_TYPE_NAMES = dict(zip((type(None), bool, int, float, str, list), _NAMES.split(), strict=True))


def _is_map(obj: dict[str, Any]) -> bool:
    if len(obj) > MAP_MIN_KEYS:
        return True
    digit_keys = sum(1 for k in obj if any(c.isdigit() for c in k))
    return len(obj) > 12 and digit_keys >= 0.8 * len(obj)


def _join(path: str, key: str, *, wildcard: bool = False) -> str:
    plain = wildcard or _PLAIN_KEY.match(key)
    part = key if plain else json.dumps(key, ensure_ascii=False)
    return f"{path}.{part}" if path else part


@dataclass(slots=True)
class _Stats:
    """Accumulates what one key path holds across all its occurrences."""

    depth: int  # keys from the root; array items do not count
    parent: str  # the path of the enclosing object or array
    seen: int = 0
    types: dict[str, int] = field(default_factory=dict)
    low: Any = None  # the value range
    high: Any = None
    examples: list[Any] = field(default_factory=list)
    distinct: set[str] = field(default_factory=set)
    sizes: tuple[int, int] | None = None  # the fewest and most items (or keys)
    map_keys: list[str] = field(default_factory=list)  # a few keys of a map-like object

    def add(self, value: Any) -> None:
        self.seen += 1
        name = _TYPE_NAMES.get(type(value), "object")
        self.types[name] = self.types.get(name, 0) + 1
        if name in ("array", "object"):
            n, low_high = len(value), self.sizes
            self.sizes = (min(low_high[0], n), max(low_high[1], n)) if low_high else (n, n)
            return
        if name in ("int", "float"):
            if not isinstance(self.low, (int, float)):  # numbers win over strings
                self.low = self.high = value
            self.low, self.high = min(self.low, value), max(self.high, value)
        elif name == "str" and not isinstance(self.low, (int, float)):
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)
        if name == "str" and len(self.distinct) < 1000:
            self.distinct.add(value)
        if len(self.examples) < 3 and value not in self.examples:
            self.examples.append(value)


def _collect(value: Any) -> dict[str, _Stats]:
    stats: dict[str, _Stats] = {}
    budget = [MAX_NODES]

    def visit(node: Any, path: str, depth: int, parent: str) -> None:
        if budget[0] <= 0:
            return
        budget[0] -= 1
        entry = stats.get(path)
        if entry is None:
            entry = stats[path] = _Stats(depth, parent)
        entry.add(node)
        if isinstance(node, list):
            for item in node:
                visit(item, path + "[]", depth, path)
        elif isinstance(node, dict) and _is_map(node):
            if not entry.map_keys:
                keys = list(node)
                entry.map_keys = [*keys[:2], keys[-1]]
            for child in node.values():
                visit(child, _join(path, "*", wildcard=True), depth + 1, path)
        elif isinstance(node, dict):
            for key, child in node.items():
                visit(child, _join(path, str(key)), depth + 1, path)

    visit(value, "", 0, "")
    return stats


def _tree_order(stats: dict[str, _Stats]) -> list[str]:
    """Order the paths as a tree: children under their parent, siblings as first seen."""
    keys: dict[str, tuple[int, ...]] = {}
    for index, (path, entry) in enumerate(stats.items()):
        keys[path] = (keys.get(entry.parent, ()) if path else ()) + (index,)
    return sorted(stats, key=keys.__getitem__)


def _short(value: Any, width: int) -> str:
    return clip(json.dumps(value, ensure_ascii=False), width)


def _describe(path: str, stats: dict[str, _Stats], width: int) -> str:
    """Describe one key path; ``width`` 0 is the compact form (types and presence)."""
    entry = stats[path]
    parent = stats.get(entry.parent) if path else None
    types, items = "|".join(entry.types), stats.get(path + "[]")
    if items is not None and not width:
        types = types.replace("array", "array[" + "|".join(items.types) + "]")
    if entry.map_keys:
        return f"{path or '(root)'}: " + " · ".join([_folded(path, stats), *_extra(entry, width)])
    parts = [types]
    if width and entry.seen > 1:
        parts.append(f"x{entry.seen}")
    if parent and entry.seen < parent.seen and not path.endswith("[]"):
        share = f"{entry.seen}/{parent.seen}"
        parts.append(f"optional ({share})" if width else f"in {share}")
    if entry.sizes and (width or entry.map_keys):
        (low, high), unit = entry.sizes, "item" if "array" in entry.types else "key"
        parts.append(f"{low}..{high} {unit}s" if low < high else f"{low} {unit}{'s' * (low != 1)}")
    if width and entry.seen == 1 and entry.examples:
        parts.append(_short(entry.examples[0], width))
    elif width and entry.low is not None and entry.low != entry.high:
        parts.append(f"{_short(entry.low, width // 2)}..{_short(entry.high, width // 2)}")
    elif width and entry.examples:
        parts.append("e.g. " + ", ".join(_short(e, width // 2) for e in entry.examples[:2]))
    if width and "str" in entry.types and entry.seen > 1:
        parts.append(f"{len(entry.distinct)}{'+' * (len(entry.distinct) >= 1000)} distinct")
    return f"{path or '(root)'}: " + " · ".join(parts)


def _folded(path: str, stats: dict[str, _Stats]) -> str:
    """Describe a map-like object: ``290 keys like "0.14.0", "1.0.0": str``."""
    entry = stats[path]
    low, high = entry.sizes or (0, 0)
    size = f"{low:,}..{high:,} keys" if low < high else f"{low:,} key{'s' * (low != 1)}"
    child = stats.get(_join(path, "*", wildcard=True))
    values = "|".join(child.types) if child is not None else "-"
    values = {"object": "{...}", "array": "[...]"}.get(values, values)
    return f"{size} like {', '.join(_short(k, 24) for k in entry.map_keys)}: {values}"


def _extra(entry: _Stats, width: int) -> list[str]:
    """How often a map occurs and, where it is optional, in how many of its parents."""
    return [f"x{entry.seen}"] if width and entry.seen > 1 else []


def _outliers(items: list[Any], limit: int, width: int) -> list[str]:
    """Describe the object items whose key set differs from the majority's."""
    signatures = Tally(tuple(item) for item in items if isinstance(item, dict))
    if not signatures:
        return []
    majority = signatures.most_common(1)[0][0]
    out: list[str] = []
    for index, item in enumerate(items):
        if len(out) >= limit:
            break
        if not isinstance(item, dict):
            out.append(
                f"  [{index}] {_TYPE_NAMES.get(type(item), 'object')}: {_short(item, width)}"
            )
        elif tuple(item) != majority:
            missing = [k for k in majority if k not in item]
            extra = {k: v for k, v in item.items() if k not in majority}
            shown = _short(extra, width) if extra else "-"
            out.append(f"  [{index}] missing {missing or '-'}; extra {shown}")
    return out


def _samples(value: Any, part: int, level: int, width: int) -> str | None:
    """Show part 0 (first item), 1 (last) or 2 (outliers) of the root or main array."""
    if level < 3 + (part > 0):
        return None
    arrays = [("", value)] if isinstance(value, list) else list(value.items())
    sizes = [len(v) if isinstance(v, list) else -1 for _, v in arrays]
    name, items = arrays[sizes.index(max(sizes))] if arrays else ("", None)
    if not isinstance(items, list) or len(items) < 2:
        return None
    name = _join("", name) if name else ""
    if part == 2:
        outliers = _outliers(items, 3 + level, width)
        title = f"outliers of {name or 'the items'} (keys differ from the majority):"
        return "\n".join([title, *outliers]) if outliers else None
    index = (len(items) - 1) * part
    return f"{name or 'item '}[{index}]: {_short(items[index], width * 3)}"


# (deepest key path shown, line width; 0 = compact); every level shows depth <= 3.
_LEVELS = ((3, 0), (3, 24), (3, 40), (4, 40), (4, 60), (6, 80), (99, 120))
_SAMPLE_RANK = 3.5  # samples come after the key paths to depth 3, before deeper ones


def _grouped(stats: dict[str, _Stats], order: list[str]) -> tuple[list[str], list[float]]:
    """Group key names by parent, ``a[].b.{c,d}``: the fallback when one per line is too big."""
    children: dict[str, list[str]] = {}
    for path in order:
        entry = stats[path]
        if path and not path.endswith("[]"):
            name = path[len(entry.parent) + 1 :] if entry.parent else path
            children.setdefault(entry.parent, []).append(name)
    lines = [
        clip(f"{p}.{{{','.join(k)}}}" if p else f"{{{','.join(k)}}}") for p, k in children.items()
    ]
    ranks = [float(stats[p].depth + 1) for p in children]
    return lines, ranks


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
    """Make a JSON digest: lossless if it fits, else a key tree with samples and outliers.

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
    order = _tree_order(stats)
    extra: list[str] = []
    if parsed.repaired:
        extra.append(f"[JSON cut short at char {parsed.end:,} of {len(text):,}; repaired]")
    if parsed.trailing:
        extra.append("after the JSON: " + clip(parsed.trailing.replace("\n", " ⏎ "), 400))

    def line(index: int, level: int) -> str | None:
        depth, width = _LEVELS[level]
        if index >= len(order):
            return _samples(parsed.value, index - len(order), level, width)
        path = order[index]
        hidden = stats[path].depth > depth or (not width and path.endswith("[]"))
        return None if hidden else _describe(path, stats, width)

    ranks = [float(stats[p].depth) for p in order] + [_SAMPLE_RANK] * 3
    best = fit_graded(line, ranks, len(_LEVELS), count=count, max_tokens=max_tokens, footer=extra)
    if best is None:  # not even one compact line per path fits: group the names by parent
        lines, ranks = _grouped(stats, order)
        best = select_lines(
            lines + extra, ranks + [0.0] * len(extra), count=count, max_tokens=max_tokens
        )
    cut = " · cut short: counts are of the part before the cut" if parsed.repaired else ""
    return Draft(best, items, False, note + cut)


def key_paths(value: Any, max_depth: int = 3) -> list[str]:
    """List the distinct key paths of ``value`` up to ``max_depth`` keys, as digests show them.

    Children of map-like objects (many data-like keys) are folded into ``path.*``; array
    items are merged as ``[]`` but are not key paths themselves (``a[].b`` is, ``a[]`` not).
    """
    stats = _collect(value)
    return [p for p, e in stats.items() if p and not p.endswith("[]") and e.depth <= max_depth]


class JSONCompressor(DraftCompressor):
    """Digest JSON documents (see :func:`draft_json`)."""

    kind = "json"
    draft = staticmethod(draft_json)
