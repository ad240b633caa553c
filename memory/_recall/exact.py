"""Turns that hold a query exactly: its words in order, or a rare identifier it names.

Both are lifted by ``memory._recall.rank.EXACT_BONUS``. A phrase is the surest sign of
what a query quotes. An identifier (a word with a digit: "35049", "5521" of "INC-5521",
"v2") is the surest sign of what a lookup is about, and the weakest signal by meaning
(an embedder places "code 35049" near every code). Left to the words' BM25 alone, in a
short session a long turn quoting another code outranked the one short turn holding
it (a new-user trial: 6 of 27 layouts of 8 turns, 9% of 1,000 served sessions).
"""

from __future__ import annotations

import re
import unicodedata

from memory._recall.fuse import phrase_pattern
from stores.text_search import WORD
from stores.turn_index import TurnIndex

__all__ = [
    "EXACT_POOL",
    "MAX_HOLDERS",
    "MAX_IDENTIFIERS",
    "MAX_QUERY_WORDS",
    "exact_holders",
    "identifiers",
    "missing_identifiers",
]

_SEPARATORS = re.compile(r"[\W_]+")

EXACT_POOL = 50
"""Most turns lifted for holding the exact phrase."""
MAX_HOLDERS = 3
"""An identifier lifts the turns holding it only when at most this many do: held by more
("2" in a chat of steps, a port every log names), it tells no turn apart."""
MAX_IDENTIFIERS = 3
"""Identifiers of one query looked up (each one more search)."""
MAX_QUERY_WORDS = 40
"""Longest query whose identifiers are looked up: a question or a request names what it
looks for; a pasted log or a tool's output as the latest turn (an agent's implicit
query) holds numbers by the hundred, none of them asked about (``benchmarks/cost.py``'s
SWE-agent transcripts: more recalled, uncached, for nothing)."""
_DIGIT = re.compile(r"\d")
_YEAR = re.compile(r"(?:19|20)\d\d")


def identifiers(query: str) -> list[str]:
    """The query's words holding a digit, lower-cased, first ``MAX_IDENTIFIERS`` (a year
    is a date, not an identifier: ``memory._recall.when`` reads it); none for a query of
    more than ``MAX_QUERY_WORDS`` words."""
    words = WORD.findall(query)
    if len(words) > MAX_QUERY_WORDS:
        return []
    found = [w.lower() for w in words if _DIGIT.search(w)]
    kept = [w for w in dict.fromkeys(found) if not _YEAR.fullmatch(w)]
    return kept[:MAX_IDENTIFIERS]


def exact_holders(
    passages: TurnIndex, session: str, query: str, words: str, *, before_seq: int
) -> dict[int, tuple[int, int]]:
    """The turns (not context copies) before ``before_seq`` holding ``query``'s words in
    order (at most ``EXACT_POOL``), or one of the identifiers of ``words`` (the query as
    searched by words: without the dates it names) that at most ``MAX_HOLDERS`` turns
    hold: ``{seq: (passage index, passage id)}``, the passage that holds them (of a long
    message, the part to quote: "Section 23" asked of a pasted contract brought back the
    part holding "23 business days"; a new-user trial)."""
    found: dict[int, tuple[int, int]] = {}
    if phrase_pattern(query) is not None:
        hits = passages.phrase(session, query, before_seq=before_seq, limit=EXACT_POOL)
        for h in hits:
            if not h.context:
                found.setdefault(h.seq, (h.idx, h.id))
    for word in identifiers(words):
        hits = passages.phrase(session, word, before_seq=before_seq, limit=4 * MAX_HOLDERS)
        holders = {h.seq: (h.idx, h.id) for h in reversed(hits) if not h.context}
        if len(hits) < 4 * MAX_HOLDERS and len(holders) <= MAX_HOLDERS:
            for seq in sorted(holders):
                found.setdefault(seq, holders[seq])
    return found


def missing_identifiers(text: str, wanted: list[str]) -> list[str]:
    """The identifiers of ``wanted`` (``identifiers``) that ``text`` does not hold. One
    written otherwise is held ("1,250" for "1250", "INC5521" for "INC-5521", fullwidth
    digits): its letters and digits are looked for in the text's, separators left out."""
    held = _compact(text)
    return [w for w in wanted if _compact(w) not in held]


def _compact(text: str) -> str:
    """``text``'s letters and digits, NFKC-folded and case-folded, nothing between."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())
