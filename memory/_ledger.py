"""What a session cost and saved, as providers bill it: cached and uncached input apart.

Each assembled prompt is compared with the previous prompt of the session: the leading
messages they share are what an automatic prompt cache (OpenAI's) serves
(``memory.pricing``). An explicit one (Anthropic's) serves only a prefix that an earlier
prompt's breakpoint wrote (``memory._breakpoints``). The
alternative, sending the raw history every call, is priced the same way: it is
append-only, so each raw prompt reads the previous one from the cache. Savings are the
raw history's cost minus ours, net of what the summarizer spent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage

from memory._breakpoints import WrittenPrefixes, blocks_of
from memory.pricing import DEFAULT_PRICES, Price, cached_tokens, input_cost, price_of, priced

__all__ = ["DEFAULT_PRICES", "Ledger", "Price", "Spend", "money_saved", "price_of"]


def _fingerprint(message: BaseMessage) -> str:
    calls = getattr(message, "tool_calls", None) or []
    call_id = getattr(message, "tool_call_id", None)
    return json.dumps([message.type, message.content, calls, call_id], default=str)


def shared_prefix(
    previous: Sequence[tuple[str, int]], fingerprints: Sequence[str], tokens: Sequence[int]
) -> int:
    """Tokens of the leading messages (by their fingerprints) equal to the previous
    prompt's (whole messages)."""
    shared = 0
    for position, fingerprint in enumerate(fingerprints):
        if position >= len(previous) or previous[position][0] != fingerprint:
            break
        shared += tokens[position]
    return shared


@dataclass(frozen=True, slots=True)
class Spend:
    """One prompt's caching figures, as the ledger priced them."""

    shared_tokens: int
    cached_tokens: int


class Ledger:
    """Running totals of one handle's prompts: calls, tokens, cached tokens, dollars.

    Args:
        price: The main model's price and caching rule (None: tokens only).
    """

    def __init__(self, price: Price | None = None) -> None:
        self.price = price
        self.calls = 0
        self.raw_tokens = 0
        self.sent_tokens = 0
        self.cached_tokens = 0
        self.cost_usd = 0.0
        self.raw_cost_usd = 0.0
        self._previous: list[tuple[str, int]] = []
        self._previous_raw = 0
        self._written: WrittenPrefixes | None = None  # explicit breakpoints (Anthropic)
        if price is not None and price.cache_write_per_mtok is not None:
            self._written = WrittenPrefixes(price.min_cached_tokens)

    def record(
        self,
        messages: Sequence[BaseMessage],
        message_tokens: Sequence[int],
        *,
        tokens: int,
        raw_tokens: int,
        stable_tokens: int,
        stable_count: int | None = None,
        anchor_count: int = 0,
    ) -> Spend:
        """Count one assembled prompt and price it against the raw history.

        Args:
            messages: The prompt's messages.
            message_tokens: Each message's counted tokens, in the same order.
            tokens: The prompt's total tokens.
            raw_tokens: What the raw history would have sent.
            stable_tokens: The prompt's tokens up to its last stable block (where an
                Anthropic cache breakpoint goes).
            stable_count: The messages up to that breakpoint (``Prompt.stable_count``;
                None: every message that the previous prompt shares, read back as if a
                breakpoint had ended there).
            anchor_count: The messages up to a second breakpoint (``Prompt.anchor_count``;
                0: none).
        """
        fingerprints = [_fingerprint(m) for m in messages]  # each message serialized once
        shared = shared_prefix(self._previous, fingerprints, message_tokens)
        if self._written is not None and stable_count is not None:
            cached, written = self._written.request(
                fingerprints,
                [blocks_of(m) for m in messages],
                message_tokens,
                breakpoints=(anchor_count, stable_count),
            )
        else:
            cached = cached_tokens(shared, tokens, self.price)
            minimum = self.price.min_cached_tokens if self.price is not None else 0
            written = max(0, stable_tokens - cached) if stable_tokens >= minimum else 0
        # The raw history repeats the previous raw prompt's messages, not its reply priming.
        priming = tokens - sum(message_tokens)
        raw_shared = min(self._previous_raw - priming, raw_tokens) if self._previous_raw else 0
        raw_cached = cached_tokens(raw_shared, raw_tokens, self.price)
        self.calls += 1
        self.raw_tokens += raw_tokens
        self.sent_tokens += tokens
        self.cached_tokens += cached
        if self.price is not None:
            self.cost_usd += input_cost(tokens, cached, written, self.price)
            # Its breakpoint ends its last message (the reply priming is billed plain), and
            # a prompt under the model's minimum is not written to the cache at all.
            raw_body = raw_tokens - priming
            cacheable = raw_body >= self.price.min_cached_tokens
            raw_written = max(0, raw_body - raw_cached) if cacheable else 0
            self.raw_cost_usd += input_cost(raw_tokens, raw_cached, raw_written, self.price)
        self._previous = list(zip(fingerprints, message_tokens, strict=True))
        self._previous_raw = raw_tokens
        return Spend(shared_tokens=shared, cached_tokens=cached)


def money_saved(
    ledger: Ledger,
    *,
    summarizer_model: str | None,
    summarizer_input_tokens: int,
    summarizer_output_tokens: int,
    prices: Mapping[str, Price] = DEFAULT_PRICES,
) -> float | None:
    """Dollars saved against the raw history with caching, net of the summarizer.

    Args:
        summarizer_model: The summarizer's chat model name ("" for a model with no
            name); None for a summarizer that calls no model (the offline default costs
            nothing).

    Returns None when the main model's price is unknown, or when a summarizer model
    spent tokens and its price is unknown (its cost cannot be netted out).
    """
    if ledger.price is None:
        return None
    saved = ledger.raw_cost_usd - ledger.cost_usd
    if summarizer_model is None:
        return saved
    cheap = priced(summarizer_model, prices) if summarizer_model else None
    if cheap is None:
        return None if summarizer_input_tokens or summarizer_output_tokens else saved
    saved -= summarizer_input_tokens * cheap.input_per_mtok / 1e6
    saved -= summarizer_output_tokens * cheap.output_per_mtok / 1e6
    return saved
