"""Pack the evicted turns (and archived chunks) relevant to a query into prompt snippets.

Turns are ranked by ``memory._recall.rank``, archived tool-output chunks by
``Archive.search``; the two alternate. The best turns bring their neighbours along; all
are rendered chronologically under the header of the conversation segment they belong
to (the nearest earlier system message, e.g. a session's date), with a gap line where
turns were left out between two (``memory._recall.headers``). A long message is
quoted by its matching passage, not from its start. Packing counts headers and
separators, so every snippet returned fits: ``assemble`` never has to drop one. It
renders no snippet while it chooses: each line is built and counted once with its
newline (both cached on the view), a header of message numbers is estimated as its runs
grow, and the joined snippets are counted exactly once at the end.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from memory._archive import Archive, Hit
from memory._focus import holds_a_word
from memory._recall.chitchat import informative, speaker_labels
from memory._recall.exact import identifiers, missing_identifiers
from memory._recall.excerpt import excerpt
from memory._recall.fuse import alternate, demote_questions
from memory._recall.headers import (
    DAY,
    GAP,
    NUMBERS_HEADER,
    chunk_block,
    number_tokens,
    segment_key,
    where,
    with_gaps,
)
from memory._recall.passages import passage_texts, turn_text
from memory._recall.rank import TurnRanker
from memory._tokens import TokenCounter
from memory._view import SessionView
from stores.text_search import query_terms

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "SEPARATOR",
    "Recollection",
    "recollect",
    "turn_line",
]

DEFAULT_NEIGHBOURS = 2
"""Turns on each side of a top hit brought along for context."""
TOP_HITS_WITH_NEIGHBOURS = 3
QUESTIONS_READ = 10
"""Ranked turns read to see whether they only ask (``fuse.demote_questions``)."""
SEPARATOR = "\n---\n"
"""Between snippets (one per segment, one per archived chunk)."""
SEPARATOR_TOKENS = 3
"""Most tokens a separator takes (an archived chunk's is counted so)."""
MIN_LINE_TOKENS = 4
MIN_CANDIDATES = 50
TOKENS_PER_CANDIDATE = 16
"""Ranked turns tried: one per this many tokens of room (most are longer, some skipped).
At 8, a 3,800-token lookup tried 476 turns and went through all of them on a 50,000-turn
session (~0.5 ms) when the last few tokens of room could not be filled; at 16 and at 32,
LoCoMo evidence recall (locomo.py, all 7 conversations, both feedings, 2k / 4k) and every
figure of benchmarks/cost.py are the same as at 8."""
CACHED_LINES = 4096
"""Most lines of whole turns kept on the view between calls (``SessionView.lines``)."""


def turn_line(view: SessionView, seq: int, passage: int = 0) -> str | None:
    """Render a turn for the prompt: speaker and verbatim text; for a long message, the
    passage ``passage`` of it, marked as a part."""
    turn = view.turn_at(seq)
    text = turn_text(turn) if turn is not None else None
    if text is None:
        return None
    pieces = passage_texts(text)
    if len(pieces) == 1:
        return text
    index = min(max(passage, 0), len(pieces) - 1)
    speaker, _, body = pieces[index].partition(": ")
    return f"{speaker} (part {index + 1} of {len(pieces)} of a long message): {body}"


def _said(view: SessionView, seq: int) -> str | None:
    """A turn's text without its speaker (None: not a text turn)."""
    turn = view.turn_at(seq)
    text = turn_text(turn) if turn is not None else None
    return None if text is None else text.partition(": ")[2]


@dataclass(frozen=True, slots=True)
class Recollection:
    """Snippets for the prompt and what they hold."""

    snippets: tuple[str, ...]
    turn_seqs: tuple[int, ...]
    refs: tuple[str, ...]
    estimated_tokens: int
    snippet_seqs: tuple[tuple[int, ...], ...] = ()
    """The turn seqs each snippet holds (empty for an archived chunk)."""


NOTHING = Recollection((), (), (), 0)


def recollect(
    ranker: TurnRanker,
    archive: Archive,
    view: SessionView,
    *,
    query: str,
    before_seq: int,
    max_tokens: int,
    counter: TokenCounter,
    neighbours: int = DEFAULT_NEIGHBOURS,
    floor: float | None = None,
    exclude: Collection[int] = (),
    chunks: bool = True,
    verify: bool = True,
) -> Recollection:
    """Pick the evicted turns (and archived chunks) most relevant to ``query``.

    Snippets are packed best first, segment headers and separators counted, so that
    ``counter.count(SEPARATOR.join(snippets)) <= max_tokens``.

    Args:
        ranker: Ranks the session's turns.
        archive: The session's archive (tool-output chunks).
        view: The session's view: turns by seq, segments, speakers, line token cache.
        query: What the prompt is for, usually the current user turn.
        before_seq: Only turns older than this are candidates (newer ones are verbatim).
        max_tokens: Most tokens the joined snippets may take.
        counter: Counts each line.
        neighbours: Turns on each side of the best hits brought along.
        floor: Turns scoring below this are not recalled (None: no floor); a query of
            chit-chat only (see ``informative``) recalls nothing when a floor is set.
        exclude: Seqs sent verbatim anyway (never recalled).
        chunks: Whether archived tool-output chunks are candidates too.
        verify: Count the joined snippets and drop the weakest until they fit (the
            packing's per-line counts may be short where tokens merge across joins).
            False leaves that to a caller that counts the snippets anyway (assemble
            counts its recall block once, exactly): a long text is counted once, not
            twice.
    """
    if max_tokens <= 0 or not query.strip():
        return NOTHING
    if floor is not None and not informative(query, speaker_labels(view, before_seq)):
        return NOTHING
    ranked = ranker.rank(
        query,
        before_seq=before_seq,
        layout=view.layout(),
        limit=max(MIN_CANDIDATES, max_tokens // TOKENS_PER_CANDIDATE),
    )
    ranked = [r for r in ranked if r.seq not in exclude and (floor is None or r.score >= floor)]
    ranked = demote_questions(ranked, lambda seq: _said(view, seq), QUESTIONS_READ)
    passages = {r.seq: r.passage for r in ranked}
    chunk_hits = _worded_chunks(archive, query, max_tokens) if chunks else []
    packing = _Packing(view, counter, passages, max_tokens)
    words = query_terms(query, stemmed=True)
    for rank, item in enumerate(alternate([r.seq for r in ranked], chunk_hits)):
        if isinstance(item, Hit):
            packing.add_chunk(item)
            continue
        # The hit first, then its neighbours nearest first: where room runs out, the
        # turn that matched is kept (not the greeting before it). A best hit too long for
        # the room is quoted by its best sentences.
        packing.add_turn(item)
        if not packing.chosen:
            packing.add_excerpt(item, words)
        if rank < TOP_HITS_WITH_NEIGHBOURS:
            for distance in range(1, neighbours + 1):
                for seq in (item - distance, item + distance):
                    if 0 <= seq < before_seq and seq not in exclude:
                        packing.add_turn(seq)
        if packing.used >= max_tokens - MIN_LINE_TOKENS:
            break
    picks = packing.picks
    while picks:
        snippets, snippet_seqs = _render(picks, packing)
        if not verify or counter.count(SEPARATOR.join(snippets)) <= max_tokens:
            break
        picks.pop()  # estimates were short (tokens merge across joins): drop the weakest
    else:
        snippets, snippet_seqs = [], []
    return Recollection(
        snippets=tuple(snippets),
        turn_seqs=tuple(sorted(p for p in picks if isinstance(p, int))),
        refs=tuple(dict.fromkeys(p.ref for p in picks if isinstance(p, Hit))),
        estimated_tokens=packing.used,
        snippet_seqs=tuple(snippet_seqs),
    )


def _worded_chunks(archive: Archive, query: str, max_tokens: int) -> list[Hit]:
    """The archived chunks holding the query's words (or a word of the same stem, or an
    identifier it names written otherwise: "INC5521" for "INC-5521"), best first; none
    found by meaning alone: a 300-item JSON listing found so for "what branch
    are we on?" filled 5,650 tokens of a 6,000-token lookup (a new-user trial). The recall
    tool still offers the best of those."""
    found = archive.search(query, k=max(4, max_tokens // 200), wait=0.0, tight=True)
    wanted = identifiers(query)
    return [
        hit
        for hit in found
        if holds_a_word(hit.text, query)
        or (wanted and len(missing_identifiers(hit.text, wanted)) < len(wanted))
    ]


class _Packing:
    """Turns and chunks chosen so far, and their tokens: each line counted once (and
    cached on the view), each snippet's header estimated as it grows, never rendered."""

    def __init__(
        self, view: SessionView, counter: TokenCounter, passages: dict[int, int], room: int
    ) -> None:
        self.view = view
        self.counter = counter
        self.passages = passages
        self.room = room
        self.used = 0
        self.picks: list[int | Hit] = []  # turn seqs, or archived chunks, in the order tried
        self.chosen: set[int] = set()
        self.lines: dict[int, str] = {}  # lines built on the way, for rendering
        self.headers: dict[int, str] = {}  # each chosen turn's segment
        self._segments: dict[str, set[int]] = {}  # header -> chosen seqs
        self._headers: dict[str, int] = {}  # header -> its tokens but for its numbers
        self._snippets = 0  # segments with a chosen turn
        self._cut: dict[int, int] = {}  # seq -> tokens of a line quoted as an excerpt
        # The newline before a separator ends the line before it (counted with the line).
        self._separator = max(counter.count(SEPARATOR) - counter.count("\n"), 0)
        self._gap = counter.count(f"{GAP}\n")

    def add_chunk(self, hit: Hit) -> None:
        """Take an archived chunk if it fits."""
        tokens = self.counter.count(chunk_block(hit)) + SEPARATOR_TOKENS
        if self.used + tokens <= self.room:
            self.picks.append(hit)
            self.used += tokens

    def add_turn(self, seq: int) -> None:
        """Take a turn if it, and what it adds to its snippet's header, fit."""
        if seq in self.chosen:
            return
        tokens = self._line_tokens(seq)
        if tokens is None or self.used + tokens > self.room:
            return  # cannot fit whatever its header costs
        header = self.headers[seq] = segment_key(self.view, seq)
        in_snippet = self._segments.setdefault(header, set())
        tokens += self._header_tokens(header, seq, in_snippet)
        if self.used + tokens > self.room:
            return
        self._snippets += not in_snippet
        in_snippet.add(seq)
        self.chosen.add(seq)
        self.picks.append(seq)
        self.used += tokens

    def add_excerpt(self, seq: int, words: Collection[str]) -> None:
        """Take a hit whose whole line does not fit by its best-matching sentences
        (``memory._recall.excerpt``), if they fit with its header."""
        line = self.line(seq)
        if line is None or seq in self.chosen:
            return
        header = segment_key(self.view, seq)
        extra = self._header_tokens(header, seq, self._segments.get(header, set()))
        room = self.room - self.used - extra
        cut = excerpt(line, words, lambda text: self.counter.count(text + "\n") <= room)
        if cut is None:
            return
        self.lines[seq], self._cut[seq] = cut, self.counter.count(cut + "\n")
        self.add_turn(seq)
        if seq not in self.chosen:  # not taken after all: the whole line stays its line
            self.lines[seq] = line
            del self._cut[seq]

    def _line_tokens(self, seq: int) -> int | None:
        """Tokens of a turn's line and its newline (whole turns cached on the view; None:
        not searchable)."""
        if seq in self._cut:
            return self._cut[seq]
        passage = self.passages.get(seq, 0)
        cached = self.view.line_tokens.get(seq) if passage == 0 else None
        if cached is not None:
            return cached
        line = self.line(seq)
        if line is None:
            return None
        tokens = self.counter.count(line + "\n")  # ".\n" is often one token
        if passage == 0:
            self.view.line_tokens[seq] = tokens
        return tokens

    def line(self, seq: int) -> str | None:
        """A turn's line (whole turns' kept on the view, up to ``CACHED_LINES``)."""
        if seq in self.lines:
            return self.lines[seq]
        passage = self.passages.get(seq, 0)
        kept = self.view.lines
        line = kept.get(seq) if passage == 0 else None
        if line is None:
            line = turn_line(self.view, seq, passage)
            if line is not None and passage == 0:
                if len(kept) >= CACHED_LINES:
                    kept.clear()
                kept[seq] = line
        if line is not None:
            self.lines[seq] = line
        return line

    def _header_tokens(self, header: str, seq: int, chosen: set[int]) -> int:
        """What taking ``seq`` adds to its snippet's header (and separator).

        A named header (or a day) is counted once; a header of message numbers grows
        with the runs it lists: a new run adds ", 123", a lone number becoming a run
        "-124", a run's end moving on nothing (unless it gains a digit), joining two runs
        nothing."""
        numbered = header == DAY
        digits = number_tokens(seq)
        if not chosen:  # a new snippet: its separator (none before the first) and header
            separator = self._separator if self._snippets else 0
            return separator + self._header_base(header) + (digits if numbered else 0)
        before, after = seq - 1 in chosen, seq + 1 in chosen
        if not numbered:  # a gap line, unless it is next to a turn taken (a bridge: 0)
            return 0 if before or after else self._gap
        if before and after:
            return 0
        if before and seq - 2 in chosen:
            return max(0, digits - number_tokens(seq - 1))
        if after and seq + 2 in chosen:
            return 0  # "124-130" becomes "123-130": a number no longer than it was
        return (1 if before or after else 2) + digits

    def _header_base(self, header: str) -> int:
        """Tokens of a snippet's header line with its newline: a segment's or a day's
        whole; for message numbers, all but the numbers."""
        if header not in self._headers:
            count = self.counter.count
            if header == DAY:
                tokens = count(NUMBERS_HEADER) - count("1")
            else:
                tokens = count(f"[{header.removeprefix(DAY)}]\n")
            self._headers[header] = tokens
        return self._headers[header]


def _render(picks: list[int | Hit], packing: _Packing) -> tuple[list[str], list[tuple[int, ...]]]:
    """Chosen turns chronologically, one snippet per segment; then the archived chunks.

    Also returns the turn seqs of each snippet."""
    groups: list[tuple[str, list[int], list[str]]] = []
    for seq in sorted(p for p in picks if isinstance(p, int)):
        line = packing.line(seq)
        if line is None:
            continue
        header = packing.headers.get(seq) or segment_key(packing.view, seq)
        if not groups or groups[-1][0] != header:
            groups.append((header, [], []))
        groups[-1][1].append(seq)
        groups[-1][2].append(line)
    rendered = [
        "\n".join([where(seqs, header), *with_gaps(packing.view, seqs, lines, header != DAY)])
        for header, seqs, lines in groups
    ]
    chunk_blocks = [chunk_block(p) for p in picks if isinstance(p, Hit)]
    seqs = [tuple(seqs) for _, seqs, _ in groups] + [() for _ in chunk_blocks]
    return rendered + chunk_blocks, seqs
