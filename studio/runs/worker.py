"""The training process for one run: `python -m studio.runs.worker RUN_DIR`.

Started by `studio.runs.manager`, never by the UI process itself. It reads config.yaml, trains the stage,
and keeps status.json up to date. A user mistake ends the run as failed with its one-line message; any
other error also writes its traceback to train.log, which holds log lines only: no progress bars, no known library
deprecation notices (quiet_libraries). SIGTERM asks for a checkpoint and a clean stop.
However the run ends, the worker then starts the next queued run (`manager.start_next`): one training at a time.

Two processes, so that a run killed from outside (`kill -9`, the kernel's OOM killer) still says how it ended,
whoever launched it (the UI, a CLI that has exited since, a pipeline runner): a process cannot record its own
SIGKILL, and only its parent learns the exit status. So the command above is a small supervisor: it claims the
run, starts the training as a child (the same command with `--training`) and waits for it. The child is the
run's `pid` in status.json (the process a user would kill: it holds the model and the GPU memory) and leads its
own process group, so `os.killpg(pid, ...)` (manager.cancel) stops the training and whatever it started, and
the supervisor, outside that group, lives on to record the end. The supervisor's own pid is kept as
`supervisor` so that readers see the run as live until its end is recorded. If the child dies without writing
a final state, the supervisor writes failed, "the worker process was killed by SIGKILL", with the last lines of
train.log in `log_tail` (cancelled instead when a cancel was asked for: manager.cancel kills a worker that
ignores it). A supervisor killed on its own leaves the training going; the child records its end itself.
Re-running the same command (rather than a fixed one) keeps a stand-in such as tests/fake_worker.py in both roles.
"""

from __future__ import annotations

import errno
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

from studio import config as cfg
from studio import stages
from studio.errors import StudioError
from studio.runs import launcher, manager, process, trackers
from studio.runs.rundir import RunDir
from studio.runs.status import State

OOM_ADVICE = (
    "out of memory: lower train.batch_size (raise gradient_accumulation_steps to keep the effective "
    "batch), turn on train.gradient_checkpointing, or load the model with model.quantization: 4bit (QLoRA)"
)
DISK_FULL = (
    "disk full: no space left on the device while the run was writing; free some space, then resume the "
    "run (its metrics and complete checkpoints so far are kept)"
)


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


log = logging.getLogger("studio.runs.worker")  # not __name__: run with -m, that is __main__


def quiet_libraries() -> None:
    """Keep train.log readable: it is a file that the Runs tab and `rlhf-studio runs` show the end of, not a
    terminal. Progress bars (the hub's downloads, transformers' "Loading weights", datasets' map) would fill it with
    carriage returns; the run's progress is in status.json and its own log lines. Set before the libraries are
    imported (they read these at import), here and in the training child, which inherits the environment."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # huggingface_hub, and transformers through it
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    # transformers 5.2x renamed is_gradient_checkpointing to is_activation_checkpointing and warns on the old name;
    # peft 0.21 (PeftModel.__init__, on every get_peft_model) and TRL 1.16 (disable_gradient_checkpointing, around
    # DPO's evaluation) still read the old one. Nothing to change on our side, so only that warning is hidden.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def run_stage(run: RunDir) -> None:
    """Train the run's stage; raises on failure. In the process that writes the run's files (not a _Quiet one),
    the trackers of train.report_to receive its metrics as they are written, and end with the run's state."""
    from studio.modeling import estimate

    config = estimate.fit_memory(cfg.load_config(run.config_path))
    data = config.data.source + (f" from {config.data.path}" if config.data.path else "")
    log.info("%s: loading the model (%s) and the data (%s)", config.stage, config.model.name, data)
    trainer = importlib.import_module(stages.get(config.stage).trainer)  # by name: trainers sit above runs
    relay = None if isinstance(run, _Quiet) else trackers.start(config, run)
    state = State.FAILED
    try:
        trainer.train(config, run)
        state = State.CANCELLED if run.cancel_requested() else State.COMPLETED
    finally:
        if relay is not None:
            relay.close(str(state))


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
        if current.final:
            return False
        if current.pid not in (None, pid) and manager.worker_alive(current):
            return False
        started = process.start_time(pid)
        run.write_status(
            state=State.RUNNING,
            pid=pid,
            started=started,
            supervisor=pid,
            supervisor_started=started,
            error=None,
            log_tail=None,
        )
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


TRAINING = "--training"  # the flag that makes the command the training child rather than its supervisor


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != TRAINING]
    if len(args) != 1:
        print("usage: python -m studio.runs.worker RUN_DIR", file=sys.stderr)
        return 2
    run = RunDir(Path(args[0]))
    quiet_libraries()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s: %(message)s")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print(f"training process rank {os.environ.get('RANK')} of {os.environ['WORLD_SIZE']}", flush=True)
    if os.environ.get("RANK", "0") != "0":  # a second process of `accelerate launch`: it trains, rank 0 reports
        return _train(_Quiet(run))
    if TRAINING in argv:  # the supervisor claimed the run for this process already
        try:
            return _train(run)
        finally:
            _start_next()
    if not _claim(run, os.getpid()):
        print("this run has another worker process, or it ended before this one started; stopping", flush=True)
        return 0
    return _supervise(run)


def _supervise(run: RunDir) -> int:
    """Train in a child process and record its end if it could not (see the module docstring)."""
    # A SIGTERM meant for the worker asks for a clean stop; the supervisor stays to see the child end.
    signal.signal(signal.SIGTERM, lambda *_: run.request_cancel())
    # sys.orig_argv: this very command (python -m studio.runs.worker, or a test's stand-in) with its interpreter
    # options; stdout and stderr are inherited, so the child writes train.log too. With train.processes above 1
    # the child is `accelerate launch` running that command once per process (studio/runs/launcher.py).
    command = [sys.executable, *sys.orig_argv[1:], TRAINING]
    try:
        command = launcher.command(cfg.load_config(run.config_path), command)
    except StudioError:
        pass  # the training process reads the config again and records what is wrong with it as the run's error
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    run.write_status(pid=child.pid, started=process.start_time(child.pid))
    code = child.wait()
    if run.read_status().final:
        return code  # the child recorded its end and started the next run
    state = State.CANCELLED if run.cancel_requested() else State.FAILED
    how = manager.describe_exit(code)
    error = f"the worker process {how} before the run finished; see {run.log_path}" if state is State.FAILED else None
    print(f"run {state}: the training process {how}", flush=True)
    run.write_status(state=state, error=error, log_tail=run.log_tail())
    _start_next()
    return 1 if state is State.FAILED else 0


def _train(run: RunDir) -> int:
    """Train the run and record how it ended; the exit code is 0 unless it failed."""
    signal.signal(signal.SIGTERM, lambda *_: run.request_cancel())
    try:
        run_stage(run)
    except StudioError as err:
        run.write_status(state=State.FAILED, error=_one_line(err))
        print(f"failed: {err}", flush=True)
        return 1
    except BaseException as err:  # noqa: BLE001 - the run must end with a recorded state whatever happened
        traceback.print_exc()
        run.write_status(state=State.FAILED, error=_failure(err))
        return 1
    state = State.CANCELLED if run.cancel_requested() else State.COMPLETED
    run.write_status(state=state, error=None)
    print(f"run {state}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
