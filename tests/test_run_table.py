"""Run summaries (studio.runs.table): one typed row per run, with its queue place, time left and latest numbers,
which `rlhf-studio runs` prints and the Runs tab shows (tests/test_ui_runs.py). No training: runs are folders written
by hand, and a "running" run is one whose status names a sleeping process.

    python -m pytest tests/test_run_table.py -q
"""

from __future__ import annotations

import json
import time

import pytest

from studio.config import RunConfig
from studio.runs import manager, process, table
from studio.runs.metrics import MetricsWriter
from studio.runs.status import State
from tests.conftest import run_cli


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _write(run, rows: list[dict]) -> None:
    writer = MetricsWriter(run.metrics_path)
    for row in rows:
        writer.write(row)


@pytest.fixture
def runs(home, sleeper):
    """(done, running, waiting): a completed PPO run, an SFT run 5 steps into 10 (a step every 2 s from T0), and a
    DPO run queued behind it."""
    done = manager.create(RunConfig(stage="ppo", name="tuned"))
    _write(done, [{"reward": 0.5, "kl": 0.01, "step": 1, "time": 1.0}, {"reward": 1.25, "kl": 0.02, "step": 2}])
    done.write_status(state="completed", step=2, total_steps=2)
    running = manager.create(RunConfig(name="training"))
    running.write_status(
        state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid), step=5, total_steps=10
    )
    t0 = time.time() - 100
    _write(running, [{"loss": 1.0 / s, "mean_token_accuracy": 0.1 * s, "step": s, "time": t0 + 2 * s} for s in (1, 5)])
    waiting = manager.create(RunConfig(stage="dpo", data={"source": "hh-rlhf"}), request=True)
    yield done, running, waiting, t0
    manager.cancel(waiting)  # before the sleeper ends, or a later listing would start it
    running.write_status(state="cancelled")


def test_rows_say_state_place_time_left_and_the_stage_s_numbers(runs):
    done, running, waiting, t0 = runs
    rows = table.run_rows(now=t0 + 2 * 5)  # at step 5: 4 steps took 8 s since the first, so 5 left take 10 s
    assert [r.id for r in rows] == [done.id, running.id, waiting.id]
    first, second, third = rows
    assert (first.stage, first.name, first.state, first.state_label, first.step, first.total_steps) == (
        "ppo",
        "tuned",
        State.COMPLETED,
        "completed",
        2,
        2,
    )
    assert (first.main, first.learning) == (table.Metric("reward", 1.25), table.Metric("kl", 0.02))
    assert first.time_left is None and not first.estimating and first.last_loss is None
    assert (second.state_label, second.step, second.total_steps, second.model) == ("running", 5, 10, "tiny")
    assert second.time_left == pytest.approx(10.0) and not second.estimating
    assert (second.main, second.learning) == (table.Metric("loss", 0.2), table.Metric("token acc", 0.5))
    assert second.last_loss == 0.2
    assert (third.state_label, third.queue_position, third.queued_behind) == ("queued (1st)", 1, running.id)
    assert (third.main, third.learning, third.time_left, third.estimating) == (None, None, None, False)
    running.write_status(step=2)
    early = table.run_rows(now=t0 + 2 * 2)  # one step timed, 2 s after the first: not known yet
    assert early[1].time_left is None and early[1].estimating and early[1].state_label == "running"


def test_the_cli_prints_the_same_rows(runs):
    done, running, waiting, _t0 = runs
    listed = json.loads(run_cli("runs", "--json").stdout)
    rows = table.run_rows()
    assert [{k: v for k, v in r.items() if k != "time_left"} for r in listed] == [
        {k: v for k, v in r.to_json().items() if k != "time_left"} for r in rows
    ]
    assert listed[1]["time_left"] > 0 and listed[0]["main"] == {"name": "reward", "value": 1.25}
    assert {"id", "stage", "name", "model", "created", "state", "step", "total_steps", "last_loss", "parent"} <= set(
        listed[0]
    )  # the index's keys, as before the summaries
    lines = run_cli("runs").stdout.splitlines()
    assert lines == [
        f"{'ID':<32} {'STAGE':<9} {'STATE':<13} {'STEP':>11} {'LOSS':>8}  {'NAME':<20} FROM",
        f"{done.id:<32} {'ppo':<9} {'completed':<13} {'2/2':>11} {'-':>8}  tuned",
        f"{running.id:<32} {'sft':<9} {'running':<13} {'5/10':>11} {'0.2000':>8}  training",
        f"{waiting.id:<32} {'dpo':<9} {'queued (1st)':<13} {'0/?':>11} {'-':>8}  tiny",
    ]


def test_the_other_runs_of_a_stage_newest_first(home):
    first = manager.create(RunConfig(name="one"))
    other = manager.create(RunConfig(stage="reward", data={"source": "hh-rlhf"}))
    second = manager.create(RunConfig())
    for run in (first, other, second):
        run.write_status(state="completed")
    table.run_rows()  # brings the index up to date
    assert table.stage_of(first) == "sft" and table.stage_of(other) == "reward"
    assert table.same_stage(first) == [(second.id, "")]
    assert table.same_stage(second) == [(first.id, "one")]
    first.config_path.write_text("stage: [\n")
    assert table.stage_of(first) == ""
