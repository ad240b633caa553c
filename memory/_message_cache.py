"""The messages of recently used turns, fetched from the store when needed, a bounded few.

A prompt sends the turns of its window, a summary reads one block, recall renders a few
lines: only those messages are read from the store (in one query each time, through
``prefetch``) and built, and only the most recently used are kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable

from langchain_core.messages import BaseMessage, messages_from_dict

from stores.base import TurnRecord, TurnStore

__all__ = ["DEFAULT_CACHED_MESSAGES", "MessageCache", "prompt_form"]

DEFAULT_CACHED_MESSAGES = 1024
"""Messages kept beyond the largest window a prompt sent."""


def prompt_form(record: TurnRecord) -> str:
    """The payload prompts send: the compact form (a digest) if any, else the original."""
    return record.compact or record.payload


class MessageCache:
    """Messages by seq, as prompts send them; least recently used dropped first.

    Args:
        turns: Where the session's turns are stored.
        session: The session.
        capacity: Messages kept (grows to twice the largest window prefetched).
    """

    def __init__(
        self, turns: TurnStore, session: str, *, capacity: int = DEFAULT_CACHED_MESSAGES
    ) -> None:
        self._turns = turns
        self._session = session
        self.capacity = capacity
        self._entries: OrderedDict[int, BaseMessage | str] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0
        """Payloads read from the store so far (for tests and benchmarks)."""

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, seq: int, payload: str) -> None:
        """Keep a payload just stored (built into a message when first used)."""
        with self._lock:
            self._entries[seq] = payload
            self._entries.move_to_end(seq)
            self._trim()

    def prefetch(self, seqs: Iterable[int]) -> None:
        """Read the messages of these seqs not kept yet, in one query, and keep them all."""
        wanted = list(dict.fromkeys(seqs))
        with self._lock:
            self.capacity = max(self.capacity, 2 * len(wanted))
            for seq in wanted:
                if seq in self._entries:
                    self._entries.move_to_end(seq)
            missing = [seq for seq in wanted if seq not in self._entries]
        if missing:
            self._read(missing)

    def get(self, seq: int) -> BaseMessage:
        """Return the message of ``seq`` (read from the store if it is not kept).

        Raises:
            KeyError: the session has no turn with this seq.
        """
        with self._lock:
            entry = self._entries.get(seq)
            if entry is not None:
                self._entries.move_to_end(seq)
        if entry is None:
            entry = self._read([seq]).get(seq)
            if entry is None:
                raise KeyError(f"session {self._session!r} has no turn {seq}")
        if isinstance(entry, BaseMessage):
            return entry
        (message,) = messages_from_dict([json.loads(entry)])
        with self._lock:
            if isinstance(self._entries.get(seq), str):  # two threads may both build it
                self._entries[seq] = message
        return message

    def _read(self, seqs: list[int]) -> dict[int, str]:
        found = {r.seq: prompt_form(r) for r in self._turns.read_seqs(self._session, seqs)}
        with self._lock:
            self.reads += len(found)
            for seq, payload in found.items():
                self._entries[seq] = payload
                self._entries.move_to_end(seq)
            self._trim()
        return found

    def _trim(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
