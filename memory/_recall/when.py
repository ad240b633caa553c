"""When a query asks about: the days or months it names, as spans of time.

"What did Maria say on 3 June, 2023?", "the class she started in December 2023", "When
did Melanie go camping in June?": a question that names a date is answered by what was
said then. ``query_spans`` reads the dates a query writes out (a day with its month, a
month, with or without a year, or ISO ``2023-06-03``) as spans of epoch seconds, UTC
days as the prompts' dates are; the ranker reads the turns sent in them as candidates
and lifts them (``memory._recall.rank``). A date without a year is the latest one on or
before the session's latest turn: a chat's "in June" is the last June it lived through.
Relative dates ("last week") are left alone: what they mean depends on when they were
said.
"""

from __future__ import annotations

import functools
import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta

from memory._recall.layout import Layout

__all__ = ["DATE_BONUS", "DATE_POOL", "MAX_SPANS", "header_span", "query_spans", "sent_when"]

MAX_SPANS = 3
"""Most dates of one query read."""
DATE_BONUS = 4.0
"""Added to the turns sent on the days or in the months a query names, in z-score units
(``memory._recall.rank``), as to a named speaker's turns (``SPEAKER_BONUS``): enough for
such a turn to clear the default relevance floor (3.0) on its date alone, as the
question asks for what was said then. ``benchmarks/locomo.py``, plain feeding, all 7 dev
conversations, evidence recall at 2,000 / 4,000 tokens: none 0.890 / 0.938, 2.0 0.899 /
0.944, 4.0 0.900 / 0.945 (the first 2: 0.914 / 0.958 in all three)."""
DATE_POOL = 256
"""Most turns sent then read as candidates (a day's, as a rule; a busy month has more,
and then only the candidates found otherwise are lifted)."""


def sent_when(query: str, layout: Layout, before_seq: int) -> list[int]:
    """The seqs of the turns before ``before_seq`` sent in the spans ``query`` names: by
    their times, and by the date their segment's header gives (a session marked "Session
    5 · 1:56 pm on 8 May, 2023", its turns stored without times of their own)."""
    spans = query_spans(query, layout.latest)
    seqs: set[int] = set()
    if (sent_between := layout.sent_between) is not None:
        for start, end in spans:
            seqs.update(sent_between(start, end))
    starts = layout.segment_starts
    for index, header in enumerate(layout.segment_texts if spans else ()):
        dated = header_span(header)
        if dated is not None and any(a < dated[1] and dated[0] < b for a, b in spans):
            stop = starts[index + 1] if index + 1 < len(starts) else before_seq
            seqs.update(range(starts[index] + 1, stop))
    return sorted(s for s in seqs if s < before_seq)


@functools.lru_cache(maxsize=4096)
def header_span(header: str) -> tuple[float, float] | None:
    """The day (or month) a segment's header names with its year, None when it names
    none (a header's date without a year is too loose to place its turns)."""
    for form in _FORMS:
        for match in form.finditer(header):
            if match.group("year") is not None:
                return _span(match, 0.0)
    return None


_MONTHS = [
    *("january", "february", "march", "april", "may", "june", "july", "august"),
    *("september", "october", "november", "december"),
]
_NAMES = "|".join([*_MONTHS, "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept?", "oct"])
_MONTH = rf"(?P<month>{_NAMES}|nov|dec)\.?(?![\w'])"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_FORMS = [
    re.compile(rf"\b(?P<iso>{_YEAR}-(?P<m>[01]\d)-(?P<d>[0-3]\d))\b"),
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}(?:,?\s+{_YEAR}\b)?", re.IGNORECASE),
]
"""A day and its month (either order, "of" between or not), a month, ISO: the earlier
form wins where they overlap ("3 June, 2023" is a day, not the month "June, 2023")."""


def query_spans(query: str, latest: float) -> list[tuple[float, float]]:
    """Return the spans ``[start, end)`` (epoch seconds, UTC) of the days and months
    ``query`` names, in order, at most ``MAX_SPANS``; a date without a year is its latest
    on or before ``latest`` (epoch seconds: the session's latest turn).

    "May" alone is no month (it is a verb far more often); "May 2023" and "3 May" are."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, tuple[float, float]]] = []
    for form in _FORMS:
        for match in form.finditer(query):
            where = match.span()
            if any(a < where[1] and where[0] < b for a, b in taken):
                continue
            span = _span(match, latest)
            if span is not None:
                taken.append(where)
                found.append((where[0], span))
    found.sort()
    spans = list(dict.fromkeys(span for _, span in found))
    return spans[:MAX_SPANS]


def _span(match: re.Match[str], latest: float) -> tuple[float, float] | None:
    """The span one match names, None when it names no real date."""
    fields = match.groupdict()
    if fields.get("iso"):
        return _resolve(int(fields["year"]), int(fields["m"]), int(fields["d"]), latest)
    name = fields["month"].lower()
    month = next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name[:3]))
    year = int(fields["year"]) if fields.get("year") else 0
    day = int(fields["day"]) if fields.get("day") else 0
    if name in ("may", "march") and not year and not day:
        return None  # far more often a verb
    return _resolve(year, month, day, latest)


def _resolve(year: int, month: int, day: int, latest: float) -> tuple[float, float] | None:
    """``[start, end)`` of a day (``day`` > 0) or a month; ``year`` 0: the latest such
    date on or before ``latest``."""
    now = datetime.fromtimestamp(latest, UTC)
    years = [year] if year else [now.year, now.year - 1]
    for candidate in years:
        if day and not 1 <= day <= monthrange(candidate, month)[1]:
            continue
        if not 1 <= month <= 12:
            return None
        start = datetime(candidate, month, day or 1, tzinfo=UTC)
        if year or start <= now:
            end = (
                start + timedelta(days=1)
                if day
                else datetime(candidate + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            )
            return start.timestamp(), end.timestamp()
    return None
