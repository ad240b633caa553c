"""``attic inspect --session`` shows the running summary; ``attic recall`` fails on a bad ref."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from memory import ConversationMemory
from memory._cli import main
from stores.base import SummaryRecord
from stores.sqlite import SQLiteDatabase, SQLiteSummaryStore

LOG = "\n".join(f"12:00:{i % 60:02d} INFO step {i} ok" for i in range(300))


@pytest.fixture
def database(tmp_path: Path) -> tuple[Path, str]:
    """A database with one session holding one archived log; returns its path and ref."""
    path = tmp_path / "attic.db"
    embedder = DeterministicFakeEmbedding(size=16)
    with ConversationMemory.open(
        path, session="s", embedder=embedder, compress_threshold=50
    ) as mem:
        call = {"id": "c1", "type": "function", "function": {"name": "tail", "arguments": "{}"}}
        mem.add(
            [
                {"role": "user", "content": "what happened?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": LOG},
            ]
        )
        ref = mem.archive.refs()[0].ref
    return path, ref


def _attic(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args), embedder=DeterministicFakeEmbedding(size=16))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_inspect_shows_the_running_summary(
    database: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = database
    db = SQLiteDatabase(str(path))
    try:
        record = SummaryRecord(
            "s", 1, 2, "The user asked what happened.", 7, "x", 0, 0, time.time()
        )
        SQLiteSummaryStore(db).add_summary(record)
    finally:
        db.close()
    code, out, _ = _attic(capsys, "inspect", str(path), "--session", "s")
    assert code == 0
    assert "running summary" in out
    assert "The user asked what happened." in out


def test_inspect_without_a_summary_says_nothing_about_one(
    database: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _attic(capsys, "inspect", str(database[0]), "--session", "s")
    assert code == 0
    assert "running summary" not in out


def test_recall_of_an_unknown_ref_exits_non_zero_naming_the_known_refs(
    database: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ref = database
    code, out, err = _attic(capsys, "recall", str(path), "--session", "s", "--ref", "nope")
    assert code == 1
    assert out == ""
    assert "no archived output with ref 'nope'" in err
    assert ref in err


def test_recall_of_a_known_ref_prints_it(
    database: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ref = database
    code, out, _ = _attic(capsys, "recall", str(path), "--session", "s", "--ref", ref)
    assert code == 0
    assert "step 0 ok" in out
