"""Who a name in a query is when messages carry no names: the role the others address by it.

A chat app sends user and assistant messages without a ``name``, yet people call each
other by name: "Hey Caroline!", "Thanks, Mel.", "Sam, did you ...". A name that one
role's turns address, and the other role's turns do not, belongs to the other role: the
assistant greeting its user by name makes the name the user's, a user thanking "Ava"
makes "Ava" the assistant's. Merely mentioning a name ("my sister Anna") is no address,
so a friend the user talks about is not taken for either side. A message signed with a
name, as a transcript's line is ("Caroline: I went..."), is its sender's own: once taken
for an address, it gave the name to the other role in benchmarks/cost.py's LoCoMo
feeding (speakers written in the text): of the 14 speakers of the 7 dev conversations,
7 went to the wrong role and none to the right one (now all 14 to the right one), and
the evidence recall at 4,000 tokens rose from 0.894 to 0.939. Only names no message
carries are worked out here; named speakers are known from the messages themselves.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from memory._recall.passages import ROLE_SPEAKERS
from stores.turn_index import TurnIndex

__all__ = [
    "CACHED_NAMES",
    "DOMINANCE",
    "MAX_NAMES",
    "MIN_ADDRESSED",
    "NAME_POOL",
    "OTHER_ROLE",
    "SpokenTurns",
    "addressed",
    "holds",
    "named_roles",
    "query_names",
    "role_named",
    "speaking_roles",
    "without_names",
]

MAX_NAMES = 3
"""Most names of one query looked up (each costs a phrase query and a read)."""
NAME_POOL = 50
"""Turns holding a name read to learn whose it is (the newest)."""
MIN_ADDRESSED = 2
"""Least turns that must address a name before it is taken for the other role's."""
DOMINANCE = 3.0
"""How many times more often one role addresses a name than the other, at least. Not
tuned: in the 7 LoCoMo dev conversations each speaker is addressed 17-210 times by the
other and at most once by themself (benchmarks/locomo.py, plain feeding: evidence recall
of 2 conversations 0.853 → 0.913 at 2,000 tokens, 0.906 → 0.952 at 4,000)."""
OTHER_ROLE = {"human": "ai", "ai": "human"}
"""The role spoken to by each role (a chat between a user and an assistant)."""

_GREETINGS = (
    "hey|hi|hello|hiya|howdy|yo|dear|thanks|thank you|thx|bye|goodbye|see you|congrats|"
    "congratulations|good morning|good night|morning|evening|welcome|sorry|wow|oh|aw|ah|"
    "great job|well done|good luck|cheers|love you|miss you|happy birthday|"
    "hola|gracias|merci|bonjour|salut|danke|hallo|ciao|grazie|obrigado|obrigada"
)
_INTERJECTIONS = (
    "sure|ok|okay|yes|yeah|yep|no|nope|right|great|nice|cool|awesome|absolutely|exactly|"
    "agreed|indeed|alright|of course|no worries|true|haha|lol"
)
"""Said before a name and a comma, the name ending its clause ("Sure, Sam."): the name is
spoken to. Not when the name starts a sentence: "Yes, Paris is pricey" is about Paris."""
_LOWER = r"(?=[^\W_A-Z\u00c0-\u00de])"
"""A word ahead that starts with no capital (ASCII or Latin-1; a digit will do): no name,
no list item."""
_COMMON_TEXT = """
a about after all also an and any are as at be been before both but by can could did do
does during for from had has have how i if in is it its last may me might my no not of on
or our over should since so than that the their them then there these they this those to
under until was we were what whats when where which while who whom whose why will with
would yes you your
monday tuesday wednesday thursday friday saturday sunday january february march april
june july august september october november december
"""
_NOT_NAMES = frozenset(_COMMON_TEXT.split())
"""Capitalized words that are no names (a question's first word, days, months)."""
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")


CACHED_NAMES = 1024
"""Most names whose role a session remembers (the cache starts over past it)."""


def query_names(query: str) -> list[str]:
    """Return the words of ``query`` that may be names (capitalized, not a common word),
    possessives trimmed, in order, at most ``MAX_NAMES``."""
    found: list[str] = []
    for word in _WORD.findall(query):
        word = re.sub(r"['\u2019]s?$", "", word)
        if len(word) < 2 or not word[0].isupper() or word.lower() in _NOT_NAMES:
            continue
        if word not in found:
            found.append(word)
    return found[:MAX_NAMES]


def _pattern(name: str) -> re.Pattern[str]:
    """Where a message speaks to ``name``: opening with it ("Sam, did you ...", "Sam!"),
    after a greeting ("Hey Sam", "Gracias, José!"), after a greeting or an interjection and
    a comma when it ends the clause ("Thanks, Sam.", "Sure, Sam."; not "Sorry, Paris is
    sold out"), or set
    off by a comma at a sentence's end after a word that is no name ("That sounds lovely,
    Sam!"). Names in a list are none: "Scout, Toby, and I", "Rome, Paris." (a list of
    cities made "Paris" the assistant's name), "I visited Rome, Paris." A name is
    matched whatever its case; the words around it by theirs."""
    n = f"(?i:{re.escape(name)})"
    return re.compile(
        rf"^\W*{n}\s*(?:!|,\s*(?:{_LOWER}|I\b|$))"
        rf"|(?<!\w)(?i:{_GREETINGS})\s+{n}(?!\w)"
        rf"|(?<!\w)(?i:{_GREETINGS}|{_INTERJECTIONS}),\s*{n}\s*(?:[!?.,;]|$)"
        rf"|(?<![\w'\u2019-]){_LOWER}[\w'\u2019-]*,\s*{n}\s*(?:[!?.]|$)",
        re.MULTILINE,
    )


def _label(name: str) -> re.Pattern[str]:
    """Where a message is signed with ``name`` as a transcript's line is ("Sam: ...", after
    a bracketed time or not: "[1:56 pm] Sam: ..."): the name is its sender's. A name in
    the bracket is none: an agent's tool output "[File: /x.py (9 lines)]" made "File" the
    user's name and cost SWE-agent runs recall picks (``benchmarks/cost.py``)."""
    return re.compile(rf"^\s*(?:\[[^\]\n]*\]\s*)?{re.escape(name)}\s*:", re.IGNORECASE)


def addressed(name: str, text: str) -> bool:
    """Whether ``text`` (a message's content, no speaker) speaks to ``name``."""
    return _pattern(name).search(text) is not None


def role_named(name: str, texts: Iterable[tuple[str, str]]) -> str | None:
    """Return the role ``name`` belongs to ("human" or "ai"), or None when unsure.

    Args:
        name: A name from a query.
        texts: ``(role, content)`` of turns mentioning the name.
    """
    pattern, label = _pattern(name), _label(name)
    votes = dict.fromkeys(OTHER_ROLE, 0)  # turns saying the name is each role's
    for role, text in texts:
        if role not in votes:
            continue
        if label.search(text) is not None:
            votes[role] += 1  # signed with it: the sender's own name
        elif pattern.search(text) is not None:
            votes[OTHER_ROLE[role]] += 1  # spoken to: the other role's
    for role, other in OTHER_ROLE.items():
        if votes[role] >= MIN_ADDRESSED and votes[role] >= DOMINANCE * votes[other]:
            return role
    return None


def named_roles(
    passages: TurnIndex,
    session: str,
    query: str,
    *,
    before_seq: int,
    roles: Mapping[str, Sequence[int]],
    known: Iterable[str] = (),
    cache: dict[str, tuple[str | None, int]] | None = None,
) -> dict[str, str]:
    """Return ``{name: role}`` for the query's names that are no ``known`` speaker's and
    whose role the turns before ``before_seq`` tell (a phrase query and a read per name).

    With ``cache`` (``{name: (role, before_seq)}``, kept by the caller per session), a
    name's answer is reused until the session has doubled since it was worked out: who
    a name belongs to settles early, and the lookups cost about 1.6 ms a query.

    Args:
        passages: The store's turn index.
        session: The session.
        query: The query.
        before_seq: Only turns older than this are read.
        roles: Each role's turn seqs, ascending (``Layout.roles``).
        known: Names messages carry (those speakers are known).
    """
    skip = {name.lower() for name in known}
    found: dict[str, str] = {}
    for name in query_names(query):
        if name.lower() in skip:
            continue
        kept = None if cache is None else cache.get(name.lower())
        if kept is not None and before_seq <= 2 * kept[1]:
            if kept[0] is not None and kept[0] in roles:
                found[name] = kept[0]
            continue
        hits = passages.phrase(session, name, before_seq=before_seq, limit=NAME_POOL)
        ids = [hit.id for hit in hits if not hit.context]
        texts = [
            (role, record.text.partition(": ")[2])
            for record in passages.passages(session, ids)
            for role, seqs in roles.items()
            if holds(seqs, record.seq)
        ]
        role = role_named(name, texts)
        if cache is not None:
            if len(cache) >= CACHED_NAMES:
                cache.clear()
            cache[name.lower()] = (role, before_seq)
        if role is not None and role in roles:
            found[name] = role
    return found


def speaking_roles(
    query: str,
    named: Mapping[str, str],
    *,
    roles: Mapping[str, Sequence[int]],
    speakers: Mapping[str, Sequence[int]],
) -> str:
    """Return ``query`` with each name in ``named`` replaced by the speaker its role's
    turns are indexed under: the name of the role's latest turn, else ``"user"`` or
    ``"assistant"``.

    Args:
        query: The query.
        named: ``{name: role}`` (from ``named_roles``).
        roles: Each role's turn seqs, ascending (``Layout.roles``).
        speakers: Each named speaker's turn seqs, ascending (``Layout.speakers``).
    """
    for name, role in named.items():
        latest = roles[role][-1] if roles.get(role) else None
        speaker = next(
            (s for s, seqs in speakers.items() if latest is not None and holds(seqs, latest)),
            ROLE_SPEAKERS[role],
        )
        query = re.sub(_mention(name), speaker, query)
    return query


def without_names(query: str, names: Iterable[str]) -> str:
    """Return ``query`` without ``names`` (and their possessives), or ``query`` itself
    when no word of three letters or more would be left.

    What a query asks about a speaker is also searched without the speaker's name: the
    name is in nearly every turn that speaker says or is spoken to in, and it pulls the
    query's embedding towards greetings ("Thanks, Mel!") rather than the topic; the
    speaker's turns are lifted by ``memory._recall.rank.SPEAKER_BONUS``.
    """
    stripped = query
    for name in names:
        stripped = re.sub(_mention(name), " ", stripped, flags=re.IGNORECASE)
    stripped = re.sub(r"\s+", " ", stripped).strip()
    return stripped if re.search(r"\w{3,}", stripped) else query


def _mention(name: str) -> str:
    """A regex for ``name`` as a whole word, with its possessive ("Mel's")."""
    return rf"(?<!\w){re.escape(name)}(?:['\u2019]s)?(?!\w)"


def holds(seqs: Sequence[int], seq: int) -> bool:
    """Whether the ascending ``seqs`` hold ``seq``."""
    position = bisect.bisect_left(seqs, seq)
    return position < len(seqs) and seqs[position] == seq


class SpokenTurns:
    """Which candidate turns are a speaker's, in one vectorized step per speaker.

    A speaker's turn seqs (``SessionView.layout``) are an ascending list that only grows
    (a rebuilt view brings new lists): each is kept as an array, extended by what was
    appended since, instead of one bisect per candidate.
    """

    MAX_KEPT = 64
    """Lists kept (a session has few speakers; rebuilt views leave old lists behind)."""

    def __init__(self) -> None:
        self._arrays: dict[int, tuple[Sequence[int], np.typing.NDArray[np.int64]]] = {}
        self._lock = threading.Lock()

    def among(
        self, spoken: Sequence[int], seqs: np.typing.NDArray[np.int64]
    ) -> np.typing.NDArray[np.bool_]:
        """For each of ``seqs``, whether the ascending ``spoken`` holds it."""
        with self._lock:
            kept = self._arrays.get(id(spoken))
            if kept is None or kept[0] is not spoken or len(kept[1]) > len(spoken):
                array = np.asarray(spoken, dtype=np.int64)
            else:
                array = kept[1]
                if len(array) < len(spoken):
                    tail = np.asarray(spoken[len(array) :], dtype=np.int64)
                    array = np.concatenate([array, tail])
            if len(self._arrays) >= self.MAX_KEPT and id(spoken) not in self._arrays:
                self._arrays.clear()
            self._arrays[id(spoken)] = (spoken, array)
        position = np.searchsorted(array, seqs)
        inside = position < len(array)
        found = np.zeros(len(seqs), dtype=bool)
        found[inside] = array[position[inside]] == seqs[inside]
        return found
