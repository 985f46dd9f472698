"""The worker process: runs end in a recorded state however they end."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from studio.config import load_config
from studio.runs import manager
from tests.conftest import run_cli


def _wait_for_step(run, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.read_status()
        if (status.step or 0) >= step:
            return
        assert status.state in ("queued", "running"), status
        time.sleep(0.2)
    raise AssertionError(f"run did not reach step {step}: {run.read_status()}")


def _long_config():
    return load_config("presets/sft-dolly-tiny.yaml", ["train.max_steps=3000", "train.save_steps=1000"])


@pytest.mark.slow
def test_cli_cancel_saves_a_checkpoint_and_leaves_no_process(studio_home):
    """`rlhf-studio cancel RUN_ID` from another terminal: the worker saves, ends cancelled, and neither the training
    process nor its supervisor is left. (Killed SIGKILL, resume, server restart, a stubborn worker: test_faults.py.)"""
    run, proc = manager.start(_long_config())
    _wait_for_step(run, 5)
    status = run.read_status()
    began = time.monotonic()
    result = run_cli("cancel", run.id, timeout=60)
    assert time.monotonic() - began < 20, result.stdout  # the CLI's own start-up included
    assert result.returncode == 0 and f"run {run.id}: cancelled" in result.stdout, result.stderr
    assert run.read_status().state == "cancelled"
    proc.wait(timeout=10)
    for pid in (status.pid, status.supervisor):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    checkpoints = run.complete_checkpoints()
    assert checkpoints and int(checkpoints[-1].name.split("-")[1]) >= 5
    assert not run.adapter_dir.exists()  # a cancelled run has no final adapter


def _failing_run(studio_home, monkeypatch, stage):
    """A queued run whose stage is `stage`, trained in this process by the worker's own _train."""
    from studio.runs import worker

    run = manager.create(load_config("presets/sft-dolly-tiny.yaml"))
    monkeypatch.setattr(worker, "run_stage", stage)
    assert worker._train(run) == 1
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # _train's handler is for worker processes
    return run


def test_out_of_memory_ends_failed_with_the_advice(studio_home, monkeypatch):
    import torch

    from studio.runs import worker

    def stage(run):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    run = _failing_run(studio_home, monkeypatch, stage)
    status = run.read_status()
    assert status.state == "failed" and status.error == worker.OOM_ADVICE
    assert all(word in status.error for word in ("batch_size", "gradient_checkpointing", "QLoRA"))


def test_a_full_disk_ends_failed_saying_so_and_keeps_the_metrics_written(studio_home, monkeypatch):
    import errno

    from studio.runs import worker
    from studio.runs.metrics import MetricsWriter, read_all

    def stage(run):
        writer = MetricsWriter(run.metrics_path)
        for step in (1, 2, 3):
            writer.write({"loss": 1.0 / step, "step": step})
        raise OSError(errno.ENOSPC, "No space left on device")

    run = _failing_run(studio_home, monkeypatch, stage)
    status = run.read_status()
    assert status.state == "failed" and status.error == worker.DISK_FULL
    assert [row["step"] for row in read_all(run.metrics_path)] == [1, 2, 3]


def test_a_checkpoint_without_its_complete_marker_is_never_resumed_from(studio_home):
    """A crash while checkpoint-40 was being written leaves it without COMPLETE: resume picks checkpoint-20."""
    from studio.runs.rundir import CHECKPOINT_COMPLETE
    from studio.trainers.common import resume_checkpoint

    run = manager.create(load_config("presets/sft-dolly-tiny.yaml"))
    for step in (20, 40):
        (run.checkpoints_dir / f"checkpoint-{step}").mkdir(parents=True)
    (run.checkpoints_dir / "checkpoint-20" / CHECKPOINT_COMPLETE).write_text("20\n")
    assert resume_checkpoint(run) == str(run.checkpoints_dir / "checkpoint-20")
    assert run.complete_checkpoints() == [run.checkpoints_dir / "checkpoint-20"]


@pytest.mark.slow
def test_train_log_reads_as_lines_without_progress_bars_or_library_deprecations(tuned_runs):
    """train.log is what the Runs tab shows the end of: no tqdm bars (carriage returns, `it/s]`), no FutureWarning
    from the libraries' own use of renamed transformers attributes, but still loading, step and completion lines."""
    for name in ("sft", "reward"):
        log = (tuned_runs["home"] / "runs" / tuned_runs[name] / "train.log").read_text()
        assert "\r" not in log and "it/s]" not in log and "examples/s]" not in log, log[-3000:]
        assert "FutureWarning" not in log and "DeprecationWarning" not in log, log[-3000:]
        assert ": loading the model (tiny) and the data (" in log
        assert "{'loss': " in log  # the trainer's step lines
        assert log.rstrip().endswith("run completed"), log[-3000:]
