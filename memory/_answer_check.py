"""Whether a model's answer is a summary: not a refusal, not off-task.

A model asked to summarize may refuse (an apology, a policy line) or answer about
something else; stored as the running summary, either would replace what the session
remembers with noise. ``check_on_task`` raises on both, so the previous summary stays.
"""

from __future__ import annotations

import re

import snowballstemmer

from memory._errors import SummarizerError
from stores.text_search import STOPWORDS

__all__ = ["ON_TASK_OVERLAP", "check_on_task", "content_words"]

ON_TASK_OVERLAP = 0.25
"""Least share of a model summary's content words found in its input (a summary reuses
the messages' words: names, numbers, topics; a refusal or an unrelated answer does not)."""
_REFUSAL = re.compile(
    r"\bi( a|')m (unable|not able|not going to|afraid i can(no|')?t|not in a position)\b|"
    r"\bi (can(no|')?t(?! wait)|won'?t|will not|must decline|have to decline|decline)\b|"
    r"\bas an? (ai|(large |ai )?language model)\b|\bnot something i\b|"
    r"^(i'?m |i am |so )?sorry\b|^(i |we )?apologi[sz]e\b|^(my )?apologies[,:!]|"
    r"^(很|非常)?(抱歉|对不起)|我(无法|不能|做不到)|这个(请求|要求)无法|"
    r"^(申し訳|すみません)|(要約|お答え|対応)(は|することは|することが)?できません|"
    r"^(je suis )?(désolée?|navrée?)\b|\bje ne (peux|suis pas en mesure)\b|"
    r"^(lo siento|disculpa|perdón)\b|\bno (puedo|me es posible)\b|"
    r"^(es )?tut mir leid\b|^entschuldigung\b|\b(ich kann|kann ich)\b[^.]{0,40}\bnicht\b|"
    r"\bmir nicht möglich\b|^mi dispiace\b|\bnon posso\b|^desculpe?\b|\bnão posso\b",
    re.IGNORECASE,
)
"""A refusal: the model saying, in its answer's first sentence (quotes aside), that it
will not or cannot, or opening with an apology ("I apologize, but I must decline"); in
English and the common phrasings of Chinese, Japanese, French, Spanish, German, Italian
and Portuguese (curly apostrophes read as straight ones). Apologies count only where the
answer opens with one: a summary may report someone's ("the user apologized"). "I can't
wait" is no refusal, nor are words quoted or said after a speaker's label."""
_QUOTED = re.compile(
    r'"[^"\n]{0,400}"|\u201c[^\u201d\n]{0,400}\u201d|\u300c[^\u300d\n]{0,400}\u300d'
)
"""A quoted span (straight, curly or corner quotes): words a summary quotes are not its own."""
_SPEAKER = re.compile(
    r"^(?!(summary|note|answer|response|output|result)\s*:)[^\W\d][\w .'-]{0,39}:\s.*",
    re.DOTALL | re.IGNORECASE,
)
"""An opening that a speaker's label starts ("User: I can't make Friday"): their words
(not a label of the answer's own, "Summary: I'm sorry, I can't...")."""
_LETTERS = re.compile(r"[^\W\d_]{4,}")
_STOP = STOPWORDS | {"user", "assistant", "summary", "message", "messages"}


def check_on_task(summary: str, source: str, name: str) -> None:
    """Refuse a model's answer that is not a summary of ``source``.

    A refusal ("I'm sorry, I can't ...", see ``_REFUSAL``) or an answer whose content
    words mostly do not occur in the previous summary and the new messages (below
    ``ON_TASK_OVERLAP``, when it has at least 8 of them; words compared by their Snowball
    English stems, so "batches" matches "batch" and "shipped" "ship") would replace the
    running summary with noise.

    Raises:
        SummarizerError: the answer is a refusal or off-task; the text says which.
    """
    unquoted = _QUOTED.sub('""', summary.replace("\u2019", "'")).strip()
    opening = re.split(r"(?<=[.!?\u3002\uff01\uff1f])\s*", unquoted, maxsplit=1)[0]
    if _REFUSAL.search(_SPEAKER.sub("", opening[:200])):
        raise SummarizerError(
            f"{name} refused instead of summarizing ({summary[:80]!r}); the previous summary "
            "is kept and the fold is tried again later"
        )
    stemmer = snowballstemmer.stemmer("english")  # one per call: stemmers keep state
    words = stemmer.stemWords(content_words(summary))
    if len(words) >= 8:
        known = set(stemmer.stemWords(content_words(source)))
        overlap = sum(w in known for w in words) / len(words)
        if overlap < ON_TASK_OVERLAP:
            raise SummarizerError(
                f"{name} answered off-task: {overlap:.0%} of its words occur in the messages "
                f"({summary[:80]!r}); the previous summary is kept"
            )


def content_words(text: str) -> list[str]:
    """The words of four letters or more that are not stopwords, lowercased."""
    return [w.lower() for w in _LETTERS.findall(text) if w.lower() not in _STOP]
