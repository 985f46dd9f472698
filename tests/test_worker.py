"""The worker process: runs end in a recorded state however they end."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from studio.config import load_config
from studio.runs import manager


def _wait_for_step(run, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.read_status()
        if (status.get("step") or 0) >= step:
            return
        assert status["state"] in ("queued", "running"), status
        time.sleep(0.2)
    raise AssertionError(f"run did not reach step {step}: {run.read_status()}")


def _long_config():
    return load_config("presets/sft-dolly-tiny.yaml", ["train.max_steps=3000", "train.save_steps=1000"])


@pytest.mark.slow
def test_killed_worker_shows_failed_with_the_signal(studio_home):
    run, proc = manager.start(_long_config())
    _wait_for_step(run, 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run.read_status()["state"] == "running"  # the worker could not say anything
    status = manager.status(run, exit_code=proc.returncode)
    assert status["state"] == "failed" and "killed by SIGKILL" in status["error"]


@pytest.mark.slow
def test_dead_worker_without_exit_code_and_reused_pid_is_not_running(studio_home):
    run, proc = manager.start(_long_config())
    _wait_for_step(run, 1)
    proc.kill()
    proc.wait()
    # Pretend the PID now belongs to a live process (this test's): the start time gives it away.
    run.write_status(pid=os.getpid())
    assert manager.status(run)["state"] == "failed"
    assert "is gone" in run.read_status()["error"]


@pytest.mark.slow
def test_cancel_saves_a_checkpoint_and_leaves_no_process(studio_home):
    run, proc = manager.start(_long_config())
    _wait_for_step(run, 5)
    began = time.monotonic()
    status = manager.cancel(run)
    assert time.monotonic() - began < 15
    assert status["state"] == "cancelled"
    proc.wait(timeout=10)
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    checkpoints = run.complete_checkpoints()
    assert checkpoints and int(checkpoints[-1].name.split("-")[1]) >= 5
    assert not run.adapter_dir.exists()  # a cancelled run has no final adapter
