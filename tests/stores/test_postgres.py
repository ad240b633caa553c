"""PostgreSQL end to end: a memory opened by URL, several writers, a restarted server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from stores.base import NewTurn
from stores.errors import InterruptedWriteError, StoreError
from stores.postgres_store import PostgresStore

LOG = "\n".join(f"12:00:{k:02d} INFO step {k} ok" for k in range(80)) + "\nERROR kumquat quota"


def open_memory(url: str, session: str = "user-42", budget: int = 600) -> ConversationMemory:
    return ConversationMemory.open(
        url, session=session, budget=budget, embedder=DeterministicFakeEmbedding(size=16),
        compress_threshold=50,
    )  # fmt: skip


@pytest.fixture
def mem(pg_url: str) -> Iterator[ConversationMemory]:
    with open_memory(pg_url) as memory:
        yield memory


def tool_exchange(i: int) -> list[dict[str, object]]:
    call = {"id": f"c{i}", "type": "function", "function": {"name": "tail", "arguments": "{}"}}
    return [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{i}", "content": LOG},
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_memory_opened_by_url_adds_assembles_recalls(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else str(tmp_path / "a.db")
    with open_memory(url, budget=1500) as mem:
        _chat_and_check(mem, url)


def _chat_and_check(mem: ConversationMemory, pg_url: str) -> None:
    # The opening turn is pinned in every prompt: the fact comes after it.
    mem.add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}])
    mem.add({"role": "user", "content": "my locker code is 4417, remember it"})
    mem.add(tool_exchange(1))
    for i in range(30):
        mem.add([{"role": "user", "content": f"filler question {i} " * 5},
                 {"role": "assistant", "content": f"filler answer {i} " * 5}])  # fmt: skip
    ref = mem.archive.refs()[0].ref
    assert mem.archive.get(ref) == LOG
    assert "kumquat" in mem.recall(ref=ref, query="kumquat quota")
    assert mem.wait_until_indexed(30)
    prompt = mem.assemble(query="my locker code")  # the turn holds the phrase
    assert prompt.tokens <= 1500 and 3 in prompt.report.recalled_turns
    assert "4417" in str([m.content for m in prompt.messages])  # recalled from the store
    assert len(mem.history()) == 65
    with open_memory(pg_url) as again:  # another handle (another pool) sees everything
        assert [m.content for m in again.history()] == [m.content for m in mem.history()]
        assert again.archive.get(ref) == LOG


def test_writers_on_separate_pools_never_lose_or_duplicate(pg_url: str) -> None:
    handles = [open_memory(pg_url, "shared") for _ in range(3)]

    def writer(n: int) -> None:
        for i in range(15):
            handles[n].add({"role": "user", "content": f"w{n} message {i}"})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = [str(m.content) for m in handles[0].history()]
    for handle in handles:
        handle.close()
    assert len(contents) == 45 and len(set(contents)) == 45
    for n in range(3):
        assert [c for c in contents if c.startswith(f"w{n} ")] == [
            f"w{n} message {i}" for i in range(15)
        ]


def test_a_session_reads_only_its_own_rows(pg_url: str) -> None:
    with open_memory(pg_url, "alice") as alice, open_memory(pg_url, "bob") as bob:
        alice.add(tool_exchange(1))
        bob.add({"role": "user", "content": "hello"})
        ref = alice.archive.refs()[0].ref
        assert bob.archive.refs() == []
        assert bob.recall(query="kumquat").startswith("Nothing in the archive matches")
        assert bob.recall(ref=ref).startswith("No archived output") and "kumquat" not in str(
            bob.recall(ref=ref)
        )
        assert len(bob.history()) == 1


def test_dropped_connections_and_a_restart_are_retried(
    mem: ConversationMemory, pg_cluster: Any
) -> None:
    if pg_cluster is None:
        pytest.skip("the server is not ours to restart (ATTIC_TEST_POSTGRES_URL)")
    mem.add({"role": "user", "content": "before"})
    with psycopg.connect(pg_cluster.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND usename = 'attic'"
        )
    mem.add({"role": "user", "content": "after the connections dropped"})
    pg_cluster.restart(down_seconds=1.0)
    mem.add({"role": "user", "content": "after the restart"})
    contents = [m.content for m in mem.history()]
    assert contents == ["before", "after the connections dropped", "after the restart"]


def test_a_lasting_outage_is_a_store_error(pg_url: str, pg_cluster: Any) -> None:
    if pg_cluster is None:
        pytest.skip("the server is not ours to stop (ATTIC_TEST_POSTGRES_URL)")
    store = PostgresStore(pg_url, retry_seconds=1.0)
    try:
        pg_cluster.stop()
        with pytest.raises(StoreError, match=r"unreachable|failed"):
            store.turns.read("s")
        with pytest.raises(StoreError):
            PostgresStore(pg_url, retry_seconds=0.5)
    finally:
        pg_cluster.start()
    assert store.turns.read("s") == []  # the same pool reconnects once the server is back
    store.close()


HOLD = 0x61747469630E  # the advisory lock the trigger below waits for
_HOLD_FUNCTION = f"""
CREATE FUNCTION attic_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock({HOLD}); RETURN NULL; END $$
"""
_HOLD_INSERTS = (
    "CREATE TRIGGER attic_test_hold AFTER INSERT ON attic_turns "
    "FOR EACH STATEMENT EXECUTE FUNCTION attic_test_hold()"
)
_HOLD_COMMITS = (  # a deferred trigger runs inside COMMIT, before the commit is durable
    "CREATE CONSTRAINT TRIGGER attic_test_hold AFTER INSERT ON attic_turns "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attic_test_hold()"
)


def kill_inside_turn_insert(
    pg_url: str, write: Callable[[], object], *, at_commit: bool = False
) -> BaseException | None:
    """Run ``write`` in a thread; kill its backend once it has inserted turns, uncommitted.

    A trigger holds every insert into ``attic_turns`` (after its rows are in; with
    ``at_commit``, inside the COMMIT that follows) while this test holds an advisory lock;
    the first backend held there with a transaction that has written is terminated from
    another connection, then the hold is released.

    Returns:
        What ``write`` raised, None if it returned.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            write()
            outcome.append(None)
        except BaseException as exc:  # the test inspects what it was
            outcome.append(exc)

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(_HOLD_FUNCTION)
        admin.execute(_HOLD_COMMITS if at_commit else _HOLD_INSERTS)
        admin.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
        writer = threading.Thread(target=run)
        writer.start()
        try:
            victim = _held_writer(admin)
            admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
            writer.join()
            admin.execute("DROP TRIGGER attic_test_hold ON attic_turns")
            admin.execute("DROP FUNCTION attic_test_hold()")
    (result,) = outcome
    return result


def _held_writer(admin: psycopg.Connection[Any]) -> int:
    """The pid of a backend held by the trigger after writing (waits up to a minute)."""
    deadline = time.monotonic() + 60  # a bound on a hang, not a measurement
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) "
            "AND backend_xid IS NOT NULL"
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.02)
    raise AssertionError("no write reached the held turn insert")


def test_a_write_cut_off_before_its_commit_is_an_interrupted_write(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        store.turns.append("s", [NewTurn("human", "one", 1, "c")], after_seq=0)

        def write() -> None:
            with store.write():
                store.turns.append(
                    "s", [NewTurn("human", "two", 1, "c"), NewTurn("ai", "three", 1, "c")],
                    after_seq=1,
                )  # fmt: skip

        error = kill_inside_turn_insert(pg_url, write)
        assert isinstance(error, InterruptedWriteError), repr(error)
        assert not error.maybe_committed
        assert [r.payload for r in store.turns.read("s")] == ["one"]  # nothing of it kept
        error = kill_inside_turn_insert(pg_url, write, at_commit=True)
        assert isinstance(error, InterruptedWriteError) and error.maybe_committed, repr(error)
        assert [r.payload for r in store.turns.read("s")] == ["one"]  # it had not committed
        write()  # the same write again, on a fresh connection
        assert [r.seq for r in store.turns.read("s")] == [1, 2, 3]
    finally:
        store.close()


@pytest.mark.parametrize("at_commit", [False, True], ids=["in-transaction", "at-commit"])
def test_an_add_cut_off_is_retried_whole(
    mem: ConversationMemory, pg_url: str, at_commit: bool
) -> None:
    mem.add({"role": "user", "content": "first"})
    error = kill_inside_turn_insert(
        pg_url,
        lambda: mem.add([{"role": "user", "content": "second"},
                         {"role": "assistant", "content": "second answer"}]),
        at_commit=at_commit,
    )  # fmt: skip
    assert error is None, repr(error)
    mem.add({"role": "user", "content": "third"})
    assert [m.content for m in mem.history()] == ["first", "second", "second answer", "third"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM attic_turns ORDER BY seq")]
        assert seqs == [1, 2, 3, 4]  # no gap, no duplicate where the first attempt died
        # Each turn is in the turn search index once (the killed attempt left none).
        indexed = conn.execute("SELECT seq FROM attic_passages WHERE NOT context ORDER BY seq")
        assert [r[0] for r in indexed] == seqs
