"""The Runs tab through the served studio's endpoints: live table, chart data that grows as rows are appended,
health warnings, and the cancel, resume and delete actions. No training: runs are folders written by hand, and a
"running" run is one whose status names a sleeping process."""

from __future__ import annotations

import math
import re
import time

import pytest

from studio.config import RunConfig
from studio.runs import manager, process
from studio.runs.metrics import MetricsWriter
from tests.conftest import served_studio

pytestmark = pytest.mark.usefixtures("in_module_home")


@pytest.fixture
def client(module_client):
    return module_client


def _sft_rows(first: int, last: int, t0: float = 1000.0) -> list[dict]:
    """Train rows for steps first..last, as TRL's SFTTrainer logs them (step s at time t0 + s), and an eval row
    every 5 steps."""
    rows = []
    for step in range(first, last + 1):
        rows.append(
            {
                "loss": 2.0 / step,
                "grad_norm": 1.0 + step / 10,
                "learning_rate": 1e-4,
                "mean_token_accuracy": 0.5 + step / 100,
                "num_tokens": 1000.0 * step,
                "step": step,
                "epoch": step / 20,
                "time": t0 + step,
            }
        )
        if step % 5 == 0:
            rows.append({"eval_loss": 2.5 / step, "step": step, "epoch": step / 20, "time": t0 + step + 0.5})
    return rows


def _finished_run(name: str, rows: list[dict], stage: str = "sft", state: str = "completed"):
    run = manager.create(RunConfig(stage=stage, name=name))
    writer = MetricsWriter(run.metrics_path)
    for row in rows:
        writer.write(row)
    run.write_status(state=state, step=rows[-1]["step"] if rows else 0, total_steps=20)
    return run


def _points(data: dict) -> dict[tuple[str, str], int]:
    return {(p["title"], s["label"]): s["points"] for p in data["panels"] for s in p["series"]}


def _table(client) -> dict[str, list]:
    return {row[0]: row for row in client.predict(api_name="/runs_table")["data"]}


def test_chart_data_gives_the_stage_panels_and_grows_with_new_rows(client):
    run = _finished_run("charted", _sft_rows(1, 10))
    data = client.predict(run.id, 0.0, api_name="/chart_data")
    assert data["stage"] == "sft" and data["rows_read"] == 12 and data["last_step"] == 10
    # no MFU panel: these rows (like a CPU run's) carry none
    assert [p["title"] for p in data["panels"]] == [
        "Loss",
        "Token accuracy",
        "Learning rate",
        "Gradient norm",
        "Tokens/s (trained)",
    ]
    assert _points(data) == {
        ("Loss", "loss"): 10,
        ("Loss", "eval_loss"): 2,
        ("Token accuracy", "mean_token_accuracy"): 10,
        ("Tokens/s (trained)", "tokens_per_second"): 9,  # derived between train rows
        ("Learning rate", "learning_rate"): 10,
        ("Gradient norm", "grad_norm"): 10,
    }

    writer = MetricsWriter(run.metrics_path)
    for row in _sft_rows(11, 13):
        writer.write(row)
    data = client.predict(run.id, 0.6, api_name="/chart_data")
    assert data["rows_read"] == 3  # only the new rows were read
    assert data["last_step"] == 13
    assert _points(data)[("Loss", "loss")] == 13 and _points(data)[("Loss", "eval_loss")] == 2
    loss = next(s for s in data["panels"][0]["series"] if s["key"] == "loss")
    assert loss["last_step"] == 13 and loss["last_value"] > 2.0 / 13  # smoothed: still above the newest value


def test_chart_data_overlays_runs_and_explains_an_unknown_run(client):
    a, b = _finished_run("overlay-a", _sft_rows(1, 4)), _finished_run("overlay-b", _sft_rows(1, 6))
    data = client.predict(a.id, 0.0, [b.id], False, api_name="/chart_data")
    loss = data["panels"][0]["series"]
    assert [(s["label"], s["points"]) for s in loss] == [
        (f"{a.id}: loss", 4),
        (f"{b.id}: loss", 6),
        (f"{b.id}: eval_loss", 1),
    ]
    gone = client.predict(a.id, 0.0, [b.id, "deleted-since"], False, api_name="/chart_data")
    assert [s["label"] for s in gone["panels"][0]["series"]] == [s["label"] for s in loss]
    assert client.predict("no-such-run", 0.0, api_name="/chart_data") == {
        "error": "no run with id 'no-such-run' (see `rlhf-studio runs`)"
    }


def test_health_reports_a_nan_loss_with_a_suggestion(client):
    rows = _sft_rows(1, 6)
    rows[3]["loss"] = math.nan  # step 4
    run = _finished_run("diverged", rows, state="failed")
    report = client.predict(run.id, api_name="/health")
    assert [(w["check"], w["metric"], w["step"]) for w in report["warnings"]] == [("not_finite", "loss", 4)]
    assert report["warnings"][0]["message"] == "loss is nan at step 4"
    assert "learning_rate" in report["warnings"][0]["suggestion"]
    data = client.predict(run.id, 0.0, api_name="/chart_data")
    assert _points(data)[("Loss", "loss")] == 5
    assert data["panels"][0]["notes"] == ["loss: 1 value not a finite number left out (first at step 4)"]
    healthy = _finished_run("healthy", _sft_rows(1, 6))
    assert client.predict(healthy.id, api_name="/health") == {"run_id": healthy.id, "warnings": []}


def test_delete_refuses_a_running_run_and_removes_a_finished_one(client, sleeper):
    running = manager.create(RunConfig(name="busy"))
    running.write_status(state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid))
    done = _finished_run("done", _sft_rows(1, 3))
    try:
        message, selection, confirm = client.predict(running.id, True, api_name="/delete_run")
        assert message == f"run {running.id} is running; cancel it before deleting it"
        assert selection == running.id and confirm is False and running.exists()

        message, _, _ = client.predict(done.id, False, api_name="/delete_run")
        assert message.startswith(f"Tick “Yes, delete it” to delete run {done.id}")
        assert done.exists()
        message, selection, _ = client.predict(done.id, True, api_name="/delete_run")
        assert message == f"Deleted run {done.id}." and selection == ""
        assert not done.path.exists() and done.id not in _table(client)
        assert running.id in _table(client)
    finally:
        running.write_status(state="cancelled")


def test_table_shows_queue_places_eta_and_the_last_metrics(client, sleeper):
    started = process.start_time(sleeper.pid)
    running = manager.create(RunConfig(name="training"))
    running.write_status(state="running", pid=sleeper.pid, started=started, step=5, total_steps=10)
    writer = MetricsWriter(running.metrics_path)
    first_step_at = time.time() - 5  # then a step a second, the last one a second ago
    for row in _sft_rows(1, 5, t0=first_step_at - 1):
        writer.write(row)
    # Just past its first step (after however long a load): the time left is not known yet.
    fresh = manager.create(RunConfig(name="just-started"))
    fresh.write_status(state="running", pid=sleeper.pid, started=started, step=2, total_steps=60)
    MetricsWriter(fresh.metrics_path).write(_sft_rows(1, 1, t0=time.time() - 2)[0])
    first = manager.create(RunConfig(name="first-waiting"), request=True)
    second = manager.create(RunConfig(stage="ppo", name="second-waiting"), request=True)
    cancelled = _finished_run("was-cancelled", _sft_rows(1, 2), state="cancelled")
    try:
        asked = time.time()
        table = _table(client)
        answered = time.time()
        assert table[first.id][3] == "queued (1st)" and table[second.id][3] == "queued (2nd)"
        assert table[second.id][1:3] == ["second-waiting", "ppo"]
        row = table[running.id]
        assert row[3:5] == ["running", "5/10"]
        # ETA: 5 steps left at the rate of the 4 timed since the first logged step
        low, high = ((10 - 5) * (t - first_step_at) / 4 for t in (asked, answered))
        assert re.fullmatch(r"\d+s", row[5]) and low - 1 <= int(row[5][:-1]) <= high + 1, (row[5], low, high)
        assert row[6:8] == ["loss 0.4", "token acc 0.55"]
        assert table[first.id][5:8] == ["", "", ""]  # nothing known yet
        assert table[fresh.id][3:6] == ["running", "2/60", "estimating"]
        status, _log = client.predict(fresh.id, api_name="/run_details")
        assert "estimating the time left" in status

        status, _log = client.predict(second.id, api_name="/run_details")
        assert "queued (2nd)" in status and f"waiting behind {first.id}" in status

        assert client.predict(running.id, api_name="/resume_run") == (
            f"run {running.id} is running; only failed or cancelled runs can be resumed"
        )
        assert client.predict(cancelled.id, api_name="/resume_run") == (
            f"Run {cancelled.id} is queued (3rd) behind {second.id}; it resumes from the start (no complete "
            "checkpoint) when the device is free."
        )
        assert client.predict(second.id, api_name="/cancel_run") == f"Run {second.id} is cancelled."
        assert _table(client)[cancelled.id][3] == "queued (2nd)"
        assert client.predict(second.id, api_name="/cancel_run") == (
            f"Run {second.id} is already cancelled; nothing to cancel."
        )
        assert client.predict("", api_name="/cancel_run") == "Select a run in the table first."
    finally:
        for waiting in (first, second, cancelled):  # before the sleeper ends, or the server would start them
            manager.cancel(waiting)
        running.write_status(state="cancelled")
        fresh.write_status(state="cancelled")


def test_a_restarted_server_lists_the_same_runs(client, module_home):
    run = _finished_run("survivor", _sft_rows(1, 3))
    assert run.id in _table(client)
    with served_studio(module_home) as (_url, again):  # a second server, as after a restart
        row = _table(again)[run.id]
        assert row[1:5] == ["survivor", "sft", "completed", "3/20"]
        assert again.predict(run.id, 0.0, api_name="/chart_data")["last_step"] == 3
