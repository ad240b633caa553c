"""How free-text queries become search terms, shared by every store's full-text search.

Both stores index the same words (``search_words``: letters and digits, lower-cased), so
the same query finds the same words in SQLite's FTS5 and PostgreSQL's ``tsvector``.

Conversation turns are indexed by their words' stems (``stem``: Snowball's English
stemmer, the algorithm PostgreSQL's ``english`` configuration uses), so "paint" finds
"painting" and "painted"; queries of turns are stemmed alike (``stemmed=True``).
Archived tool outputs keep their words as written: a log's identifiers are looked up
exactly.

Chinese and Japanese write without spaces, so a word tokenizer keeps a whole run of
characters as one token and a query word never matches inside it. Runs of Han, kana
(and CJK compatibility) characters are therefore cut into overlapping bigrams, in the
indexed text (``search_words``) and in queries (``query_terms``) alike: "北京大学" becomes
"北京 京大 大学", and a query for "北京" finds it. A lone character stays a term.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import snowballstemmer

__all__ = [
    "CJK_CLASS",
    "MAX_QUERY_TERMS",
    "STOPWORDS",
    "cjk_bigrams",
    "has_cjk",
    "phrase_words",
    "query_terms",
    "scoped_words",
    "search_words",
    "stem",
    "word_pattern",
    "word_stems",
]

WORD = re.compile(r"[^\W_]+", re.UNICODE)
"""A word: letters and digits (an underscore separates words, as FTS5 and PostgreSQL do)."""
CJK_CLASS = "\u3005\u3040-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
CJK_RUN = re.compile(f"[{CJK_CLASS}]+")
"""Han ideographs, hiragana, katakana (full and half width), the iteration mark."""
MAX_QUERY_TERMS = 32
_STOPWORD_TEXT = (
    "a an the of to in on at for and or but is are was were be been do does did what when "
    "where who whom which why how that this these those with from by as it its i you he she "
    "they we my your his her their our me him them us not can could would should will has "
    "have had about into than then so "
    # What is left of a contraction cut at its apostrophe ("what's", "don't", "I'll"):
    # a lookup for "what's the branch?" found "MB/s" in a disk log and "Let's" in chat.
    "s t d ll re ve m don doesn didn isn aren wasn weren hasn haven hadn"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
STEMS_CACHED = 65_536
"""Words whose stems are remembered (a conversation's vocabulary is far smaller)."""
_STEMMERS = threading.local()  # a Snowball stemmer keeps state while it stems: one a thread


@lru_cache(maxsize=STEMS_CACHED)
def stem(word: str) -> str:
    """Return a lower-cased word's stem for the turn index: Snowball's English stemmer
    ("painting" and "paints" are "paint"; Porter, 2001, snowballstem.org's ``english``)
    on words of ASCII letters; any other word (digits, identifiers like "inc5521",
    accented or CJK words) as it is."""
    if not (word.isascii() and word.isalpha()):
        return word
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


def word_stems(text: str) -> set[str]:
    """Return the stems of ``text``'s words (``stem``), lower-cased, CJK runs as bigrams."""
    return {stem(w) for w in _words(text)}


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a Chinese or Japanese character."""
    return CJK_RUN.search(text) is not None


def cjk_bigrams(run: str) -> list[str]:
    """Return the overlapping character pairs of a CJK run (the run itself if shorter)."""
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _spaced(match: re.Match[str]) -> str:
    return " " + " ".join(cjk_bigrams(match.group())) + " "


def _words(query: str) -> list[str]:
    spaced = CJK_RUN.sub(_spaced, query)
    return [w.lower() for w in WORD.findall(spaced)]


def query_terms(query: str, *, stemmed: bool = False) -> list[str]:
    """Return the query's distinct words (CJK runs as bigrams), lower-cased, for an OR
    search; their stems when ``stemmed`` (a search of the turn index).

    Common function words are dropped when other words remain: they match most rows,
    which makes ranking slow on long histories and adds nothing to it.
    """
    words = list(dict.fromkeys(_words(query)))
    terms = [w for w in words if w not in STOPWORDS] or words
    if stemmed:
        terms = list(dict.fromkeys(stem(t) for t in terms))
    return terms[:MAX_QUERY_TERMS]


def word_pattern(term: str) -> re.Pattern[str]:
    """Match ``term`` as a whole word, case aside (a query term found in a text); an
    underscore separates words, as in ``WORD`` ("file" and "17" are in "file_17.py")."""
    return re.compile(rf"(?<![^\W_]){re.escape(term)}(?![^\W_])", re.IGNORECASE)


def phrase_words(query: str, *, stemmed: bool = False) -> list[str]:
    """Return the query's words in order, lower-cased (a phrase search), stopwords kept;
    their stems when ``stemmed``.

    A CJK run gives its bigrams, so a phrase of them matches the run where it was indexed.
    """
    words = _words(query)[:MAX_QUERY_TERMS]
    return [stem(w) for w in words] if stemmed else words


def search_words(text: str, *, stemmed: bool = False) -> str:
    """Return the text's words (CJK runs as bigrams), lower-cased, one space apart (their
    stems when ``stemmed``: the turn index): what both stores index. PostgreSQL's parser,
    given the text itself, keeps "INC-5521" as the words "inc-5521", "inc" and "-5521" (a
    signed number), so "5521" would not find it there; given these words, it reads "inc"
    and "5521", as SQLite's FTS5 does."""
    words = _words(text)
    return " ".join([stem(w) for w in words] if stemmed else words)


def scoped_words(prefix: str, text: str) -> str:
    """Return the stems of the text's words (``stem``; CJK runs as bigrams), lower-cased,
    each glued to ``prefix``: an index of such words (SQLite's turn index) holds each
    session's words apart, so a search touches, and counts, only its own session's rows."""
    return " ".join(prefix + stem(w) for w in _words(text))
