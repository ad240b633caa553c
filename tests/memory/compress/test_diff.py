"""Tests for memory._compress.diff: commits, files, +/- counts, hunks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memory._compress.diff import DiffCompressor, draft_diff

Count = Callable[[str], int]

GIT_LOG_P = """commit 0772c99cb2903ccf22ba543eaf128742afa470d6
Author: Ada Lovelace <ada@example.com>
Date:   Wed Dec 11 17:19:13 2024 -0800

    Add the engine

    Longer explanation of the change.

diff --git a/engine.py b/engine.py
new file mode 100644
index 0000000..b7a9ed9
--- /dev/null
+++ b/engine.py
@@ -0,0 +1,3 @@
+def run():
+    return 42
+
diff --git a/README.md b/README.md
index b7a9ed90..fe1a4d67 100644
--- a/README.md
+++ b/README.md
@@ -5,6 +5,7 @@ Intro
 context
-old line
+new line
+another line
 context
-- a markdown list item removed
+- a markdown list item added
 context
"""


def test_git_log_p_outline(count: Count) -> None:
    draft = draft_diff(GIT_LOG_P, count=count, max_tokens=1000)
    text = draft.text
    assert (
        "commit 0772c99cb290 · Ada Lovelace · Wed Dec 11 17:19:13 2024 -0800 · Add the engine"
        in text
    )
    assert "A engine.py  +3 -0" in text
    assert "M README.md  +3 -2" in text
    assert "@@ -5,6 +5,7 @@ Intro" in text
    assert "  +new line" in text
    assert "  -- a markdown list item removed" in text
    assert "context" not in text
    assert draft.note == "diff · 1 commits · 2 files · +6 -2"
    assert draft.items == 2


def test_small_budget_keeps_commits_and_files(count: Count) -> None:
    text = draft_diff(GIT_LOG_P * 5, count=count, max_tokens=120).text
    assert text.count("A engine.py  +3 -0") == 5
    assert "+new line" not in text


def test_plain_unified_diff_without_git_headers(count: Count) -> None:
    diff = (
        "--- a/x.txt\t2024\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\n"
        "--- y.txt\n+++ y.txt\n@@ -1,2 +1 @@\n-c\n d\n"
    )
    draft = draft_diff(diff, count=count, max_tokens=200)
    assert "M x.txt  +1 -1" in draft.text
    assert "M y.txt  +0 -1" in draft.text


def test_no_diff_raises(count: Count) -> None:
    with pytest.raises(ValueError):
        draft_diff("commit abcdef1\nAuthor: x\n\n    msg\n", count=count, max_tokens=100)


def test_compressor(count: Count) -> None:
    assert DiffCompressor().compress(GIT_LOG_P, count=count, max_tokens=60).kind == "diff"
