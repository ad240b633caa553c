"""Crash safety: a writer killed with SIGKILL at random moments loses nothing it acknowledged."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import reliability_harness as harness

KILLS = 9


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_add_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(20240607)
    acked: dict[int, list[int]] = {}
    phases: list[str] = []
    tampers = ["delete", "truncate", "garbage"]
    for kill in range(KILLS):
        phases.append(harness.kill_once(db, "crash", acked, delay=rng.uniform(0.05, 0.9)).phase)
        check = harness.check_after_crash(db, "crash", acked)
        if kill % 3 == 2:
            assert harness.tamper_index(db, tampers[kill // 3 % 3], rng) == 2  # chunks, passages
            harness.check_index_rebuilt(db, "crash", acked)
    assert check.items >= len(acked) > 10
    assert check.archived >= 3
    assert check.summary_covers_upto > 0, "no summary was folded during the run"
    assert len(phases) == KILLS
