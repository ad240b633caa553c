"""Bring evicted turns back into the prompt: the ones relevant to the current query.

Turns that left the verbatim window (summarized or not yet) are ranked by the archive's
``TurnRanker`` (BM25 over SQLite FTS5 and embeddings over FAISS, z-scored and added, with
phrase, speaker, length and segment priors); archived tool-output chunks by the archive's
rank fusion; the two alternate. The best turns bring their neighbours along; all are
rendered chronologically under the header of the conversation segment they belong to
(the nearest earlier system message, e.g. a session's date), so dates are kept. Packing
counts headers and separators, so every snippet returned fits: ``assemble`` never has to
drop one. The result is a list of snippets for ``assemble``."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, MutableMapping
from dataclasses import dataclass

from memory._archive import Archive, Hit, interleave
from memory._messages import Turn
from memory._tokens import TokenCounter

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "Recollection",
    "informative",
    "recollect",
    "turn_line",
    "turn_text",
]

DEFAULT_NEIGHBOURS = 2
"""Turns on each side of a top hit brought along for context."""
TOP_HITS_WITH_NEIGHBOURS = 3
SEPARATOR = "\n---\n"
"""Between snippets (one per segment, one per archived chunk)."""


def turn_text(turn: Turn) -> str | None:
    """Return the searchable text of a user or assistant turn (None for others)."""
    if turn.kind not in ("human", "ai"):
        return None
    content, name = turn.text_parts()
    if not isinstance(content, str):
        content = " ".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    content = content.strip()
    if not content:
        return None
    speaker = name or ("user" if turn.kind == "human" else "assistant")
    return f"{speaker}: {content}"


_CHITCHAT_TEXT = """
a alright an and are awesome bye can cool could did do does done for from get go good got great
ha haha hello hey hi how i im is it its just let lol me more much my nice no not now of oh ok
okay on please perfect right see so sounds sure thank thanks that the then there this to too us
very was we well what whats when where which who why will with wow yeah yep yes you your
"""
CHITCHAT = frozenset(_CHITCHAT_TEXT.split())
"""Words that carry no topic: a turn made only of them ("ok thanks!") recalls nothing."""


def informative(query: str) -> bool:
    """True when ``query`` names something to look for (a word beyond chit-chat)."""
    words = re.findall(r"\w+", query.lower())
    return any(w not in CHITCHAT and (len(w) > 2 or w.isdigit()) for w in words)


def turn_line(turn: Turn) -> str | None:
    """Render a turn for the prompt: speaker and verbatim text (seqs are in the report)."""
    return turn_text(turn)


@dataclass(frozen=True, slots=True)
class Recollection:
    """Snippets for the prompt and what they hold."""

    snippets: tuple[str, ...]
    turn_seqs: tuple[int, ...]
    refs: tuple[str, ...]
    estimated_tokens: int
    snippet_seqs: tuple[tuple[int, ...], ...] = ()
    """The turn seqs each snippet holds (empty for an archived chunk)."""


def recollect(
    archive: Archive,
    *,
    query: str,
    before_seq: int,
    max_tokens: int,
    counter: TokenCounter,
    turn_at: Callable[[int], Turn | None],
    segment_of: Callable[[int], str | None],
    neighbours: int = DEFAULT_NEIGHBOURS,
    line_tokens: MutableMapping[int, int] | None = None,
    floor: float | None = None,
    exclude: Collection[int] = (),
    chunks: bool = True,
) -> Recollection:
    """Pick the evicted turns (and archived chunks) most relevant to ``query``.

    Turns are ranked by ``archive.turns`` (see ``memory._turnrank``), archived tool-output
    chunks by ``archive.search``; the two lists are interleaved rank by rank. Snippets are
    packed best first, segment headers and separators counted, so that
    ``counter.count(SEPARATOR.join(snippets)) <= max_tokens``.

    Args:
        archive: The session's archive (its index holds the turns too).
        query: What the prompt is for, usually the current user turn.
        before_seq: Only turns older than this are candidates (newer ones are verbatim).
        max_tokens: Most tokens the joined snippets may take.
        counter: Counts each line.
        turn_at: Looks a turn up by seq.
        segment_of: Returns the header of the segment a seq belongs to, if any.
        neighbours: Turns on each side of the best hits brought along.
        line_tokens: A cache of each turn's line tokens by seq, kept between calls.
        floor: Turns scoring below this are not recalled (None: no floor); a query of
            chit-chat only (see ``informative``) recalls nothing when a floor is set.
        exclude: Seqs sent verbatim anyway (never recalled).
        chunks: Whether archived tool-output chunks are candidates too.
    """
    if max_tokens <= 0 or not query.strip():
        return Recollection((), (), (), 0)
    if floor is not None and not informative(query):
        return Recollection((), (), (), 0)
    ranked = archive.turns.rank(
        query,
        before_seq=before_seq,
        limit=max(MIN_CANDIDATES, max_tokens // TOKENS_PER_CANDIDATE),
    )
    ranked = [
        (seq, score)
        for seq, score in ranked
        if seq not in exclude and (floor is None or score >= floor)
    ]
    chunk_hits = (
        archive.search(query, k=max(4, max_tokens // 200), wait=0.0, turns=False) if chunks else []
    )
    picks: list[int | Hit] = []  # turn seqs, or archived chunks, in the order tried
    chosen: set[int] = set()
    seen_segments: set[str | None] = set()
    used = 0
    for rank, item in enumerate(interleave([seq for seq, _ in ranked], chunk_hits)):
        if isinstance(item, Hit):
            block = _chunk_block(item)
            tokens = counter.count(block) + SEPARATOR_TOKENS
            if used + tokens <= max_tokens:
                picks.append(item)
                used += tokens
            continue
        span = range(item - neighbours, item + neighbours + 1)
        for seq in span if rank < TOP_HITS_WITH_NEIGHBOURS else (item,):
            if seq in chosen or seq >= before_seq or seq < 0 or seq in exclude:
                continue
            turn = turn_at(seq)
            line = turn_line(turn) if turn is not None else None
            if line is None:
                continue
            cached = line_tokens.get(seq) if line_tokens is not None else None
            tokens = counter.count(line) + 1 if cached is None else cached
            if line_tokens is not None:
                line_tokens[seq] = tokens
            header = segment_of(seq)
            if header not in seen_segments:
                tokens += SEPARATOR_TOKENS
                tokens += counter.count(f"[{header}]") + 1 if header else HEADER_TOKENS
            if used + tokens > max_tokens:
                continue
            seen_segments.add(header)
            chosen.add(seq)
            picks.append(seq)
            used += tokens
        if used >= max_tokens - MIN_LINE_TOKENS:
            break
    while picks:
        snippets, snippet_seqs = _render(picks, turn_at, segment_of)
        if counter.count(SEPARATOR.join(snippets)) <= max_tokens:
            break
        picks.pop()  # estimates were short (tokens merge across joins): drop the weakest
    else:
        snippets, snippet_seqs = [], []
    seqs = sorted(p for p in picks if isinstance(p, int))
    return Recollection(
        snippets=tuple(snippets),
        turn_seqs=tuple(seqs),
        refs=tuple(dict.fromkeys(p.ref for p in picks if isinstance(p, Hit))),
        estimated_tokens=used,
        snippet_seqs=tuple(snippet_seqs),
    )


SEPARATOR_TOKENS = 3
HEADER_TOKENS = 8
"""A snippet's "[messages 12-19, 23]" header, when it has no segment header."""
MIN_LINE_TOKENS = 4
MIN_CANDIDATES = 50
TOKENS_PER_CANDIDATE = 8
"""Ranked turns tried: one per this many tokens of room (most are longer, some skipped)."""


def _chunk_block(hit: Hit) -> str:
    return f"[tool output {hit.ref}, part {hit.idx + 1}]\n{hit.text}"


def _where(seqs: list[int], header: str | None) -> str:
    """Say where a snippet comes from: its segment's header (a session and its date), or
    else its messages' numbers (as runs)."""
    if header:
        return f"[{header}]"
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][-1] + 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    spans = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"[message {spans}]" if len(seqs) == 1 else f"[messages {spans}]"


def _render(
    picks: list[int | Hit],
    turn_at: Callable[[int], Turn | None],
    segment_of: Callable[[int], str | None],
) -> tuple[list[str], list[tuple[int, ...]]]:
    """Chosen turns chronologically, one snippet per segment; then the archived chunks.

    Also returns the turn seqs of each snippet."""
    groups: list[tuple[str | None, list[int], list[str]]] = []
    for seq in sorted(p for p in picks if isinstance(p, int)):
        turn = turn_at(seq)
        line = turn_line(turn) if turn is not None else None
        if line is None:
            continue
        header = segment_of(seq)
        if not groups or groups[-1][0] != header:
            groups.append((header, [], []))
        groups[-1][1].append(seq)
        groups[-1][2].append(line)
    rendered = ["\n".join([_where(seqs, header), *lines]) for header, seqs, lines in groups]
    chunk_blocks = [_chunk_block(p) for p in picks if isinstance(p, Hit)]
    seqs = [tuple(seqs) for _, seqs, _ in groups] + [() for _ in chunk_blocks]
    return rendered + chunk_blocks, seqs
