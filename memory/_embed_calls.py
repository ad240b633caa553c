"""An embedder's calls under a deadline, shared by every session that embeds with it.

A LangChain ``Embeddings`` call cannot be cancelled, and a remote one can hang without
raising (an endpoint that accepts the connection and never answers). Each call therefore
runs on its own daemon thread while the caller waits at most its deadline: a query on
the prompt path ``query_timeout`` seconds, a batch of texts in the background
``batch_timeout`` seconds. A call past its deadline is abandoned (its answer, if it ever
comes, is dropped). Until that endpoint answers again, or ``stall_seconds`` have passed,
every other call through the same embedder fails at once instead of waiting too: a hung
endpoint costs one wait per outage, not one per session (a server with a thousand
sessions would otherwise wait ``query_timeout`` for each). At most ``MAX_ABANDONED``
abandoned calls may still be running; past that, calls fail at once, so a hung endpoint
holds a bounded number of threads.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from memory._daemon_call import DaemonCall
from memory._embed import embed_matrix, embed_query_matrix, embedder_name
from memory._errors import EmbedderError

__all__ = [
    "DEFAULT_BATCH_TIMEOUT",
    "DEFAULT_QUERY_TIMEOUT",
    "MAX_ABANDONED",
    "MAX_EMBEDDERS",
    "QUERY_COOLDOWN_SECONDS",
    "EmbedCalls",
    "Embedders",
]

DEFAULT_QUERY_TIMEOUT = 5.0
"""Seconds a query's embedding may take on the prompt path before the query is searched
without embeddings (full-text and phrase only)."""
DEFAULT_BATCH_TIMEOUT = 120.0
"""Seconds one batch of texts (``memory._indexer.DEFAULT_EMBED_BATCH``) may take to embed
in the background before it is abandoned and tried again later (a large local model on
a CPU embeds a few texts a second)."""
QUERY_COOLDOWN_SECONDS = 30.0
"""After the embedder fails on a query, seconds during which queries are searched without
embeddings (full-text and phrase only) before the embedder is tried again; after a call
is abandoned at its deadline, seconds during which its embedder is not waited on."""
MAX_EMBEDDERS = 64
"""Embedder objects whose calls (and whether they answer) an engine keeps apart."""
MAX_ABANDONED = 8
"""Abandoned calls of one embedder that may still be running (each holds a thread)."""


class EmbedCalls:
    """Run one embedder's calls under deadlines (see the module).

    Args:
        embedder: Any LangChain ``Embeddings``.
        query_timeout: Seconds a query's embedding may take (> 0).
        batch_timeout: Seconds a batch of texts may take (> 0).
        stall_seconds: Seconds after a call was abandoned during which further calls
            fail at once (unless the endpoint answers meanwhile).
    """

    def __init__(
        self,
        embedder: Embeddings,
        *,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
        batch_timeout: float = DEFAULT_BATCH_TIMEOUT,
        stall_seconds: float = QUERY_COOLDOWN_SECONDS,
    ) -> None:
        if query_timeout <= 0 or batch_timeout <= 0:
            raise ValueError(f"timeouts must be > 0, got {query_timeout}, {batch_timeout}")
        self.embedder = embedder
        self.name = embedder_name(embedder)
        self.query_timeout = query_timeout
        self.batch_timeout = batch_timeout
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._running_abandoned = 0
        self._stalled_at: float | None = None
        self.abandoned = 0
        """Calls given up on at their deadline so far."""

    def query(self, text: str) -> npt.NDArray[np.float32]:
        """The unit vector of one query, waiting at most ``query_timeout`` seconds.

        Raises:
            EmbedderError: the call passed its deadline, or an earlier one did and the
                endpoint has not answered since; the embedder's own error as it is.
        """
        embed = functools.partial(embed_query_matrix, self.embedder, text)
        vector: npt.NDArray[np.float32] = self._run(embed, self.query_timeout, lambda: False)[0]
        return vector

    def batch(self, texts: list[str], *, cancelled: Callable[[], bool]) -> npt.NDArray[np.float32]:
        """The unit vectors of ``texts`` (a row each), waiting at most ``batch_timeout``
        seconds, or until ``cancelled()`` is true (the engine is closing).

        Raises:
            EmbedderError: as ``query``, or cancelled while waiting.
        """
        embed = functools.partial(embed_matrix, self.embedder, texts)
        return self._run(embed, self.batch_timeout, cancelled)

    def _run(
        self,
        embed: Callable[[], npt.NDArray[np.float32]],
        timeout: float,
        cancelled: Callable[[], bool],
    ) -> npt.NDArray[np.float32]:
        with self._lock:
            stalled_at = self._stalled_at
            if stalled_at is not None and time.monotonic() - stalled_at < self.stall_seconds:
                raise EmbedderError(
                    "an embedder call passed its deadline and the embedder has not answered "
                    f"since; not waiting on it again for {self.stall_seconds:g} s"
                )
            if self._running_abandoned >= MAX_ABANDONED:
                raise EmbedderError(
                    f"{self._running_abandoned} embedder calls given up on are still "
                    "running (check the embedding endpoint)"
                )

        def ended(abandoned: bool, failed: bool) -> None:
            if abandoned:
                self._running_abandoned -= 1
            if not failed:
                self._stalled_at = None  # it answers again

        def late() -> None:
            self._running_abandoned += 1
            self.abandoned += 1
            self._stalled_at = time.monotonic()

        call = DaemonCall(
            embed,
            lock=self._lock,
            ended=ended,
            name="attic-embed-call",
        )
        outcome = call.wait(timeout, cancelled=cancelled, late=late)
        if outcome == "cancelled":
            raise EmbedderError("the engine closed while the embedder was answering")
        if outcome == "late":
            raise EmbedderError(
                f"the embedder did not answer within {timeout:g} s; the call was abandoned"
            )
        return call.value()


class Embedders:
    """An engine's ``EmbedCalls``, one per embedder object, shared by its sessions: an
    endpoint that stopped answering is waited on once, not once per session (the last
    ``MAX_EMBEDDERS`` kept; a session keeps the calls it was given).

    Args:
        query_timeout: ``EmbedCalls``'s, seconds.
        batch_timeout: ``EmbedCalls``'s, seconds.
    """

    def __init__(self, query_timeout: float, batch_timeout: float) -> None:
        self.query_timeout = float(query_timeout)
        self.batch_timeout = float(batch_timeout)
        self._calls: OrderedDict[int, EmbedCalls] = OrderedDict()
        self._lock = threading.Lock()

    def calls(self, embedder: Embeddings) -> EmbedCalls:
        """The calls of ``embedder`` (made on first use)."""
        with self._lock:
            calls = self._calls.get(id(embedder))
            if calls is None or calls.embedder is not embedder:
                calls = EmbedCalls(
                    embedder, query_timeout=self.query_timeout, batch_timeout=self.batch_timeout
                )
                self._calls[id(embedder)] = calls
                while len(self._calls) > MAX_EMBEDDERS:
                    self._calls.popitem(last=False)
            self._calls.move_to_end(id(embedder))
            return calls
