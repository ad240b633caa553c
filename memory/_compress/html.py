"""Digest HTML: readable text (headings, lists, code blocks), then a text digest.

Parsing uses selectolax's Lexbor engine (MIT): fast and forgiving with broken markup.
Scripts, styles, navigation and forms are dropped; the page's ``<main>`` or ``<article>``
is preferred to the whole body. Headings are kept first when the text must be cut.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from memory._compress.base import (
    Counter,
    Draft,
    DraftCompressor,
    clip,
    safe_count,
)
from memory._compress.text import draft_text

__all__ = ["HTMLCompressor", "draft_html", "html_to_text"]

MAX_HTML_CHARS = 2_000_000  # only this much markup is parsed
_DROP = "script, style, noscript, svg, template, iframe, nav, aside, form, button, head"
_MAIN = ("main", "article", "[role=main]", "#content", "body")
_BLOCK = frozenset(
    (
        *("p", "div", "section", "article", "main", "header", "footer", "blockquote", "pre"),
        *("ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "hr", "br"),
        *("figure", "figcaption", "details", "summary", "address"),
        *("h1", "h2", "h3", "h4", "h5", "h6"),
    )
)
_HEADING = re.compile(r"^#{1,6} ")


def _walk(root: LexborNode) -> list[str]:
    """Flatten ``root`` to text parts, with newlines around blocks and markdown touches."""
    parts: list[str] = []
    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag or ""
        if closing:
            parts.append("\n\n" if tag in _BLOCK else "")
            continue
        if tag == "-text":
            parts.append(re.sub(r"\s+", " ", node.text(deep=False) or ""))
            continue
        if tag == "pre":
            parts.append("\n```\n" + node.text(deep=True).strip("\n") + "\n```\n")
            continue
        if tag in _BLOCK:
            parts.append("\n\n")
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            parts.append("#" * int(tag[1]) + " ")
        elif tag == "li":
            parts.append("- ")
        elif tag in ("td", "th"):
            parts.append(" | ")
        stack.append((node, True))
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    return parts


def html_to_text(markup: str) -> tuple[str, str]:
    """Return ``(title, readable text)`` of an HTML document."""
    tree = LexborHTMLParser(markup[:MAX_HTML_CHARS])
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node else ""
    for node in tree.css(_DROP):
        node.decompose()
    root = next((n for q in _MAIN if (n := tree.css_first(q)) is not None), tree.root)
    if root is None:
        return title, ""
    text = "".join(_walk(root))
    lines = []
    in_code = False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        lines.append(line.rstrip() if in_code else " ".join(line.split()))
    readable = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return title, readable


def draft_html(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make an HTML digest: the readable text if it fits, else its text digest.

    Raises:
        ValueError: the document has no readable text.
    """
    title, readable = html_to_text(text)
    if not readable and not title:
        raise ValueError("no readable text in the HTML")
    header = f"# {title}" if title and not readable.startswith("#") else ""
    full = f"{header}\n\n{readable}".strip()
    note = f"html · {clip(title, 60)!r} · {len(readable):,} chars of text"
    if safe_count(count, full) <= max_tokens:
        return Draft(full, None, False, note)
    budget = max(1, max_tokens - safe_count(count, header) - 1) if header else max_tokens
    digest = draft_text(
        readable, count=count, max_tokens=budget, pinned=lambda u: bool(_HEADING.match(u))
    )
    body = f"{header}\n{digest.text}" if header else digest.text
    return Draft(body, digest.items, False, note)


class HTMLCompressor(DraftCompressor):
    """Digest HTML pages (see :func:`draft_html`)."""

    kind = "html"
    draft = staticmethod(draft_html)
