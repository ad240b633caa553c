"""Concurrency: processes and threads appending to one SQLite file lose and duplicate nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import reliability_harness as harness


@pytest.mark.slow
def test_four_processes_of_two_threads_lose_nothing_and_keep_each_writers_order(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    results = harness.run_writers(db, processes=4, threads=2, seconds=3.0)
    assert len(results) == 8
    # check_writers fails on any error a writer saw ("database is locked" included).
    total = harness.check_writers(db, results)
    assert total >= sum(r.shared + r.own for r in results) > 8
    assert all(r.shared > 0 and r.own > 0 for r in results)
