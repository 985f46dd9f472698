"""Faults a run must survive (issue 10, items 1 to 3), each through the real manager and worker supervisor:

1. the training process killed with SIGKILL: the run says failed, by which signal, with the log tail, keeps its
   record and metrics, and `rlhf-studio resume` goes on from the last complete checkpoint;
2. the UI server restarted mid-run: the training goes on and the new server shows the run live;
3. cancel (manager.cancel, `rlhf-studio cancel`): a worker that ignores it is killed after the timeout, and no
   process of the run is left either way.

Most use tests/fake_worker.py (the real worker with a stage that waits), so they take seconds; the slow ones train
the tiny model for real. `python -m pytest tests/test_faults.py -m "not slow"` skips those.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from studio.config import load_config, to_yaml
from studio.runs import manager, process
from studio.runs.metrics import read_all
from studio.runs.rundir import FINAL_STATES, RunDir
from studio.runs.status import RunStatus
from studio.runs.store import RunIndex
from tests.conftest import REPO, free_port, poll, run_cli, served_app, served_studio
from tests.fake_worker import COMMAND as FAKE_WORKER

PRESET = "presets/sft-dolly-tiny.yaml"


def _processes(status: RunStatus) -> list[psutil.Process]:
    """The live processes of a run: its supervisor, its training process and everything in the training's process
    group (what the training started). Zombies are dead already: only their parent has not collected them yet."""
    pids = {status.pid, status.supervisor}
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.pid in pids or os.getpgid(proc.pid) == status.pid:
                found.append(proc)
        except (psutil.Error, ProcessLookupError):
            pass
    return found


def _fake_run(monkeypatch) -> RunDir:
    """A run started through the real manager with the fake worker, once its stage is waiting."""
    monkeypatch.setattr(manager, "WORKER", FAKE_WORKER)
    run, proc = manager.start(load_config(PRESET))
    assert proc is not None
    poll(
        lambda: run.read_status().total_steps and run.read_status().pid != proc.pid,
        "the worker's stage to start",
    )
    return run


@pytest.fixture
def nothing_left():
    """Whatever a test leaves running is killed, so that no fake or real worker outlives it."""
    yield
    for run_dir in manager.runs_root().iterdir() if manager.runs_root().is_dir() else ():
        status = RunDir(run_dir).read_status()
        for proc in _processes(status):
            proc.kill()


# ---------------------------------------------------------------- 1. kill -9 the training process


@pytest.mark.usefixtures("nothing_left")
def test_killed_training_says_failed_by_sigkill_with_the_log_tail_whoever_launched_it(monkeypatch):
    run = _fake_run(monkeypatch)
    status = run.read_status()
    assert status.supervisor != status.pid  # the training runs as the supervisor's child
    # This test holds no handle on the training process and passes no exit code: like a UI that launched it.
    os.kill(status.pid, signal.SIGKILL)
    status = poll(lambda: (s := manager.status(run)).state in FINAL_STATES and s, "the run to end")
    assert status.state == "failed", status
    assert "the worker process was killed by SIGKILL" in status.error and "\n" not in status.error
    assert "fake stage: waiting" in status.log_tail
    row = next(r for r in manager.list_runs() if r["id"] == run.id)
    assert row["state"] == "failed" and "SIGKILL" in row["error"]
    shown = run_cli("show", run.id, timeout=60)
    assert "killed by SIGKILL" in shown.stdout and "fake stage: waiting" in shown.stdout, shown.stderr
    poll(lambda: not _processes(status), "the supervisor to exit")


@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
def test_killed_training_keeps_its_record_and_metrics_and_resumes_from_its_last_checkpoint(studio_home):
    run, _ = manager.start(
        load_config(
            PRESET,
            [
                "train.max_steps=3000",
                "train.save_steps=20",
                "train.eval_steps=0",
                "train.logging_steps=1",
                "timeline.prompts=[]",
            ],
        )
    )
    poll(lambda: run.complete_checkpoints() and (run.read_status().step or 0) > 25, "a checkpoint", 180)
    os.kill(run.read_status().pid, signal.SIGKILL)
    status = poll(lambda: (s := manager.status(run)).state in FINAL_STATES and s, "the run to end")
    assert status.state == "failed" and "killed by SIGKILL" in status.error
    assert "'loss'" in status.log_tail  # the trainer's last log lines
    logged = [row["step"] for row in read_all(run.metrics_path) if "loss" in row]
    assert logged and logged[-1] > 25
    assert next(r for r in manager.list_runs() if r["id"] == run.id)["state"] == "failed"
    assert next(r for r in RunIndex().rows() if r["id"] == run.id)["state"] == "failed"  # the record is kept

    checkpoint = int(run.complete_checkpoints()[-1].name.rsplit("-", 1)[1])
    # Twenty more steps are enough to see it go on: a smaller max_steps keeps the test short.
    config = load_config(run.config_path, [f"train.max_steps={checkpoint + 20}"])
    run.config_path.write_text(to_yaml(config), encoding="utf-8")
    resumed_at = time.time()
    result = run_cli("resume", run.id, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resumed from step {checkpoint}" in result.stdout
    status = run.read_status()
    assert status.state == "completed" and status.step == checkpoint + 20
    steps = [row["step"] for row in read_all(run.metrics_path) if "loss" in row]
    after = [row["step"] for row in read_all(run.metrics_path) if "loss" in row and row["time"] >= resumed_at]
    assert after[0] == checkpoint + 1  # went on from the checkpoint, not from step 1
    assert steps == sorted(steps) and steps[:checkpoint] == list(range(1, checkpoint + 1))  # kept, none twice
    assert run.adapter_dir.is_dir()


def test_a_dead_worker_whose_pids_were_reused_is_not_running(monkeypatch):
    run = _fake_run(monkeypatch)
    status = run.read_status()
    os.kill(status.supervisor, signal.SIGKILL)  # the supervisor first, so that nobody records the end
    os.killpg(status.pid, signal.SIGKILL)
    poll(lambda: not _processes(status), "both processes to die")
    # Both PIDs now name a live process that is not the run's (this test's, started long before): its start time
    # gives it away.
    run.write_status(pid=os.getpid(), supervisor=os.getpid())
    status = manager.status(run)
    assert status.state == "failed" and "is gone" in status.error


def test_a_run_is_live_while_its_supervisor_records_the_end(sleeper):
    """The training is gone but its supervisor lives (it is about to write why): readers must not say 'is gone'."""
    run = manager.create(load_config(PRESET))
    run.write_status(
        state="running",
        pid=999_999_999,
        started=1.0,
        supervisor=sleeper.pid,
        supervisor_started=process.start_time(sleeper.pid),
    )
    assert manager.status(run).state == "running"


# ---------------------------------------------------------------- 2. restart the UI server mid-run


def _fake_worker_server(port: int) -> list[str]:
    """What `rlhf-studio ui` runs (`python -m components`), in a process whose runs use the fake worker."""
    code = (
        "import runpy, sys; from studio.runs import manager; from tests.fake_worker import COMMAND; "
        "manager.WORKER = COMMAND; sys.argv = ['components', *sys.argv[1:]]; "
        "runpy.run_module('components', run_name='__main__')"
    )
    # setsid: the server leads its own process group, as `rlhf-studio ui` in a terminal does (the terminal's group).
    return ["setsid", sys.executable, "-c", code, "--port", str(port)]


def _ctrl_c(port: int) -> None:
    """Stop the server the way Ctrl+C in its terminal does: SIGINT to its whole process group, so a worker that
    shared the group would get it too."""
    server = next(p for p in psutil.Process().children() if str(port) in p.cmdline())
    os.killpg(server.pid, signal.SIGINT)
    server.wait(timeout=30)


def _row(client, run_id: str) -> list:
    return next(row for row in client.predict(api_name="/runs_table")["data"] if row[0] == run_id)


@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left")
def test_restarting_the_ui_server_leaves_the_run_training_and_shows_it_live_again():
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with served_app(_fake_worker_server(port), port, REPO, env) as client:
        keys = client.predict(api_name="/form_keys")
        _, *values = client.predict("sft-dolly-tiny", api_name="/load_preset")
        assert len(values) == len(keys)
        message = client.predict(*values, api_name="/start_run")
        assert message.startswith("Started **"), message
        run = RunDir.of(message.split("**")[1])
        poll(lambda: run.read_status().total_steps, "the worker's stage to start")
        assert "fake stage: waiting" in run.log_path.read_text()  # the stand-in, which ends only when told
        assert _row(client, run.id)[3] == "running"
        _ctrl_c(port)
    # The worker, in its own session, goes on: the training and the supervisor that will record its end.
    status = run.read_status()
    assert process.is_alive(status.pid, status.started)  # (not a zombie: psutil's is_running says True)
    assert process.is_alive(status.supervisor, status.supervisor_started)
    assert manager.status(run).state == "running"

    with served_studio(Path(os.environ["RLHF_STUDIO_HOME"])) as (_url, client):
        assert _row(client, run.id)[3] == "running"
        line, _log = client.predict(run.id, api_name="/run_details")
        assert "running" in line
        (run.path / "FINISH").touch()
        poll(lambda: _row(client, run.id)[3] == "completed", "the new server to show the run completed")
    assert run.read_status().step == 1
    poll(lambda: not _processes(status), "the worker to exit")


# ---------------------------------------------------------------- 3. cancel


@pytest.mark.usefixtures("nothing_left")
def test_cancel_kills_a_worker_that_ignores_it_after_the_timeout_and_leaves_no_process(monkeypatch):
    monkeypatch.setenv("FAKE_WORKER_STUBBORN", "1")  # the stage ignores CANCEL and SIGTERM, and starts a child
    run = _fake_run(monkeypatch)
    status = run.read_status()
    poll(lambda: len(_processes(status)) == 3, "the stubborn stage's own child")
    os.kill(status.pid, signal.SIGTERM)  # ignored
    time.sleep(0.5)
    assert len(_processes(status)) == 3
    began = time.monotonic()
    ended = manager.cancel(run, timeout=2)
    took = time.monotonic() - began
    assert ended.state == "cancelled" and 2 <= took < 10, (ended, took)
    assert not _processes(status)  # the supervisor, the training and the training's child


@pytest.mark.usefixtures("nothing_left")
def test_cli_cancel_ends_a_running_run_within_seconds_and_leaves_no_process(monkeypatch):
    run = _fake_run(monkeypatch)
    status = run.read_status()
    began = time.monotonic()
    result = run_cli("cancel", run.id, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"run {run.id}: cancelled" in result.stdout
    assert time.monotonic() - began < 15
    assert run.read_status().state == "cancelled"
    assert not _processes(status)
