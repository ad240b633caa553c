"""When a query asks about: the days or months it names, as spans of time.

"What did Maria say on 3 June, 2023?", "the class she started in December 2023", "When
did Melanie go camping in June?": a question that names a date is answered by what was
said then. ``query_spans`` reads the dates a query writes out (a day with its month, a
month, with or without a year, or ISO ``2023-06-03``) as spans of epoch seconds, UTC
days as the prompts' dates are; the ranker reads the turns sent in them as candidates
and lifts them (``memory._recall.rank``), and searches the rest of the query without
its dates (``undated``): a query that asks nothing but the date gets that day's turns
alone. A date without a year is the latest one on or before the session's latest turn:
a chat's "in June" is the last June it lived through, or, when no turn was sent then,
the June before it (``YEARS_BACK``). Relative dates ("last week") are
left alone: what they mean depends on when they were said (in LoCoMo, the session's
time, not the question's). Turns stored without times of their own (an import) are
dated by their segments' headers (``header_dates``).
"""

from __future__ import annotations

import functools
import re
from calendar import monthrange
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from memory._recall.layout import Layout

__all__ = [
    "DATES_READ",
    "DATE_BONUS",
    "DATE_POOL",
    "MAX_SPANS",
    "YEARS_BACK",
    "dated_search",
    "header_dates",
    "header_span",
    "query_spans",
    "sent_when",
    "undated",
    "without_dates",
]

MAX_SPANS = 3
"""Most dates of one query read."""
DATES_READ = 1_000
"""Characters of a query read for dates (each date found is checked against the others:
12,000 dates in a model's 180,000-character query took 43 s)."""
DATE_BONUS = 4.0
"""Added to the turns sent on the days or in the months a query names, in z-score units
(``memory._recall.rank``), as to a named speaker's turns (``SPEAKER_BONUS``): enough for
such a turn to clear the default relevance floor (3.0) on its date alone, as the
question asks for what was said then. ``benchmarks/locomo.py``, plain feeding, all 7 dev
conversations, evidence recall at 2,000 / 4,000 tokens: none 0.890 / 0.938, 2.0 0.899 /
0.944, 4.0 0.900 / 0.945 (the first 2: 0.914 / 0.958 in all three)."""
YEARS_BACK = 10
"""A date without a year that no turn was sent on is looked for a year earlier, and so
on, this many times at most: a chat whose history is from 2023 and whose latest message
is from today asks "what did I paint on June 3?" about the June 3 it has turns from
(the new-user trial: "3" was then searched as a word, and "Chat 3 ..." outranked the
turn sent that day)."""
DATE_POOL = 256
"""Most turns sent then read as candidates (a day's, as a rule; a busy month has more,
and then only the candidates found otherwise are lifted)."""


def dated_search(
    query: str, queries: tuple[str, ...], layout: Layout, before_seq: int
) -> tuple[list[int], tuple[str, ...], bool]:
    """The turns sent when ``query`` asks about (``sent_when``), the ``queries`` to search
    by words and meaning, and whether they ask nothing but the dates (``undated``).

    When turns were sent then, the dates are the date prior's, and are searched neither
    by words nor by meaning: they pull towards turns that hold "3" or "June", away from
    the one sent that day. When none was, the dates' numbers are left out of the search
    ("painting on 4 June 2023", nothing sent that day: "4" matched "Chat 4 ..." and
    outranked "I painted the room"; second new-user trial), their month names kept."""
    dated = sent_when(query, layout, before_seq)
    if dated:
        queries, only_dates = undated(queries, layout.latest)
        return dated, queries, only_dates
    if not query_spans(query, layout.latest):
        return [], queries, False
    return [], tuple(_without_date_numbers(q, layout.latest) for q in queries), False


def sent_when(query: str, layout: Layout, before_seq: int) -> list[int]:
    """The seqs of the turns before ``before_seq`` sent in the spans ``query`` names.

    When they were sent is their own time, unless the session's times all fall on one
    day (turns stored without times, at import) and headers give two dates or more: then
    it is the date their segment's header gives with its year ("Session 5 · 1:56 pm on 8
    May, 2023"), and a date the query gives without a year is placed by the latest
    header's. One dated system message ("Current date: 2024-01-15", "launch on 10 March
    2027") is an app's prompt or news, not when the turns under it were sent."""
    if not query_spans(query, layout.latest):  # most queries: no header is read
        return []
    dated = header_dates(layout)
    latest = max((span[1] - 1 for _, span in dated), default=layout.latest)
    spans = query_spans(query, latest)
    seqs = _sent_in(spans, layout, dated, before_seq)
    for _ in range(YEARS_BACK):
        if seqs:
            break
        latest = _a_year_before(latest)
        earlier = query_spans(query, latest)
        if earlier == spans:  # every date has its year: none to place earlier
            break
        spans = earlier
        seqs = _sent_in(spans, layout, dated, before_seq)
    return seqs


def _sent_in(
    spans: list[tuple[float, float]],
    layout: Layout,
    dated: list[tuple[int, tuple[float, float]]],
    before_seq: int,
) -> list[int]:
    """The seqs of the turns before ``before_seq`` sent in ``spans`` (``sent_when``)."""
    seqs: set[int] = set()
    if (layout.own_times or not dated) and (sent_between := layout.sent_between) is not None:
        for start, end in spans:
            seqs.update(sent_between(start, end))
    starts = layout.segment_starts
    for index, (first, end) in dated:
        if any(a < end and first < b for a, b in spans):
            stop = starts[index + 1] if index + 1 < len(starts) else before_seq
            seqs.update(range(starts[index] + 1, stop))
    return sorted(s for s in seqs if s < before_seq)


def _a_year_before(moment: float) -> float:
    """The same time of year a year earlier (29 February: the 28th), epoch seconds;
    ``moment`` itself when there is none (year 1, or no time a datetime holds)."""
    try:
        then = datetime.fromtimestamp(moment, UTC)
        day = min(then.day, 28) if then.month == 2 else then.day
        return then.replace(year=then.year - 1, day=day).timestamp()
    except (OverflowError, OSError, ValueError):
        return moment


def header_dates(layout: Layout) -> list[tuple[int, tuple[float, float]]]:
    """The segments whose headers date their turns, and those dates: in a session whose
    own times fall on one day (an import), when two dates or more are given (one is an
    app's prompt or news, not when turns were sent); else none."""
    if layout.own_times:
        return []
    dated = [(i, s) for i, h in enumerate(layout.segment_texts) if (s := header_span(h))]
    return dated if len({span for _, span in dated}) >= 2 else []


@functools.lru_cache(maxsize=4096)
def header_span(header: str) -> tuple[float, float] | None:
    """The day a segment's header names with its month and year, None when it names
    none: a month alone ("Knowledge cutoff: June 2023", in a system prompt) or a day
    without its year is no date for the turns under it."""
    for form in _FORMS[:3]:
        for match in form.finditer(header):
            span = _span(match, 0.0) if match.group("year") is not None else None
            if span is not None and span[1] - span[0] <= 86_400:
                return span
    return None


_MONTHS = [
    *("january", "february", "march", "april", "may", "june", "july", "august"),
    *("september", "october", "november", "december"),
]
_NAMES = "|".join([*_MONTHS, "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept?", "oct"])
_MONTH = rf"(?P<month>{_NAMES}|nov|dec)\.?(?![\w'])"
_DAY = r"(?P<day>0?[1-9]|[12]\d|3[01])(?!\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_THEN = rf"(?:(?:,\s*|\s+|-)(?:of\s+)?{_YEAR}\b)?"
_BEFORE_MONTH = r"(?:in|during|since|until|till|through|throughout|from|by|of|early|late|mid)"
_FORMS = [
    re.compile(rf"\b(?P<iso>{_YEAR}-(?P<m>0[1-9]|1[0-2])-(?P<d>0[1-9]|[12]\d|3[01]))(?!\d)"),
    re.compile(rf"\b{_DAY}(?:\s+|-)(?:of\s+)?{_MONTH}{_THEN}", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}(?:\s+|-){_DAY}\b{_THEN}", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}(?:,?\s+|\s+of\s+|-){_YEAR}\b", re.IGNORECASE),
    re.compile(rf"\b{_BEFORE_MONTH}[\s-]+(?:the\s+month\s+of\s+)?{_MONTH}", re.IGNORECASE),
]
"""A day and its month (either order, "of" or a dash between, a year after or not), a
month with its year, a month after "in", "during", "since"... ("in June": "What did June
say?" or "the August heat" name no month), ISO (a timestamp's date part too): the
earlier form wins where they overlap ("3 June, 2023" is a day, not the month)."""
_TOPIC = re.compile(
    r"\b(?!(?:what|when|who|did|do|does|i|we|you|say|said|tell|told|talk|talked|happen|"
    r"happened|on|in|the|of|was|were|is|me|us|about|and|then|there)\b)[^\W\d_]{2,}",
    re.IGNORECASE,
)
"""A word of letters that asks about something (not "what did I say on"): what a query
keeps to be searched once its dates are out."""
_DIGITS = re.compile(r"\d+(?:st|nd|rd|th)?")
_VERBS = ("may", "march")
"""Months that are far more often verbs: without a year, only capitalized."""


def query_spans(query: str, latest: float) -> list[tuple[float, float]]:
    """Return the spans ``[start, end)`` (epoch seconds, UTC) of the days and months
    ``query`` names, in order, at most ``MAX_SPANS``; a date without a year is its latest
    on or before ``latest`` (epoch seconds: the session's latest turn).

    "May" alone is no month (it is a verb far more often); "May 2023" and "3 May" are."""
    spans = list(dict.fromkeys(span for _, span in _dates_in(query, latest)))
    return spans[:MAX_SPANS]


def without_dates(query: str, latest: float) -> str:
    """``query`` without the dates it names, for the search by words: the date is the
    date prior's ("3" in "on 3 June 2023" matched every "Day 3:" and "3 boxes" by words,
    and those outranked the turn sent that day)."""
    for (start, end), _ in sorted(_dates_in(query, latest), reverse=True):
        query = f"{query[:start]} {query[end:]}"
    return query


def _without_date_numbers(query: str, latest: float) -> str:
    """``query`` with the numbers of the dates it names left out (their month names kept)."""
    for (start, end), _ in sorted(_dates_in(query, latest), reverse=True):
        query = f"{query[:start]}{_DIGITS.sub(' ', query[start:end])}{query[end:]}"
    return query


def undated(queries: Sequence[str], latest: float) -> tuple[tuple[str, ...], bool]:
    """``queries`` without their dates (``without_dates``; a query that is nothing but
    dates stays as it is), and whether they were all nothing but dates ("2023-06-03",
    "What did I say on 3 June?": what was said then, whatever it was)."""
    stripped = [without_dates(q, latest) for q in queries]
    kept = [bool(_TOPIC.search(s)) for s in stripped]
    chosen = tuple(s if k else q for s, q, k in zip(stripped, queries, kept, strict=True))
    return chosen, not any(kept)


def _dates_in(query: str, latest: float) -> list[tuple[tuple[int, int], tuple[float, float]]]:
    """Where ``query`` names a date, and its span, in order (dates in its first
    ``DATES_READ`` characters: a model's query may be any length)."""
    found: list[tuple[tuple[int, int], tuple[float, float]]] = []
    for form in _FORMS:
        for match in form.finditer(query, 0, DATES_READ):
            where = match.span()
            if any(a < where[1] and where[0] < b for (a, b), _ in found):
                continue
            span = _span(match, latest)
            if span is not None:
                found.append((where, span))
    return sorted(found)


def _span(match: re.Match[str], latest: float) -> tuple[float, float] | None:
    """The span one match names, None when it names no date."""
    fields = match.groupdict()
    if fields.get("iso"):
        return _resolve(int(fields["year"]), int(fields["m"]), int(fields["d"]), latest)
    written = fields["month"]
    name = written.lower()
    month = next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name[:3]))
    year = int(fields["year"]) if fields.get("year") else 0
    day = int(fields["day"]) if fields.get("day") else 0
    if name in _VERBS and not year and not written[0].isupper():
        return None  # "step 2 may fail", "we march 10 miles"
    if not year and re.match(r"\s*,?\s*'?\d", match.string[match.end() :]):
        return None  # a year the forms do not read ("3 June 1899", "June 3, '23")
    return _resolve(year, month, day, latest)


def _resolve(year: int, month: int, day: int, latest: float) -> tuple[float, float] | None:
    """``[start, end)`` of a day (``day`` > 0) or a month; ``year`` 0: the latest such
    date on or before ``latest``. A day the month lacks ("31 June") names its month."""
    if not 1 <= month <= 12:
        return None
    try:
        now = datetime.fromtimestamp(latest, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    for candidate in [year] if year else [now.year, now.year - 1]:
        if not 1 <= candidate <= 9998:
            return None
        whole = day and not 1 <= day <= monthrange(candidate, month)[1]
        start = datetime(candidate, month, 1 if whole else day or 1, tzinfo=UTC)
        if year or start <= now:
            if day and not whole:
                return start.timestamp(), (start + timedelta(days=1)).timestamp()
            end = datetime(candidate + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start.timestamp(), end.timestamp()
    return None
