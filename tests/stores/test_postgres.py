"""PostgreSQL end to end: a memory opened by URL, several writers, a restarted server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from stores.errors import StoreError
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
    assert prompt.tokens <= 1500 and 1 in prompt.report.recalled_turns
    assert "4417" in str([m.content for m in prompt.messages])  # recalled from the store
    assert len(mem.history()) == 63
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
