"""An embedder that hangs (never answers, never raises): each prompt still comes back,
sessions do not each wait for it, ``close()`` does not wait for it, and it recovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import AIMessage, HumanMessage

from memory import ConversationMemory, Engine
from memory._embed_calls import MAX_ABANDONED, EmbedCalls
from memory._errors import EmbedderError

FACT = "I parked the car in bay 42."
FILLER = "We talked about the weather, the garden and the long week at work ({})."
_T = TypeVar("_T")
RETURNS = 30.0
"""Seconds a call is given to come back before the test calls it blocked (a hang)."""


class _Hanging(Embeddings):
    """Embeds like a fake embedder until ``hanging`` is set; then every call blocks until
    ``released`` is set (an endpoint that accepts the request and never answers)."""

    def __init__(self) -> None:
        self.inner = DeterministicFakeEmbedding(size=32)
        self.hanging = threading.Event()
        self.released = threading.Event()
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.hanging.is_set():
            self.released.wait(RETURNS * 4)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _returns(call: Callable[[], _T]) -> _T:
    """``call()``'s value, failing the test if it has not returned within ``RETURNS``."""
    box: list[_T] = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(RETURNS)
    assert not worker.is_alive(), "the call blocked on the hanging embedder"
    return box[0]


@pytest.fixture
def hanging() -> Iterator[_Hanging]:
    embedder = _Hanging()
    yield embedder
    embedder.released.set()  # let abandoned calls end


def _parked(engine: Engine, session: str) -> ConversationMemory:
    mem = engine.open(session=session, budget=400, model="gpt-4o-mini")
    mem.add([HumanMessage(FACT), AIMessage("Noted.")])
    for n in range(30):
        mem.add(HumanMessage(FILLER.format(n)) if n % 2 == 0 else AIMessage("Sounds good."))
    assert mem.wait_until_indexed(RETURNS)
    return mem


def test_a_hanging_embedder_costs_one_deadline_then_recovers(hanging: _Hanging) -> None:
    engine = Engine(":memory:", embedder=hanging, query_embed_timeout=0.2)
    first, second = _parked(engine, "first"), _parked(engine, "second")
    hanging.hanging.set()
    prompt = _returns(lambda: first.assemble(query="Which bay did I park the car in?"))
    assert "did not answer within 0.2 s" in str(prompt.report.recall_degraded)
    assert FACT in "\n".join(str(m.content) for m in prompt.messages)
    asked = hanging.calls
    # Another session does not wait for it: the call fails at once, the embedder unasked.
    prompt = _returns(lambda: second.assemble(query="Which bay is the car in?"))
    assert "has not answered since" in str(prompt.report.recall_degraded)
    assert hanging.calls == asked
    assert FACT in str(_returns(lambda: second.recall(query="car bay")))

    hanging.hanging.clear()
    hanging.released.set()  # the endpoint answers again, the abandoned call too
    first._state.passage_indexer.query_cooldown_seconds = 0.0  # as if the cool-down ended
    deadline = time.monotonic() + RETURNS  # (the abandoned call's thread ends meanwhile)
    while True:
        prompt = _returns(lambda: first.assemble(query="Which bay did I park the car in?"))
        if prompt.report.recall_degraded is None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert prompt.report.recall_degraded is None
    engine.close()


def test_close_does_not_wait_for_a_hanging_batch(hanging: _Hanging) -> None:
    engine = Engine(":memory:", embedder=hanging, embed_timeout=600.0)
    mem = engine.open(session="s", budget=400, model="gpt-4o-mini")
    hanging.hanging.set()
    mem.add([HumanMessage(FACT), AIMessage("Noted.")])  # its batch hangs in the background
    assert not mem.wait_until_indexed(0.3)
    _returns(engine.close)


def test_a_hanging_embedder_holds_a_bounded_number_of_threads(hanging: _Hanging) -> None:
    calls = EmbedCalls(hanging, query_timeout=0.01, stall_seconds=0.0)
    hanging.hanging.set()
    for _ in range(MAX_ABANDONED):
        with pytest.raises(EmbedderError, match="did not answer within"):
            calls.query("hello")
    with pytest.raises(EmbedderError, match=f"{MAX_ABANDONED} embedder calls given up on"):
        calls.query("hello")
    assert hanging.calls == MAX_ABANDONED  # the last one never reached it
    assert calls.abandoned == MAX_ABANDONED


def test_timeouts_are_checked() -> None:
    from memory import ConfigError

    with pytest.raises(ConfigError, match="query_embed_timeout must be seconds > 0"):
        Engine(":memory:", query_embed_timeout=0)
    with pytest.raises(ConfigError, match="embed_timeout must be seconds > 0"):
        Engine(":memory:", embed_timeout=True)


def test_a_hanging_summarizer_holds_up_its_own_session_only() -> None:
    """One session's summarizer never answers; another session's, on the same engine,
    still gets its summaries (it failed with "calls given up on are still running" once
    the hung calls held every slot)."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    release = threading.Event()

    class _Hung(FakeListChatModel):
        def _call(self, *args: object, **kwargs: object) -> str:
            release.wait(RETURNS * 4)
            return "late"

    engine = Engine(":memory:", embedder=DeterministicFakeEmbedding(size=16), summary_timeout=0.2)
    fine = FakeListChatModel(responses=["Boxes went to Paris, one a day."] * 100)
    try:
        for name, model in (("hung", _Hung(responses=["x"])), ("fine", fine)):
            mem = engine.open(session=name, budget=500, model="gpt-4o-mini", summarizer=model)
            for day in range(30):
                mem.add({"role": "user", "content": f"Day {day}: box {day} to Paris. " * 3})
                mem.add({"role": "assistant", "content": f"Noted box {day}."})
            assert _returns(lambda m=mem: m.wait_for_summary(RETURNS))  # type: ignore[misc]
        report = mem.assemble().report
        assert report.summary_error is None and report.summary_included
        assert engine.model_calls.abandoned >= 1  # the hung one was given up on
    finally:
        release.set()
        engine.close()


def test_queries_are_embedded_as_queries() -> None:
    """An embedder that embeds queries apart from documents (a query prefix or input
    type: BGE, E5, Cohere) gets each query through ``embed_query``."""

    queries: list[str] = []

    class _Asymmetric(DeterministicFakeEmbedding):
        def embed_query(self, text: str) -> list[float]:
            queries.append(text)
            return super().embed_query(f"query: {text}")

    embedder = _Asymmetric(size=16)
    with ConversationMemory.open(":memory:", session="s", budget=300, embedder=embedder) as mem:
        mem.add([HumanMessage(FACT), AIMessage("Noted.")])
        for n in range(60):
            mem.add(HumanMessage(FILLER.format(n)) if n % 2 == 0 else AIMessage("Sure."))
        assert mem.wait_until_indexed(RETURNS)
        prompt = mem.assemble(query="Which bay is the car in?")
    assert queries == ["Which bay is the car in?"]
    assert prompt.report.recall_degraded is None


def test_an_async_server_of_many_sessions_waits_on_a_hung_embedder_once(
    hanging: _Hanging,
) -> None:
    """Twenty sessions served from asyncio on one engine's two I/O threads, handles never
    closed: while the embedder hangs, the queries on the I/O threads when it stalls wait
    their deadline and the others fail at once, so every request is served, within its
    budget, its fact found by words."""
    import asyncio

    engine = Engine(":memory:", embedder=hanging, query_embed_timeout=0.3, io_workers=2)

    async def serve() -> list[int]:
        handles = [await engine.aopen(session=f"u{n}", budget=400) for n in range(20)]
        for mem in handles:
            await mem.aadd([{"role": "user", "content": FACT},
                            {"role": "assistant", "content": "Noted."}])  # fmt: skip
            for n in range(20):
                await mem.aadd([{"role": "user", "content": FILLER.format(n)},
                                {"role": "assistant", "content": "Sure."}])  # fmt: skip
        assert all(mem.wait_until_indexed(RETURNS) for mem in handles)
        hanging.hanging.set()
        before = hanging.calls
        asked = [m.aassemble(query=f"Which bay is the car parked in, week {n}?") for n, m in
                 enumerate(handles)]  # fmt: skip
        prompts = await asyncio.wait_for(asyncio.gather(*asked), RETURNS)
        # Waited on by the requests already waiting when it stalled (at most one per I/O
        # thread); the others did not ask it.
        assert 1 <= hanging.calls - before <= 2
        assert all(p.report.recall_degraded for p in prompts)  # said, not raised
        assert all(FACT in str([m.content for m in p.messages]) for p in prompts)  # by words
        return [p.tokens for p in prompts]

    tokens = asyncio.run(serve())
    assert len(tokens) == 20 and max(tokens) <= 400
    _returns(engine.close)
