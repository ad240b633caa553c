"""One contract suite, run against every store: SQLite (file, memory) and PostgreSQL.

Turns, summaries and the store itself (transactions, forgetting, versions) here; the
archive and search primitives in ``test_contract_archive.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from stores.base import SCHEMA_VERSION, NewPassage, NewTurn, Store, SummaryRecord, TurnOutline
from stores.errors import ConflictError, StoreError
from stores.turns import message_fields


def turn(text: str, tokens: int = 5, created_at: float | None = None) -> NewTurn:
    return NewTurn(role="human", payload=text, tokens=tokens, counter="c", created_at=created_at)


def summary(session: str, text: str, *, error: str | None = None) -> SummaryRecord:
    return SummaryRecord(session, 0, 3, text, 4, "fake", 100, 10, time.time(), error)


def test_append_numbers_turns_from_one(store: Store) -> None:
    records = store.turns.append("s", [turn("a"), turn("b")], after_seq=0)
    assert [r.seq for r in records] == [1, 2]
    assert store.turns.append("s", [turn("c")], after_seq=2)[0].seq == 3
    assert [r.payload for r in store.turns.read("s")] == ["a", "b", "c"]
    assert [r.payload for r in store.turns.read("s", after_seq=2)] == ["c"]
    assert store.turns.last_seq("s") == 3
    assert store.turns.read("s") == records + store.turns.read("s", after_seq=2)


def test_turn_fields_round_trip(store: Store) -> None:
    new = NewTurn("tool", '{"a": 1}', 7, "o200k", compact="[ref x]", raw_tokens=900, ref="x")
    (record,) = store.turns.append("s", [new], after_seq=0)
    (read,) = store.turns.read("s")
    assert read == record
    assert (read.compact, read.raw_tokens, read.ref, read.role) == ("[ref x]", 900, "x", "tool")
    assert abs(read.created_at - time.time()) < 60


def message(kind: str, **data: object) -> str:
    """A payload in ``messages_to_dict`` form."""
    return json.dumps({"type": kind, "data": {"content": "", "name": None, **data}})


OUTLINED = [
    NewTurn("system", message("system", content="2024-05-01"), 3, "c"),
    NewTurn("human", message("human", content="hi", name="Ann \u65e5"), 4, "c"),
    NewTurn("ai", message("ai", tool_calls=[{"id": "a", "name": "f"}, {"id": 7}]), 9, "c"),
    NewTurn(
        "tool", message("tool", tool_call_id="a"), 2, "c", compact="[ref r]", raw_tokens=80, ref="r"
    ),
    NewTurn("tool", message("tool", tool_call_id="7", content="\u0000 nul"), 2, "c"),
    NewTurn("ai", message("ai", tool_calls=[{"name": "no id"}, "odd"], name=5), 3, "other"),
    NewTurn("ai", message("ai", tool_calls={"id": "not a list"}), 3, "c"),
    NewTurn("human", "not JSON at all", 5, "c"),
    NewTurn("human", "[1, 2]", 5, "c"),
]


def test_outline_holds_every_field_but_the_payloads(store: Store) -> None:
    records = store.turns.append("s", OUTLINED, after_seq=0)
    outline = store.turns.outline("s")
    assert outline == TurnOutline(
        seqs=tuple(range(1, 10)),
        roles=("system", "human", "ai", "tool", "tool", "ai", "ai", "human", "human"),
        tokens=(3, 4, 9, 2, 2, 3, 3, 5, 5),
        raw_tokens=(3, 4, 9, 80, 2, 3, 3, 5, 5),
        counters=("c",) * 5 + ("other",) + ("c",) * 3,
        refs=(None, None, None, "r", None, None, None, None, None),
        calls=((), (), ("a", "7"), (), (), (), (), (), ()),
        answers=(None, None, None, "a", "7", None, None, None, None),
        names=(None, "Ann \u65e5", None, None, None, "5", None, None, None),
        times=tuple(r.created_at for r in records),
    )
    fields = list(zip(outline.calls, outline.answers, outline.names, strict=True))
    assert fields == [message_fields(r.payload) for r in records]  # the store reads as Python
    assert store.turns.outline("s", after_seq=7).seqs == (8, 9)
    assert store.turns.outline("s", after_seq=9) == TurnOutline() == store.turns.outline("x")


def test_outline_survives_a_payload_that_only_looks_like_json(store: Store) -> None:
    odd = [turn("{not json"), NewTurn("tool", message("tool", tool_call_id="x\u0000y"), 1, "c")]
    store.turns.append("s", [*OUTLINED, *odd], after_seq=0)
    outline = store.turns.outline("s")
    assert outline.answers[-1] == "x\x00y" and outline.calls[2] == ("a", "7")
    assert len(outline) == 11 and outline.names[1] == "Ann \u65e5"


def test_read_seqs_returns_the_turns_asked_for(store: Store) -> None:
    records = store.turns.append("s", [turn(str(i)) for i in range(1200)], after_seq=0)
    store.turns.append("other", [turn("x")], after_seq=0)
    assert store.turns.read_seqs("s", [5, 2, 5, 9999]) == [records[1], records[4]]
    assert store.turns.read_seqs("s", range(1, 1201)) == records  # more than one batch
    assert store.turns.read_seqs("s", []) == [] == store.turns.read_seqs("nobody", [1])


def test_sessions_are_scoped(store: Store) -> None:
    store.turns.append("a", [turn("x")], after_seq=0)
    store.turns.append("b", [turn("y"), turn("z")], after_seq=0)
    assert [r.payload for r in store.turns.read("a")] == ["x"]
    assert store.turns.last_seq("c") == 0 and store.turns.read("c") == []
    infos = {i.session: (i.turns, i.tokens) for i in store.turns.sessions()}
    assert infos == {"a": (1, 5), "b": (2, 10)}
    assert all(0 < i.first_at <= i.last_at for i in store.turns.sessions())
    assert [i.session for i in store.turns.sessions()] == ["a", "b"]


def test_a_stale_writer_gets_a_conflict_and_writes_nothing(store: Store) -> None:
    store.turns.append("s", [turn("a")], after_seq=0)
    with pytest.raises(ConflictError):
        store.turns.append("s", [turn("b"), turn("c")], after_seq=0)
    assert [r.payload for r in store.turns.read("s")] == ["a"]


def test_unicode_and_metacharacters_round_trip(store: Store) -> None:
    text = "'; DROP TABLE turns; -- \x00 \U0001f600 日本 \U0010fffe0"
    store.turns.append(text, [turn(text)], after_seq=0)
    assert store.turns.read(text)[0].payload == text
    assert [i.session for i in store.turns.sessions()] == [text]
    # A lone surrogate cannot be stored as UTF-8: a typed error, nothing written.
    with pytest.raises(StoreError):
        store.turns.append("s", [turn("ok"), turn("bad \ud800")], after_seq=0)
    assert store.turns.read("s") == []


def test_closed_store_raises_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.turns.read("s")
    with pytest.raises(StoreError, match="closed"):
        store.summaries.latest("s")
    with pytest.raises(StoreError, match="closed"), store.write():
        pass
    store.close()


def test_closing_the_turn_store_releases_the_backend(store: Store) -> None:
    store.turns.append("s", [turn("a")], after_seq=0)
    store.turns.close()
    with pytest.raises(StoreError, match="closed"):
        store.turns.append("s", [turn("b")], after_seq=1)
    with pytest.raises(StoreError, match="closed"):
        store.blobs.refs("s")
    store.close()  # still idempotent


def test_a_second_store_on_the_location_sees_the_first_ones_writes(
    store_factory: Callable[[], Store],
) -> None:
    first = store_factory()
    first.turns.append("s", [turn("a")], after_seq=0)
    first.summaries.add_summary(summary("s", "sum"))
    second = store_factory()
    assert second.location == first.location
    assert [r.payload for r in second.turns.read("s")] == ["a"]
    assert second.summaries.latest("s") == first.summaries.latest("s")
    assert (first.index_directory is None) == (second.index_directory is None)


def test_concurrent_appends_from_threads_and_connections_lose_nothing(
    store_factory: Callable[[], Store],
) -> None:
    stores = [store_factory(), store_factory()]  # two pools / connections where possible

    def writer(n: int) -> None:
        turns = stores[n % 2].turns
        for i in range(20):
            while True:
                try:
                    turns.append("shared", [turn(f"t{n}-{i}")], after_seq=turns.last_seq("shared"))
                    break
                except ConflictError:
                    continue

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = stores[0].turns.read("shared")
    assert [r.seq for r in records] == list(range(1, 81))
    assert len({r.payload for r in records}) == 80
    for n in range(4):
        mine = [r.payload for r in records if r.payload.startswith(f"t{n}-")]
        assert mine == [f"t{n}-{i}" for i in range(20)]


def test_a_write_spans_the_stores_all_or_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write():
        store.turns.append("s", [turn("a")], after_seq=0)
        store.passages.add("s", [NewPassage(1, 0, "a", 0.0)])
        store.summaries.add_summary(summary("s", "sum"))
        assert store.turns.last_seq("s") == 1  # the transaction sees its own writes
        raise RuntimeError("abort")
    assert store.turns.read("s") == [] and store.passages.last_id("s") == 0
    assert store.summaries.attempts("s") == []
    with store.write(), store.write():  # nested blocks join the outer one
        store.turns.append("s", [turn("a")], after_seq=0)
        store.passages.add("s", [NewPassage(1, 0, "a", 0.0)])
    assert store.turns.last_seq("s") == 1 and store.passages.last_id("s") > 0


def test_summaries_keep_every_version_and_failure(store: Store) -> None:
    assert store.summaries.latest("s") is None and store.summaries.spent("s") == (0, 0)
    store.summaries.add_summary(summary("s", "first"))
    store.summaries.add_summary(summary("s", "first", error="model down"))
    store.summaries.add_summary(summary("other", "theirs"))
    latest = store.summaries.latest("s")
    assert latest is not None and (latest.text, latest.version) == ("first", 1)
    attempts = store.summaries.attempts("s")
    assert [(a.version, a.error) for a in attempts] == [(1, None), (2, "model down")]
    assert store.summaries.spent("s") == (200, 20)
    store.summaries.add_summary(summary("s", "second \x00"))
    latest = store.summaries.latest("s")
    assert latest is not None and (latest.text, latest.version) == ("second \x00", 3)
    store.summaries.clear_summaries("s")
    assert store.summaries.attempts("s") == [] and store.summaries.latest("other") is not None


def test_the_schema_version_is_current(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store.location


def test_forget_removes_one_session_and_keeps_the_others(store: Store) -> None:
    for session in ("gone", "kept"):
        with store.write():
            store.turns.append(session, [turn(f"{session} words")], after_seq=0)
            store.passages.add(session, [NewPassage(1, 0, f"{session} words", 0.0)])
        store.summaries.add_summary(summary(session, "sum"))
    report = store.forget("gone")
    assert (report.sessions, report.turns, report.passages, report.summaries) == (
        ("gone",), 1, 1, 1,
    )  # fmt: skip
    assert store.turns.read("gone") == [] and store.passages.last_id("gone") == 0
    assert store.summaries.attempts("gone") == []
    assert store.passages.search("gone", "words") == []
    assert [i.session for i in store.turns.sessions()] == ["kept"]
    assert len(store.passages.search("kept", "words")) == 1
    assert store.forget("never").turns == 0
    # The session can start afresh from seq 1.
    assert store.turns.append("gone", [turn("again")], after_seq=0)[0].seq == 1


def test_forget_older_than_removes_idle_sessions_only(store: Store) -> None:
    store.turns.append("old", [turn("a")], after_seq=0)
    store.turns.append("active", [turn("a")], after_seq=0)
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    store.turns.append("new", [turn("b")], after_seq=0)
    store.turns.append("active", [turn("c")], after_seq=1)
    report = store.forget_older_than(cutoff)
    assert report.sessions == ("old",)
    assert {i.session for i in store.turns.sessions()} == {"new", "active"}
    assert store.forget_older_than(cutoff).sessions == ()


def test_a_message_keeps_the_time_it_was_sent(store: Store) -> None:
    before = time.time()
    sent = [turn("then", created_at=1_683_554_160.5), turn("now")]
    records = store.turns.append("s", sent, after_seq=0)
    assert records[0].created_at == 1_683_554_160.5
    assert before <= records[1].created_at <= time.time()  # None: the time of append
    assert [r.created_at for r in store.turns.read("s")] == [r.created_at for r in records]
    assert store.turns.outline("s").times == tuple(r.created_at for r in records)
