"""Every number a digest states equals the original's: generated outputs with known counts.

Each test builds an output of one kind whose counts are known by construction, digests it
under a budget that forces a lossy digest, parses every number the digest states and
checks it against the truth.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter as Tally
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory._compress import compress, detect_kind
from memory._compress.base import line_count
from memory._compress.logs import draft_log

Count = Callable[[str], int]
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


# --- search results ----------------------------------------------------------------------

_SNIPPETS = st.sampled_from(
    ["import os", "value = compute(x)", "return None", "raise ValueError(msg)", "# TODO fix"]
)


@st.composite
def search_results(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    files = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6, unique=True))
    matches: list[tuple[str, int, str]] = []
    for name in files:
        numbers = draw(st.lists(st.integers(1, 5000), min_size=1, max_size=60, unique=True))
        for number in sorted(numbers):
            unique = draw(st.booleans())
            text = f"    v_{name}_{number} = 1" if unique else f"    {draw(_SNIPPETS)}"
            matches.append((f"src/{name}/mod.py", number, text))
    return matches


@SETTINGS
@given(matches=search_results(), budget=st.integers(60, 600), final_newline=st.booleans())
def test_search_digest_states_true_counts(
    count: Count, matches: list[tuple[str, int, str]], budget: int, final_newline: bool
) -> None:
    text = "\n".join(f"{p}:{n}:{t}" for p, n, t in matches) + "\n" * final_newline
    assert detect_kind(text) == "search"
    digest = compress(text, count=count, max_tokens=budget, kind="search")
    if digest.lossless:
        return
    per_file = Tally(p for p, _, _ in matches)
    per_text = Tally(t.strip() for _, _, t in matches)
    assert digest.note == (
        f"search results · {len(matches):,} match{'es' * (len(matches) != 1)} in "
        f"{len(per_file)} file{'s' * (len(per_file) != 1)}"
    )
    head = re.match(r"([\d,]+) matching lines? in ([\d,]+) files?", digest.text)
    if head is not None:  # a tiny budget may cut even the first line
        assert (_number(head[1]), _number(head[2])) == (len(matches), len(per_file))
    for path, n, first, last in re.findall(
        r"^  (\S+): ([\d,]+) match(?:es)?, lines (\d+)-(\d+)$", digest.text, re.MULTILINE
    ):
        numbers = [m for p, m, _ in matches if p == path]
        assert _number(n) == per_file[path]
        assert (int(first), int(last)) == (min(numbers), max(numbers))
    for n, quoted in re.findall(r"^  x([\d,]+) ('.*?'|\".*?\") \(first in", digest.text, re.M):
        assert _number(n) == per_text[ast.literal_eval(quoted)]
    shown_files = re.findall(r"^  (\S+): [\d,]+ match", digest.text, re.MULTILINE)
    more = re.search(r"\[… ([\d,]+) more files?, ([\d,]+) match(?:es)? …\]", digest.text)
    if more is not None:
        assert _number(more[1]) == len(per_file) - len(shown_files)
        assert _number(more[2]) == sum(per_file[p] for p in per_file if p not in shown_files)


def test_grep_output_is_not_a_csv_and_counts_the_line_seen_80_times(count: Count) -> None:
    lines = []
    for i in range(240):
        code = "import os" if i % 3 == 0 else f"value_{i} = compute(x, {i})"
        lines.append(f"src/pkg/mod{i % 7}.py:{i * 3 + 1}:    {code}")
    digest = compress("\n".join(lines), count=count, max_tokens=300)
    assert digest.kind == "search"
    assert digest.items == 240
    assert "240 matching lines in 7 files" in digest.text
    assert "x80 'import os'" in digest.text


# --- tables --------------------------------------------------------------------------


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(_WORDS), st.integers(0, 10**6), st.sampled_from(["yes", "no"])),
        min_size=3,
        max_size=120,
    ),
    header=st.booleans(),
    budget=st.integers(80, 400),
)
def test_table_digest_states_true_row_and_value_counts(
    count: Count, rows: list[tuple[str, int, str]], header: bool, budget: int
) -> None:
    lines = ["name,size,ok"] if header else []
    lines += [f"{a},{b},{c}" for a, b, c in rows]
    digest = compress("\n".join(lines), count=count, max_tokens=budget, kind="table")
    if digest.lossless:
        return
    stated = re.match(r"([\d,]+) rows x (\d+) columns", digest.text)
    assert stated is not None
    assert _number(stated[1]) == len(rows)  # the header is never counted as a row
    assert digest.items == len(rows)
    assert f"table · {len(rows):,} rows" in digest.note
    truth = Tally(c for _, _, c in rows)
    summary = re.search(r"^  (?:ok|col3): (.*)$", digest.text, re.MULTILINE)
    if summary is not None:
        for value, n in re.findall(r"(yes|no) x(\d+)", summary[1]):
            assert int(n) == truth[value]


def test_a_first_row_that_recurs_in_its_column_is_data(count: Count) -> None:
    rows = ["main.py,fix"] + [f"{name},fix" for name in ("a.py", "main.py", "b.py") * 30]
    digest = compress("\n".join(rows), count=count, max_tokens=120, kind="table")
    assert digest.text.startswith("91 rows x 2 columns")
    assert "fix x91" in digest.text


# --- logs ---------------------------------------------------------------------------


@SETTINGS
@given(
    picks=st.lists(st.integers(0, 4), min_size=20, max_size=400),
    final_newline=st.booleans(),
    budget=st.integers(80, 400),
)
def test_log_digest_states_true_line_repeat_and_error_counts(
    count: Count, picks: list[int], final_newline: bool, budget: int
) -> None:
    kinds = (
        ["INFO worker ready"],
        ["INFO worker ready"],  # the most common line, as in a real log
        ["DEBUG cache warm"],
        ["ERROR upstream refused the connection"],
        ["Traceback (most recent call last):", '  File "app.py", line 7, in run', "KeyError: x"],
    )
    lines = [line for p in picks for line in kinds[p]]
    text = "\n".join(lines) + "\n" * final_newline
    digest = compress(text, count=count, max_tokens=budget, kind="log")
    if digest.lossless:
        return
    flagged = picks.count(3) + 3 * picks.count(4)
    assert digest.note == (
        f"log · {len(lines):,} lines · {flagged:,} error/warning/traceback line"
        + ("" if flagged == 1 else "s")
    )
    assert digest.items == len(lines) == line_count(text)
    shapes = Tally(re.sub(r"\d+", "#", line).strip() for line in lines)  # digits masked
    for n, quoted in re.findall(r"x(\d+) ('[^']*')", digest.text):
        assert int(n) == shapes[ast.literal_eval(quoted)]
    for shown, n, first, last in re.findall(
        r"^(.*?)   ⟨x(\d+) (?:identical|similar), lines (\d+)-(\d+)⟩", digest.text, re.M
    ):
        run = lines[int(first) - 1 : int(last)]
        assert len(run) == int(n)
        assert set(run) == {shown}


# --- code, text, json, diff -------------------------------------------------------------


@SETTINGS
@given(
    functions=st.integers(1, 30),
    methods=st.integers(0, 10),
    nested=st.integers(0, 5),
    final_newline=st.booleans(),
)
def test_code_digest_states_true_line_and_definition_counts(
    count: Count, functions: int, methods: int, nested: int, final_newline: bool
) -> None:
    parts = [f"def f{i}(x):\n    y = x + {i}\n    return y\n" for i in range(functions)]
    parts.append(
        "class K:\n"
        + "".join(f"    def m{i}(self):\n        return {i}\n" for i in range(methods))
        + "    pass\n"
    )
    parts += [
        f"def outer{i}():\n    def inner():\n        return 1\n    return inner\n"
        for i in range(nested)
    ]
    text = "\n".join(parts)
    text = text if final_newline else text.rstrip("\n")
    digest = compress(text, count=count, max_tokens=60, kind="code")
    if digest.lossless:
        return
    truth = functions + 1 + methods + 2 * nested
    assert digest.note == f"python · {line_count(text):,} lines · {truth} definitions"


@SETTINGS
@given(lines=st.lists(st.sampled_from(_WORDS), min_size=30, max_size=300), end=st.booleans())
def test_text_digest_states_the_true_line_count(count: Count, lines: list[str], end: bool) -> None:
    text = "\n".join(f"{w} {i} {w}" for i, w in enumerate(lines)) + "\n" * end
    digest = compress(text, count=count, max_tokens=60, kind="text")
    assert digest.note == f"text · {len(lines):,} lines"


@SETTINGS
@given(
    items=st.integers(2, 300),
    versions=st.integers(13, 400),
    budget=st.integers(60, 300),
)
def test_json_digest_states_true_item_and_key_counts(
    count: Count, items: int, versions: int, budget: int
) -> None:
    document = {
        "name": "pkg",
        "time": {f"0.{i}.0": f"2026-01-{i % 28 + 1:02d}" for i in range(versions)},
        "files": [{"path": f"f{i}.py", "size": i} for i in range(items)],
    }
    digest = compress(json.dumps(document), count=count, max_tokens=budget, kind="json")
    if digest.lossless:
        return
    assert digest.note == "json object · 3 keys"
    folded = re.search(r"^time: ([\d,]+) keys like \"0\.0\.0\"", digest.text, re.MULTILINE)
    if folded is not None:
        assert _number(folded[1]) == versions
    listed = re.search(r"^files: array · ([\d,]+) items", digest.text, re.MULTILINE)
    if listed is not None:
        assert _number(listed[1]) == items


@SETTINGS
@given(changes=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=8))
def test_diff_digest_states_true_file_and_line_counts(
    count: Count, changes: list[tuple[int, int]]
) -> None:
    parts = []
    for i, (added, removed) in enumerate(changes):
        body = [f"-old {i} {k}" for k in range(removed)] + [f"+new {i} {k}" for k in range(added)]
        parts.append(
            f"diff --git a/f{i}.py b/f{i}.py\n--- a/f{i}.py\n+++ b/f{i}.py\n"
            f"@@ -1,{removed + 1} +1,{added + 1} @@\n context\n" + "\n".join(body)
        )
    text = "\n".join(parts) + "\n"
    digest = compress(text, count=count, max_tokens=40, kind="diff")
    if digest.lossless:
        return
    added = sum(a for a, _ in changes)
    removed = sum(r for _, r in changes)
    assert digest.note == f"diff · {len(changes)} files · +{added} -{removed}"


def test_log_gap_markers_count_original_lines_not_collapsed_runs(count: Count) -> None:
    """Runs of similar lines collapse to one unit; a dropped unit's lines all count."""
    lines: list[str] = []
    for i in range(500):
        lines.append(f"2024-01-01 12:00:{i % 60:02d} INFO worker processed batch {i}")
        if i % 10 == 9:
            lines.append("2024-01-01 12:00:00 ERROR connection refused to db:5432")
    body = draft_log("\n".join(lines), count=count, max_tokens=700).text
    omitted = sum(int(n) for n in re.findall(r"\[… (\d+) lines? omitted …\]", body))
    shown = body.split("\n").count("2024-01-01 12:00:00 ERROR connection refused to db:5432")
    assert shown + omitted == len(lines)
