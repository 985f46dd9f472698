"""One device, one training at a time: runs started while another runs wait as queued and start in order.

Most tests use tests/fake_worker.py (the real worker with a stage that waits for a FINISH or FAIL file), so
they check the queue in seconds; one slow test queues two real tiny trainings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from studio.config import DataSpec, RunConfig, load_config
from studio.runs import manager
from studio.runs.rundir import FINAL_STATES, RunDir
from studio.runs.store import all_run_dirs
from tests.conftest import REPO
from tests.fake_worker import COMMAND as FAKE_WORKER


@pytest.fixture(autouse=True)
def fake_worker(monkeypatch):
    monkeypatch.setattr(manager, "WORKER", FAKE_WORKER)


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    """Whatever a test leaves queued or running is cancelled, newest first so that nothing starts meanwhile."""
    yield
    for row in reversed(manager.list_runs()):
        if row["state"] not in FINAL_STATES:
            manager.cancel(RunDir.of(row["id"]), timeout=10)


def wait_for(check, what: str, timeout: float = 20.0):
    """Poll `check` until it returns something true; fail if a run other than one is running meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in all_run_dirs() if r.read_status().state == "running"]
        assert len(running) <= 1, f"two runs at once: {[r.id for r in running]}"
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {[(r.id, r.read_status()) for r in all_run_dirs()]}")


def offline(**fields) -> RunConfig:
    """A config Start accepts offline: the default data comes from the hub, so the bundled sample instead."""
    return RunConfig(data=DataSpec(path="sample"), **fields)


def state(run: RunDir) -> str:
    return run.read_status().state


def places() -> dict[str, tuple]:
    return {r["id"]: (manager.state_label(r), r["queued_behind"]) for r in manager.list_runs()}


def test_runs_started_back_to_back_wait_and_start_in_order():
    first, proc = manager.start(offline(name="first"))
    second, second_proc = manager.start(offline(name="second"))
    third, third_proc = manager.start(offline(name="third"))
    assert proc is not None and second_proc is None and third_proc is None
    assert places() == {
        first.id: ("running", None),
        second.id: ("queued (1st)", first.id),
        third.id: ("queued (2nd)", second.id),
    }

    (first.path / "FINISH").touch()  # its worker, as it ends, starts the next one
    wait_for(lambda: state(second) == "running", "the second run to start")
    assert state(first) == "completed" and state(third) == "queued"
    assert second.read_status().started >= first.read_status().updated - 1.0
    assert places()[third.id] == ("queued (1st)", second.id)

    (second.path / "FAIL").touch()  # a failed run hands on too
    wait_for(lambda: state(third) == "running", "the third run to start")
    assert second.read_status().error == "told to fail"
    (third.path / "FINISH").touch()
    wait_for(lambda: state(third) == "completed", "the third run to end")
    assert [state(r) for r in (first, second, third)] == ["completed", "failed", "completed"]


def test_cancelling_a_queued_run_takes_it_out_of_the_queue():
    first, _ = manager.start(offline())
    second, _ = manager.start(offline())
    third, _ = manager.start(offline())
    status = manager.cancel(second)
    assert status.state == "cancelled" and not status.pid
    assert places()[third.id] == ("queued (1st)", first.id)

    (first.path / "FINISH").touch()
    wait_for(lambda: state(third) == "running", "the third run to start")
    assert state(second) == "cancelled" and not second.log_path.exists()  # never launched
    assert manager.cancel(third, timeout=10).state == "cancelled"


def test_killed_worker_hands_on_at_the_next_status_refresh():
    first, proc = manager.start(offline())
    second, _ = manager.start(offline())
    wait_for(lambda: first.read_status().total_steps, "the first worker to start its stage")
    # Both of its processes die at once (a power cut, the OOM killer): nobody records the end or starts the next run.
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor first, so that it cannot see the training die
    proc.wait()
    os.killpg(first.read_status().pid, signal.SIGKILL)
    time.sleep(0.3)
    assert state(second) == "queued"
    rows = {r["id"]: r for r in manager.list_runs()}
    assert rows[first.id]["state"] == "failed" and "is gone" in rows[first.id]["error"]
    assert rows[second.id]["state"] == "running"
    assert manager.cancel(second, timeout=10).state == "cancelled"


def test_two_processes_calling_start_next_at_once_launch_exactly_one_run(tmp_path):
    older = manager.create(RunConfig(), request=True)
    newer = manager.create(RunConfig(), request=True)
    go = tmp_path / "go"
    code = (
        "import sys, time, pathlib; from studio.runs import manager; from tests.fake_worker import COMMAND; "
        f"manager.WORKER = COMMAND; go = pathlib.Path({str(go)!r})\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "launched = manager.start_next(); print(launched[0].id if launched else '-')"
    )
    callers = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    time.sleep(1.0)  # let them all import and wait at the line
    go.touch()
    said = sorted(c.communicate(timeout=30)[0].strip() for c in callers)
    assert said == ["-", "-", "-", older.id]
    assert state(older) == "running" and state(newer) == "queued"


def test_a_second_worker_for_a_run_stops_without_touching_it():
    run, proc = manager.start(offline())
    wait_for(lambda: run.read_status().total_steps, "the worker to start its stage")
    result = subprocess.run([*FAKE_WORKER, str(run.path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "stopping" in result.stdout
    status = run.read_status()
    assert status.supervisor == proc.pid and status.pid != proc.pid and state(run) == "running"


def _cli(*args: str) -> subprocess.Popen:
    """`rlhf-studio ARGS` in a subprocess whose runs use the fake worker."""
    code = (
        "import sys; from studio.runs import manager; from tests.fake_worker import COMMAND; "
        "manager.WORKER = COMMAND; from studio.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_train_says_what_it_waits_for_then_follows_the_run():
    first, _ = manager.start(offline())
    cli = _cli("train", "presets/sft-dolly-tiny.yaml")
    queued = RunDir.of(cli.stdout.readline().split()[1])
    cli.stdout.readline()  # dir ...
    assert cli.stdout.readline().strip() == f"queued (1st): waiting behind run {first.id}"
    (first.path / "FINISH").touch()
    wait_for(lambda: state(queued) == "running", "the CLI's run to start")
    (queued.path / "FINISH").touch()
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, err
    assert "completed: 1 steps" in out


def test_ctrl_c_while_queued_cancels_the_run():
    first, _ = manager.start(offline())
    cli = _cli("train", "presets/sft-dolly-tiny.yaml")
    queued = RunDir.of(cli.stdout.readline().split()[1])
    cli.stdout.readline()
    assert cli.stdout.readline().startswith("queued (1st)")
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=30)
    assert cli.returncode == 130 and "run cancelled" in err
    assert state(queued) == "cancelled" and not queued.read_status().pid
    assert state(first) == "running"


@pytest.mark.slow
def test_two_real_trainings_run_one_after_the_other(studio_home, monkeypatch):
    monkeypatch.setattr(manager, "WORKER", [sys.executable, "-m", "studio.runs.worker"])
    config = ["train.max_steps=4", "train.save_steps=0", "train.eval_steps=0", "train.logging_steps=1"]
    first, proc = manager.start(load_config("presets/sft-dolly-tiny.yaml", config))
    second, second_proc = manager.start(load_config("presets/sft-dolly-tiny.yaml", config))
    assert proc is not None and second_proc is None
    wait_for(lambda: state(second) in FINAL_STATES, "both runs to end", timeout=120)
    assert state(first) == state(second) == "completed"
    assert second.read_status().started >= first.read_status().updated - 1.0
