"""Forgetting leaves no trace: the database file, its FAISS folder and PostgreSQL's tables
are scanned for a session's unique words after ``forget()``."""

from __future__ import annotations

from pathlib import Path

import psycopg
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from memory._cli import main
from stores import open_store

MARKER = "zebracorn7731"
KEPT = "walrusberry9924"
LOG = "\n".join(f"12:00:{k:02d} INFO {MARKER} step {k}" for k in range(80))


def fill(location: str, session: str, word: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "tail", "arguments": "{}"}}
    with ConversationMemory.open(
        location, session=session, budget=300, embedder=DeterministicFakeEmbedding(size=16),
        compress_threshold=50,
    ) as mem:  # fmt: skip
        for i in range(12):
            mem.add([{"role": "user", "content": f"{word} question {i} about {word}"},
                     {"role": "assistant", "content": f"{word} answer {i}"}])  # fmt: skip
        output = LOG.replace(MARKER, word)
        mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "content": output}])  # fmt: skip
        assert mem.wait_until_indexed(30)
        assert mem.wait_for_summary(30)
        assert mem._state.store.summaries.attempts(session)  # a summary exists to be forgotten


def file_bytes(db: Path) -> bytes:
    files = [db, Path(f"{db}-wal"), *Path(f"{db}.faiss").glob("*")]
    return b"".join(f.read_bytes() for f in files if f.is_file())


def test_forget_leaves_no_trace_in_the_sqlite_file_or_index_folder(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    fill(str(db), "gone", MARKER)
    fill(str(db), "kept", KEPT)
    # Two index files per session: archive chunks and turn passages.
    assert MARKER.encode() in file_bytes(db) and len(list(Path(f"{db}.faiss").glob("*"))) == 4
    with ConversationMemory.open(
        db, session="gone", embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        report = mem.forget()
    assert report.turns == 26 and report.blobs == 1 and report.summaries >= 1
    assert report.index_files == 2 and report.chunks >= 1 and report.passages > 26
    data = file_bytes(db)
    assert MARKER.encode() not in data and b"gone" not in data
    assert KEPT.encode() in data and len(list(Path(f"{db}.faiss").glob("*"))) == 2
    with ConversationMemory.open(
        db, session="kept", embedder=DeterministicFakeEmbedding(size=16)
    ) as kept:
        assert len(kept.history()) == 26 and KEPT in kept.archive.get(kept.archive.refs()[0].ref)
    with ConversationMemory.open(
        db, session="gone", embedder=DeterministicFakeEmbedding(size=16)
    ) as again:
        assert again.history() == []


def test_forget_leaves_no_row_in_postgres(pg_url: str) -> None:
    fill(pg_url, "gone", MARKER)
    fill(pg_url, "kept", KEPT)
    with ConversationMemory.open(
        pg_url, session="gone", embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        report = mem.forget()
    assert report.turns == 26 and report.blobs == 1 and report.summaries >= 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("attic_turns", "attic_blobs", "attic_chunks", "attic_summaries"):
            rows = conn.execute(f"SELECT t::text FROM {table} t").fetchall()
            text = " ".join(r[0] for r in rows)
            assert MARKER not in text and '"gone"' not in text and "(gone," not in text
            assert conn.execute(
                f"SELECT count(*) FROM {table} WHERE session = 'gone'"
            ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM attic_turns WHERE session = 'kept'"
        ).fetchone() == (26,)


def test_attic_forget_by_session_and_by_age(tmp_path: Path, pg_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "chat.db"
    for location in (str(db), pg_url):
        fill(location, "gone", MARKER)
        fill(location, "kept", KEPT)
        assert main(["forget", location, "--session", "gone"]) == 0
        assert "forgot 1 session(s): 26 messages" in capsys.readouterr().out
        assert main(["forget", location, "--session", "gone"]) == 1  # nothing left to forget
        assert main(["forget", location, "--older-than", "1d"]) == 0
        store = open_store(location)
        assert [i.session for i in store.turns.sessions()] == ["kept"]
        store.close()
        assert main(["forget", location, "--older-than", "0s"]) == 0
        store = open_store(location)
        assert store.turns.sessions() == []
        store.close()
    assert MARKER.encode() not in file_bytes(db) and KEPT.encode() not in file_bytes(db)
    assert main(["forget", str(tmp_path / "missing.db"), "--session", "x"]) == 1
    assert not (tmp_path / "missing.db").exists()
