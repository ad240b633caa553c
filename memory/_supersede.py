"""Which sentences of an offline summary a later one supersedes: a fact whose value changed.

``ExtractiveSummarizer`` keeps sentences verbatim; when a later sentence changes a value
("the budget is now 15,000"), the earlier one ("the budget is 18,000") and what restated
it ("got it, 18,000") are left out, so the summary states the new value only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memory._answer_check import content_words

__all__ = ["supersessions"]

_CHANGE = re.compile(
    r"\b(now|instead|no longer|not \d|changed|updated|actually|correction|"
    r"scratch that|make that|i meant|revised|moved|rescheduled|reduced|raised|increased|"
    r"lowered|cut|went up|went down|change of plans?)\b",
    re.IGNORECASE,
)
_CORRECTION = re.compile(r"\b(not \d|scratch that|make that|i meant|correction)\b", re.IGNORECASE)
"""Markers that say outright an earlier value was wrong: then one shared word (not a
name) relates the correction to the latest sentence holding a value, when no sentence
is related more surely."""
_NUMBER = re.compile(r"\d[\d,.:/]*\d|\d")
_SUBJECT = re.compile(
    r"^(?:(?:update|ok|okay|so|well|also|actually|correction|note|change of plans?)"
    r"\b[,:]?\s+)?(?:(?:the|my|our|your|their)\s+)?"
    r"(?P<subject>[a-z][a-z'-]*(?:\s+[a-z][a-z'-]*){0,3}?)\s+"
    r"(?:is|are|was|were|will be|has been|(?:has been |was |is )?(?:changed|moved|"
    r"rescheduled|reduced|raised|increased|lowered|cut) to|went (?:up|down) to)\b",
    re.IGNORECASE,
)
"""What a sentence states a value of: "The budget is 18,000", "the budget is now 15,000"
and "the budget was cut to 15,000" are all about "budget"."""
_PRONOUNS = frozenset(
    ["it", "this", "that", "there", "here", "he", "she", "they", "we", "you", "i", "which",
     "what", "who", "who's", "it's", "that's"]
)  # fmt: skip
"""Subjects that name nothing by themselves ("it is now 3 years since...")."""


def supersessions(sentences: Sequence[str]) -> dict[int, set[int]]:
    """Which earlier sentences each later one supersedes (by index): its number changes
    theirs.

    A later sentence that marks a change ("now", "instead", "no longer", "not 18,000",
    "scratch that", ...) and holds a number supersedes an earlier sentence holding other
    numbers when they share a content word and the later one repeats an old number, or
    when they share two, or when both state a value of the same subject: "the budget is
    18,000" is superseded by "the budget is now 15,000". One that says outright the old
    value was wrong ("scratch that", "I meant") and is related to none so surely
    supersedes the latest sentence holding a value that shares a word with it, not a
    name: "scratch that, the budget is 15k".
    A sentence after a superseded one that restates its value (the same number of 3
    characters or more, and a content word in common or right after it: "got it, 18,000
    euros", "OK, 18,000.") goes with it.
    """
    bodies = [s.split(": ", 1)[-1] for s in sentences]  # the speaker is no shared word
    facts = [(set(_NUMBER.findall(b)), set(content_words(b))) for b in bodies]
    subjects = [_subject(b) for b in bodies]
    found: dict[int, set[int]] = {}
    for later, sentence in enumerate(sentences):
        numbers, words = facts[later]
        if not numbers or not _CHANGE.search(sentence):
            continue
        valued = [e for e in range(later) if facts[e][0] and facts[e][0] != numbers]
        gone = set()
        for earlier in valued:
            old_numbers, old_words = facts[earlier]
            shared = len(words & old_words)
            # By subject only when the earlier sentence says nothing the later one drops
            # ("the budget is 18,000 and the deadline is March 3" keeps its deadline).
            same_subject = (
                subjects[later] is not None
                and subjects[later] == subjects[earlier]
                and len(old_numbers) == 1
                and old_words <= words
            )
            if shared >= 2 or (shared and old_numbers & numbers) or same_subject:
                gone.add(earlier)
        if not gone and _CORRECTION.search(sentence):
            common = {w for w in words if re.search(rf"\b{re.escape(w)}\b", sentence)}
            gone = {next((e for e in reversed(valued) if facts[e][1] & common), -1)} - {-1}
        # What restates an old value after it ("Got it, 18,000 euros in total.") goes too.
        for old in list(gone):
            old_numbers, old_words = facts[old]
            for earlier in range(old + 1, later):
                restated = (facts[earlier][0] & old_numbers) - (numbers - old_numbers)
                related = facts[earlier][1] & old_words or earlier == old + 1  # the reply
                if any(len(n) >= 3 for n in restated) and related:
                    gone.add(earlier)
        if gone:
            found[later] = gone
    return found


def _subject(body: str) -> str | None:
    """What a sentence states a value of (``_SUBJECT``), lower-cased, or None."""
    found = _SUBJECT.match(body.strip())
    subject = found.group("subject").lower() if found else None
    return None if subject is None or subject.split()[0] in _PRONOUNS else subject
