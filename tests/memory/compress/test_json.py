"""Tests for memory._compress.json: lossless rows, schema digests, truncated JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory._compress.json import (
    JSONCompressor,
    draft_json,
    key_paths,
    parse_lenient,
    repair_truncated,
)

Count = Callable[[str], int]


def _decode_rows(text: str) -> list[dict[str, Any]]:
    """Rebuild the objects of a lossless row digest."""

    def cell(raw: str) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    header, *rows = text.split("\n")
    keys = [cell(k) for k in header.split("|")]
    return [dict(zip(keys, (cell(c) for c in row.split("|")), strict=True)) for row in rows]


def test_uniform_flat_array_becomes_lossless_rows(count: Count) -> None:
    items = [{"name": f"pkg{i}", "version": f"1.{i}.0", "ok": i % 2 == 0} for i in range(50)]
    draft = draft_json(json.dumps(items, indent=2), count=count, max_tokens=10_000)
    assert draft.lossless
    assert draft.text.split("\n")[0] == "name|version|ok"
    assert draft.items == 50
    assert _decode_rows(draft.text) == items


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(max_size=12),
)


@given(st.lists(st.fixed_dictionaries({"a": scalars, "b": scalars, "c d": scalars}), min_size=1))
def test_row_digest_round_trips(items: list[dict[str, Any]]) -> None:
    def count(text: str) -> int:
        return 1

    items = [{"a": d["a"], "b": d["b"], "c d": d["c d"]} for d in items]  # one key order
    draft = draft_json(json.dumps(items), count=count, max_tokens=100)
    assert draft.lossless
    assert _decode_rows(draft.text) == items


def test_minified_json_is_the_lossless_fallback(count: Count) -> None:
    doc = {"config": {"retries": 3, "hosts": ["a", "b"]}, "name": "x"}
    text = json.dumps(doc, indent=4)
    draft = draft_json(text, count=count, max_tokens=count(text) - 5)
    assert draft.lossless
    assert json.loads(draft.text) == doc


def test_lossy_schema_shows_types_ranges_and_outliers(count: Count) -> None:
    items: list[dict[str, Any]] = [
        {"id": i, "user": {"name": f"user{i}", "age": 20 + i % 50}, "tags": ["a", "b"]}
        for i in range(300)
    ]
    items[123] = {"id": 123, "error": "timeout"}
    draft = draft_json(json.dumps(items), count=count, max_tokens=400)
    assert not draft.lossless
    assert draft.note == "json array · 300 items"
    text = draft.text
    for path in ("[].id", "[].user.name", "[].user.age", "[].tags[]", "[].error"):
        assert path in text
    assert "0..299" in text
    assert "20..69" in text
    assert "[123]" in text  # the outlier
    assert count(text) <= 400


def test_map_like_objects_are_folded(count: Count) -> None:
    doc = {"name": "react", "time": {f"1.{i}.0": f"2020-01-{i % 28 + 1:02d}" for i in range(500)}}
    draft = draft_json(json.dumps(doc), count=count, max_tokens=300)
    assert "time.*: str" in draft.text
    assert "500 keys" in draft.text
    assert '"1.0.0", "1.1.0", "1.499.0"' in draft.text  # a few example keys
    assert key_paths(doc) == ["name", "time", "time.*"]


def test_truncated_json_is_repaired(count: Count) -> None:
    doc = {"version": "1", "installed": [{"name": f"p{i}", "meta": {"v": i}} for i in range(400)]}
    text = json.dumps(doc, indent=2)[:5000]
    parsed = parse_lenient(text)
    assert parsed.repaired
    assert parsed.value["version"] == "1"
    draft = draft_json(text, count=count, max_tokens=200)
    assert "installed[].meta.v" in draft.text
    assert "cut short" in draft.text
    assert "cut short" in draft.note


def test_repair_truncated_closes_brackets() -> None:
    assert json.loads(repair_truncated('{"a": [1, 2, {"b": "x') or "") == {"a": [1, 2, {}]}
    assert json.loads(repair_truncated('{"a": [1, 2], "b": 3.') or "") == {"a": [1, 2]}
    assert repair_truncated('{"a": [1}') is None


def test_trailing_text_is_kept(count: Count) -> None:
    text = json.dumps({"k": list(range(300))}) + "\nnpm warn Unknown user config"
    parsed = parse_lenient(text)
    assert parsed.trailing == "npm warn Unknown user config"
    draft = draft_json(text, count=count, max_tokens=120)
    assert "npm warn Unknown user config" in draft.text


@pytest.mark.parametrize("text", ["", "hello", "[2024-01-01] log line", '{"a": 1,, }', "42"])
def test_non_json_raises_value_error(text: str, count: Count) -> None:
    with pytest.raises(ValueError):
        draft_json(text, count=count, max_tokens=50)


def test_compressor_returns_json_digest(count: Count) -> None:
    text = json.dumps([{"i": i, "s": "x" * (i % 9)} for i in range(500)])
    digest = JSONCompressor().compress(text, count=count, max_tokens=150)
    assert digest.kind == "json"
    assert digest.items == 500
    assert digest.digest_tokens <= 150 < digest.original_tokens


def _shown(path: str, text: str) -> bool:
    """Whether ``path`` appears whole in ``text`` (``a.name`` is not shown by ``a.name_x``)."""
    return re.search(re.escape(path) + r"(?![\w$@\-])", text) is not None


_OPTIONAL = ("author", "author_email", "license", "home_page", "keywords", "maintainer")


def _pip_inspect(packages: int) -> dict[str, Any]:
    """A ``pip inspect``-like report: installed packages with metadata dicts of varying keys."""
    installed = []
    for i in range(packages):
        metadata: dict[str, Any] = {
            "metadata_version": f"2.{i % 4}",
            "name": f"package-{i}",
            "version": f"{i % 7}.{i % 13}.{i}",
            "summary": f"Package number {i} does one thing well",
            "description": f"# Package {i}\n\n" + "Long README text. " * 40,
            "classifier": [f"Programming Language :: Python :: 3.{v}" for v in range(8, 13)],
            "requires_dist": [f"dep{j}>=1.{j}" for j in range(i % 5)],
        }
        for j, key in enumerate(_OPTIONAL):
            if (i + j) % (j + 2) == 0:
                metadata[key] = ["kw"] if key == "keywords" else f"{key} of {i}"
        item = {"metadata": metadata, "metadata_location": f"/venv/lib/p{i}.dist-info"}
        installed.append(item | {"installer": "pip", "requested": i % 3 == 0})
    return {"version": "1", "pip_version": "23.2.1", "installed": installed}


def test_pip_inspect_digest_lists_every_key_path_to_depth_3(count: Count) -> None:
    doc = _pip_inspect(60)
    text = json.dumps(doc, indent=2)
    draft = draft_json(text, count=count, max_tokens=600)
    paths = key_paths(doc)
    assert "installed[].metadata.author" in paths
    assert "installed[].metadata.maintainer" in paths
    assert [p for p in paths if not _shown(p, draft.text)] == []
    assert 0.9 * 600 < count(draft.text) <= 600  # the budget left is spent on details
    assert "installed[].metadata.author: str · x30 · optional (30/60) · " in draft.text
    assert "installed[0]: " in draft.text  # a representative item comes after the paths
    assert draft_json(text, count=count, max_tokens=600) == draft  # deterministic


def test_key_paths_come_before_values_when_the_budget_is_small(count: Count) -> None:
    doc = _pip_inspect(60)
    draft = draft_json(json.dumps(doc), count=count, max_tokens=220)
    assert all(_shown(p, draft.text) for p in key_paths(doc))
    assert "installed[].metadata.author: str · in 30/60" in draft.text  # compact: type, share
    assert "installed[].metadata.keywords: array[str] · in 10/60" in draft.text
    assert "installed[0]" not in draft.text
    assert count(draft.text) <= 220


def test_truncated_pip_inspect_keeps_its_key_paths(count: Count) -> None:
    doc = _pip_inspect(60)
    text = json.dumps(doc, indent=2)
    cut = text[: len(text) * 2 // 3]
    draft = draft_json(cut, count=count, max_tokens=800)
    assert "cut short" in draft.note
    assert all(_shown(p, draft.text) for p in key_paths(parse_lenient(cut).value))
    assert count(draft.text) <= 800


def test_tiny_budget_groups_key_names_by_parent(count: Count) -> None:
    doc = _pip_inspect(60)
    draft = draft_json(json.dumps(doc), count=count, max_tokens=150)
    assert "{version,pip_version,installed}" in draft.text
    assert "installed[].metadata.{metadata_version,name,version," in draft.text
    assert "maintainer" in draft.text
    assert count(draft.text) <= 150


nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)


@settings(max_examples=60)
@given(st.one_of(st.lists(nested, min_size=1), st.dictionaries(st.text(max_size=6), nested)))
def test_digest_always_fits(doc: Any) -> None:
    def count(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass")) // 4 + 1

    for max_tokens in (30, 120, 600):
        draft = draft_json(json.dumps(doc), count=count, max_tokens=max_tokens)
        assert count(draft.text) <= max_tokens
