"""One contract suite, run against every TurnStore backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stores.base import NewTurn, TurnStore
from stores.errors import ConflictError, StoreError
from stores.sqlite import SQLiteDatabase, SQLiteTurnStore

BACKENDS: dict[str, Callable[[Path], TurnStore]] = {
    "sqlite-file": lambda tmp: SQLiteTurnStore(SQLiteDatabase(tmp / "store.db")),
    "sqlite-memory": lambda tmp: SQLiteTurnStore(SQLiteDatabase(":memory:")),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TurnStore]:
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


def turn(text: str, tokens: int = 5) -> NewTurn:
    return NewTurn(role="human", payload=text, tokens=tokens, counter="c")


def test_append_numbers_turns_from_one(store: TurnStore) -> None:
    records = store.append("s", [turn("a"), turn("b")], after_seq=0)
    assert [r.seq for r in records] == [1, 2]
    assert store.append("s", [turn("c")], after_seq=2)[0].seq == 3
    assert [r.payload for r in store.read("s")] == ["a", "b", "c"]
    assert [r.payload for r in store.read("s", after_seq=2)] == ["c"]
    assert store.last_seq("s") == 3


def test_sessions_are_scoped(store: TurnStore) -> None:
    store.append("a", [turn("x")], after_seq=0)
    store.append("b", [turn("y"), turn("z")], after_seq=0)
    assert [r.payload for r in store.read("a")] == ["x"]
    assert store.last_seq("c") == 0 and store.read("c") == []
    infos = {i.session: (i.turns, i.tokens) for i in store.sessions()}
    assert infos == {"a": (1, 5), "b": (2, 10)}


def test_a_stale_writer_gets_a_conflict_and_writes_nothing(store: TurnStore) -> None:
    store.append("s", [turn("a")], after_seq=0)
    with pytest.raises(ConflictError):
        store.append("s", [turn("b"), turn("c")], after_seq=0)
    assert [r.payload for r in store.read("s")] == ["a"]


def test_unicode_and_metacharacters_round_trip(store: TurnStore) -> None:
    text = "'; DROP TABLE turns; -- \x00 \U0001f600 日本"
    store.append(text, [turn(text)], after_seq=0)
    assert store.read(text)[0].payload == text
    # A lone surrogate cannot be stored as UTF-8: a typed error, nothing written.
    with pytest.raises(StoreError):
        store.append("s", [turn("ok"), turn("bad \ud800")], after_seq=0)
    assert store.read("s") == []


def test_closed_store_raises_store_error(store: TurnStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read("s")
    store.close()


def test_concurrent_appends_from_threads_lose_nothing(store: TurnStore) -> None:
    def writer(name: str) -> None:
        for i in range(20):
            while True:
                try:
                    store.append(
                        "shared", [turn(f"{name}-{i}")], after_seq=store.last_seq("shared")
                    )
                    break
                except ConflictError:
                    continue

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = store.read("shared")
    assert [r.seq for r in records] == list(range(1, 81))
    assert len({r.payload for r in records}) == 80
    for n in range(4):
        mine = [r.payload for r in records if r.payload.startswith(f"t{n}-")]
        assert mine == [f"t{n}-{i}" for i in range(20)]
