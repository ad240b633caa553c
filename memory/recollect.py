"""Bring evicted turns back into the prompt: the ones relevant to the current query.

Turns that left the verbatim window (summarized or not yet) are found by the archive's
hybrid search (exact phrase, BM25 over SQLite FTS5, embeddings over FAISS, fused by
rank), joined by their neighbouring turns for context, and rendered under the header of
the conversation segment they belong to (the nearest earlier system message, e.g. a
session's date), so dates are kept. The result is a list of snippets for ``assemble``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from memory.archive import Archive, Hit
from memory.messages import Turn
from memory.tokens import TokenCounter

__all__ = ["DEFAULT_NEIGHBOURS", "Recollection", "recollect", "turn_line", "turn_text"]

DEFAULT_NEIGHBOURS = 2
"""Turns on each side of a top hit brought along for context."""
TOP_HITS_WITH_NEIGHBOURS = 10
EST_TOKENS_PER_TURN = 24
MAX_HITS = 400
SEGMENT_VOTERS = 30
SEGMENT_BOOST = 0.5


def turn_text(turn: Turn) -> str | None:
    """Return the searchable text of a user or assistant turn (None for others)."""
    message = turn.message
    if message.type not in ("human", "ai"):
        return None
    content = message.content
    if not isinstance(content, str):
        content = " ".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    content = content.strip()
    if not content:
        return None
    speaker = message.name or ("user" if message.type == "human" else "assistant")
    return f"{speaker}: {content}"


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
) -> Recollection:
    """Pick the evicted turns (and archived chunks) most relevant to ``query``.

    Args:
        archive: The session's archive (its index holds the turns too).
        query: What the prompt is for, usually the current user turn.
        before_seq: Only turns older than this are candidates (newer ones are verbatim).
        max_tokens: Most tokens the snippets may take, together.
        counter: Counts each line.
        turn_at: Looks a turn up by seq.
        segment_of: Returns the header of the segment a seq belongs to, if any.
        neighbours: Turns on each side of the best hits brought along.
    """
    if max_tokens <= 0 or not query.strip():
        return Recollection((), (), (), 0)
    k = min(MAX_HITS, max(8, max_tokens // EST_TOKENS_PER_TURN))
    hits = _boost_segments(
        archive.search(query, k=k, wait=0.0, turns=None, before_seq=before_seq), segment_of
    )
    chosen: dict[int, str] = {}
    chunks: list[tuple[Hit, str]] = []
    used = 0
    for rank, hit in enumerate(hits):
        if hit.ref:
            block = f"[tool output {hit.ref}, part {hit.idx + 1}]\n{hit.text}"
            tokens = counter.count(block) + 2
            if used + tokens <= max_tokens:
                chunks.append((hit, block))
                used += tokens
            continue
        span = range(hit.idx - neighbours, hit.idx + neighbours + 1)
        for seq in span if rank < TOP_HITS_WITH_NEIGHBOURS else (hit.idx,):
            if seq in chosen or seq >= before_seq:
                continue
            turn = turn_at(seq)
            line = turn_line(turn) if turn is not None else None
            if line is None:
                continue
            tokens = counter.count(line) + 1
            if used + tokens > max_tokens:
                continue
            chosen[seq] = line
            used += tokens
    snippets = _group(chosen, segment_of, counter)
    return Recollection(
        snippets=tuple(snippets + [block for _, block in chunks]),
        turn_seqs=tuple(sorted(chosen)),
        refs=tuple(dict.fromkeys(hit.ref for hit, _ in chunks)),
        estimated_tokens=used,
    )


def _boost_segments(hits: list[Hit], segment_of: Callable[[int], str | None]) -> list[Hit]:
    """Favour turns from the segments (sessions) where the best hits cluster.

    A question's evidence tends to sit in one or two sessions; the segments holding the
    top hits lend their turns up to ``SEGMENT_BOOST`` more score.
    """
    weight: dict[str | None, float] = {}
    for hit in hits[:SEGMENT_VOTERS]:
        if not hit.ref:
            segment = segment_of(hit.idx)
            weight[segment] = weight.get(segment, 0.0) + hit.score
    if not weight:
        return hits
    top = max(weight.values())

    def boosted(hit: Hit) -> float:
        if hit.ref:
            return hit.score
        return hit.score * (1.0 + SEGMENT_BOOST * weight.get(segment_of(hit.idx), 0.0) / top)

    return sorted(hits, key=lambda h: -boosted(h))


def _group(
    chosen: dict[int, str], segment_of: Callable[[int], str | None], counter: TokenCounter
) -> list[str]:
    """Render chosen turns chronologically, one snippet per segment."""
    groups: list[tuple[str | None, list[str]]] = []
    for seq in sorted(chosen):
        header = segment_of(seq)
        if not groups or groups[-1][0] != header:
            groups.append((header, []))
        groups[-1][1].append(chosen[seq])
    return ["\n".join(([f"[{h}]"] if h else []) + lines) for h, lines in groups]
