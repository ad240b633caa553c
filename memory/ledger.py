"""What a session cost and saved: tokens sent versus raw history, net of the summarizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_PRICES", "Ledger", "Price", "money_saved"]


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-sonnet-4": Price(3.00, 15.00),
}
"""List prices at the time of writing; pass your own table to be exact."""


def price_of(model: str | None, prices: Mapping[str, Price]) -> Price | None:
    """Find a model's price by exact name, then by the longest known prefix."""
    if model is None:
        return None
    if model in prices:
        return prices[model]
    matches = [name for name in prices if model.startswith(name)]
    return prices[max(matches, key=len)] if matches else None


def money_saved(
    *,
    tokens_not_sent: int,
    model: str | None,
    summarizer_model: str | None,
    summarizer_input_tokens: int,
    summarizer_output_tokens: int,
    prices: Mapping[str, Price] = DEFAULT_PRICES,
) -> float | None:
    """Dollars saved: input tokens not sent, minus what the summarizer spent.

    Returns None when the main model's price is unknown. A summarizer with no known
    price (the offline default) costs nothing.
    """
    main = price_of(model, prices)
    if main is None:
        return None
    saved = tokens_not_sent * main.input_per_mtok / 1e6
    cheap = price_of(summarizer_model, prices)
    if cheap is not None:
        saved -= summarizer_input_tokens * cheap.input_per_mtok / 1e6
        saved -= summarizer_output_tokens * cheap.output_per_mtok / 1e6
    return saved


class _Counted(Protocol):
    @property
    def tokens(self) -> int: ...


class _HasReport(_Counted, Protocol):
    @property
    def report(self) -> _RawTokens: ...


class _RawTokens(Protocol):
    @property
    def raw_tokens(self) -> int: ...


class Ledger:
    """Running totals of one memory view's prompts: calls, raw and sent tokens."""

    def __init__(self) -> None:
        self.calls = 0
        self.raw_tokens = 0
        self.sent_tokens = 0

    def record(self, prompt: _HasReport) -> None:
        """Count one assembled prompt."""
        self.calls += 1
        self.raw_tokens += prompt.report.raw_tokens
        self.sent_tokens += prompt.tokens
