"""Checks and defaults for ``ConversationMemory.open``'s options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from memory._budget import Budget
from memory._errors import ConfigError, InputError, did_you_mean
from memory._policy import DEFAULT_POLICY, AssemblyPolicy
from memory._summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer
from memory._tokens import TokenCounter
from memory.pricing import DEFAULT_PRICES, Price, wrapped_layers

__all__ = [
    "DEFAULT_RECALL_SHARE",
    "DEFAULT_SUMMARY_SHARE",
    "LOOKUP_RECALL_SHARE",
    "MAX_SESSION_LENGTH",
    "ExtraOptions",
    "OpenOptions",
    "check_counts",
    "check_option_names",
    "check_options",
    "check_seconds",
    "check_session",
    "resolve_policy",
    "resolve_summarizer",
]

MAX_SESSION_LENGTH = 512
DEFAULT_SUMMARY_SHARE = DEFAULT_POLICY.summary_share
"""The running summary's cap, as a share of the prompt budget (``AssemblyPolicy``)."""
DEFAULT_RECALL_SHARE = DEFAULT_POLICY.recall_share
"""Room for recall on an ordinary call, as a share of the prompt budget."""
LOOKUP_RECALL_SHARE = DEFAULT_POLICY.lookup_recall_share
"""The room when ``assemble`` is given an explicit query: a question about the past."""


class ExtraOptions(TypedDict, total=False):
    """The options of ``Engine.open`` that adapters pass on as ``**options`` unchanged
    (they name the others in their own terms: ``model`` is their summarizer...)."""

    safety_margin: float | None
    max_output_bytes: int
    recall_share: float | None
    policy: AssemblyPolicy | None
    prices: Mapping[str, Price]


class OpenOptions(ExtraOptions, total=False):
    """Every option of ``Engine.open`` (and ``ConversationMemory.open``), by keyword;
    see ``ConversationMemory.open`` for what each means and its default."""

    budget: Budget | int
    model: str | None
    token_counter: TokenCounter | BaseChatModel | Callable[[str], int] | None
    summarizer: BaseChatModel | Runnable[Any, Any] | Summarizer | None
    embedder: Embeddings | None
    compress_threshold: int


def resolve_policy(policy: AssemblyPolicy | None, recall_share: float | None) -> AssemblyPolicy:
    """Return the policy ``open`` uses: ``policy`` (or the default) with ``recall_share``.

    ``recall_share=0`` turns recall off, explicit lookups included.

    Raises:
        ConfigError: ``policy`` is not an ``AssemblyPolicy``, or the share is invalid.
    """
    chosen = DEFAULT_POLICY if policy is None else policy
    if not isinstance(chosen, AssemblyPolicy):
        raise ConfigError(f"policy must be an AssemblyPolicy, not {type(policy).__name__}")
    if recall_share is None:
        return chosen
    if recall_share == 0:
        return dataclasses.replace(chosen, recall_share=0.0, lookup_recall_share=0.0)
    return dataclasses.replace(chosen, recall_share=recall_share)


def check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` (seconds, or None for no limit).

    Raises:
        ConfigError: it is neither None nor a number of seconds >= 0.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ConfigError(f"timeout must be seconds >= 0 or None, not {timeout!r}")
    return float(timeout)


def check_counts(**counts: object) -> None:
    """Raise ``ConfigError`` unless each of ``counts`` is an int >= 1 (threads, sessions)."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, not {value!r}")


def check_seconds(**timeouts: object) -> None:
    """Raise ``ConfigError`` unless each of ``timeouts`` is a number of seconds > 0."""
    for name, value in timeouts.items():
        if isinstance(value, bool) or not (isinstance(value, int | float) and value > 0):
            raise ConfigError(f"{name} must be seconds > 0, not {value!r}")


def check_session(session: object) -> str:
    """Return ``session`` if it can scope a store's rows; raise ``InputError`` if not."""
    if not isinstance(session, str) or not session.strip():
        raise InputError("session must be a non-empty string, e.g. a user or thread id")
    if len(session) > MAX_SESSION_LENGTH or "\x00" in session:
        raise InputError(f"session must be at most {MAX_SESSION_LENGTH} characters, without NUL")
    try:
        session.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"session must be valid Unicode text: {exc.reason}") from exc
    return session


def chat_model_of(value: object) -> BaseChatModel | None:
    """The chat model ``value`` is, or wraps (``with_retry()``, ``bind()``:
    ``bound``; ``with_fallbacks()``: ``runnable``); None when it is no chat model."""
    return next((m for m in wrapped_layers(value) if isinstance(m, BaseChatModel)), None)


def resolve_summarizer(
    summarizer: BaseChatModel | Runnable[Any, Any] | Summarizer | None,
    counter: TokenCounter,
    cap: int,
) -> Summarizer:
    """Wrap a chat model in ``LLMSummarizer``; None gives the offline extractive one."""
    if summarizer is None:
        return ExtractiveSummarizer(counter, max_summary_tokens=cap)
    if isinstance(summarizer, BaseChatModel) or (
        isinstance(summarizer, Runnable) and chat_model_of(summarizer) is not None
    ):  # a chat model, or one wrapped by with_retry() / bind() / with_fallbacks()
        return LLMSummarizer(summarizer, counter, max_summary_tokens=cap)
    if isinstance(summarizer, Summarizer):
        return summarizer
    raise ConfigError(
        "summarizer must be a LangChain chat model, a Summarizer or None, "
        f"not {type(summarizer).__name__}"
    )


def check_option_names(options: Mapping[str, object], *, where: str) -> None:
    """Refuse keywords that are not options of ``Engine.open`` (a misspelling would
    otherwise be Python's ``TypeError`` from a method the caller never called).

    Raises:
        ConfigError: naming the keyword and the closest option.
    """
    known = OpenOptions.__required_keys__ | OpenOptions.__optional_keys__
    for name in options:
        if name not in known:
            hint = did_you_mean(name, known) or f"the options are {', '.join(sorted(known))}"
            raise ConfigError(f"{name!r} is not an option of {where}: {hint}")


def check_options(
    *,
    embedder: object,
    compress_threshold: object,
    max_output_bytes: object,
    model: object = None,
    prices: object = DEFAULT_PRICES,
) -> None:
    """Refuse options the memory cannot work with.

    Raises:
        ConfigError: naming the option, the value and what is expected.
    """
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"model must be a model name (str), not {type(model).__name__}")
    if not isinstance(prices, Mapping) or not all(isinstance(p, Price) for p in prices.values()):
        raise ConfigError("prices must map model names to memory.pricing.Price(...) values")
    if embedder is not None and not isinstance(embedder, Embeddings):
        raise ConfigError(f"embedder must be a LangChain Embeddings, not {type(embedder).__name__}")
    for name, value in (
        ("compress_threshold", compress_threshold),
        ("max_output_bytes", max_output_bytes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive int, not {value!r}")
