"""Which session a LangGraph run uses, and the handles an adapter holds for its sessions.

A run's session is the one named by the adapter's ``session=``, else the run's
``thread_id``. A run without either shares nothing with other runs: its session is
``run:`` and the id of its first message (LangGraph gives every state message an id), in
the adapter's private store, forgotten once idle. Handles are released when idle or when
too many are held, never while a call uses them (a model call, a tool run); the next call
opens the session again from the store.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from langchain_core.messages import BaseMessage, SystemMessage
from langgraph.config import get_config

from memory._core import ConversationMemory
from memory.adapters._common import AddedMessages, MemoryOpener

__all__ = ["DEFAULT_IDLE_SECONDS", "MAX_HELD_SESSIONS", "RUN_PREFIX", "HeldSession", "Sessions"]

DEFAULT_IDLE_SECONDS = 900.0
"""A session's handle is released after this many seconds without a model call."""
MAX_HELD_SESSIONS = 1024
"""Sessions an adapter holds handles for at once (least recently used released first)."""
RUN_PREFIX = "run:"
"""Session ids of runs without a thread id: ``run:`` and the id of the run's first message."""


class HeldSession:
    """The memory of one session and which state messages it already holds."""

    def __init__(self, memory: ConversationMemory, *, ephemeral: bool) -> None:
        self.memory = memory
        self.added = AddedMessages(memory.history())
        self.lock = threading.Lock()
        self.ephemeral = ephemeral
        """A run's own session: forgotten, not just closed, when released."""
        self.used = time.monotonic()
        self.busy = 0
        """Calls using the handle now (a model call, a tool run): never released then."""
        self._busy_lock = threading.Lock()

    def enter(self) -> None:
        """Count a call that starts using the handle."""
        with self._busy_lock:
            self.busy += 1

    def leave(self) -> None:
        """Count a call done with the handle; it is idle from now."""
        with self._busy_lock:
            self.busy -= 1
            self.used = time.monotonic()

    def sync(self, messages: Sequence[BaseMessage]) -> None:
        """Store the state messages not stored yet."""
        self._store(self.added.new(messages))

    def follow(self, state: Sequence[BaseMessage]) -> list[int]:
        """Retract the stored messages the graph state no longer holds (a regenerated
        reply, a ``RemoveMessage``, a fork from an earlier checkpoint); their seqs.

        Only a state that still starts with the first stored message is followed: one
        that holds only the new input (no checkpointer: the memory is the history) or
        that another middleware trimmed from the front retracts nothing.
        """
        present = {m.id for m in state if m.id}
        stored = self.added.ids
        if not stored or stored[0] not in present:
            return []
        gone = [i for i in stored if i not in present]
        if not gone:
            return []
        retracted = self.memory.retract(gone)
        self.added = AddedMessages(self.memory.history())
        return retracted

    def record(self, reply: Sequence[BaseMessage]) -> None:
        """Store the model's reply (messages whose ids were never stored)."""
        self._store(self.added.unseen(reply))

    def _store(self, fresh: Sequence[BaseMessage]) -> None:
        if fresh:
            self.memory.add(list(fresh))
            self.added.note(fresh)

    def release(self) -> None:
        """Close the handle; a run's own session is forgotten first."""
        with self.lock:
            if self.ephemeral:
                self.memory.forget()  # the private store: nothing else will read it
            else:
                self.memory.close()


class Sessions:
    """The handles an adapter holds, by session, released when idle.

    Args:
        opener: Opens the sessions of threads (and of ``session=``).
        runs: Opens the sessions of runs without a thread id (a private store).
        session: The fixed session, if the adapter was given one.
        idle_seconds: A handle is released after this long without use.
    """

    def __init__(
        self,
        opener: MemoryOpener,
        runs: MemoryOpener,
        *,
        session: str | None,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        self.opener = opener
        self.runs = runs
        self.session = session
        self.idle_seconds = idle_seconds
        self._held: OrderedDict[str, HeldSession] = OrderedDict()
        self._lock = threading.Lock()

    def thread(self) -> str | None:
        """The session named by ``session=`` or the run's thread id; None: neither."""
        if self.session is not None:
            return self.session
        try:
            configurable = get_config().get("configurable") or {}
        except RuntimeError:
            return None
        thread_id = configurable.get("thread_id")
        return str(thread_id) if thread_id else None

    def current(self, messages: Sequence[BaseMessage]) -> str:
        """The run's session: its thread, else one of its own (by its first message)."""
        thread = self.thread()
        if thread is not None:
            return thread
        first = next((m for m in messages if not isinstance(m, SystemMessage)), None)
        return RUN_PREFIX + (first.id if first is not None and first.id else uuid.uuid4().hex)

    def get(self, session: str) -> HeldSession:
        """The held session, opened if it is not held (and idle ones released); for a
        short use (a call that may take long holds it with ``using``)."""
        held = self.take(session)
        held.leave()
        return held

    @contextmanager
    def using(self, session: str) -> Iterator[HeldSession]:
        """Hold the session for a call that may take long (a model call, a tool run): it
        is not released, however idle or many the others, until the call is done."""
        held = self.take(session)
        try:
            yield held
        finally:
            held.leave()

    def take(self, session: str) -> HeldSession:
        """The held session, opened if needed and counted as in use until its
        ``leave()``; idle ones released."""
        with self._lock:
            held = self._held.get(session)
            if held is None:
                ephemeral = session.startswith(RUN_PREFIX) and self.thread() is None
                opener = self.runs if ephemeral else self.opener
                held = HeldSession(opener.open(session), ephemeral=ephemeral)
                self._held[session] = held
            held.enter()
            self._held.move_to_end(session)
            stale = self._stale()
        for old in stale:
            old.release()
        return held

    def _stale(self) -> list[HeldSession]:
        """Take out the sessions idle too long or beyond ``MAX_HELD_SESSIONS``, least
        recently used first; one in use is passed over (released once idle)."""
        now, left, stale = time.monotonic(), len(self._held), []
        for name, held in self._held.items():
            if left <= MAX_HELD_SESSIONS and now - held.used < self.idle_seconds:
                break
            if not held.busy:
                stale.append(name)
                left -= 1
        return [self._held.pop(name) for name in stale]

    @property
    def count(self) -> int:
        """Sessions held now."""
        return len(self._held)

    def close(self) -> None:
        """Release every held session and the runs' private store (idempotent)."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for session in held:
            session.release()
        if self.runs.engine is not None:
            self.runs.engine.close()
