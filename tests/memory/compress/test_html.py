"""Tests for memory._compress.html: readable text, then a text digest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memory._compress.html import HTMLCompressor, draft_html, html_to_text

Count = Callable[[str], int]

PAGE = """<!DOCTYPE html><html><head><title>Guide - Book</title>
<style>body {{ color: red }}</style><script>var tracking = 1;</script></head>
<body><nav><a href="/">Home</a><a href="/x">Sidebar link</a></nav>
<main><h1>Guide</h1><p>The first   paragraph
explains <b>everything</b>.</p>
<h2>Install</h2><ul><li>Download it.</li><li>Run it.</li></ul>
<pre>$ tool --help
  usage: tool</pre>
{extra}
</main></body></html>"""


def test_html_to_text_keeps_structure_and_drops_chrome() -> None:
    title, text = html_to_text(PAGE.format(extra=""))
    assert title == "Guide - Book"
    assert "# Guide" in text
    assert "The first paragraph explains everything." in text
    assert "## Install" in text
    assert "- Download it." in text
    assert "```\n$ tool --help\n  usage: tool\n```" in text
    for chrome in ("tracking", "color: red", "Sidebar link"):
        assert chrome not in text


def test_small_page_is_its_readable_text(count: Count) -> None:
    draft = draft_html(PAGE.format(extra=""), count=count, max_tokens=500)
    assert draft.text.startswith("# Guide")
    assert "Guide - Book" in draft.note
    assert not draft.lossless


def test_long_page_keeps_headings_first(count: Count) -> None:
    sections = "".join(
        f"<h2>Section {i}</h2><p>"
        + f"Filler sentence number {i} about common things. " * 20
        + "</p>"
        for i in range(40)
    )
    draft = draft_html(PAGE.format(extra=sections), count=count, max_tokens=300)
    assert count(draft.text) <= 300
    assert "# Guide" in draft.text
    assert "## Section 1" in draft.text
    assert "## Section 12" in draft.text


def test_empty_document_raises(count: Count) -> None:
    with pytest.raises(ValueError):
        draft_html("<html><body><script>x</script></body></html>", count=count, max_tokens=50)


def test_compressor(count: Count) -> None:
    digest = HTMLCompressor().compress(PAGE.format(extra=""), count=count, max_tokens=100)
    assert digest.kind == "html"
