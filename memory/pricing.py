"""What input tokens cost as providers bill them: list prices and prompt-caching rules.

A prompt whose leading tokens repeat the previous prompt of a conversation is billed at
a discount. The rules modelled here, as the providers document them (read in 2025):

- OpenAI (platform.openai.com/docs/guides/prompt-caching): automatic for prompts of
  1,024 tokens or more; the cached part is the longest common prefix, counted in steps
  of 128 tokens; cached input is billed at 50% (gpt-4o family, o3-mini), 25% (gpt-4.1
  family) or 10% (gpt-5 family) of the input price; writing the cache costs nothing extra.
- Anthropic (docs.anthropic.com/en/docs/build-with-claude/prompt-caching): explicit
  ``cache_control`` breakpoints; a prefix of at least 1,024 tokens (2,048 on Claude 3.5
  Haiku, 4,096 on Haiku 4.5 and Opus 4.5) up to a breakpoint is cached; reads cost 10%
  of the input price, writes (5 minute cache) 125%.

List prices in ``DEFAULT_PRICES`` are US dollars per million tokens from the providers'
pricing pages (platform.openai.com/docs/pricing, docs.anthropic.com/en/docs/about-claude/
pricing) as read in 2025; pass your own table to ``ConversationMemory.open(prices=...)``
to be exact.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from memory._errors import ConfigError, did_you_mean

__all__ = [
    "DEFAULT_PRICES",
    "Price",
    "bare_model",
    "cached_tokens",
    "input_cost",
    "model_name_of",
    "price_of",
    "priced",
    "unpriced_warning",
    "wrapped_layers",
]

logger = logging.getLogger("memory")
_WARNED: set[str] = set()

OPENAI_MIN_CACHED = 1024
OPENAI_CACHE_STEP = 128
ANTHROPIC_MIN_CACHED = 1024


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices in US dollars per million tokens, and its caching rule.

    Attributes:
        input_per_mtok: Uncached input tokens.
        output_per_mtok: Output tokens.
        cached_input_per_mtok: Input tokens read from the provider's prompt cache (None:
            the model has no prompt caching; every input token costs the input price).
        cache_write_per_mtok: Input tokens written to the cache (None: writing is free,
            as with OpenAI; Anthropic bills 125% of the input price).
        min_cached_tokens: Shortest prompt prefix that is cached at all.
        cache_step: The cached prefix is counted down to a multiple of this.

    Raises:
        ConfigError: a negative price, a cached price above the input price, or a
            non-positive step.
    """

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    min_cached_tokens: int = OPENAI_MIN_CACHED
    cache_step: int = OPENAI_CACHE_STEP

    def __post_init__(self) -> None:
        prices = (self.input_per_mtok, self.output_per_mtok, self.cached_input_per_mtok or 0.0)
        if min(prices) < 0 or (self.cache_write_per_mtok or 0.0) < 0:
            raise ConfigError(f"prices must be >= 0: {self!r}")
        if self.cached_input_per_mtok is not None and (
            self.cached_input_per_mtok > self.input_per_mtok
        ):
            raise ConfigError("cached_input_per_mtok must not exceed input_per_mtok")
        if self.cache_step < 1 or self.min_cached_tokens < 0:
            raise ConfigError("cache_step must be >= 1 and min_cached_tokens >= 0")

    @property
    def cached_discount(self) -> float:
        """Share of the input price saved on a cached token (0.0 without caching)."""
        if self.cached_input_per_mtok is None or self.input_per_mtok == 0:
            return 0.0
        return 1.0 - self.cached_input_per_mtok / self.input_per_mtok


def _openai(input_: float, output: float, cached: float) -> Price:
    return Price(input_, output, cached_input_per_mtok=cached)


def _anthropic(input_: float, output: float, *, min_cached: int = ANTHROPIC_MIN_CACHED) -> Price:
    return Price(
        input_,
        output,
        cached_input_per_mtok=round(input_ * 0.10, 6),
        cache_write_per_mtok=round(input_ * 1.25, 6),
        min_cached_tokens=min_cached,
        cache_step=1,
    )


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "claude-3-5-haiku": _anthropic(0.80, 4.00, min_cached=2048),
    "claude-haiku-4-5": _anthropic(1.00, 5.00, min_cached=4096),
    "claude-3-5-sonnet": _anthropic(3.00, 15.00),
    "claude-3-7-sonnet": _anthropic(3.00, 15.00),
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-sonnet-4-5": _anthropic(3.00, 15.00),
    "claude-opus-4-1": _anthropic(15.00, 75.00),
    "claude-opus-4-5": _anthropic(5.00, 25.00, min_cached=4096),
    "claude-opus-4": _anthropic(15.00, 75.00),
}
"""List prices (USD per million tokens) and caching rules, as published in 2025."""


_PROVIDER_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*:(?=.)")
"""LangChain's ``init_chat_model`` spelling, ``"openai:gpt-4o-mini"`` (no dot before the
colon: a Bedrock id such as ``anthropic.claude-3-5-sonnet-20241022-v2:0`` is kept)."""


def bare_model(model: str) -> str:
    """The model's own name without a LangChain provider prefix (``"openai:gpt-4o"`` is
    ``"gpt-4o"``), as price tables and tokenizers know it."""
    return _PROVIDER_PREFIX.sub("", model.strip(), count=1) if ":" in model else model


_VERSION_SUFFIX = re.compile(r"[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|latest$|preview$)")
"""What may follow a known name in a snapshot of that model: a date
(``gpt-4o-2024-08-06``, ``claude-3-5-sonnet@20240620``, ``claude-sonnet-4-20250514``), or
``-latest`` / ``-preview``. ``gpt-5-turbo`` is not ``gpt-5``, nor ``gpt-4o-mni`` a
``gpt-4o``, nor ``claude-opus-4-5`` (a newer model, a third of the price) a
``claude-opus-4``: a name that only starts like a known one is not priced as it."""


def price_of(model: str | None, prices: Mapping[str, Price]) -> Price | None:
    """Find a model's price by exact name, then as a dated or numbered version of the
    longest known name (``_VERSION_SUFFIX``); a LangChain provider prefix such as
    ``"openai:"`` is ignored when the name is not in ``prices`` as given."""
    if model is None:
        return None
    if model not in prices:
        model = bare_model(model)
        model = model if model in prices else model.lower()  # "GPT-4o-mini" is gpt-4o-mini
    if model in prices:
        return prices[model]
    matches = [
        name
        for name in prices
        if model.startswith(name) and _VERSION_SUFFIX.match(model, len(name)) is not None
    ]
    return prices[max(matches, key=len)] if matches else None


def model_name_of(chat_model: object) -> str | None:
    """A LangChain chat model's name as its provider bills it: its ``model_name`` (as on
    ``ChatOpenAI``), ``model`` (as on ``ChatAnthropic``) or ``model_id`` (as on
    ``ChatBedrock``), looked up through wrappers (``with_retry()``, ``bind()``: their
    ``bound``; ``with_fallbacks()``: its ``runnable``); None when it has none."""
    for layer in wrapped_layers(chat_model):
        for field in ("model_name", "model", "model_id"):
            value = getattr(layer, field, None)
            if isinstance(value, str) and value:
                return value
    return None


def wrapped_layers(runnable: object) -> Iterator[object]:
    """``runnable`` and what it wraps, outermost first: ``with_retry()`` and ``bind()``
    wrap their ``bound``, ``with_fallbacks()`` its ``runnable`` (at most 8 deep: never a
    cycle)."""
    layer: object = runnable
    for _ in range(8):
        yield layer
        inner = getattr(layer, "bound", None) or getattr(layer, "runnable", None)
        if inner is None:
            return
        layer = inner


def unpriced_warning(model: str, prices: Mapping[str, Price]) -> str | None:
    """What to tell a user whose model has no price in ``prices`` (None: it has one):
    costs are left out, and the closest known names are suggested (a typo such as
    ``"gpt-4o-mni"`` would otherwise go unnoticed)."""
    if price_of(model, prices) is not None:
        return None
    hint = did_you_mean(bare_model(model), prices, n=3, cutoff=0.75)
    hint = f"{hint} " if hint else ""
    return (
        f"no price is known for model {model!r}: costs are not reported; {hint}"
        "pass prices={name: Price(...)} for a model the table lacks"
    )


def priced(model: str | None, prices: Mapping[str, Price]) -> Price | None:
    """``price_of``, logging ``unpriced_warning`` once per model name and process."""
    found = price_of(model, prices)
    if found is None and model is not None and model not in _WARNED:
        _WARNED.add(model)
        logger.warning("%s", unpriced_warning(model, prices))
    return found


def cached_tokens(shared: int, prompt_tokens: int, price: Price | None) -> int:
    """Return how many of a prompt's tokens the provider bills as cache reads.

    Args:
        shared: Leading tokens the prompt shares with the previous prompt of the
            conversation (and that the provider has cached).
        prompt_tokens: The prompt's size.
        price: The model's price and caching rule; None or no cached price: 0.

    Returns:
        ``shared`` counted down to a multiple of ``price.cache_step``, or 0 when the
        prompt is shorter than ``price.min_cached_tokens`` or the model has no caching.
    """
    if price is None or price.cached_input_per_mtok is None:
        return 0
    if prompt_tokens < price.min_cached_tokens or shared < price.min_cached_tokens:
        return 0
    shared = min(shared, prompt_tokens)
    return shared - shared % price.cache_step


def input_cost(prompt_tokens: int, cached: int, written: int, price: Price) -> float:
    """Return the US dollars a prompt's input costs.

    Args:
        prompt_tokens: Every input token of the prompt.
        cached: Those billed as cache reads (see :func:`cached_tokens`).
        written: Those written to the cache (Anthropic: the prefix up to the breakpoint
            that was not read); ignored when writing is free.
        price: The model's price.
    """
    cached = min(cached, prompt_tokens)
    read_price = (
        price.input_per_mtok
        if price.cached_input_per_mtok is None
        else (price.cached_input_per_mtok)
    )
    written = min(written, prompt_tokens - cached) if price.cache_write_per_mtok else 0
    fresh = prompt_tokens - cached - written
    dollars = cached * read_price + fresh * price.input_per_mtok
    dollars += written * (price.cache_write_per_mtok or 0.0)
    return dollars / 1e6
