"""One session's recall: evicted turns from the turn index, tool outputs from the archive.

``Recall`` is what the recall tool and ``assemble`` search through: turn passages ranked
by ``memory._recall.rank`` (each hit the matching passage of its turn, with the turn's
date), archived chunks by ``Archive.search``, alternating, best of each first. Only hits
that clear ``TOOL_FLOOR`` come back, so a query with one match returns that match, not
a page of filler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from memory._archive import Archive, Hit
from memory._indexer import Indexer
from memory._recall.fuse import interleave
from memory._recall.pack import turn_line
from memory._recall.passages import passage_texts, turn_text
from memory._recall.rank import MIN_WORD_SCORE, TurnRanker
from memory._recall.when import header_dates, sent_when
from memory._view import SessionView
from stores.turn_index import TurnIndex

__all__ = ["ALL_SEQS", "TOOL_FLOOR", "Recall"]

ALL_SEQS = 2**62
ANSWER_TURNS = 64
"""Most turns read from a user turn to the reply that answers it, and back (an agent's
tool calls and results between them; retracted turns and their records)."""
TOOL_FLOOR = 1.0
"""Least score (z-score units, see ``memory._recall.rank``) of a turn the tool returns."""
RELATIVE_FLOOR = 0.5
"""With a floor, turns scoring under this share of the best one are left out too: what
matches, not the best of what does not."""


class Recall:
    """Search one session's turns and archive.

    Args:
        ranker: Ranks the session's turns.
        passages: The store's turn index (passage texts and dates).
        archive: The session's archive of tool outputs.
        view: Returns the session's current view (it is rebuilt after a retraction).
    """

    def __init__(
        self,
        ranker: TurnRanker,
        passages: TurnIndex,
        archive: Archive,
        view: Callable[[], SessionView],
    ) -> None:
        self.ranker = ranker
        self.archive = archive
        self.counter = archive.counter
        self._passages = passages
        self._view = view

    @property
    def view(self) -> SessionView:
        """The session's current view."""
        return self._view()

    def degraded(self) -> str | None:
        """Return why search may miss what only embeddings would find, or None."""
        for indexer in (self.ranker.indexer, self.archive.indexer):
            if indexer is not None and (reason := indexer.degraded()) is not None:
                return reason
        return None

    def words_too_common(self, query: str) -> bool:
        """Whether the session's turns hold some of ``query``'s words, but only words that
        weigh nothing: BM25 gives a word in most passages ~0 (``rank.MIN_WORD_SCORE``),
        so a search by words picks out none of them."""
        best = self._passages.search_ids(self.archive.session, query, limit=1)
        return bool(best) and best[0][1] <= MIN_WORD_SCORE

    @property
    def indexers(self) -> tuple[Indexer, ...]:
        """The session's embedders: passages, then archive chunks."""
        found = (self.ranker.indexer, self.archive.indexer)
        return tuple(i for i in found if i is not None)

    def turns(
        self,
        query: str,
        *,
        k: int,
        before_seq: int | None = None,
        floor: float | None = None,
        skip: int | None = None,
    ) -> list[Hit]:
        """Return the best passages of the session's turns for ``query`` (ref ``""``,
        ``idx`` the turn's seq, ``created_at`` its time), best first; ``skip``: a turn
        left out (the question in front of the model, which matches itself best)."""
        view = self.view
        bound = min(before_seq or ALL_SEQS, view.last_seq + 1)
        layout = view.layout()
        ranked = self.ranker.rank(query, before_seq=bound, layout=layout, limit=2 * k + 1)
        ranked = [r for r in ranked if r.seq != skip]
        when = frozenset(sent_when(query, layout, bound))  # labelled "by its date"
        headed = {layout.segment_starts[i] for i, _ in header_dates(layout)}
        if floor is not None and ranked:
            floor = max(floor, RELATIVE_FLOOR * ranked[0].score)
        shown = [
            r for r in ranked if r.seq not in view.hidden and (floor is None or r.score >= floor)
        ][:k]
        ids = [r.passage_id for r in shown if r.passage_id is not None]
        records = {p.id: p for p in self._passages.passages(self.archive.session, ids)}
        found = []
        for r in shown:
            p = records.get(r.passage_id) if r.passage_id is not None else None
            if p is None:  # found by a prior alone (it holds the query as a phrase)
                turn, line = view.turn_at(r.seq), turn_line(view, r.seq, r.passage)
                if turn is not None and line is not None:
                    hit = Hit("", r.seq, 0, len(line), line, r.score, created_at=turn.at)
                    found.append(hit)
                continue
            # A turn found by a context copy is quoted by its own text: the copy holds two
            # turns, each quoted (and labelled) apart when it matches. A passage of a long
            # message is labelled as the prompt labels it ("(part 16 of 31 of a long
            # message)").
            text = own_text(view, r.seq) if p.context else turn_line(view, r.seq, p.idx)
            at = p.created_at
            if p.seq != r.seq:  # the copy of the turn after it (``shared_copies``)
                if text is None:  # a turn without text: the copy matched the next one's
                    continue
                at = view.time_of(r.seq) or at
            text = text or p.text
            hit = Hit("", r.seq, 0, len(text), text, r.score, created_at=at)
            found.append(hit)
        return _with_answers(found, view, when, headed, bound=bound)[:k]

    def search(
        self,
        query: str,
        *,
        ref: str | None = None,
        k: int = 5,
        wait: float | None = 10.0,
        turns: bool | None = None,
        floor: float | None = None,
    ) -> list[Hit]:
        """Return what matches ``query``: archived chunks (of ``ref``, or all) and, unless
        ``turns`` is False or a ref is given, turn passages; ``turns=True``: turns only.

        ``floor``: least score of a turn hit (None: no floor); archived chunks are
        narrowed by ``Archive.search``.
        """
        tight = floor is not None
        if ref is not None or turns is False:
            return self.archive.search(query, ref=ref, k=k, wait=wait, tight=tight)
        # A question waiting for its answer is in front of the model (and matches itself
        # best): the tool reads the other turns, the task's own tool results among them
        # (read only up to the question, an agent could not find what it had fetched).
        found = self.turns(query, k=k, floor=floor, skip=self.view.pending_user_seq())
        if turns is True:
            return found
        outputs = self.archive.search(query, k=k, wait=wait, tight=tight)
        return interleave(found, outputs)[:k]


def own_text(view: SessionView, seq: int) -> str | None:
    """A turn's first passage, as its context copy joins it (None: not in the view)."""
    turn = view.turn_at(seq)
    text = turn_text(turn) if turn is not None else None
    return passage_texts(text)[0] if text else None


def _with_answers(
    hits: list[Hit], view: SessionView, when: frozenset[int], headed: set[int], *, bound: int
) -> list[Hit]:
    """Each user turn's hit followed by the assistant's reply to it, and each reply's hit
    by the user turn it answers (best first still: ``memory.tool`` shows the two in
    order), brought forward when it is a later hit, or brought along when it is none.

    A question matches a query best, and its answer, which often shares none of its
    words ("It is hunter2-blue."), would fall under the floor; a reply may match by its
    words ("a lovely morning routine") while the fact is in what it replies to ("I
    always order a café crème before work"). Each is placed in time (``_placed``): a
    turn in ``when`` (sent on a date the query names) is marked as found by it,
    whichever way it came."""
    later = {h.idx: h for h in hits}
    shown = set(later)
    found: list[Hit] = []
    for hit in hits:
        if later.pop(hit.idx, None) is None:  # brought forward already
            continue
        turn = view.turn_at(hit.idx)
        kind = turn.kind if turn is not None else None
        found.append(hit)
        if kind == "ai" and (seq := _asked(view, hit.idx)) is not None:
            asked = later.pop(seq, None) or _paired(view, hit, seq, "human", shown, bound)
            if asked is not None:
                found.append(dataclasses.replace(asked, answered_by=hit.idx))
        if kind == "human" and (seq := _answer(view, hit.idx)) is not None:
            reply = later.pop(seq, None) or _paired(view, hit, seq, "ai", shown, bound)
            if reply is not None:
                found.append(dataclasses.replace(reply, answers=hit.idx))
    return [_placed(h, view, when, headed) for h in found]


def _answer(view: SessionView, seq: int) -> int | None:
    """The seq of the assistant's answer to the user turn ``seq``: its first reply that
    calls no tool, after the tool rounds between them (an agent's "Let me check." calls
    one; read up to the next user turn, at most ``ANSWER_TURNS`` turns), else its first
    reply; None when there is none. Retracted turns are passed over."""
    first = None
    for after in range(seq + 1, seq + 1 + ANSWER_TURNS):
        turn = view.turn_at(after)
        if turn is None or after in view.hidden:  # retracted, or a retraction's record
            continue
        if turn.kind == "human":
            break
        if turn.kind == "ai":
            first = after if first is None else first
            if not turn.calls:
                return after
    return first


def _asked(view: SessionView, seq: int) -> int | None:
    """The seq of the user turn the reply ``seq`` answers, back over the tool rounds
    between them (at most ``ANSWER_TURNS`` turns; retracted ones passed over); None
    when there is none."""
    for before in range(seq - 1, max(seq - 1 - ANSWER_TURNS, -1), -1):
        turn = view.turn_at(before)
        if turn is None or before in view.hidden:  # retracted, or a retraction's record
            continue
        if turn.kind == "system":
            return None
        if turn.kind == "human":
            return before
    return None


def _paired(
    view: SessionView, hit: Hit, seq: int, kind: str, shown: set[int], bound: int
) -> Hit | None:
    """The turn at ``seq`` as a hit scored like ``hit``, when it is of ``kind``, shown
    to the model and not among the hits yet (then it is, in ``shown``)."""
    if seq in shown or not 0 <= seq < bound or seq in view.hidden:
        return None
    turn = view.turn_at(seq)
    if turn is None or turn.kind != kind or not (text := own_text(view, seq)):
        return None
    shown.add(seq)
    return Hit("", seq, 0, len(text), text, hit.score, created_at=turn.at)  # placed by caller


def _placed(hit: Hit, view: SessionView, when: frozenset[int], headed: set[int]) -> Hit:
    """``hit`` dated when its turn is in ``when`` (sent on the dates the query names)
    and, when its segment's header dates it (``headed``: the seqs of such headers,
    ``memory._recall.when.header_dates``), with that header in place of its time (turns
    stored at once, an import under "Session 5 · 1:56 pm on 8 May, 2023", all carry the
    day of the import: a false date)."""
    segment = view.segment(hit.idx)
    if segment is None or segment[0] not in headed:
        return dataclasses.replace(hit, dated=hit.idx in when)
    return dataclasses.replace(hit, created_at=None, segment=segment[1], dated=hit.idx in when)
