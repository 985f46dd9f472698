"""The time left of a running run (studio.runs.manager.time_left), which the Runs and Pipelines tabs show: timed from
the first step the run logged, so the loading of the model and data is left out, and only once a few steps (or one
slow one) were timed. Runs are folders written by hand; no worker runs.

    python -m pytest tests/test_eta.py -q
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from studio.runs import manager
from studio.runs.metrics import MetricsWriter
from studio.runs.rundir import RunDir
from studio.runs.status import RunStatus, State

T = 1_800_000_000.0  # a fixed "now" on the worker's clock (time.time())


def _run(tmp_path, rows: list[tuple[int, float]], **status) -> tuple[RunDir, RunStatus]:
    """A run folder with metric rows (step, time) and a running status (worker started at T)."""
    run = RunDir(tmp_path / "20261206-120000-sft-abcd")
    run.path.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(run.metrics_path)
    for step, time in rows:
        writer.write({"loss": 1.0, "step": step, "epoch": 0.0, "time": time})
    current = run.write_status(**{"state": "running", "started": T, "total_steps": 60, **status})
    return run, current


def test_loading_is_left_out_and_step_two_is_still_estimating(tmp_path):
    # 100 s of loading, then 4 s a step: timed from the worker's start, step 2 said 48 minutes for a 4-minute run.
    run, current = _run(tmp_path, [(1, T + 100)], step=2)
    assert manager.time_left(current, now=T + 104, run=run) is None  # one step timed: estimating
    writer = MetricsWriter(run.metrics_path)
    for step in (2, 3, 4):
        writer.write({"loss": 1.0, "step": step, "time": T + 100 + 4 * (step - 1)})
    current = run.write_status(step=4)
    assert manager.time_left(current, now=T + 112, run=run) == pytest.approx((60 - 4) * 4.0)


def test_one_slow_step_is_enough_after_a_while(tmp_path):
    run, current = _run(tmp_path, [(1, T + 100)], step=2)
    assert manager.time_left(current, now=T + 110, run=run) is None
    assert manager.time_left(current, now=T + 100 + manager.ESTIMATE_AFTER_SECONDS, run=run) == pytest.approx(
        58 * manager.ESTIMATE_AFTER_SECONDS
    )


def test_nothing_to_estimate(tmp_path):
    run, current = _run(tmp_path, [], step=3)
    assert manager.time_left(current, now=T + 50, run=run) is None  # no step logged yet
    assert manager.time_left(replace(current, state=State.COMPLETED), now=T + 50, run=run) is None
    assert manager.time_left(replace(current, total_steps=0), now=T + 50, run=run) is None
    assert manager.time_left(current, now=T + 50) is None  # no run folder to time it from
    assert manager.time_left(replace(current, step=60), now=T + 50, run=run) == 0.0  # saving after the last step


def test_a_resumed_run_is_timed_from_its_first_new_step(tmp_path):
    # Steps 1-10 were logged before the resume (their times long gone); the resumed worker logs 11 on.
    old = [(step, T - 5000 + step) for step in range(1, 11)]
    run, current = _run(
        tmp_path, [*old, (11, T + 30), (12, T + 32), (13, T + 34), (14, T + 36)], step=14, resumed_from=10
    )
    assert manager.time_left(current, now=T + 36, run=run) == pytest.approx((60 - 14) * 2.0)
    # A later start of the same run (another worker) is timed afresh.
    again = run.write_status(started=T + 900, resumed_from=14, step=15)
    assert manager.time_left(again, now=T + 950, run=run) is None
