"""How free-text queries become search terms, shared by every store's full-text search.

Both stores tokenize alike (Unicode word characters, lower-cased, no stemming), so the
same query finds the same words in SQLite's FTS5 and PostgreSQL's ``tsvector``.
"""

from __future__ import annotations

import re

__all__ = ["MAX_QUERY_TERMS", "STOPWORDS", "phrase_words", "query_terms"]

WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 32
_STOPWORD_TEXT = (
    "a an the of to in on at for and or but is are was were be been do does did what when "
    "where who whom which why how that this these those with from by as it its i you he she "
    "they we my your his her their our me him them us not can could would should will has "
    "have had about into than then so"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def query_terms(query: str) -> list[str]:
    """Return the query's distinct words, lower-cased, for an OR search.

    Common function words are dropped when other words remain: they match most rows,
    which makes ranking slow on long histories and adds nothing to it.
    """
    words = list(dict.fromkeys(w.lower() for w in WORD.findall(query)))
    terms = [w for w in words if w not in STOPWORDS] or words
    return terms[:MAX_QUERY_TERMS]


def phrase_words(query: str) -> list[str]:
    """Return the query's words in order, lower-cased (a phrase search), stopwords kept."""
    return [w.lower() for w in WORD.findall(query)][:MAX_QUERY_TERMS]
