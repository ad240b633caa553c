"""The command line, end to end through its entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_replays_the_shipped_transcript_and_shows_savings() -> None:
    result = run("demo", "--budget", "3000")
    assert result.returncode == 0, result.stderr
    assert "model calls" in result.stdout
    assert "saved" in result.stdout
    assert "every prompt <= 3,000 tokens" in result.stdout


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
