"""How the recall tool quotes what it found: hits in order, labelled, cut to fit.

Each hit is one ``<archived ...>`` block: an archived chunk by its ref and lines (narrowed
to the lines that match, ``memory._focus``), a turn by its number, its session header and
date. A label says when a hit matched by meaning only, by its date, or lacks an
identifier the query names. A turn too long for the room left is quoted by its sentences
holding the query's words (``memory._recall.excerpt``) before it is cut.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime

from memory._archive import Archive, Hit
from memory._focus import focus, focused, holds_a_word
from memory._recall.exact import identifiers, missing_identifiers
from memory._recall.excerpt import excerpt
from memory._recall.passages import QUOTED_OPENING
from memory._recall.when import without_dates
from stores.text_search import query_terms

__all__ = ["OPEN", "cut", "line_span", "quote", "render_hits"]

OPEN = f"{QUOTED_OPENING}\n"


def quote(text: str) -> str:
    """``text`` made unable to close its own ``<archived>`` wrapper."""
    return text.replace("</archived", "<\\/archived")


def line_span(original: str, start: int, end: int) -> str:
    """The lines ``original[start:end]`` spans, 1-based: "12" or "12-30"."""
    first = original.count("\n", 0, start) + 1
    last = first + original.count("\n", start, max(start, end - 1))
    return f"{first}-{last}" if last > first else str(first)


def cut(text: str, max_tokens: int, archive: Archive) -> str:
    """Cut text to at most ``max_tokens`` (by the archive's counter), on a line if possible."""
    if archive.counter.count(text) <= max_tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if archive.counter.count(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    kept = text[:low]
    newline = kept.rfind("\n")
    return kept[: newline + 1] if newline > len(kept) // 2 else kept


def _fitted(text: str, room: int, archive: Archive, query: str) -> str:
    """A turn's text as it fits ``room`` tokens: whole; else, for a passage of a long
    message, its sentences holding the query's words (prose: an excerpt, marked so) or
    its lines holding them (a listing, gaps marked "…"); else cut, and marked "…" where
    it was. Cut from its start, a passage lost the sentence that matched (new-user
    trials, ``max_tokens=100``: English and Chinese prose, a bulleted list)."""
    count = archive.counter.count
    if count(text) <= room:
        return text

    def fits(candidate: str) -> bool:
        return count(candidate) <= room

    found = excerpt(text, query_terms(query, stemmed=True), fits)
    if found is not None:
        return found
    head, colon, body = text.partition(": ")
    narrowed = f"{head}: {focus(body, query)}"
    if colon and narrowed != text and fits(narrowed):
        return narrowed
    return cut(text, max(room - 2, 0), archive).rstrip() + " \u2026"


def _runs(hits: list[Hit]) -> list[Hit]:
    """Join hits on neighbouring chunks of one output into one span, best first."""
    runs: list[Hit] = []
    for hit in hits:
        for position, run in enumerate(runs):
            if run.ref and run.ref == hit.ref and (hit.end == run.start or hit.start == run.end):
                runs[position] = Hit(
                    run.ref,
                    min(run.idx, hit.idx),
                    min(run.start, hit.start),
                    max(run.end, hit.end),
                    "",
                    run.score,
                )
                break
        else:
            runs.append(hit)
    return runs


def _in_order(hits: list[Hit]) -> list[Hit]:
    """``hits`` with a turn brought along as the one a reply answers (just after the
    reply's hit, ``memory._recall.search``) shown before that reply."""
    shown = list(hits)
    for position in range(len(shown) - 1):
        reply, asked = shown[position], shown[position + 1]
        if asked.answered_by is not None and asked.answered_by == reply.idx and not reply.ref:
            shown[position], shown[position + 1] = asked, reply
    return shown


def _placed_at(hit: Hit) -> str:
    """The turn's segment header (a session and its date) and the day it was sent."""
    where = f' session="{html.escape(hit.segment, quote=True)}"' if hit.segment else ""
    if not hit.created_at:
        return where
    day = datetime.fromtimestamp(hit.created_at, tz=UTC).strftime("%Y-%m-%d")
    return f'{where} date="{day}"'


_BY_MEANING = ' found="by meaning only: none of the query\'s words is in it"'
_BY_DATE = ' found="by its date: sent when the query asks about"'


def _lacking(text: str, wanted: list[str]) -> str:
    """The ``lacks`` attribute of a snippet without some of the identifiers the query
    names (``memory._recall.exact``): "INC-9999" asked, "INC-6007" found; one written
    otherwise is held (``missing_identifiers``), so a label never says a snippet lacks
    what it holds."""
    missing = missing_identifiers(text, wanted)
    return f' lacks="{" ".join(missing)}"' if missing else ""


def _marked_cuts(text: str, original: str, start: int, end: int) -> str:
    """A chunk's quoted ``text`` with "…" where ``original[start:end]`` cuts a line (one
    line of minified JSON is cut into chunks mid-record), unless ``focus`` marked it."""
    if start > 0 and original[start - 1] != "\n" and not text.startswith("…"):
        text = f"… {text}"
    ends_line = end >= len(original) or "\n" in (original[end - 1], original[end])
    if not ends_line and not text.endswith("…"):
        text = f"{text.rstrip(' ')} …"
    return text


def render_hits(archive: Archive, hits: list[Hit], max_tokens: int, query: str) -> str:
    originals: dict[str, str] = {}
    parts: list[str] = []
    used = archive.counter.count(OPEN)
    # Turns that hold a query word (or were sent when it asks about); a turn next to one
    # is its question or its reply.
    worded = {h.idx for h in hits if not h.ref and (h.dated or holds_a_word(h.text, query))}
    wanted = identifiers(without_dates(query, time.time()))  # a date is no identifier
    lacks = {id(h): _lacking(h.text, wanted) for h in hits if not h.ref} if wanted else {}
    holding = {h.idx for h in hits if id(h) in lacks and not lacks[id(h)]}
    for hit in _in_order(_runs(hits)):
        if hit.ref:
            original = originals.setdefault(hit.ref, archive.get(hit.ref))
            whole = original[hit.start : hit.end]  # exact slices, never stored chunk texts
            text, first, last = focused(whole, query)
            span = line_span(original, hit.start, hit.end)
            if text != whole:  # the lines kept, not the chunk's
                line = original.count("\n", 0, hit.start) + 1
                span = f"{line + first}-{line + last}" if last > first else str(line + first)
            where = f'ref="{hit.ref}" lines="{span}"'
            if not holds_a_word(whole, query):  # found by meaning: say so
                where += _BY_MEANING
            where += _lacking(whole, wanted)
            text = _marked_cuts(text, original, hit.start, hit.end)
        else:
            text, where = hit.text, f'turn="{hit.idx}"{_placed_at(hit)}'
            near = {hit.idx - 1, hit.idx, hit.idx + 1, hit.answered_by, hit.answers}
            if hit.dated:
                where += _BY_DATE
            elif not worded & near:  # neither a match nor its question or reply
                where += _BY_MEANING
            if not holding & near:  # nor a turn holding the identifiers, nor next to one
                where += lacks.get(id(hit), "")
        opening = f"<archived {where}>\n"
        room = max_tokens - used - archive.counter.count(opening) - 8
        if room < 32:
            break
        if hit.ref:
            kept = cut(text, room, archive)
            text = kept if kept == text else f"{kept.rstrip(' ')} …"
        else:
            text = _fitted(text, room, archive, query)
        block = f"{opening}{quote(text)}\n</archived>"
        used += archive.counter.count(block) + 1
        parts.append(block)
    return OPEN + "\n".join(parts)
