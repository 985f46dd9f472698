"""The training process for one run: `python -m studio.runs.worker RUN_DIR`.

Started by `studio.runs.manager`, never by the UI process itself. It reads config.yaml, trains the stage,
and keeps status.json up to date. A user mistake ends the run as failed with its one-line message; any
other error also writes its traceback to train.log. SIGTERM asks for a checkpoint and a clean stop.
However the run ends, the worker then starts the next queued run (`manager.start_next`): one training at a time.
"""

from __future__ import annotations

import errno
import gc
import importlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from studio import config as cfg
from studio.errors import StudioError
from studio.runs import manager, process
from studio.runs.rundir import FINAL_STATES, RunDir

OOM_ADVICE = ("out of memory: lower train.batch_size (raise gradient_accumulation_steps to keep the effective "
              "batch), turn on train.gradient_checkpointing, or load the model with model.quantization: 4bit (QLoRA)")
DISK_FULL = ("disk full: no space left on the device while the run was writing; free some space, then resume the "
             "run (its metrics and complete checkpoints so far are kept)")


def _is_out_of_memory(err: BaseException) -> bool:
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def _is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno == errno.ENOSPC


def _failure(err: BaseException) -> str:
    if _is_out_of_memory(err):
        return OOM_ADVICE
    if _is_disk_full(err):
        return DISK_FULL
    return f"{type(err).__name__}: {_one_line(err)}"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def run_stage(run: RunDir) -> None:
    """Train the run's stage; raises on failure."""
    config = cfg.load_config(run.config_path)
    stage = importlib.import_module(f"studio.trainers.{config.stage}")
    stage.train(config, run)


class _Quiet:
    """Stands in for the run's status writer on the other processes of an `accelerate launch`: only rank 0 writes."""

    def __init__(self, run: RunDir):
        self._run = run

    def write_status(self, **fields) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._run, name)


def _claim(run: RunDir, pid: int) -> bool:
    """Record this process as the run's worker, unless another live worker has it already or it ended meanwhile:
    a launcher killed between starting a worker and recording its pid lets the next start_next launch the run a
    second time, or a cancel take it out of the queue."""
    with manager.queue_lock():
        current = run.read_status()
        other = current.get("pid")
        if current.get("state") in FINAL_STATES:
            return False
        if other not in (None, pid) and process.is_alive(other, current.get("started")):
            return False
        run.write_status(state="running", pid=pid, started=process.start_time(pid), error=None)
        return True


def _start_next() -> None:
    """Hand the device to the oldest queued run. This run's end is recorded already, so a failure here is only
    logged: the next status refresh (`rlhf-studio runs`, the UI) starts the queue again."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():  # the next worker loads while this process still exits
        gc.collect()
        torch.cuda.empty_cache()
    try:
        manager.start_next()
    except Exception:  # noqa: BLE001 - see the docstring
        traceback.print_exc()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m studio.runs.worker RUN_DIR", file=sys.stderr)
        return 2
    run = RunDir(Path(argv[1]))
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s: %(message)s")
    if os.environ.get("RANK", "0") != "0":  # a second process of `accelerate launch`: it trains, rank 0 reports
        return _train(_Quiet(run))
    if not _claim(run, os.getpid()):
        print("this run has another worker process, or it ended before this one started; stopping", flush=True)
        return 0
    try:
        return _train(run)
    finally:
        _start_next()


def _train(run: RunDir) -> int:
    """Train the run and record how it ended; the exit code is 0 unless it failed."""
    signal.signal(signal.SIGTERM, lambda *_: run.request_cancel())
    try:
        run_stage(run)
    except StudioError as err:
        run.write_status(state="failed", error=_one_line(err))
        print(f"failed: {err}", flush=True)
        return 1
    except BaseException as err:  # noqa: BLE001 - the run must end with a recorded state whatever happened
        traceback.print_exc()
        run.write_status(state="failed", error=_failure(err))
        return 1
    state = "cancelled" if run.cancel_requested() else "completed"
    run.write_status(state=state, error=None)
    print(f"run {state}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
