"""Tests for memory._compress.code: Python outlines via ast, regex for the rest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memory._compress.code import CodeCompressor, draft_code, outline_python, outline_regex

Count = Callable[[str], int]


def test_python_outline_has_signatures_lines_docs_imports(python_source: str) -> None:
    outline = outline_python(python_source)
    text = "\n".join(outline.lines)
    assert '"""Tools for widgets."""' in text
    assert "import os, sys" in text
    assert "from pathlib import Path" in text
    assert "L10 MAX_WIDGETS = 10" in text
    assert "L13 class Widget(Base)" in text
    assert '"""A widget that spins."""' in text
    assert "L16   def __init__(self, name: str) -> None" in text
    assert "def spin(self, times: int=1) -> int" in text
    assert "def make_widget(name: str) -> Widget" in text
    assert "async def fetch(url)" in text
    assert "if __name__ == '__main__': …" in text
    assert outline.definitions == 6


def test_small_budget_keeps_top_level_names_first(python_source: str, count: Count) -> None:
    draft = draft_code(python_source, count=count, max_tokens=40)
    assert "class Widget" in draft.text
    assert "def make_widget" in draft.text
    assert "async def fetch" in draft.text
    assert "_helper" not in draft.text
    assert count(draft.text) <= 40
    assert draft.note.startswith("python ·")


def test_syntax_error_falls_back_to_regex(count: Count) -> None:
    source = "def ok(a):\n    return a\n\nclass Broken(:\n    pass\n\ndef other():\n    pass\n"
    draft = draft_code(source * 20, count=count, max_tokens=100)
    assert "L1 def ok(a):" in draft.text
    assert "class Broken(:" in draft.text
    assert draft.note.startswith("code ·")


def test_regex_outline_other_languages() -> None:
    source = [
        'import { x } from "y";',
        "export async function load(url) {",
        "  return x;",
        "}",
        "pub fn parse(input: &str) -> Result<(), Error> {",
        "type Config struct {",
        "static int helper(int a, char *b) {",
        "if (x) {",
    ]
    text = "\n".join(outline_regex(source).lines)
    assert "L1 import { x }" in text
    assert "L2 export async function load(url) {" in text
    assert "L5 pub fn parse" in text
    assert "L6 type Config struct {" in text
    assert "L7 static int helper" in text
    assert "if (x)" not in text


def test_numbered_editor_views_keep_their_line_numbers(count: Count) -> None:
    body = "\n".join(f"{100 + i}:        value = {i}" for i in range(60))
    view = (
        "[File: /repo/mod.py (500 lines total)]\n(99 more lines above)\n"
        f"99:class Thing:\n{body}\n160:    def method(self, x):\n161:        return x\n"
    )
    draft = draft_code(view, count=count, max_tokens=60)
    assert "[File: /repo/mod.py (500 lines total)]" in draft.text
    assert "L99 class Thing:" in draft.text
    assert "L160     def method(self, x):" in draft.text


def test_no_definitions_raises(count: Count) -> None:
    with pytest.raises(ValueError):
        draft_code("just some words\nand more words\n", count=count, max_tokens=10)


def test_compressor(python_source: str, count: Count) -> None:
    digest = CodeCompressor().compress(python_source, count=count, max_tokens=80)
    assert digest.kind == "code"
    assert digest.items == 6
