"""What an explicit prompt cache (Anthropic's) holds for one conversation: the prefixes
written at earlier requests' ``cache_control`` breakpoints.

Anthropic's rules (docs.anthropic.com/en/docs/build-with-claude/prompt-caching, read in
2025): a request writes the prefix up to each of its breakpoints to the cache (1.25x the
input price for the 5-minute cache), if that prefix holds at least the model's minimum
(1,024 tokens on Sonnet; ``Price.min_cached_tokens``); a later request reads from the
cache (0.1x) the longest prefix that an earlier request wrote and that it repeats
exactly, looked for at block boundaries up to about 20 blocks before its own
breakpoint. A prefix that two prompts share but that no breakpoint ended is never read:
after a fold, the system prompt and the opening turn that every prompt repeats are read
only if an earlier breakpoint ended there. OpenAI's automatic caching needs none of this
(``memory.pricing.cached_tokens``).

Not modelled: the cache's lifetime (5 minutes, renewed by each read: calls are taken to
come sooner) and other conversations sharing a prefix.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from langchain_core.messages import AIMessage, BaseMessage

__all__ = ["LOOKBACK_BLOCKS", "MAX_WRITTEN", "WrittenPrefixes", "anchor_count", "blocks_of"]

LOOKBACK_BLOCKS = 20
"""Block boundaries before its breakpoint where a request looks for a cached prefix."""
MAX_WRITTEN = 16
"""Written prefixes remembered, the least recently written or read dropped first (the
cache keeps an entry 5 minutes from its last use)."""


class _Written(NamedTuple):
    messages: int
    digest: bytes
    tokens: int


def blocks_of(message: BaseMessage) -> int:
    """Content blocks ``message`` becomes in a request: its text or list items, and a
    ``tool_use`` block per tool call."""
    content = message.content
    blocks = len(content) if isinstance(content, list) else 1
    if isinstance(message, AIMessage):
        blocks += len(message.tool_calls)
    return max(blocks, 1)


def anchor_count(
    messages: Sequence[BaseMessage], opening: Sequence[BaseMessage], system: str | None
) -> int:
    """How many leading ``messages`` (a prompt's) are the system prompt and the pinned
    ``opening`` turns as they are, the part every prompt repeats across folds: a second
    breakpoint there keeps it read from the cache after a fold, where it would be
    written again (the system prompt alone when the opening is none, or was merged with
    what follows; 0 when neither is there)."""
    lead = 1 if system else 0
    if not opening or len(messages) <= lead + len(opening):
        return lead
    same = all(m.content == o.content for m, o in zip(messages[lead:], opening, strict=False))
    return lead + len(opening) if same else lead


def _digests(fingerprints: Sequence[str]) -> list[bytes]:
    """``digests[n]``: a digest of the first ``n`` messages (``digests[0]``: none)."""
    running = hashlib.blake2b(digest_size=16)
    digests = [running.digest()]
    for fingerprint in fingerprints:
        running.update(fingerprint.encode("utf-8", "surrogatepass"))
        running.update(b"\x00")
        digests.append(running.digest())
    return digests


class WrittenPrefixes:
    """The prefixes one conversation's requests wrote at their breakpoints.

    Args:
        min_tokens: Shortest prefix the model caches (``Price.min_cached_tokens``).
    """

    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self._written: deque[_Written] = deque(maxlen=MAX_WRITTEN)

    def request(
        self,
        fingerprints: Sequence[str],
        blocks: Sequence[int],
        message_tokens: Sequence[int],
        *,
        breakpoints: Sequence[int],
    ) -> tuple[int, int]:
        """Bill one request with a breakpoint after each of its first ``breakpoints``
        messages: return ``(read, written)`` tokens, and remember what it wrote.

        Args:
            fingerprints: Each message's identity (equal fingerprints: equal messages).
            blocks: Each message's content blocks (``blocks_of``).
            message_tokens: Each message's tokens.
            breakpoints: Message counts a breakpoint ends (0 and repeats ignored).
        """
        ends = sorted({b for b in breakpoints if 0 < b <= len(fingerprints)})
        if not ends:
            return 0, 0
        digests = _digests(fingerprints[: ends[-1]])
        boundaries, tokens = [0], [0]  # block boundaries and tokens up to each message
        for count, spent in zip(blocks[: ends[-1]], message_tokens[: ends[-1]], strict=True):
            boundaries.append(boundaries[-1] + count)
            tokens.append(tokens[-1] + spent)

        def found(w: _Written) -> bool:  # repeated, and looked for from a breakpoint
            near = any(
                w.messages <= end and boundaries[end] - boundaries[w.messages] <= LOOKBACK_BLOCKS
                for end in ends
            )
            return near and digests[w.messages] == w.digest

        hits = [w for w in self._written if w.messages <= ends[-1] and found(w)]
        read = max((w.tokens for w in hits), default=0)
        fresh = [_Written(end, digests[end], tokens[end]) for end in ends]
        for entry in [*hits, *(e for e in fresh if e.tokens >= self.min_tokens)]:
            if entry in self._written:  # a read or a write renews an entry's lifetime
                self._written.remove(entry)
            self._written.append(entry)
        written = tokens[ends[-1]] - read if tokens[ends[-1]] >= self.min_tokens else 0
        return read, max(written, 0)
