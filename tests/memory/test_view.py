"""SessionView: a reopened session reads outlines, not messages, and sees what a writer saw."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from memory import ConversationMemory, Engine, TiktokenCounter
from memory._summarize import ExtractiveSummarizer
from memory._view import SessionView
from stores import open_store
from stores.base import Store, TurnOutline, TurnRecord

FAKE = DeterministicFakeEmbedding(size=64)


class CountingTurns:
    """A turn store that counts the payloads (whole records) it hands out."""

    def __init__(self, turns: Any) -> None:
        self._turns = turns
        self.payloads = 0
        self.full_reads = 0

    def read(self, session: str, *, after_seq: int = 0) -> list[TurnRecord]:
        self.full_reads += 1
        records: list[TurnRecord] = self._turns.read(session, after_seq=after_seq)
        self.payloads += len(records)
        return records

    def read_seqs(self, session: str, seqs: Sequence[int]) -> list[TurnRecord]:
        records: list[TurnRecord] = self._turns.read_seqs(session, seqs)
        self.payloads += len(records)
        return records

    def outline(self, session: str, *, after_seq: int = 0) -> TurnOutline:
        outline: TurnOutline = self._turns.outline(session, after_seq=after_seq)
        return outline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._turns, name)


class CountingStore:
    """A real store whose turn reads are counted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.turns = CountingTurns(store.turns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def rounds(count: int, *, start: int = 0) -> list[BaseMessage]:
    """Chat rounds with a dated header now and then, named speakers and tool calls."""
    messages: list[BaseMessage] = []
    for n in range(start, start + count):
        if n % 20 == 0:
            messages.append(SystemMessage(f"Session of day {n // 20}"))
        messages.append(HumanMessage(f"Question {n}: how is the garden plot {n}?", name="Ann"))
        if n % 3 == 0:
            call = {"name": "look", "args": {"plot": n}, "id": f"call{n}"}
            messages.append(AIMessage("", tool_calls=[call]))
            messages.append(
                ToolMessage(
                    f"plot {n}: tomatoes, " * (200 if n % 9 == 0 else 3), tool_call_id=f"call{n}"
                )
            )
        messages.append(AIMessage(f"Plot {n} is doing fine; water it on day {n % 7}."))
    return messages


@contextmanager
def reopened(
    path: Path, *, budget: int = 1200
) -> Iterator[tuple[ConversationMemory, CountingTurns]]:
    counter = TiktokenCounter("o200k_base")
    store = CountingStore(open_store(str(path)))
    engine = Engine(store, embedder=FAKE)  # type: ignore[arg-type]
    memory = engine.open(
        session="s",
        budget=budget,
        token_counter=counter,
        summarizer=ExtractiveSummarizer(counter),
    )
    try:
        yield memory, store.turns
    finally:
        engine.close()


def write(path: Path, messages: Sequence[BaseMessage]) -> SessionView:
    with ConversationMemory.open(path, session="s", budget=1200, embedder=FAKE) as memory:
        for start in range(0, len(messages), 25):
            memory.add(messages[start : start + 25])
        memory.wait_for_summary(30)
        return memory._state.view


def test_reopening_reads_only_the_messages_a_prompt_sends(db_path: Path) -> None:
    write(db_path, rounds(150))
    with reopened(db_path) as (memory, turns):
        assert memory._state.view.turn_count > 400
        prompt = memory.assemble(system="Be brief.")
        sent = prompt.report.turns_kept
        systems = len(memory._state.view.segment_starts)
        assert turns.full_reads == 0
        assert turns.payloads <= sent + systems + 8  # the window, the headers, a few looks back
        assert len(memory._state.view.messages) <= sent + 8
        later = memory.assemble(system="Be brief.")
        assert later.messages == prompt.messages and turns.payloads <= sent + systems + 8


def test_a_reopened_view_sees_what_the_writer_saw(db_path: Path) -> None:
    writer = write(db_path, rounds(60))
    with reopened(db_path) as (memory, _):
        view = memory._state.view
        assert view.turn_count == writer.turn_count and view.last_seq == writer.last_seq
        assert (view.history_tokens, view.raw_history_tokens) == (
            writer.history_tokens,
            writer.raw_history_tokens,
        )
        shape = [
            (e.first_seq, [t.seq for t in e.turns], e.tokens, e.open_calls) for e in view.exchanges
        ]
        assert shape == [
            (e.first_seq, [t.seq for t in e.turns], e.tokens, e.open_calls)
            for e in writer.exchanges
        ]
        assert list(view.exchanges) == list(writer.exchanges)  # the messages too
        assert view.layout() == writer.layout() and view.speakers == {"Ann": writer.speakers["Ann"]}
        assert view.roles["human"] == writer.speakers["Ann"] and len(view.roles["ai"]) >= 60
        assert view.segment_of(view.last_seq) == writer.segment_of(writer.last_seq)
        assert (
            view.last_user_text
            == writer.last_user_text
            == "Question 59: how is the garden plot 59?"
        )
        assert view.issued_calls == writer.issued_calls and view.open_calls == writer.open_calls
        assert view.fold_points(300) == writer.fold_points(300)
        assert view.index_after(100) == writer.index_after(100)


def test_turns_added_after_reopening_are_indexed_as_if_never_closed(tmp_path: Path) -> None:
    messages = rounds(40)
    whole, split = tmp_path / "whole.db", tmp_path / "split.db"
    write(whole, messages)
    write(split, messages[:37])  # ends inside a tool round
    write(split, messages[37:])

    def texts(path: Path) -> list[tuple[bool, int, int, str]]:
        store = open_store(str(path))
        try:
            ids = range(1, store.passages.last_id("s") + 1)
            return sorted(
                (p.context, p.seq, p.idx, p.text) for p in store.passages.passages("s", ids)
            )
        finally:
            store.close()

    assert texts(split) == texts(whole)
