"""The one error tree of context-attic.

::

    ContextAtticError(Exception)
    ├─ ConfigError(ContextAtticError, ValueError)     bad Budget, bad option
    ├─ InputError(ContextAtticError, ValueError)      a message we cannot accept (says which, why)
    ├─ BudgetError(ContextAtticError)                 pinned parts exceed the budget (by how much)
    ├─ SummarizerError(ContextAtticError)             the cheap model failed or returned nothing
    ├─ ClosedError(ContextAtticError, RuntimeError)   the memory was used after close()
    ├─ StoreError(ContextAtticError)                  the store failed; nothing half-written
    │   ├─ RefNotFoundError(StoreError, KeyError)     no such archive ref in this session
    │   ├─ ConflictError(StoreError)                  another writer won a race (retried inside)
    │   └─ InterruptedWriteError(StoreError)          connection lost before commit (retried inside)
    └─ MissingDependencyError(ContextAtticError, ImportError)   names the extra to install

Backend errors (``sqlite3``, ``faiss``) are wrapped at the store boundary, so callers catch
``ContextAtticError`` (or one of its children) and never a backend's own exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from stores.errors import (
    ConflictError,
    ContextAtticError,
    InterruptedWriteError,
    RefNotFoundError,
    StoreError,
)

__all__ = [
    "BudgetError",
    "ClosedError",
    "ConfigError",
    "ConflictError",
    "ContextAtticError",
    "EmbedderError",
    "InputError",
    "InterruptedWriteError",
    "MissingDependencyError",
    "RefNotFoundError",
    "StoreError",
    "SummarizerError",
    "did_you_mean",
]


class ConfigError(ContextAtticError, ValueError):
    """An option or a ``Budget`` has a value the library cannot work with."""


MAX_ERROR_CHARS = 500
"""Longest error text: a problem quoted from a converter may repeat the whole input (a
megabyte message), which would flood logs and copy user data into them."""


class InputError(ContextAtticError, ValueError):
    """A message cannot be accepted; the text names the message index and the problem
    (at most ``MAX_ERROR_CHARS``: a longer text is cut in its middle, saying so)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        prefix = f"message {index}: " if index is not None else ""
        super().__init__(_clipped(prefix + message))


def _clipped(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    cut = len(text) - MAX_ERROR_CHARS
    half = MAX_ERROR_CHARS // 2
    return f"{text[:half]} ... ({cut:,} characters left out) ... {text[-half:]}"


class BudgetError(ContextAtticError):
    """The pinned parts (system prompt and current user turn) do not fit the budget."""

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        self.needed = needed
        self.available = available
        self.over_by = needed - available
        super().__init__(message)


class SummarizerError(ContextAtticError):
    """The summarizer model failed or returned nothing usable.

    ``input_tokens`` / ``output_tokens``: what the failed attempt spent (a refused answer
    was still billed), recorded in the session's cost ledger.
    """

    def __init__(self, message: str, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        super().__init__(message)


class EmbedderError(ContextAtticError):
    """The embedder did not answer within its deadline (``memory._embed_calls``). Never
    raised to callers: a query is then searched without embeddings, and a batch of texts
    is embedded again later (``ConversationMemory.report().recall_degraded`` says why)."""


class ClosedError(ContextAtticError, RuntimeError):
    """The memory (or its store) was used after ``close()``."""


class MissingDependencyError(ContextAtticError, ImportError):
    """An optional dependency is missing; the text names the extra to install."""


def did_you_mean(name: str, known: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """ "did you mean 'x'?" naming the ``n`` known names closest to a misspelled one
    (``difflib``'s ratio of at least ``cutoff``), or "" when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=n, cutoff=cutoff)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
