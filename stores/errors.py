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
    """The connection was lost before the write committed: nothing was written.

    The server rolled the transaction back, so the write can be run again once the store
    is reachable (the memory does so itself). A connection lost during the commit is a
    plain ``StoreError``: whether it committed is unknown, so it is never retried.
    """
