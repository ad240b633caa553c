"""Whether a query names something to look for, or is chit-chat ("ok thanks!").

Implicit recall (the user's latest turn as the query, with a relevance floor) runs only
for a turn with a word beyond chit-chat: recalled text on every "lol ok" costs ~130
uncached tokens a call and brings turns that only share a greeting. A chat app that
writes who speaks before the text ("Caroline: lol ok") keeps no name field: the label,
and the labels of the turns just before ("Thanks, Mel!"), are no topic either.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from memory._recall.passages import turn_text
from memory._view import SessionView

__all__ = ["CHITCHAT", "LABELS_READ", "informative", "speaker_labels"]

_CHITCHAT_TEXT = """
a afternoon alright an and are aww awww awesome best bye can care cheers congrats cool could
did do does done evening for from get glad go good goodbye got great ha haha hahaha hehe hello
hey hi how hugs i im is it its just later let lmao lol me more morning much my nice night no
not now of oh ok okay on please perfect right see so soon sorry sounds sure sweet take talk
thank thanks that the then there this to too us very was we welcome well what whats when
where which who why will with wow xoxo yeah yep yes you your
"""
CHITCHAT = frozenset(_CHITCHAT_TEXT.split())
"""Words that carry no topic: a turn made only of them ("ok thanks!") recalls nothing."""


_LABEL = re.compile(r"^\s*([A-Z][\w'-]*(?: [A-Z][\w'-]*){0,2})(?: [(\[][^)\]]{1,24}[)\]])?:\s")
"""A speaker's name written before the text ("Caroline: lol ok"), as chat apps that keep
no name field do, with a time after it or not ("Caroline (10:31): lol ok")."""
LABELS_READ = 4
"""Turns before the query whose speaker labels are no topic either ("Thanks, Mel!")."""


def informative(query: str, names: Collection[str] = ()) -> bool:
    """True when ``query`` names something to look for: a word beyond chit-chat, its own
    speaker label ("Caroline: lol ok") and ``names`` (lower-case; the start of one, as
    "mel" of "melanie", too) aside."""
    label = _LABEL.match(query)
    if label is not None:
        query, names = query[label.end() :], {*names, *label.group(1).lower().split()}
    words = re.findall(r"\w+", query.lower())
    return any(
        w not in CHITCHAT
        and not any(n.startswith(w) for n in names)  # "Mel" for "Melanie" too
        and (len(w) > 2 or w.isdigit() or not w.isascii())
        for w in words
    )


def speaker_labels(view: SessionView, before_seq: int) -> set[str]:
    """The words of the speaker labels of the ``LABELS_READ`` turns before ``before_seq``
    (lower-case): in a chat written "Name: text", who is talking is no topic."""
    found: set[str] = set()
    for seq in range(max(before_seq - LABELS_READ, 0), before_seq):
        turn = view.turn_at(seq)
        text = turn_text(turn) if turn is not None else None  # "speaker: what was said"
        label = _LABEL.match(text.partition(": ")[2]) if text else None
        if label is not None:
            found.update(label.group(1).lower().split())
    return found
