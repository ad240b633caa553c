"""The engine's state of one session: its view, archive, index and summaries, shared by handles.

Every ``ConversationMemory`` handle on a session of an engine uses the same
``SessionState``, so opening a handle reads nothing the engine already holds, and one
session is embedded and summarized once however many handles it has. The engine keeps
the states of recently used sessions (LRU) and those an open handle holds.
"""

from __future__ import annotations

import json
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TypeVar

from memory._archive import Archive
from memory._deadline import ModelCalls
from memory._embed_calls import EmbedCalls
from memory._errors import ClosedError, ConflictError, InputError, InterruptedWriteError
from memory._folding import SummaryRunner
from memory._indexer import ChunkVectors, Indexer
from memory._ledger import Ledger, Price
from memory._messages import Exchange
from memory._pool import WorkerPool
from memory._recall.passages import passages_for
from memory._recall.rank import TurnRanker
from memory._recall.search import Recall
from memory._summarize import Summarizer
from memory._tokens import TokenCounter
from memory._view import RETRACTION_ROLE, SessionView
from stores.base import NewTurn, Store, TurnRecord
from stores.faiss_index import PASSAGES
from stores.turns import TurnOutline, message_fields

__all__ = ["APPEND_RETRIES", "RETRACTION_ROLE", "SessionState", "retractions", "visible"]

_T = TypeVar("_T")
APPEND_RETRIES = 20
"""Attempts at an append while other writers keep appending to the same session."""
BACKOFF_SECONDS = 0.005


def retractions(records: Sequence[TurnRecord]) -> set[int]:
    """Seqs retracted by the retraction records among ``records``."""
    found: set[int] = set()
    for record in records:
        if record.role == RETRACTION_ROLE:
            found.update(int(seq) for seq in json.loads(record.payload)["retract"])
    return found


def visible(record: TurnRecord, retracted: set[int]) -> bool:
    """Whether a record is a message that prompts and history show."""
    return record.role != RETRACTION_ROLE and record.seq not in retracted


def _weakly(owner: SessionState, method: Callable[[SessionState], _T]) -> Callable[[], _T]:
    """Call ``method(owner)`` without the callable keeping ``owner`` alive (no cycles)."""
    ref = weakref.ref(owner)

    def call() -> _T:
        target = ref()
        if target is None:
            raise ClosedError("the session's state was released")
        return method(target)

    return call


class SessionState:
    """What an engine holds for one session and one token counter.

    Args:
        session: The session.
        store: The engine's store.
        counter: Counts tokens as the session's prompts do.
        embed_calls: Embeds archived chunks and turns (the engine's calls of the
            embedder, under deadlines).
        summarizer: Writes the running summary.
        pool: Runs embedding and summaries.
        calls: Runs summarizer calls under a deadline.
        block_tokens: Initial fold block size (the handle retargets it).
        due_tokens: Tokens at which a block is summarized.
        max_output_bytes: Largest tool output accepted.
    """

    def __init__(
        self,
        session: str,
        store: Store,
        counter: TokenCounter,
        embed_calls: EmbedCalls,
        summarizer: Summarizer,
        *,
        pool: WorkerPool,
        calls: ModelCalls,
        block_tokens: int,
        due_tokens: int,
        max_output_bytes: int,
    ) -> None:
        self.session = session
        self.store = store
        self.counter = counter
        self.lock = threading.RLock()
        self.closed = False
        self.view = SessionView(counter, store.turns, session)
        self._newest = (0, 0.0)  # seq and created_at of the newest record read, as read
        self.retracted: set[int] = set()
        """Seqs of retracted messages: stored for audit, never in a prompt or history."""
        self.indexer = Indexer(
            session,
            ChunkVectors(store.blobs),
            embed_calls,
            directory=store.index_directory,
            pool=pool,
        )
        """Embeds the archive's chunks."""
        self.passage_indexer = Indexer(
            session,
            store.passages,
            embed_calls,
            directory=store.index_directory,
            pool=pool,
            kind=PASSAGES,
        )
        """Embeds the turns' passages (their own ids and FAISS index)."""
        self.archive = Archive(
            session, store.blobs, counter, self.indexer, max_output_bytes=max_output_bytes
        )
        self.recall = Recall(
            TurnRanker(store.passages, session, self.passage_indexer),
            store.passages,
            self.archive,
            _weakly(self, lambda state: state.view),
        )
        """Searches the session's turns and archive (assembly and the recall tool)."""
        self._ledgers: dict[Price | None, Ledger] = {}
        self.refresh()
        self.runner = SummaryRunner(
            session,
            store.summaries,
            summarizer,
            counter,
            _weakly(self, SessionState.snapshot),
            pool=pool,
            calls=calls,
            block_tokens=block_tokens,
            due_tokens=due_tokens,
        )
        self.notify_indexers()
        self.runner.notify()

    def notify_indexers(self) -> None:
        """Wake the embedders: new chunks or passages may wait."""
        self.indexer.notify()
        self.passage_indexer.notify()

    def wait_indexed(self, timeout: float | None) -> bool:
        """Block until every chunk and passage is embedded; True if within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for indexer in (self.passage_indexer, self.indexer):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not indexer.wait_idle(left):
                return False
        return True

    def check_open(self) -> None:
        """Raise ``ClosedError`` once the session was forgotten or the engine closed."""
        if self.closed:
            raise ClosedError(
                f"the memory of session {self.session!r} is closed (its engine closed or "
                "the session was forgotten); open it again"
            )

    @property
    def last_seq(self) -> int:
        """Seq of the newest stored record read (messages and retractions)."""
        return self._newest[0]

    def refresh(self) -> int:
        """Load what other writers appended since the view last looked; return how many.

        A retraction among them rebuilds the view without the retracted messages (and
        the summary, if it covered one of them).

        Raises:
            ClosedError: the session was forgotten elsewhere (``forgotten_elsewhere``):
                the state is closed, so nothing forgotten is sent or written back.
        """
        with self.lock:  # the summarizer's thread refreshes too (``snapshot``)
            # The newest turn the view holds is read again: a session forgotten elsewhere,
            # and perhaps started anew since, no longer holds it as it was.
            newest = self._newest
            outline = self.store.turns.outline(self.session, after_seq=max(newest[0] - 1, 0))
            if newest[0] > 0:
                if not self._holds(newest, outline):
                    self.close()
                    raise ClosedError(
                        f"session {self.session!r} was forgotten (by another process or "
                        "handle): what this memory held is gone; open it again to start anew"
                    )
                outline = TurnOutline(*(getattr(outline, f.name)[1:] for f in fields(outline)))
            if not len(outline):
                return 0
            self._newest = (outline.seqs[-1], outline.times[-1])
            marks = [
                s for s, r in zip(outline.seqs, outline.roles, strict=True) if r == RETRACTION_ROLE
            ]
            if marks:
                self._apply(retractions(self.store.turns.read_seqs(self.session, marks)))
            else:
                self.view.refresh(outline)
            return len(outline)

    @staticmethod
    def _holds(newest: tuple[int, float], outline: TurnOutline) -> bool:
        """Whether ``outline`` (read from ``newest``'s seq on) starts with that record as
        the view read it (same seq, same time)."""
        return outline.seqs[:1] == (newest[0],) and outline.times[0] == newest[1]

    def forgotten_elsewhere(self) -> bool:
        """Whether the store no longer holds the newest turn this view has read, as it
        read it: the session was forgotten by another process (``attic forget``) or
        another engine, and perhaps started anew since. Turns are never deleted
        otherwise, and the view counts only committed ones. Safe without ``lock``: the
        newest record is read once, as a pair, and another thread's append leaves it
        stored as it was."""
        newest = self._newest
        if newest[0] <= 0:
            return False
        outline = self.store.turns.outline(self.session, after_seq=newest[0] - 1)
        return not self._holds(newest, outline)

    def _apply(self, retracted: set[int]) -> None:
        """Rebuild the view without the retracted messages (and the summary if needed)."""
        self.retracted |= retracted
        self.view = SessionView(
            self.counter, self.store.turns, self.session, hidden=frozenset(self.retracted)
        )
        self.view.refresh()
        records = self.store.turns.read_seqs(self.session, sorted(self.retracted))
        self.archive.hidden_refs = {r.ref for r in records if r.ref}
        runner = getattr(self, "runner", None)
        if runner is not None and min(retracted) <= runner.covers_upto:
            runner.rebuild()  # the summary may hold what was retracted

    def reload(self) -> None:
        """Rebuild the view from the store (after a failed write rolled back)."""
        with self.lock:
            self.view = SessionView(self.counter, self.store.turns, self.session)
            self._newest = (0, 0.0)
            self.retracted = set()
            self.archive.hidden_refs = set()
            self.refresh()

    def append(
        self,
        turns: Sequence[NewTurn],
        check: Callable[[SessionView], None],
        *,
        before: Callable[[], None] = lambda: None,
    ) -> list[TurnRecord]:
        """Append turns after the newest stored one, in one transaction, all or nothing.

        ``check(view)`` runs against the fresh view before each attempt (pairing);
        ``before()`` runs inside the transaction (archived originals); another writer
        appending first, or a connection lost before the commit, makes the attempt start
        over.

        Raises:
            ConflictError: the session kept changing under ``APPEND_RETRIES`` attempts.
            StoreError: the store failed; nothing was stored.
        """
        for attempt in range(APPEND_RETRIES):
            self.refresh()
            check(self.view)
            records: list[TurnRecord] = []
            try:
                with self.store.write():
                    before()
                    records = self.store.turns.append(self.session, turns, after_seq=self.last_seq)
                    texts = self.view.load([r for r in records if r.role != RETRACTION_ROLE])
                    dates = {r.seq: r.created_at for r in records}
                    self.store.passages.add(self.session, passages_for(texts, dates))
            except ConflictError:
                # Another writer appended first: back off a little (jittered, so racing
                # writers spread out), re-read and re-check.
                time.sleep(random.uniform(0, BACKOFF_SECONDS * (attempt + 1)))
                continue
            except InterruptedWriteError as exc:
                # The connection dropped (a server restart); the re-read waits for the
                # server to be back (a lasting outage raises StoreError there). Lost
                # while committing, the turns may have landed: then only the answer was
                # lost. Otherwise nothing was written: start over.
                self.reload()
                if exc.maybe_committed and records and self._stored(records):
                    return records
                if attempt == APPEND_RETRIES - 1:
                    raise
                continue
            except BaseException:
                self.reload()  # the view may hold rows the rollback undid
                raise
            if records:
                self._newest = (records[-1].seq, records[-1].created_at)
            return records
        raise ConflictError(
            f"session {self.session!r} kept changing under {APPEND_RETRIES} attempts to add"
        )

    def _stored(self, records: Sequence[TurnRecord]) -> bool:
        """Whether exactly these records are in the store (a commit whose answer was lost)."""
        return self.store.turns.read_seqs(self.session, [r.seq for r in records]) == list(records)

    def retract(self, targets: Sequence[int | str], counter_name: str) -> list[int]:
        """Retract messages by seq or message id, with the tool results of their calls.

        Returns:
            The seqs retracted now (already retracted ones are skipped).

        Raises:
            InputError: a target names no stored message of the session.
        """
        self.refresh()
        records = [r for r in self.store.turns.read(self.session) if visible(r, self.retracted)]
        by_id: dict[str, int] = {}
        calls: dict[int, tuple[str, ...]] = {}
        answers: dict[str, int] = {}
        for record in records:
            message_id = json.loads(record.payload).get("data", {}).get("id")
            if message_id:
                by_id[str(message_id)] = record.seq
            calls[record.seq], answer, _ = message_fields(record.payload)
            if answer is not None:
                answers[answer] = record.seq
        seqs: set[int] = set()
        known = {r.seq for r in records}
        for target in targets:
            seq = by_id.get(target) if isinstance(target, str) else target
            if seq is None or seq not in known:
                if isinstance(target, int) and target in self.retracted:
                    continue
                raise InputError(
                    f"no message {target!r} in session {self.session!r} to retract "
                    "(give a seq from add() or a message id)"
                )
            seqs.add(seq)
            seqs.update(answers[c] for c in calls[seq] if c in answers)
        if not seqs:
            return []
        payload = json.dumps({"retract": sorted(seqs)})
        marker = NewTurn(role=RETRACTION_ROLE, payload=payload, tokens=0, counter=counter_name)
        self.append([marker], lambda view: None)
        self._apply(seqs)
        return sorted(seqs)

    def messages(self, *, include_retracted: bool = False) -> list[TurnRecord]:
        """The stored messages, oldest first (retraction records never included)."""
        self.refresh()
        records = self.store.turns.read(self.session)
        if include_retracted:
            return [r for r in records if r.role != RETRACTION_ROLE]
        return [r for r in records if visible(r, self.retracted)]

    def snapshot(self) -> Sequence[Exchange]:
        """The session's exchanges, fresh from the store (the summarizer's input)."""
        with self.lock:
            if not self.closed:
                self.refresh()
            return self.view.exchanges  # a snapshot, built when read

    def ledger(self, price: Price | None) -> Ledger:
        """The session's running cost totals for prompts priced at ``price``."""
        ledger = self._ledgers.get(price)
        if ledger is None:
            ledger = self._ledgers[price] = Ledger(price)
        return ledger

    def close(self, *, wait: float = 0.0) -> None:
        """Stop queueing background work; wait up to ``wait`` s for steps in flight."""
        with self.lock:
            self.closed = True
        self.runner.close(wait=wait)
        self.indexer.close(wait=wait)
        self.passage_indexer.close(wait=wait)
