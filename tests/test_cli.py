"""The command line, end to end: through ``main()`` in-process, and a few real subprocesses."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import BaseMessage, convert_to_openai_messages, messages_from_dict

from memory import ConversationMemory
from memory._cli import DEMO_TRANSCRIPT, main
from memory._messages import normalize
from memory._replay import load_transcript, model_calls

REPO = Path(__file__).resolve().parents[1]
LOG = "\n".join(f"12:00:{i % 60:02d} INFO step {i} ok" for i in range(300))
LOG += "\n12:07:00 ERROR disk quota exceeded on /var/data\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )


@pytest.fixture
def embedder() -> Embeddings:
    return DeterministicFakeEmbedding(size=64)


Attic = Callable[..., tuple[int, str, str]]


@pytest.fixture
def attic(capsys: pytest.CaptureFixture[str], embedder: Embeddings) -> Attic:
    """Run ``main`` in-process with fake embeddings; return (exit code, stdout, stderr)."""

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args), embedder=embedder)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def filled(tmp_path: Path, embedder: Embeddings) -> tuple[Path, str, list[BaseMessage]]:
    """A database with an agent session (one archived log) and a chat session."""
    path = tmp_path / "attic.db"
    with ConversationMemory.open(
        path, session="agent-7", embedder=embedder, compress_threshold=50
    ) as mem:
        mem.add({"role": "user", "content": "why did the job stop?"})
        mem.add(
            [
                {"role": "assistant", "content": "", "tool_calls": [_call("c1", "tail_log")]},
                {"role": "tool", "tool_call_id": "c1", "content": LOG},
                {"role": "assistant", "content": "The disk quota was exceeded."},
            ]
        )
        mem.wait_until_indexed()
        ref = mem.archive.refs()[0].ref
        history = mem.history()
    with ConversationMemory.open(path, session="chat", embedder=embedder) as mem:
        mem.add({"role": "user", "content": "hello [bold]there[/bold]"})
    return path, ref, history


def _call(call_id: str, name: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def _transcript(tmp_path: Path) -> Path:
    """A small JSONL file of two records, the second with a tool call."""
    records = [
        {"id": "first", "messages": [{"role": "user", "content": "hi"}]},
        {
            "id": "second",
            "source": "hand-written",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "list /tmp"},
                {"role": "assistant", "content": "", "tool_calls": [_call("t1", "ls")]},
                {"role": "tool", "tool_call_id": "t1", "content": "a.txt\nb.txt"},
                {"role": "assistant", "content": "Two files."},
                {"role": "user", "content": "thanks"},
                {"role": "assistant", "content": "You are welcome."},
            ],
        },
    ]
    file = tmp_path / "t.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return file


# --- the real entry point --------------------------------------------------------------


def test_demo_replays_the_shipped_transcript_and_tells_the_cost_with_caching() -> None:
    result = run("demo", "--budget", "3000")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "model calls" in out and "every prompt <= 3,000 tokens" in out
    # The cost as the provider bills it (the session's ledger: the model's caching rule),
    # against the raw history *with* caching, as a ratio.
    match = re.search(
        r"cache writes included\).*raw history \$([\d.]+), this memory \$([\d.]+) = ([\d.]+)x",
        out,
    )
    assert match, out
    raw, ours, ratio = (float(g) for g in match.groups())
    assert ratio == pytest.approx(ours / raw, abs=0.06)
    assert "cached" in out


def test_demo_on_a_missing_file_fails_cleanly(tmp_path: Path) -> None:
    result = run("demo", "--transcript", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert "cannot read transcript" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_usage_errors() -> None:
    assert run("--help").returncode == 0
    assert run("demo", "--help").returncode == 0
    bad = run("no-such-command")
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr


def test_entry_point_refuses_bad_databases_without_touching_them(tmp_path: Path) -> None:
    corrupted = tmp_path / "bad.db"
    corrupted.write_bytes(os.urandom(8192))
    before = corrupted.read_bytes()
    result = run("inspect", str(corrupted))
    assert result.returncode == 1
    assert "not a SQLite database" in result.stderr
    assert "Traceback" not in result.stderr
    assert corrupted.read_bytes() == before
    result = run("export", str(tmp_path / "nope.db"), "--session", "s")
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert sorted(tmp_path.iterdir()) == [corrupted]


# --- every command has help; usage errors exit 2 ---------------------------------------


@pytest.mark.parametrize("command", ["demo", "replay", "inspect", "recall", "export"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: attic" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "t.json"],  # --budget is required
        ["replay", "t.json", "--budget", "0"],
        ["replay", "t.json", "--budget", "100", "--price-per-mtok", "-1"],
        ["recall", "x.db", "--session", "s"],  # neither --ref nor --query
        ["recall", "x.db", "--ref", "r"],  # --session is required
        ["export", "x.db", "--session", "s", "--format", "xml"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "usage: attic" in capsys.readouterr().err


def test_a_budget_that_is_not_a_number_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "t.json", "--budget", "abc"])
    err = capsys.readouterr().err
    assert "must be a positive integer, not 'abc'" in err and "_positive_int" not in err


# --- demo and replay ---------------------------------------------------------------------


def test_demo_draws_a_plot(attic: Attic, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    code, out, err = attic("demo", "--budget", "3000", "--plot", str(png))
    assert code == 0, err
    assert "every prompt <= 3,000 tokens" in out
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "plot written" in err


def test_replay_prints_a_row_per_call_and_prices_the_savings(attic: Attic, tmp_path: Path) -> None:
    code, out, err = attic(
        "replay", str(_transcript(tmp_path)), "--id", "second", "--budget", "400",
        "--price-per-mtok", "2.5",
    )  # fmt: skip
    assert code == 0, err
    assert "Replay of t.jsonl (second)" in out
    assert "3 model calls" in out
    assert "total" in out
    assert "$2.5 per million): raw history" in " ".join(out.split())


def test_replay_takes_the_first_record_by_default(attic: Attic, tmp_path: Path) -> None:
    code, out, _ = attic("replay", str(_transcript(tmp_path)), "--budget", "400")
    assert code == 0
    assert "0 model calls" in out


def test_a_plot_path_in_a_missing_folder_is_refused_before_the_replay(
    attic: Attic, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "no-such-folder" / "r.png"
    code, out, err = attic(
        "replay", str(_transcript(tmp_path)), "--budget", "400", "--plot", str(png)
    )
    assert code == 1 and out == ""  # nothing replayed
    assert "its folder does not exist" in " ".join(err.split())


def test_a_bad_message_in_a_transcript_is_reported_with_its_file(
    attic: Attic, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "messages": [{"role": "user"}]}) + "\n")
    code, _, err = attic("replay", str(bad), "--budget", "400")
    assert code == 1
    assert f"{bad}: message 0: a user message has no content" in " ".join(err.split())


def test_replay_says_when_the_model_has_no_price(attic: Attic, tmp_path: Path) -> None:
    transcript = str(_transcript(tmp_path))
    code, _, err = attic("replay", transcript, "--budget", "400", "--model", "gpt-4o-mni")
    assert code == 0
    assert "no price is known for model 'gpt-4o-mni'" in " ".join(err.split())
    assert "did you mean 'gpt-4o-mini'" in " ".join(err.split())
    code, _, err = attic("replay", transcript, "--budget", "400", "--model", "gpt-4o-mini")
    assert code == 0 and "no price" not in err


def test_replay_of_the_shipped_transcript_as_jsonl(attic: Attic) -> None:
    code, out, err = attic("replay", str(DEMO_TRANSCRIPT), "--budget", "3000", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == model_calls(load_transcript(DEMO_TRANSCRIPT))
    assert [row["call"] for row in rows] == list(range(1, len(rows) + 1))
    assert all(row["tokens"] <= row["budget"] == 3000 for row in rows)
    assert rows[-1]["raw_tokens"] > rows[-1]["tokens"]
    assert {"compressed_refs", "compression_saved", "tokens_saved"} <= rows[0].keys()


def test_replay_of_a_locomo_file(attic: Attic, tmp_path: Path) -> None:
    conversation = {
        "speaker_a": "Ann",
        "speaker_b": "Bo",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "Hi Bo!"},
            {"speaker": "Bo", "dia_id": "D1:2", "text": "Hi Ann."},
        ],
    }
    file = tmp_path / "locomo.json"
    file.write_text(json.dumps([{"sample_id": "conv-1", "conversation": conversation}]))
    code, out, err = attic("replay", str(file), "--id", "conv-1", "--budget", "300")
    assert code == 0, err
    assert "1 model calls" in out


def test_replay_into_a_file_then_inspect_it(attic: Attic, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    transcript = str(_transcript(tmp_path))
    args = ("replay", transcript, "--id", "second", "--budget", "400", "--db", str(db))
    assert attic(*args, "--session", "run-1")[0] == 0
    code, out, _ = attic("inspect", str(db))
    assert code == 0
    assert "run-1" in out
    code, _, err = attic(*args, "--session", "run-1")
    assert code == 1
    assert "pick a new --session" in err


def test_replay_errors_are_one_line_on_stderr(attic: Attic, tmp_path: Path) -> None:
    code, out, err = attic("replay", str(_transcript(tmp_path)), "--id", "x", "--budget", "9")
    assert (code, out) == (1, "")
    assert err.startswith("attic: error:")
    assert "has no record 'x'" in err
    assert "Traceback" not in err


def test_plot_without_matplotlib_names_the_extra(
    attic: Attic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like
    png = tmp_path / "p.png"
    code, _, err = attic("demo", "--plot", str(png))
    assert code == 1
    assert "context-attic[plot]" in err
    assert not png.exists()


# --- inspect, recall, export on an existing database ------------------------------------


def test_inspect_lists_sessions(attic: Attic, filled: tuple[Path, str, list[BaseMessage]]) -> None:
    code, out, _ = attic("inspect", str(filled[0]))
    assert code == 0
    assert "agent-7" in out
    assert "chat" in out


def test_inspect_one_session_shows_counts_and_archived_refs(
    attic: Attic, filled: tuple[Path, str, list[BaseMessage]]
) -> None:
    path, ref, _ = filled
    code, out, _ = attic("inspect", str(path), "--session", "agent-7")
    assert code == 0
    assert "4 messages" in out
    assert "2 assistant" in out
    assert "1 tool" in out
    assert ref in out
    assert "log" in out


def test_recall_prints_exactly_what_the_library_returns(
    attic: Attic, filled: tuple[Path, str, list[BaseMessage]], embedder: Embeddings
) -> None:
    path, ref, _ = filled
    with ConversationMemory.open(path, session="agent-7", embedder=embedder) as mem:
        by_ref = mem.recall(ref=ref, max_tokens=200, page=2)
        mem.wait_until_indexed()  # as the command does before a query
        by_query = mem.recall(query="disk quota", max_tokens=300)
    code, out, _ = attic(
        "recall", str(path), "--session", "agent-7", "--ref", ref, "--max-tokens", "200",
        "--page", "2",
    )  # fmt: skip
    assert (code, out) == (0, by_ref + "\n")
    code, out, _ = attic(
        "recall", str(path), "--session", "agent-7", "--query", "disk quota", "--max-tokens", "300"
    )
    assert (code, out) == (0, by_query + "\n")
    assert "disk quota exceeded" in out


def test_an_openai_export_keeps_the_messages_timestamps(attic: Attic, tmp_path: Path) -> None:
    """A new-user trial: exported as OpenAI messages, a history lost its timestamps, so
    its dated questions found nothing once imported again."""
    path = tmp_path / "dated.db"
    with ConversationMemory.open(path, session="d") as mem:
        mem.add({"role": "user", "content": "I booked the ferry."}, timestamp="2023-05-08T10:00Z")
        mem.add({"role": "assistant", "content": "Noted."})
        history = mem.history()
    code, out, _ = attic("export", str(path), "--session", "d")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["timestamp"] == history[0].additional_kwargs["timestamp"]
    assert "timestamp" not in history[1].additional_kwargs and "timestamp" not in lines[1]
    with ConversationMemory.open(":memory:", session="again") as again:
        again.add(lines)
        assert again.history()[0].additional_kwargs["timestamp"] == lines[0]["timestamp"]


def test_export_round_trips_the_history(
    attic: Attic, filled: tuple[Path, str, list[BaseMessage]], tmp_path: Path
) -> None:
    path, _, history = filled
    code, out, _ = attic("export", str(path), "--session", "agent-7")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == convert_to_openai_messages(history)
    assert normalize(lines) == history
    assert lines[2] == {"role": "tool", "tool_call_id": "c1", "content": LOG}  # unabridged
    target = tmp_path / "out.jsonl"
    code, _, _ = attic("export", str(path), "--session", "agent-7", "--format", "langchain",
                       "--out", str(target))  # fmt: skip
    assert code == 0
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert messages_from_dict(exported) == history


# --- bad paths, missing sessions, corrupted files ---------------------------------------


@pytest.mark.parametrize(
    "command", [["inspect"], ["recall", "--ref", "r"], ["export"]], ids=lambda c: c[0]
)
def test_a_missing_database_is_never_created(
    attic: Attic, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nope.db"
    code, out, err = attic(command[0], str(missing), "--session", "s", *command[1:])
    assert (code, out) == (1, "")
    assert "no database at" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["inspect"], ["recall", "--query", "q"], ["export"]])
def test_a_missing_session_is_a_clear_error(
    attic: Attic, filled: tuple[Path, str, list[BaseMessage]], command: list[str]
) -> None:
    code, _, err = attic(command[0], str(filled[0]), "--session", "ghost", *command[1:])
    assert code == 1
    assert "no session 'ghost'" in err
    assert "'agent-7'" in err


@pytest.mark.parametrize(
    "command",
    [["inspect"], ["inspect", "--session", "s"], ["recall", "--session", "s", "--ref", "r"],
     ["export", "--session", "s"]],
)  # fmt: skip
def test_a_corrupted_database_is_left_untouched(
    attic: Attic, tmp_path: Path, command: list[str]
) -> None:
    corrupted = tmp_path / "attic.db"
    corrupted.write_bytes(os.urandom(4096))
    before = corrupted.read_bytes()
    code, out, err = attic(command[0], str(corrupted), *command[1:])
    assert (code, out) == (1, "")
    assert "not a SQLite database" in err
    assert corrupted.read_bytes() == before
    assert list(tmp_path.iterdir()) == [corrupted]


def test_replay_refuses_to_write_into_a_corrupted_file(attic: Attic, tmp_path: Path) -> None:
    corrupted = tmp_path / "attic.db"
    corrupted.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    before = corrupted.read_bytes()
    code, _, err = attic("replay", str(_transcript(tmp_path)), "--budget", "400",
                         "--db", str(corrupted))  # fmt: skip
    assert code == 1
    assert "attic: error:" in err
    assert corrupted.read_bytes() == before


def test_a_foreign_sqlite_database_gets_no_tables(attic: Attic, tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users(name TEXT)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    code, _, err = attic("inspect", str(foreign))
    assert code == 1
    assert "not a context-attic one" in err
    assert foreign.read_bytes() == before


def test_inspect_reads_one_consistent_session_while_a_server_writes(
    attic: Attic, tmp_path: Path, embedder: Embeddings
) -> None:
    """Its figures come from one read: counts by role add up to the messages, and raw
    tokens are never fewer than those sent with digests (no archived output here)."""
    path = tmp_path / "busy.db"
    stop = threading.Event()
    with ConversationMemory.open(str(path), session="b", embedder=embedder) as mem:
        mem.add([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])

        def write() -> None:
            while not stop.is_set():
                mem.add(
                    [{"role": "user", "content": "more"}, {"role": "assistant", "content": "ok"}]
                )

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(5):
                code, out, _ = attic("inspect", str(path), "--session", "b")
                assert code == 0
                header = r"(\d+) messages \((\d+) assistant, (\d+) user\); "
                found = re.search(header + r"([\d,]+) tokens raw, ([\d,]+) with", out)
                assert found, out
                total, assistant, user, raw, sent = (
                    int(g.replace(",", "")) for g in found.groups()
                )
                assert assistant + user == total and assistant == user and raw >= sent, out
        finally:
            stop.set()
            writer.join()
