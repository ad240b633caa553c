"""Reversible tool outputs: the original goes to the archive, the prompt gets a digest.

``Archive.prepare`` compresses a tool output into a structure-aware digest under a header
that names its ref; ``Archive.store`` writes the byte-exact original and its chunks (inside
the caller's transaction); ``get`` returns the original, checked by SHA-256; ``search``
finds the chunks most relevant to a query, by exact phrase, full-text (BM25) and
embedding similarity, fused by reciprocal rank. Conversation turns are not here: they
have their own index (``stores.turn_index``) and ranking (``memory._recall``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from memory._compress import Digest, chunk, compress
from memory._compress.chunk import merge_small
from memory._compress.delta import (
    MAX_DELTA_CHARS,
    RECENT_OUTPUTS,
    Match,
    RecentOutputs,
    best_match,
    delta_body,
)
from memory._errors import InputError
from memory._indexer import Indexer
from memory._recall.fuse import exact_matches
from memory._recall.passages import approximate_tokens, storable
from memory._tokens import TokenCounter
from stores.base import BlobRecord, BlobStore, ChunkRecord, NewChunk
from stores.text_search import query_terms, word_pattern

__all__ = [
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "Archive",
    "ArchivedOutput",
    "Hit",
    "approximate_tokens",
    "storable",
]

DEFAULT_CHUNK_TOKENS = 160
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024
_REF_LENGTHS = (8, 12, 16, 24, 64)
_RRF_K = 60
VECTOR_WEIGHT = 2.0
EXACT_WEIGHT = 3.0
"""The query's words found in order in a chunk: the strongest signal there is."""
"""Embedding ranks count twice in the fusion (measured on LoCoMo: +3 points of recall)."""


def encode_exact(text: str) -> bytes:
    """Encode text to bytes reversibly, lone surrogates included."""
    return text.encode("utf-8", "surrogatepass")


def decode_exact(data: bytes) -> str:
    """Invert :func:`encode_exact`."""
    return data.decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class ArchivedOutput:
    """A tool output ready to be archived, and the text that replaces it in prompts."""

    ref: str
    digest: Digest
    prompt_text: str
    record: BlobRecord
    data: bytes
    chunks: tuple[NewChunk, ...]
    call: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One chunk of an archived original returned by a search, or (``ref`` empty) the
    matching passage of a conversation turn, ``idx`` its seq, with the turn's time (None
    where it tells nothing: a session whose turns were all sent on one day);
    ``answered_by``: the seq of the reply whose hit brought this turn along (the user
    turn that reply answers); ``answers``: the seq of the user turn whose hit brought
    this reply along (its answer, after any tool rounds); ``segment``: the turn's segment
    header ("Session 5 · 1:56 pm on 8 May, 2023"), if any; ``dated``: the turn was found
    by the date the query names."""

    ref: str
    idx: int
    start: int
    end: int
    text: str
    score: float
    created_at: float | None = None
    answered_by: int | None = None
    answers: int | None = None
    segment: str | None = None
    dated: bool = False


def header(ref: str, digest: Digest, digest_tokens: int, delta_of: str | None = None) -> str:
    """The one marker format: what was cut, and how to get it back.

    With ``delta_of`` the body is a change to that earlier output: a unified diff, or
    ``unchanged`` (an identical output has the same ref: "sent before, now:").
    """
    parts = [f"ref {ref}", digest.note or digest.kind]
    parts.append(f"{digest.original_tokens:,} tokens → {digest_tokens:,}")
    if delta_of == ref:
        parts.append("sent before, now:")
    elif delta_of is not None:
        parts.append(f"same as ref {delta_of} except:")
    parts.append(f'recall(ref="{ref}", query=...) for more')
    return "[" + " · ".join(parts) + "]"


class Archive:
    """One session's archive of tool outputs.

    Args:
        session: Scopes every read and write.
        blobs: The blob store.
        counter: Counts digest and chunk tokens.
        indexer: Embeds chunks in the background; None disables embedding search.
        chunk_tokens: Target size of a chunk.
        max_output_bytes: Largest tool output accepted.
        deltas: Send an output that repeats an earlier one (identical or similar) as
            "same as ref X except:" and a diff, where that is smaller than its digest.
    """

    def __init__(
        self,
        session: str,
        blobs: BlobStore,
        counter: TokenCounter,
        indexer: Indexer | None,
        *,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        deltas: bool = True,
    ) -> None:
        self.session = session
        self.counter = counter
        self.indexer = indexer
        self.chunk_tokens = chunk_tokens
        self.max_output_bytes = max_output_bytes
        self._blobs = blobs
        self._has_outputs = False
        self.deltas = deltas
        self.recent = RecentOutputs()
        """The latest archived outputs, which a repeated output is sent as a change to."""
        self._seeded = False
        self.calls: dict[str, str] = {}  # tool-call id → call_key(name, arguments)
        self.hidden_refs: set[str] = set()
        """Refs of the outputs of retracted tool results, never returned by a search."""

    def _free_ref(self, sha256: str) -> str:
        for length in _REF_LENGTHS:
            ref = sha256[:length]
            if self._blobs.lookup(self.session, ref) in (None, sha256):
                return ref
        return sha256  # pragma: no cover - a full SHA-256 collision

    def prepare(
        self, text: str, *, max_tokens: int, original_tokens: int, call: str | None = None
    ) -> ArchivedOutput | None:
        """Compress ``text``; None when the digest would not be smaller than the original.

        ``call`` is the key of the tool call the output answers (``delta.call_key``).

        Raises:
            InputError: the output is larger than ``max_output_bytes``.
        """
        data = encode_exact(text)
        if len(data) > self.max_output_bytes:
            raise InputError(
                f"tool output of {len(data):,} bytes exceeds max_output_bytes "
                f"({self.max_output_bytes:,}); raise the limit or truncate the output"
            )
        sha256 = hashlib.sha256(data).hexdigest()
        ref = self._free_ref(sha256)
        digest = compress(
            text, count=_known(self.counter.count, text, original_tokens), max_tokens=max_tokens
        )
        # Past 1 MB compress() estimates the original's tokens; the caller counted them.
        digest = dataclasses.replace(digest, original_tokens=original_tokens)
        body, tokens = self._with_header(ref, digest, digest.text)
        earlier = self._earlier(text, call) if self.deltas else None
        if earlier is not None:
            delta, delta_tokens = self._with_header(
                ref, digest, delta_body(earlier.text, text), earlier.ref
            )
            if delta_tokens < tokens:  # a delta only where it beats a fresh digest
                body, tokens = delta, delta_tokens
                digest = dataclasses.replace(digest, note=f"{digest.note} · delta of {earlier.ref}")
        if tokens >= original_tokens:
            return None
        # Chunk sizes need not be exact: a byte-based estimate keeps chunking cheap on
        # large outputs (and errs small, so chunks stay within the embedder's window).
        pieces = merge_small(
            chunk(text, digest.kind, count=approximate_tokens, max_tokens=self.chunk_tokens),
            self.chunk_tokens // 4,
            count=approximate_tokens,
        )
        record = BlobRecord(
            session=self.session,
            ref=ref,
            sha256=sha256,
            size=len(data),
            kind=digest.kind,
            tokens=original_tokens,
            digest_tokens=tokens,
            note=storable(digest.note),
            created_at=time.time(),
        )
        # Chunk texts feed search only (the original is exact in the blob), so characters
        # SQLite cannot store, such as lone surrogates, become U+FFFD there.
        chunks = tuple(NewChunk(p.start, p.end, storable(p.text)) for p in pieces)
        return ArchivedOutput(ref, digest, body, record, data, chunks, call)

    def _earlier(self, text: str, call: str | None) -> Match | None:
        """The session's earlier output most like ``text`` that is still archived."""
        if not self._seeded:
            self._seeded = True
            for record in self._blobs.refs(self.session)[-RECENT_OUTPUTS:]:
                if record.size <= MAX_DELTA_CHARS:
                    self.recent.remember(record.ref, self.get(record.ref))
        match = best_match(text, self.recent.items(), same_call=self.recent.answering(call))
        if match is None or self._blobs.lookup(self.session, match.ref) is None:
            return None  # e.g. the transaction that stored it was rolled back
        return match

    def _with_header(
        self, ref: str, digest: Digest, text: str, delta_of: str | None = None
    ) -> tuple[str, int]:
        """Put the header on a body; the tokens it states are those of the result."""
        tokens = digest.digest_tokens
        for _ in range(4):  # the stated count changes the count: settle on a fixed point
            body = header(ref, digest, tokens, delta_of) + "\n" + text
            counted = self.counter.count(body)
            if counted == tokens:
                break
            tokens = counted
        return body, counted

    def store(self, prepared: ArchivedOutput) -> None:
        """Write the original and its chunks (joins the caller's transaction)."""
        self._blobs.put(prepared.record, prepared.data, prepared.chunks)
        self._has_outputs = True
        if self.deltas:
            self.recent.remember(prepared.ref, decode_exact(prepared.data), prepared.call)

    def get(self, ref: str) -> str:
        """Return the original tool output, exactly as it was added.

        Raises:
            RefNotFoundError: no such ref in this session.
            StoreError: the stored original fails its SHA-256 check.
        """
        _, data = self._blobs.get(self.session, ref)
        return decode_exact(data)

    def refs(self) -> list[BlobRecord]:
        """Return the session's archived outputs, oldest first."""
        return self._blobs.refs(self.session)

    def chunks(self, ref: str) -> list[ChunkRecord]:
        """Return the chunks of one archived output, in order."""
        return self._blobs.chunks(self.session, ref)

    def search(
        self,
        query: str,
        *,
        ref: str | None = None,
        k: int = 5,
        wait: float | None = 10.0,
        tight: bool = False,
    ) -> list[Hit]:
        """Return the archived chunks most relevant to ``query``, best first.

        Ranked by exact phrase, BM25 and embedding similarity fused by reciprocal rank.

        Args:
            query: Free text; an exact phrase from the original ranks its chunk first.
            ref: Search one archived output, or (None) the whole session's archive.
            k: Most hits returned.
            wait: Seconds to wait for the output's chunks to be embedded (None: forever).
            tight: Return only chunks holding the query's words when any does (a
                relevance floor); by meaning alone, only the best chunk.
        """
        return self._search_outputs(query, ref=ref, k=k, wait=wait, tight=tight)

    def _search_outputs(
        self, query: str, *, ref: str | None, k: int, wait: float | None, tight: bool
    ) -> list[Hit]:
        if ref is None and not self._has_outputs:
            self._has_outputs = bool(self._blobs.refs(self.session))
            if not self._has_outputs:
                return []  # a chat with no archived output: nothing to fuse
        candidates: dict[int, ChunkRecord] = {}
        own = self._blobs.chunks(self.session, ref) if ref is not None else []
        pool = max(20, 4 * k)
        lexical = self._blobs.search_text(self.session, query, ref=ref, limit=pool)
        exact = exact_matches(query, own or lexical)
        rankings: list[list[int]] = [exact, [c.id for c in lexical]]
        for record in (*own, *lexical):
            candidates[record.id] = record
        if self.indexer is not None:
            if ref is not None and own:
                self.indexer.wait_for(max(c.id for c in own), timeout=wait)
            vector_hits = [i for i, _ in self.indexer.search(query, 2 * pool)]
            missing = [i for i in vector_hits if i not in candidates]
            # Where the hits are first (cheap); texts only for the chunks returned.
            for record in self._blobs.chunks_by_id(self.session, missing, with_text=False):
                candidates[record.id] = record
            keep = [i for i in vector_hits if i in candidates and ref in (None, candidates[i].ref)]
            rankings.append(keep[:pool])
        weights = [EXACT_WEIGHT, 1.0, VECTOR_WEIGHT][: len(rankings)]
        scores: dict[int, float] = {}
        for ranking, weight in zip(rankings, weights, strict=True):
            for rank, chunk_id in enumerate(ranking):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (_RRF_K + rank)
        shown = [i for i in scores if candidates[i].ref not in self.hidden_refs]
        ranked = sorted(shown, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
        best = ranked[:k]
        if tight:  # the best chunks holding a query word, wherever meaning ranked them
            worded = set(rankings[0]) | set(rankings[1])
            holding = [i for i in ranked if i in worded][:k]
            best = _distinctive(holding or best[:1], candidates, query)
        textless = [i for i in best if not candidates[i].text]
        for record in self._blobs.chunks_by_id(self.session, textless):
            candidates[record.id] = record
        return [_hit(candidates[i], scores[i]) for i in best]


def _distinctive(best: list[int], candidates: Mapping[int, ChunkRecord], query: str) -> list[int]:
    """Keep the chunks holding a query word that the best chunk holds and few others do
    (in at most a quarter of the candidates): "which order has the note zebra-7781" keeps
    zebra's chunk, not every chunk holding "note". All of ``best`` when there is none."""
    texts = {i: candidates[i].text for i in candidates if candidates[i].text}
    if not best or best[0] not in texts:
        return best
    words = [word_pattern(term) for term in query_terms(query)]
    holding = [{i for i, text in texts.items() if word.search(text)} for word in words]
    rare = [ids for ids in holding if best[0] in ids and len(ids) <= len(texts) // 4]
    return [i for i in best if any(i in ids for ids in rare)] if rare else best


def _known(count: Callable[[str], int], text: str, tokens: int) -> Callable[[str], int]:
    """Wrap ``count`` so the already counted original is not tokenized again."""

    def counted(candidate: str) -> int:
        return tokens if candidate is text else count(candidate)

    return counted


def _hit(record: ChunkRecord, score: float) -> Hit:
    return Hit(record.ref, record.idx, record.start, record.end, record.text, score)
