"""Tests for memory._compress.logs: errors kept, repeats collapsed, head and tail."""

from __future__ import annotations

from collections.abc import Callable

from memory._compress.logs import IMPORTANT_LINE, LogCompressor, draft_log, important_lines

Count = Callable[[str], int]


def test_every_error_and_the_traceback_survive(error_log: str, count: Count) -> None:
    draft = draft_log(error_log, count=count, max_tokens=400)
    text = draft.text
    assert "2024-05-01 10:02:00 WARNING cache miss ratio high: 0.93" in text
    assert "2024-05-01 10:03:20 ERROR request failed" in text
    for line in error_log.split("\n"):
        if "Traceback" in line or line.startswith("  ") or "ZeroDivisionError" in line:
            assert line in text
    assert count(text) <= 400


def test_summary_head_tail_and_repeats(error_log: str, count: Count) -> None:
    draft = draft_log(error_log, count=count, max_tokens=400)
    text = draft.text
    assert "time span: 2024-05-01 10:00:00 → 2024-05-01 10:05:00" in text
    assert "most repeated: x" in text
    assert "service starting" in text
    assert "service stopped cleanly" in text
    assert "similar, lines" in text
    assert draft.items == len(error_log.split("\n"))
    assert "3 error/warning lines" not in draft.note  # the traceback counts too
    assert "error/warning/traceback lines" in draft.note


def test_important_lines_flags_whole_traceback_blocks() -> None:
    lines = [
        "ok",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "    boom()",
        "RuntimeError: boom",
        "after",
    ]
    assert important_lines(lines) == [False, True, True, True, True, False]


def test_important_line_pattern() -> None:
    for line in (
        "E ERROR x",
        "npm ERR! code 1",
        "test_x ... FAIL",
        "WARNING: root",
        "error: bad",
        "ValueError: no",
        "FATAL crash",
        "CRITICAL disk",
    ):
        assert IMPORTANT_LINE.search(line), line
    for line in ("all good", "errors are fine in prose", "INFO started"):
        assert not IMPORTANT_LINE.search(line), line


def test_identical_errors_collapse_but_distinct_ones_stay(count: Count) -> None:
    lines = ["INFO start"] + ["ERROR disk full"] * 50 + [f"ERROR code {i}" for i in range(5)]
    lines += [f"INFO tick {i}" for i in range(500)]
    text = draft_log("\n".join(lines), count=count, max_tokens=300).text
    assert "ERROR disk full   ⟨x50 identical" in text
    for i in range(5):
        assert f"ERROR code {i}" in text


def test_compressor(error_log: str, count: Count) -> None:
    digest = LogCompressor().compress(error_log, count=count, max_tokens=300)
    assert digest.kind == "log"
    assert digest.digest_tokens <= 300


def test_the_only_error_survives_many_warnings(count: Count) -> None:
    lines = []
    for i in range(600):
        if i == 377:
            lines.append("10:06:16 ERROR worker-3 redis connection refused (10.0.4.12:6379)")
        elif i % 5 == 0:
            lines.append(f"10:0{i % 10}:00 WARN slow query on table orders took {i * 3}ms")
        else:
            lines.append(f"10:0{i % 10}:00 INFO http GET /api/items/{i} 200")
    draft = draft_log("\n".join(lines), count=count, max_tokens=700)
    assert "redis connection refused" in draft.text  # errors first when not all fit
    assert draft.note.endswith("121 error/warning/traceback lines")
