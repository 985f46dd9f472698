"""Start, watch, cancel and list runs. Used by the CLI and the UI; never imports torch.

    run = manager.start(load_config("presets/sft-dolly-tiny.yaml"))
    manager.status(run)        # {'state': 'running', 'step': 12, 'total_steps': 60, ...}
    manager.cancel(run)

`start` writes the run directory and launches the worker as its own OS process (its own session, so a
Ctrl+C meant for the terminal does not kill it half-way through writing a checkpoint).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from studio import config as cfg
from studio.data import HUB, SAMPLE
from studio.data.files import file_kind
from studio.errors import DataError, ModelError, StudioError
from studio.runs import process
from studio.runs.metrics import truncate_after
from studio.runs.rundir import FINAL_STATES, RunDir, new_run_id, runs_root
from studio.runs.store import RunIndex, all_run_dirs, summarize


def check_inputs(config: cfg.RunConfig) -> None:
    """Cheap checks of the files a config names, so a typo fails now and not after the model loaded."""
    path = config.data.path
    if path and path not in (SAMPLE, HUB):
        file_kind(Path(path))
        if not Path(path).expanduser().is_file():
            raise DataError(f"data.path = '{path}': no such file")
    name = config.model.name
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().is_dir():
        raise ModelError(f"model.name = '{name}': no such folder")


# Which earlier stages can give a stage its starting weights: policies start from policies.
POLICY_STAGES = ("sft", "dpo", "kto", "ppo", "rejection", "grpo", "rloo")
STARTS_FROM = {stage: POLICY_STAGES for stage in cfg.STAGES} | {"reward": (*POLICY_STAGES, "reward")}


def link_parent(config: cfg.RunConfig) -> RunDir | None:
    """Resolve init.from_run to a completed run with weights; the new run takes that run's base model."""
    if not config.init.from_run:
        return None
    parent = find(config.init.from_run)
    state = status(parent).get("state")
    if state != "completed" or not parent.adapter_dir.is_dir():
        raise StudioError(f"init.from_run = '{config.init.from_run}': that run is {state}; only a completed run "
                          "can be started from")
    parent_config = cfg.load_config(parent.config_path)
    if parent_config.stage not in STARTS_FROM[config.stage]:
        raise StudioError(f"init.from_run = '{parent.id}': a {config.stage} run cannot start from a "
                          f"{parent_config.stage} run; it starts from {' or '.join(STARTS_FROM[config.stage])} runs")
    config.init.from_run = parent.id
    config.model.name = parent_config.model.name
    config.model.revision = parent_config.model.revision
    config.model.trust_remote_code = parent_config.model.trust_remote_code
    return parent


def link_reward_models(config: cfg.RunConfig) -> None:
    """Resolve reward_models.runs of an online stage to completed reward runs (full ids), or say which is not."""
    if config.stage not in cfg.ONLINE_STAGES:
        return
    resolved = []
    for run_id in config.reward_models.runs:
        run = find(run_id)
        stage = cfg.load_config(run.config_path).stage
        state = status(run).get("state")
        if stage != "reward":
            raise StudioError(f"reward_models.runs: '{run.id}' is a {stage} run, not a reward model; name a "
                              "completed reward run")
        if state != "completed" or not run.adapter_dir.is_dir():
            raise StudioError(f"reward_models.runs: '{run.id}' is {state}; only a completed reward run can score "
                              "answers")
        resolved.append(run.id)
    config.reward_models.runs = resolved


def create(config: cfg.RunConfig, pipeline: str | None = None) -> RunDir:
    """Write the run directory with its config and a queued status, and record it in the index."""
    parent = link_parent(config)
    link_reward_models(config)
    runs_root().mkdir(parents=True, exist_ok=True)
    run = RunDir.of(new_run_id(config.stage))
    run.path.mkdir()
    run.config_path.write_text(cfg.to_yaml(config), encoding="utf-8")
    status = run.write_status(state="queued", pid=None, started=None, step=0, total_steps=0, error=None,
                              created=time.time(), parent=parent.id if parent else None, pipeline=pipeline)
    RunIndex().upsert(summarize(run, status))
    return run


def launch(run: RunDir) -> subprocess.Popen:
    """Start the worker process for a run; its output goes to train.log."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(run.log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "studio.runs.worker", str(run.path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    run.write_status(pid=proc.pid, started=process.start_time(proc.pid))
    return proc


def start(config: cfg.RunConfig, pipeline: str | None = None) -> tuple[RunDir, subprocess.Popen]:
    """Check the config's inputs, write the run directory and launch its worker."""
    check_inputs(config)
    run = create(config, pipeline)
    return run, launch(run)


def resume(run: RunDir) -> subprocess.Popen:
    """Relaunch a failed or cancelled run from its last complete checkpoint (or from the start if it has none).
    Metrics logged after that checkpoint are dropped, since the run logs those steps again."""
    current = status(run)
    state = current.get("state")
    if state not in ("failed", "cancelled"):
        raise StudioError(f"run {run.id} is {state}; only failed or cancelled runs can be resumed")
    checkpoints = run.complete_checkpoints()
    step = int(checkpoints[-1].name.rsplit("-", 1)[1]) if checkpoints else 0
    truncate_after(run.metrics_path, step)
    run.cancel_path.unlink(missing_ok=True)
    run.write_status(state="queued", pid=None, started=None, step=step, error=None, resumed_from=step)
    return launch(run)


def find(run_id: str) -> RunDir:
    """A run by its id, or by a unique prefix of it."""
    run = RunDir.of(run_id)
    if run_id and "/" not in run_id and run.exists():
        return run
    matches = [r for r in all_run_dirs() if run_id and r.id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise StudioError(f"no run with id '{run_id}' (see `rlhf-studio runs`)")
    raise StudioError(f"'{run_id}' matches {len(matches)} runs; give more of the id")


def status(run: RunDir, exit_code: int | None = None) -> dict:
    """status.json, corrected when the worker died without saying so (killed, out of memory, power cut)."""
    current = run.read_status()
    if current.get("state") in FINAL_STATES or not current.get("pid"):
        return current
    if process.is_alive(current.get("pid"), current.get("started")):
        return current
    current = run.read_status()  # it may have finished between the two reads
    if current.get("state") in FINAL_STATES:
        return current
    how = _describe_exit(exit_code)
    return run.write_status(state="failed", error=f"the worker process {how} before the run finished; "
                                                  f"see {run.log_path}")


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "is gone"
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def cancel(run: RunDir, timeout: float = 30.0) -> dict:
    """Ask the worker to save and stop; kill its process group if it has not ended within `timeout`."""
    current = status(run)
    if current.get("state") in FINAL_STATES:
        return current
    run.request_cancel()
    pid, started = current.get("pid"), current.get("started")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive(pid, started):
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if run.read_status().get("state") not in FINAL_STATES:
        run.write_status(state="cancelled", error=None)
    return run.read_status()


def list_runs() -> list[dict]:
    """Every run, oldest first, with live states; the index is brought up to date on the way."""
    summaries = []
    for run in all_run_dirs():
        summaries.append(summarize(run, status(run)))
    return RunIndex().sync(summaries)
