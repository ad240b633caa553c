"""Tests for memory._compress.dispatch: detection and the compress contract."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory._compress import Digest, compress, detect_kind
from memory._errors import ConfigError

Count = Callable[[str], int]


def cheap(text: str) -> int:
    return len(text) // 4 + 1


SAMPLES = {
    "json": json.dumps({"a": [{"b": i} for i in range(50)]}, indent=2),
    "diff": "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n",
    "html": "<!DOCTYPE html><html><body><p>Hello</p></body></html>",
    "table": "Package    Version\n---------- -------\nanyio      4.16.0\nidna       3.20\n",
    "log": "\n".join(f"2024-01-01 10:00:{i:02d} INFO step {i} done" for i in range(30)),
    "code": "import os\n\n\ndef f(x):\n    return x\n\n\nclass A:\n    pass\n",
    "text": "This is a plain paragraph of prose. It has a few sentences in it.",
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_detect_kind(kind: str) -> None:
    assert detect_kind(SAMPLES[kind]) == kind


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "\x00\x01\x02binary\x00" * 50,
        "[2024-01-01 10:00] started\n[2024-01-01 10:01] ok",
    ],
)
def test_detect_kind_odd_inputs(text: str) -> None:
    assert detect_kind(text) in ("text", "log")


def test_hint_breaks_ties() -> None:
    ambiguous = "x = 1\ny = 2\n2024-01-01 10:00:01 start\n2024-01-01 10:00:02 stop"
    assert detect_kind(ambiguous, hint="tail app.log") == "log"
    assert detect_kind(ambiguous, hint="read_file foo.py") == "code"


def test_fitting_output_is_returned_verbatim(count: Count) -> None:
    digest = compress("small output", count=count, max_tokens=100)
    assert digest == Digest("small output", "text", 4, 4, None, True, "verbatim")


def test_lossy_digest_fits_and_reports(error_log: str, count: Count) -> None:
    digest = compress(error_log, count=count, max_tokens=300)
    assert digest.kind == "log"
    assert digest.digest_tokens == count(digest.text) <= 300
    assert digest.original_tokens == count(error_log)
    assert not digest.lossless
    assert "ZeroDivisionError: division by zero" in digest.text


def test_lossless_json_rows_when_they_fit(count: Count) -> None:
    text = json.dumps([{"name": f"n{i}", "v": i} for i in range(100)], indent=2)
    digest = compress(text, count=count, max_tokens=count(text) // 2)
    assert digest.lossless
    assert digest.kind == "json"
    assert digest.text.startswith("name|v\nn0|0\n")


def test_failing_compressor_falls_open(count: Count) -> None:
    text = "not json at all. " * 500
    digest = compress(text, count=count, max_tokens=50, kind="json")
    assert digest.kind == "text"
    assert digest.digest_tokens <= 50


def test_inflation_guard_returns_the_original() -> None:
    def spiky(text: str) -> int:  # the digest's markers cost far more than the original
        return 100 if "…" in text or "[" in text else len(text) // 50 + 2

    text = "word " * 200
    digest = compress(text, count=spiky, max_tokens=3)
    assert digest.lossless
    assert digest.text == text
    assert digest.digest_tokens == digest.original_tokens


@pytest.mark.parametrize(
    "text",
    [
        "\ud800" * 5000,
        "\x00" * 10_000,
        '{"a": [1, 2, 3' + ", 4" * 3000,
        '{"a": 1,, "b": ' + '"x", ' * 2000,
        "[" * 5000,
        "{" * 100_000,
        "def f(:\n" * 3000,
        "<html>" + "<div>" * 20_000,
    ],
)
def test_odd_inputs_never_raise(text: str, count: Count) -> None:
    digest = compress(text, count=count, max_tokens=64)
    assert digest.digest_tokens <= max(64, digest.original_tokens)


def test_bad_budget_is_a_config_error(count: Count) -> None:
    with pytest.raises(ConfigError):
        compress("x", count=count, max_tokens=0)


@settings(max_examples=200)
@given(st.text(max_size=3000), st.integers(min_value=1, max_value=400))
def test_compress_never_raises_and_never_inflates(text: str, budget: int) -> None:
    digest = compress(text, count=cheap, max_tokens=budget)
    assert digest.digest_tokens <= digest.original_tokens
    assert digest.digest_tokens == cheap(digest.text)
    if digest.lossless and digest.kind != "json":
        assert digest.text == text


kinds = st.sampled_from(["json", "log", "code", "table", "diff", "html", "text"])
structured = st.one_of(
    st.text(alphabet=st.sampled_from(list('{}[]",:0123 \nabcERROR-+@|<>/\t')), max_size=2000),
    st.text(max_size=2000),
)


@given(structured, st.integers(min_value=1, max_value=300), st.none() | kinds)
def test_compress_is_deterministic_for_any_kind(text: str, budget: int, kind: str | None) -> None:
    first = compress(text, count=cheap, max_tokens=budget, kind=kind)  # type: ignore[arg-type]
    second = compress(text, count=cheap, max_tokens=budget, kind=kind)  # type: ignore[arg-type]
    assert first == second
    assert first.digest_tokens <= first.original_tokens


@pytest.mark.slow
def test_huge_input_is_capped() -> None:
    line = "2024-01-01 10:00:00 INFO request handled id=12345 in 3ms path=/api/v1/items\n"
    text = line * (50_000_000 // len(line))
    text = text[:25_000_000] + "2024-01-01 10:00:01 ERROR the one failure\n" + text[25_000_000:]
    digest = compress(text, count=cheap, max_tokens=500)  # speed: benchmarks/tool_outputs.py
    assert "ERROR the one failure" in digest.text
