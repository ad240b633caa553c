"""A job run beside the caller (``memory._beside``): run once, by a helper or by the
caller when no helper got to it, its value or its error handed to the caller."""

from __future__ import annotations

import threading

import pytest

from memory import _beside
from memory._beside import HELPERS, Beside


def test_a_helper_runs_the_job_and_the_caller_gets_its_value() -> None:
    ran_on: list[threading.Thread] = []
    started = threading.Event()

    def job() -> int:
        ran_on.append(threading.current_thread())
        started.set()
        return 42

    beside = Beside(job)
    assert started.wait(10)
    assert beside.result() == 42
    assert beside.result() == 42
    assert ran_on != [threading.current_thread()] and len(ran_on) == 1


def test_the_jobs_error_is_raised_on_the_callers_thread() -> None:
    def job() -> int:
        raise KeyError("lost")

    with pytest.raises(KeyError, match="lost"):
        Beside(job).result()


def test_the_caller_runs_a_job_no_helper_took_without_waiting() -> None:
    release = threading.Event()
    busy = [Beside(lambda: release.wait(30)) for _ in range(HELPERS)]  # every helper held
    try:
        ran_on: list[threading.Thread] = []

        def job() -> int:
            ran_on.append(threading.current_thread())
            return 7

        beside = Beside(job)
        assert beside.result() == 7
        assert ran_on == [threading.current_thread()]
    finally:
        release.set()
        for held in busy:
            assert held.result() is True
    # The helpers, free again, find the job taken: it ran once.
    assert len(ran_on) == 1


def test_a_job_not_worth_a_helper_runs_on_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[object] = []
    monkeypatch.setattr(_beside, "_helpers", lambda: submitted.append(1))
    ran_on: list[threading.Thread] = []
    beside = Beside(lambda: ran_on.append(threading.current_thread()), helper=False)
    assert ran_on == [] and submitted == []
    beside.result()
    assert ran_on == [threading.current_thread()]
