"""Prompt-cache arithmetic for ``cost.py``: prompts as token sequences, billed as providers bill.

A prompt is a list of OpenAI chat messages; each message becomes a *segment* of o200k_base
tokens laid out as the chat format lays it out (``<start>role<sep>content tool_calls<end>``,
the three markers as one token each, like OpenAI's 3 tokens of per-message overhead), and
the prompt ends with the reply priming ``<start>assistant<sep>``. The flat token sequence is
the segments joined, so the prefix two prompts share is computed exactly, token by token.

Rules implemented (checked 2026 against the providers' docs):

* OpenAI (https://platform.openai.com/docs/guides/prompt-caching): caching is automatic
  for prompts of 1,024 tokens or more; a hit covers the longest prefix identical to an
  earlier prompt, "in increments of 128 tokens", so ``cached_tokens`` is 0 or one of
  1,024, 1,152, 1,280, ... Here: ``common`` = the longest common token prefix with the
  *previous* prompt of the same conversation (the cache entry most likely alive; older
  prompts are not searched), and ``cached = 0 if common < 1024 else common // 128 * 128``
  (capped at the prompt's length; 1,024 is itself a multiple of 128). Effective input
  cost at discount ``d``: ``uncached + (1 - d) * cached`` in uncached-token units.
* Anthropic (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching): reads
  of cached prefixes cost 0.1x the input price, writes 1.25x (5-minute cache), and a
  prefix shorter than the model's minimum (1,024 tokens for Sonnet/Opus) is not cached.
  Caches match whole content blocks at ``cache_control`` breakpoints. Model used here:
  one breakpoint at the end of every prompt (so its whole body is written for the next
  call) and a read of the longest run of *whole messages* identical to the previous
  prompt's (as if a breakpoint had been written there: exact for an append-only history,
  optimistic for a prompt that diverges mid-way, so it never flatters raw history).
  ``read = 0`` when that run is under 1,024 tokens; ``written = body - read`` when the
  body is at least 1,024 tokens, else 0 and the body is billed plain; the reply priming
  is billed plain. Cost: ``0.1 * read + 1.25 * written + plain``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory._tokens import seed_tiktoken_cache

Segment = tuple[int, ...]

OPENAI_MIN_CACHED = 1024
OPENAI_CACHE_STEP = 128
ANTHROPIC_MIN_CACHED = 1024
ANTHROPIC_READ = 0.10
ANTHROPIC_WRITE = 1.25
START, SEP, END = -1, -2, -3
"""Marker tokens (negative: never an o200k id), one token each, like ChatML's."""


def common_prefix(previous: Sequence[int], current: Sequence[int]) -> int:
    """Return the length of the longest common prefix of two token sequences."""
    length = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        length += 1
    return length


def common_prefix_segments(previous: Sequence[Segment], current: Sequence[Segment]) -> int:
    """Return the common token prefix of two prompts given as segments (fast, exact).

    Equal leading segments are skipped whole; from the first unequal pair on, the flat
    token sequences are compared, so a segment that is a prefix of another still counts
    right.
    """
    skipped = 0
    index = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        skipped += len(a)
        index += 1
    rest_a = itertools.chain.from_iterable(previous[index:])
    rest_b = itertools.chain.from_iterable(current[index:])
    return skipped + common_prefix(list(rest_a), list(rest_b))


def common_whole_segments(previous: Sequence[Segment], current: Sequence[Segment]) -> int:
    """Return the tokens of the leading segments that are identical in both prompts."""
    total = 0
    for a, b in zip(previous, current, strict=False):
        if a != b:
            break
        total += len(a)
    return total


def openai_cached(common: int, prompt_tokens: int) -> int:
    """Return the tokens OpenAI bills as cached: 0 under 1,024, else in 128-token steps."""
    if prompt_tokens < OPENAI_MIN_CACHED or common < OPENAI_MIN_CACHED:
        return 0
    return min(common, prompt_tokens) // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP


def openai_cost(prompt_tokens: int, cached: int, discount: float) -> float:
    """Return effective input cost in uncached-token units: uncached + (1 - d) * cached."""
    return (prompt_tokens - cached) + (1.0 - discount) * cached


@dataclass(frozen=True, slots=True)
class AnthropicBill:
    """Tokens of one prompt by Anthropic's billing class."""

    read: int
    written: int
    plain: int

    @property
    def cost(self) -> float:
        """Return the cost in uncached-token units (reads 0.1x, writes 1.25x)."""
        return ANTHROPIC_READ * self.read + ANTHROPIC_WRITE * self.written + self.plain


def anthropic_bill(body_tokens: int, shared_whole: int, trailer_tokens: int) -> AnthropicBill:
    """Bill one prompt with a breakpoint at the end of its body (the module docstring).

    Args:
        body_tokens: Tokens of the prompt's messages (the reply priming excluded).
        shared_whole: Tokens of the leading whole messages identical to the previous
            prompt's.
        trailer_tokens: Tokens after the breakpoint (the reply priming), billed plain.
    """
    read = shared_whole if shared_whole >= ANTHROPIC_MIN_CACHED else 0
    read = min(read, body_tokens)
    if body_tokens < ANTHROPIC_MIN_CACHED:
        return AnthropicBill(read=0, written=0, plain=body_tokens + trailer_tokens)
    return AnthropicBill(read=read, written=body_tokens - read, plain=trailer_tokens)


@dataclass(frozen=True, slots=True)
class CallCost:
    """One model call's prompt under both providers' caching rules."""

    tokens: int
    common: int
    openai_cached: int
    anthropic: AnthropicBill
    summarizer_in: int = 0
    summarizer_out: int = 0

    def openai(self, discount: float) -> float:
        """Return the effective input cost at an OpenAI-style cached discount."""
        return openai_cost(self.tokens, self.openai_cached, discount)


def price_call(
    previous: Sequence[Segment] | None,
    current: Sequence[Segment],
    *,
    summarizer_in: int = 0,
    summarizer_out: int = 0,
) -> CallCost:
    """Price a prompt (segments, the last one the reply priming) against the previous one."""
    tokens = sum(len(s) for s in current)
    body = current[:-1]
    body_tokens = tokens - len(current[-1])
    if previous is None:
        common = shared = 0
    else:
        common = common_prefix_segments(previous, current)
        shared = common_whole_segments(previous[:-1], body)
    return CallCost(
        tokens=tokens,
        common=common,
        openai_cached=openai_cached(common, tokens),
        anthropic=anthropic_bill(body_tokens, shared, len(current[-1])),
        summarizer_in=summarizer_in,
        summarizer_out=summarizer_out,
    )


class Tokenizer:
    """Turn OpenAI chat messages into o200k_base segments, memoized by message."""

    def __init__(self) -> None:
        import tiktoken

        seed_tiktoken_cache()
        self._encoding = tiktoken.get_encoding("o200k_base")
        self._cache: dict[str, Segment] = {}
        self.priming: Segment = (START, *self.encode("assistant"), SEP)

    def encode(self, text: str) -> list[int]:
        """Encode text (special-token strings as plain text; lone surrogates replaced)."""
        try:
            return self._encoding.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._encoding.encode_ordinary(text.encode("utf-8", "replace").decode())

    def decode(self, tokens: Sequence[int]) -> str:
        """Decode o200k tokens (markers excluded) back to text."""
        return self._encoding.decode([t for t in tokens if t >= 0])

    def segment(self, message: Mapping[str, Any]) -> Segment:
        """Return one message's tokens: ``<start>role[:name]<sep>content calls<end>``."""
        key = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str)
        found = self._cache.get(key)
        if found is not None:
            return found
        header = str(message.get("role", ""))
        if message.get("name"):
            header += f":{message['name']}"
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(
                str(b.get("text", "")) if isinstance(b, dict) and b.get("type") == "text"
                else json.dumps(b, sort_keys=True, default=str)
                for b in content
            )  # fmt: skip
        tokens = [START, *self.encode(header), SEP, *self.encode(str(content or ""))]
        if message.get("tool_calls"):
            calls = json.dumps(message["tool_calls"], sort_keys=True, ensure_ascii=False)
            tokens += self.encode(calls)
        if message.get("tool_call_id"):
            tokens += self.encode(str(message["tool_call_id"]))
        segment = (*tokens, END)
        self._cache[key] = segment
        return segment

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> list[Segment]:
        """Return a prompt's segments, the reply priming last."""
        return [*(self.segment(m) for m in messages), self.priming]

    def count(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Count a prompt's tokens, priming included."""
        return sum(len(s) for s in self.prompt(messages))
