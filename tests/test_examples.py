"""Every examples/*.py runs offline (fake chat models) and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.py") if not p.name.startswith("_"))
EXPECTED = {
    "agent_middleware.py": ["answer: The build failed", "archived refs: ", "tokens saved: "],
    "chatbot_history.py": ["turn 7: history 12 messages", "stored messages: 14"],
    "raw_openai_loop.py": ["replaying ", "final prompt: ", " saved)"],
}


def test_every_example_has_expectations() -> None:
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_offline(example: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CONTEXT_ATTIC_FAKE_MODEL": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for text in EXPECTED[example.name]:
        assert text in done.stdout, f"{text!r} not in the output of {example.name}"
