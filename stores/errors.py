"""Errors raised by the storage layer.

The root of the package's error tree lives here so that ``stores`` never imports
``memory``; ``memory._errors`` re-exports these names and draws the whole tree.
"""

from __future__ import annotations


class ContextAtticError(Exception):
    """Base class of every error raised by context-attic."""


class StoreError(ContextAtticError):
    """The store could not read or write; nothing was half-written."""


class RefNotFoundError(StoreError, KeyError):
    """An archive ref (or another keyed record) does not exist in this session."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better as plain text.
        return str(self.args[0]) if self.args else ""


class ConflictError(StoreError):
    """Another writer appended to the session first; re-read and retry."""


class InterruptedWriteError(StoreError):
    """The connection was lost during a write (a server restart, a dropped connection).

    Lost before the commit (``maybe_committed`` False): the server rolled the write back,
    nothing was written, and it can be run again. Lost while committing
    (``maybe_committed`` True): whether it committed is unknown; look before writing again.
    The memory does both itself.
    """

    def __init__(self, message: str, *, maybe_committed: bool = False) -> None:
        super().__init__(message)
        self.maybe_committed = maybe_committed
