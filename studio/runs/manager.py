"""Start, watch, cancel and list runs. Used by the CLI and the UI; never imports torch.

    run = manager.start(load_config("presets/sft-dolly-tiny.yaml"))
    manager.status(run)        # RunStatus(state=State.RUNNING, step=12, total_steps=60, ...)
    manager.open_run(run_id)   # Run: folder, live status, config; .require_completed("run can be shared")
    manager.cancel(run)

`start` first checks what it can in about a second (`check_inputs`: the data file reads, a hub dataset or hub model is
cached or the Hub answers, a local model folder holds weights), so that what would fail later is refused in one line
before a run folder exists; then it writes the run directory and launches the worker as its own OS process (its own
session, so a Ctrl+C meant for the terminal does not kill it half-way through writing a checkpoint). The UI's Start
passes `refuse_repeats`: the same config as a run started in the last REPEAT_SECONDS is a second click, refused.

One device, one training at a time: a run started (or resumed) while another is running stays "queued" and
waits its turn; `list_runs` gives each waiting run its `queue_position` (1 = next) and `queued_behind`.
Who starts the next run: `start_next()`, which launches the oldest waiting run when nothing is running. It is
called by the worker as it ends (completed, failed or cancelled), by `start`/`resume` themselves, by `cancel`,
and by the status refreshes (`list_runs`, and `status` when it finds a dead worker), so a queue never stalls
after a worker was killed. Every decision to launch is taken under an flock on `<runs root>/.queue.lock` and
recorded (state running + pid) before the lock is released, so a run never launches twice and two never run
together; the worker re-checks its claim under the same lock as it starts.

`delete(run)` removes a finished run's directory and index row; running and queued runs must be cancelled first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from studio import access, spaces, stages
from studio import config as cfg
from studio.data import HUB, SAMPLE, check_file
from studio.data.files import file_kind
from studio.errors import DataError, StudioError
from studio.modeling import model_files
from studio.paths import runs_root
from studio.runs import folder, launcher, process, trackers
from studio.runs.metrics import first_row_after, truncate_after
from studio.runs.rundir import Run, RunDir, new_run_id
from studio.runs.status import RunStatus, State
from studio.runs.store import RunIndex, all_run_dirs, summarize


def check_inputs(config: cfg.RunConfig) -> None:
    """Checks of what a config names, so a typo, a broken data file or a Hub out of reach fails now, in about a
    second and before a run exists, and not after the model loaded; and no training at all on a CPU-only Space."""
    spaces.refuse_cpu_space()
    path = config.data.path
    if not path:
        from studio.data import origin_of

        origin_of(config.data)  # a source with a file of its own (votes) says now that there is none yet
    if path and path not in (SAMPLE, HUB):
        access.check_readable(path, "data.path")
        file_kind(Path(path))
        if not Path(path).expanduser().is_file():
            raise DataError(f"data.path = '{path}': no such file")
    # A local data file is read and converted here as the worker would (cut-off line, binary or HTML file, missing
    # column, bad row in fail mode, over the size limit: one line naming file, row and column). Not extra work: the
    # worker reads the converted rows back from the data cache. A hub dataset must be cached or the Hub reachable.
    check_file(config.data, config.stage)
    launcher.check(config)
    trackers.check(config)
    if not config.init.from_run:  # a run started from another takes that run's model
        # A missing folder, no config.json or no weights; a hub id neither cached nor reachable. Remote code or a
        # missing chat template are found by the worker, which loads the model.
        model_files.check_weights(config.model.name)
        model_files.check_reachable(config.model)


def link_parent(config: cfg.RunConfig) -> Run | None:
    """Resolve init.from_run to a completed run with weights; the new run takes that run's base model."""
    if not config.init.from_run:
        return None
    parent = open_run(config.init.from_run).require_completed(
        "run can be started from", subject=f"init.from_run = '{config.init.from_run}': that run"
    )
    parent_config = parent.config
    parents = stages.starts_from(config.stage)  # policies start from policies
    if parent_config.stage not in parents:
        raise StudioError(
            f"init.from_run = '{parent.id}': a {config.stage} run cannot start from a "
            f"{parent_config.stage} run; it starts from {' or '.join(parents)} runs"
        )
    config.init.from_run = parent.id
    config.model.name = parent_config.model.name
    config.model.revision = parent_config.model.revision
    config.model.trust_remote_code = parent_config.model.trust_remote_code
    return parent


def link_rewards(config: cfg.RunConfig) -> None:
    """Resolve the reward sources of an online stage: each run source to a completed reward run (its full id), each
    Python function's file to an absolute path this studio may run (functions.check_allowed); or say which is not.
    Built-ins were checked with the config."""
    if config.stage not in cfg.ONLINE_STAGES:
        return
    from studio.rewards import functions

    for i, source in enumerate(config.rewards.sources):
        where = f"rewards.sources[{i}]"
        if source.run:
            run = open_run(source.run)
            stage = run.config.stage
            if stage != "reward":
                raise StudioError(
                    f"{where}.run: '{run.id}' is a {stage} run, not a reward model; name a completed reward run"
                )
            run.require_completed("reward run can score answers", subject=f"{where}.run: '{run.id}'")
            source.run = run.id
        elif source.function:
            _, name = functions.parse_reference(source.function, f"{where}.function")
            source.function = f"{functions.check_allowed(source.function, f'{where}.function')}:{name}"


# A config identical to a run started this recently is refused where asked (the Start buttons): a second click.
REPEAT_SECONDS = 10.0


def recent_twin(config_text: str, within: float = REPEAT_SECONDS) -> tuple[RunDir, float] | None:
    """(a queued or running run created less than `within` seconds ago whose config.yaml is `config_text`, its age
    in seconds), or None."""
    now = time.time()
    for run in reversed(all_run_dirs()):
        current = run.read_status()
        age = now - current.created
        if not current.final and 0 <= age < within:
            try:
                if run.config_path.read_text(encoding="utf-8") == config_text:
                    return run, age
            except OSError:
                continue
    return None


def repeat_refusal(what: str, twin: str, age: float) -> str:
    """The one line that refuses a repeated Start (a run's or a pipeline's)."""
    return (
        f"{what} {twin} with this same config was started {age:.1f} s ago (a second click?); to start "
        f"another one anyway, press Start again after {REPEAT_SECONDS:g} s"
    )


def create(
    config: cfg.RunConfig, pipeline: str | None = None, request: bool = False, refuse_repeats: bool = False
) -> RunDir:
    """Write the run directory with its config and a queued status, and record it in the index.
    With `request` the run also joins the queue (`requested` time set), in the same write, so that a crash right
    after leaves a run that the next `start_next` launches rather than one that nobody starts. With
    `refuse_repeats` a config identical to a queued or running run created in the last REPEAT_SECONDS is refused."""
    spaces.refuse_cpu_space()  # every run is created here: the UI, the CLI and the pipelines all meet this check
    parent = link_parent(config)
    link_rewards(config)
    text = cfg.to_yaml(config)
    with queue_lock():  # two Starts at once: the second sees the first's folder
        twin = recent_twin(text) if refuse_repeats else None
        if twin is not None:
            raise StudioError(repeat_refusal("run", twin[0].id, twin[1]))
        run = RunDir.of(new_run_id(config.stage))
        run.path.mkdir()
        run.config_path.write_text(text, encoding="utf-8")
        now = time.time()
        status = run.write_status(
            state=State.QUEUED,
            pid=None,
            started=None,
            step=0,
            total_steps=0,
            error=None,
            created=now,
            parent=parent.id if parent else None,
            pipeline=pipeline,
            requested=now if request else None,
        )
    RunIndex().upsert(summarize(run, status))
    return run


# The command that trains one run (RUN_DIR is appended); tests swap in a cheap stand-in.
WORKER = [sys.executable, "-m", "studio.runs.worker"]


def launch(run: RunDir) -> subprocess.Popen:
    """Start the worker process for a run and record it as running; its output goes to train.log.
    Only `start_next` calls this, holding the queue lock, so the record is in place before anyone looks again."""
    proc = folder.start_detached([*WORKER, str(run.path)], run.log_path)
    started = process.start_time(proc.pid)
    # The supervisor is the run's pid until it records the training child it starts (see studio.runs.worker).
    run.write_status(
        state=State.RUNNING, pid=proc.pid, started=started, supervisor=proc.pid, supervisor_started=started
    )
    return proc


@contextmanager
def queue_lock() -> Iterator[None]:
    """Hold the runs root's lock file while deciding what runs. flock is released when the holder dies, so a
    process killed mid-decision never leaves the queue locked; the fd is not inherited by the workers."""
    root = runs_root()
    root.mkdir(parents=True, exist_ok=True)
    with folder.locked(root / ".queue.lock"):
        yield


def _line(statuses: dict[RunDir, RunStatus]) -> tuple[RunDir | None, list[RunDir]]:
    """(the run holding the device, the runs waiting for it in the order they start). A run created but never
    started (`create` alone, as the tests do) is neither: it has no `requested` time."""
    running = [r for r, s in statuses.items() if s.state is State.RUNNING and s.pid]
    waiting = [r for r, s in statuses.items() if s.state is State.QUEUED and s.requested and not s.pid]
    waiting.sort(key=lambda r: (statuses[r].requested, statuses[r].created, r.id))
    return (running[0] if running else None), waiting


def start_next() -> tuple[RunDir, subprocess.Popen] | None:
    """Launch the oldest waiting run if no run is running; returns it and its worker, or None.
    Safe to call from any number of processes at once: the decision and the launch happen under `queue_lock`."""
    if not runs_root().is_dir():
        return None
    with queue_lock():
        active, waiting = _line({run: _checked_status(run)[0] for run in all_run_dirs()})
        if active or not waiting:
            return None
        return waiting[0], launch(waiting[0])


def queue_places() -> dict[str, dict]:
    """For each waiting run id: its `queue_position` (1 = starts next) and `queued_behind` (the run just ahead)."""
    active, waiting = _line({run: run.read_status() for run in all_run_dirs()})
    return _places(active, waiting)


def _places(active: RunDir | None, waiting: list[RunDir]) -> dict[str, dict]:
    places, ahead = {}, active.id if active else None
    for position, run in enumerate(waiting, start=1):
        places[run.id] = {"queue_position": position, "queued_behind": ahead}
        ahead = run.id
    return places


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def state_label(row: dict) -> str:
    """A run's state for people: 'queued (2nd)' for a waiting run, else the state itself."""
    position = row.get("queue_position")
    return f"queued ({ordinal(position)})" if position else str(row.get("state"))


def _request(run: RunDir) -> subprocess.Popen | None:
    """Start the run now if the device is free (its worker is returned), else leave it waiting (None)."""
    launched = start_next()
    return launched[1] if launched and launched[0].id == run.id else None


def start(
    config: cfg.RunConfig, pipeline: str | None = None, refuse_repeats: bool = False
) -> tuple[RunDir, subprocess.Popen | None]:
    """Check the config's inputs, write the run directory and queue it; its worker is returned when it started at
    once, None while it waits behind another run. The UI's Start passes `refuse_repeats` (see `create`)."""
    check_inputs(config)
    run = create(config, pipeline, request=True, refuse_repeats=refuse_repeats)
    return run, _request(run)


def resume(run: RunDir) -> subprocess.Popen | None:
    """Queue a failed or cancelled run again, to continue from its last complete checkpoint (or from the start if
    it has none); its worker is returned when it started at once. Metrics and rollouts logged after that checkpoint
    are dropped, since the run logs those steps again."""
    state = status(run).state
    if state not in (State.FAILED, State.CANCELLED):
        raise StudioError(f"run {run.id} is {state}; only failed or cancelled runs can be resumed")
    spaces.refuse_cpu_space()
    checkpoints = run.complete_checkpoints()
    step = int(checkpoints[-1].name.rsplit("-", 1)[1]) if checkpoints else 0
    truncate_after(run.metrics_path, step)
    truncate_after(run.rollouts_path, step)  # the same protocol: those steps' answers are sampled again
    run.cancel_path.unlink(missing_ok=True)
    run.write_status(
        state=State.QUEUED,
        pid=None,
        started=None,
        supervisor=None,
        supervisor_started=None,
        step=step,
        error=None,
        log_tail=None,
        resumed_from=step,
        requested=time.time(),
    )
    return _request(run)


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


def open_run(run_id: str) -> Run:
    """A run by its id (or a unique prefix of it) with its live status (see `status`)."""
    run = find(run_id)
    return Run(run, status(run))


def status(run: RunDir, exit_code: int | None = None) -> RunStatus:
    """status.json, corrected when the worker died without saying so (killed, out of memory, power cut); a dead
    worker could not start the next queued run, so that happens here."""
    current, corrected = _checked_status(run, exit_code)
    if corrected:
        start_next()
    return current


def _checked_status(run: RunDir, exit_code: int | None = None) -> tuple[RunStatus, bool]:
    """(status, whether it was just corrected to failed because its worker is gone)."""
    return folder.settle(
        run.read_status,
        final=lambda current: current.final,
        accounted=lambda current: not current.pid or worker_alive(current),  # no pid: waiting, no process yet
        record_gone=lambda: run.write_status(
            state=State.FAILED,
            error=f"the worker process {describe_exit(exit_code)} before the run finished; see {run.log_path}",
            log_tail=run.log_tail(),
        ),
    )


# The step rate is timed from the first step a start of the run logged, so loading the model and data is left
# out (timed from the worker's start, a 4-minute run once said 49 minutes at step 2), and only after a few steps,
# or one slow one, so that one step's time does not stand for the run's.
ESTIMATE_AFTER_STEPS = 3
ESTIMATE_AFTER_SECONDS = 20.0
_first_steps: dict[tuple, tuple[float, float]] = {}  # (run id, worker start, resumed from) -> (step, time)


def time_left(current: RunStatus, now: float | None = None, run: RunDir | None = None) -> float | None:
    """Seconds left for a running run at its step rate since the first step it logged in this start (since the
    resume, for a resumed run), 0 once every step is done; None when the run is not running, and while it cannot
    be estimated yet (no `run` folder given, the total unknown, fewer than ESTIMATE_AFTER_STEPS steps timed and
    less than ESTIMATE_AFTER_SECONDS passed). The Runs and Pipelines tabs both show it."""
    if current.state is not State.RUNNING or run is None:
        return None
    step, total = current.step, current.total_steps
    if not total:
        return None
    if step >= total:
        return 0.0
    key = (run.id, current.started, current.resumed_from)
    if key not in _first_steps:
        row = first_row_after(run.metrics_path, key[2])
        if row is None:
            return None
        _first_steps[key] = (row["step"], row["time"])
    first_step, first_time = _first_steps[key]
    done, elapsed = step - first_step, (now if now is not None else time.time()) - first_time
    if done <= 0 or elapsed <= 0 or (done < ESTIMATE_AFTER_STEPS and elapsed < ESTIMATE_AFTER_SECONDS):
        return None
    return (total - step) * elapsed / done


def worker_alive(current: RunStatus) -> bool:
    """Whether a run's training process or its supervisor still lives: while the supervisor does, it will record
    how the training ended, so the run is not declared gone under its feet. Start times guard both against reused
    PIDs."""
    return process.is_alive(current.pid, current.started) or process.is_alive(
        current.supervisor, current.supervisor_started
    )


def describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "is gone"
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def cancel(run: RunDir, timeout: float = 30.0) -> RunStatus:
    """Take a waiting run out of the queue; ask a running worker to save and stop, and kill it (its training's
    process group and its supervisor) if it has not ended within `timeout`. Returns once no process of it is left."""
    if status(run).final:
        return run.read_status()
    with queue_lock():  # so start_next cannot launch the run between this look and the write
        current = run.read_status()
        if current.state is State.QUEUED and not current.pid:
            return run.write_status(state=State.CANCELLED, error=None)
    if current.final:
        return current
    run.request_cancel()
    if not _wait_for_end(run, timeout):
        _kill(run.read_status())  # re-read: the supervisor may have recorded its training child meanwhile
        _wait_for_end(run, 10.0)  # SIGKILL cannot be ignored; wait so that no process outlives the cancel
    if not run.read_status().final:
        run.write_status(state=State.CANCELLED, error=None)
    start_next()  # a worker killed above could not hand the device on
    return run.read_status()


def _wait_for_end(run: RunDir, timeout: float) -> bool:
    """Wait until neither the run's training process nor its supervisor lives; False if `timeout` ran out."""
    deadline = time.monotonic() + timeout
    while worker_alive(run.read_status()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _kill(current: RunStatus) -> None:
    """SIGKILL the training's process group (the training and anything it started) and the supervisor, each only if
    it is still the process recorded (start time), so a reused PID is never hit."""
    for pid, started, kill in (
        (current.pid, current.started, os.killpg),
        (current.supervisor, current.supervisor_started, os.kill),
    ):
        if process.is_alive(pid, started):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def list_runs() -> list[dict]:
    """Every run, oldest first, with live states and, for waiting runs, `queue_position` and `queued_behind`;
    the index is brought up to date on the way, and a queue whose worker died unseen moves on."""
    start_next()
    statuses = {run: status(run) for run in all_run_dirs()}
    rows = RunIndex().sync([summarize(run, current) for run, current in statuses.items()])
    places = _places(*_line(statuses))
    return [{**row, "queue_position": None, "queued_behind": None, **places.get(row["id"], {})} for row in rows]


def _runs_named(run: RunDir) -> set[str]:
    """The run ids a run's config needs: the run it starts from and the reward runs that score its answers."""
    try:
        config = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return set()
    rewards = config.get("rewards") or {}
    sources = rewards.get("sources") if isinstance(rewards, dict) else None
    reward_runs = {source.get("run") for source in sources or () if isinstance(source, dict)}
    legacy = set((config.get("reward_models") or {}).get("runs") or ())  # a run folder written before `rewards`
    named = {(config.get("init") or {}).get("from_run")} | reward_runs | legacy
    return {n for n in named if isinstance(n, str) and n}


def dependents(run: RunDir) -> list[str]:
    """Ids of the runs that start from this run or are scored by it (they need its adapter to load)."""
    return [other.id for other in all_run_dirs() if other.id != run.id and run.id in _runs_named(other)]


def delete(run: RunDir) -> None:
    """Remove a completed, failed or cancelled run: its directory and its index row. A running or queued run is
    refused (cancel it first), and so is a run that a running or queued run starts from or is scored by."""
    with queue_lock():  # so start_next cannot launch the run, or one that needs it, while it is being removed
        if not run.exists():
            raise StudioError(f"no run with id '{run.id}' (see `rlhf-studio runs`)")
        current, corrected = _checked_status(run)
        if not current.final:
            raise StudioError(f"run {run.id} is {current.state}; cancel it before deleting it")
        waiting = [i for i in dependents(run) if not RunDir.of(i).read_status().final]
        if waiting:
            raise StudioError(
                f"run {run.id} is needed by {', '.join(waiting)}, not finished yet (it starts from this "
                "run or is scored by it); cancel that first"
            )
        # One rename takes the run out of every listing at once; the slow removal happens outside the lock.
        trash = runs_root() / ".deleted" / f"{run.id}-{secrets.token_hex(3)}"
        trash.parent.mkdir(exist_ok=True)
        os.replace(run.path, trash)
        RunIndex().delete(run.id)
    if corrected:
        start_next()  # its worker had died unseen, so nobody handed the device on
    failures: list[str] = []
    # onerror, not onexc: the studio supports Python 3.10 and 3.11, where onexc does not exist yet.
    shutil.rmtree(trash, onerror=lambda _fn, path, info: failures.append(f"{path}: {info[1]}"))
    if failures:
        raise StudioError(
            f"run {run.id} is gone from the runs list, but {len(failures)} of its files could not be "
            f"removed, first {failures[0]}"
        )
