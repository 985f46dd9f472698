"""Recorded pipelines: each stage a normal run linked to its parent, run in order by one runner, watched and cancelled.

    record = pipeline_runs.create(pipeline.load_pipeline("presets/ppo-tiny.yaml"))   # <home>/pipelines/<id>/
    pipeline_runs.launch(record)        # the runner in its own OS process: python -m studio.pipelines.runner DIR
    pipeline_runs.list_pipelines()      # each with its state and its stages' live states and run ids
    pipeline_runs.cancel(record)        # cancels the current run; later stages never start

`rlhf-studio train PIPELINE.yaml` uses the same `create` and `run`, following each run in the foreground.

    <home>/pipelines/<pipeline_id>/
        pipeline.yaml   the resolved pipeline: every stage's full config, defaults and overrides applied
        state.json      state, error, runner pid, and per stage: name, stage kind, parent, reward stages, run id
        runner.log      the detached runner's output
        CANCEL          written by `cancel`; the runner starts no stage after it

Recipes (the bundled pipeline presets and the user's own) are listed, loaded and saved by studio/pipelines/presets.py;
`validate` here turns pipeline YAML text into a checked pipeline.

A stage reads "waiting" until its run exists, then its run's state (with step, total and time left while running);
once the pipeline has ended, a stage that never got a run reads "skipped" ("failed" if it was the one that could
not start).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from studio import config as cfg
from studio.errors import ConfigError, StudioError
from studio.paths import PACKAGE, studio_home
from studio.pipelines import twins
from studio.pipelines.recipe import Pipeline, from_dict, is_pipeline
from studio.runs import folder, manager, process
from studio.runs.rundir import FINAL_STATES, RunDir, new_run_id
from studio.runs.status import State

WAITING = "waiting"  # a stage whose run has not been created yet
SKIPPED = "skipped"  # a stage of an ended pipeline that never got a run
RUNNER = [sys.executable, "-m", "studio.pipelines.runner"]  # the command that runs a recorded pipeline (DIR appended)
RUNNER_GRACE = 15.0  # seconds cancel waits for the runner to record the pipeline's end


def pipelines_root() -> Path:
    return studio_home() / "pipelines"


# ---------------------------------------------------------------- the record on disk


@dataclass(frozen=True)
class PipelineRecord:
    path: Path

    @classmethod
    def of(cls, pipeline_id: str) -> PipelineRecord:
        return cls(pipelines_root() / pipeline_id)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def yaml_path(self) -> Path:
        return self.path / "pipeline.yaml"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def log_path(self) -> Path:
        return self.path / "runner.log"

    @property
    def cancel_path(self) -> Path:
        return self.path / folder.CANCEL

    def request_cancel(self) -> None:
        folder.request_cancel(self.path)

    def cancel_requested(self) -> bool:
        return folder.cancel_requested(self.path)

    def _unreadable(self) -> dict:
        return {
            "id": self.id,
            "name": self.id,
            "state": State.FAILED.value,
            "error": "state.json is missing or unreadable",
            "stages": [],
        }

    def read_state(self) -> dict:
        state = folder.read_json(self.state_path)
        return self._unreadable() if state is None else state

    def write_state(self, **changes) -> dict:
        """Merge the changes into state.json and replace it atomically (studio.runs.folder.update_json)."""
        return folder.update_json(self.state_path, changes, self._unreadable())

    def set_run(self, stage_name: str, run_id: str) -> dict:
        state = self.read_state()
        for stage in state["stages"]:
            if stage["name"] == stage_name:
                stage["run_id"] = run_id
        return self.write_state(stages=state["stages"])

    def load(self) -> Pipeline:
        return from_dict(cfg.read_yaml(self.yaml_path), default_name=self.read_state().get("name") or self.id)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while the runner decides to start a stage and while `cancel` asks it not to, so neither misses
        the other."""
        with folder.locked(self.path / ".lock"):
            yield


def resolved(pipeline: Pipeline, description: str = "") -> dict:
    """The pipeline as a mapping `from_dict` reads back to the same stages: each stage's full config, no defaults."""
    stages = []
    for stage in pipeline.stages:
        body = cfg.to_dict(stage.config)
        entry = {"name": stage.name}
        if stage.parent:
            entry["from"] = stage.parent
        if stage.reward_stages:
            entry["rewards_from"] = list(stage.reward_stages)
            # rewards_from gives the first sources back; after a run they hold run ids, before it stage names
            body["rewards"]["sources"] = body["rewards"]["sources"][len(stage.reward_stages) :]
        stages.append({**entry, **body})
    out = {"pipeline": pipeline.name}
    if description:
        out["description"] = description
    return {**out, "stages": stages}


def create(pipeline: Pipeline, description: str = "", refuse_repeats: bool = False) -> PipelineRecord:
    """Check every stage's inputs (files, the hub: see manager.check_inputs), then write <home>/pipelines/<id>/ with
    the resolved YAML and a queued state. With `refuse_repeats` (the Pipelines tab's Start) the same pipeline YAML
    as a queued or running pipeline created in the last manager.REPEAT_SECONDS is refused: a second click."""
    for stage in pipeline.stages:  # quick checks of every stage before the first one starts
        try:
            manager.check_inputs(stage.config)
        except StudioError as err:
            raise type(err)(f"stage {stage.name}: {err}") from None
    text = yaml.safe_dump(resolved(pipeline, description), sort_keys=False)
    pipelines_root().mkdir(parents=True, exist_ok=True)
    with _pipelines_lock():  # two Starts at once: the second sees the first's folder
        twin = _recent_twin(text) if refuse_repeats else None
        if twin is not None:
            raise StudioError(manager.repeat_refusal("pipeline", *twin))
        record = PipelineRecord.of(new_run_id(pipeline.name))
        record.path.mkdir()
        record.yaml_path.write_text(text, encoding="utf-8")
        stages = [
            {
                "name": s.name,
                "stage": s.config.stage,
                "parent": s.parent,
                "reward_stages": list(s.reward_stages),
                "run_id": None,
            }
            for s in pipeline.stages
        ]
        record.write_state(
            id=record.id,
            name=pipeline.name,
            description=description,
            state=State.QUEUED.value,
            error=None,
            created=time.time(),
            pid=None,
            started=None,
            current=None,
            stages=stages,
        )
    return record


@contextmanager
def _pipelines_lock() -> Iterator[None]:
    with folder.locked(pipelines_root() / ".create.lock"):
        yield


def _recent_twin(text: str) -> tuple[str, float] | None:
    """(id, age in seconds) of a queued or running pipeline created less than manager.REPEAT_SECONDS ago from this
    resolved YAML, or None."""
    now = time.time()
    for path in sorted(pipelines_root().iterdir(), reverse=True):
        record = PipelineRecord(path)
        if not record.state_path.is_file():
            continue
        state = record.read_state()
        age = now - (state.get("created") or 0.0)
        if state.get("state") in (State.QUEUED, State.RUNNING) and 0 <= age < manager.REPEAT_SECONDS:
            try:
                if record.yaml_path.read_text(encoding="utf-8") == text:
                    return record.id, age
            except OSError:
                continue
    return None


# ---------------------------------------------------------------- running


Follow = Callable[[RunDir, "subprocess.Popen | None"], object]  # waits until the run has ended


def run(
    record: PipelineRecord,
    follow: Follow | None = None,
    on_stage: Callable[[int, int, object, RunDir], None] | None = None,
) -> dict:
    """Run the recorded stages in order, each a normal run started from its parent stage's run and scored by its
    reward stages' runs; the first stage that does not complete stops the pipeline. Returns the final state."""
    pipeline = record.load()
    record.write_state(state=State.RUNNING.value, pid=os.getpid(), started=process.start_time(os.getpid()))
    follow = follow or (lambda run_dir, proc: wait_for_run(record, run_dir, proc))
    run_ids: dict[str, str] = {}
    try:
        for number, stage in enumerate(pipeline.stages, start=1):
            with record.lock():
                if record.cancel_requested():
                    return record.write_state(state=State.CANCELLED.value, error=f"cancelled before stage {stage.name}")
                record.write_state(current=stage.name)
                if stage.parent:
                    stage.config.init.from_run = run_ids[stage.parent]
                for source, name in zip(stage.config.rewards.sources, stage.reward_stages):
                    source.run = run_ids[name]  # rewards_from's stages are the first sources
                run_dir, proc = manager.start(stage.config, record.id)
                run_ids[stage.name] = run_dir.id
                record.set_run(stage.name, run_dir.id)
            if on_stage:
                on_stage(number, len(pipeline.stages), stage, run_dir)
            follow(run_dir, proc)
            ended = manager.status(run_dir)
            if ended.state is State.CANCELLED or record.cancel_requested():
                if not ended.final:
                    manager.cancel(run_dir)
                return record.write_state(state=State.CANCELLED.value, error=f"cancelled at stage {stage.name}")
            if ended.state is not State.COMPLETED:
                reason = ended.error or f"its run ended {ended.state}"
                return record.write_state(state=State.FAILED.value, error=f"stage {stage.name} failed: {reason}")
    except StudioError as err:
        state = record.read_state()
        for entry in state["stages"]:
            if entry["name"] == stage.name and not entry.get("run_id"):
                entry["error"] = str(err)  # it failed without a run: "failed", not "skipped"
        return record.write_state(
            state=State.FAILED.value, error=f"stage {stage.name} could not start: {err}", stages=state["stages"]
        )
    except KeyboardInterrupt:
        return record.write_state(state=State.CANCELLED.value, error=f"cancelled at stage {stage.name}")
    return record.write_state(state=State.COMPLETED.value, error=None, current=None)


def wait_for_run(record: PipelineRecord, run_dir: RunDir, proc: subprocess.Popen | None, poll: float = 1.0) -> None:
    """Wait until the run has ended: launch it when its turn in the queue comes, and cancel it when the pipeline
    is cancelled."""
    while True:
        if proc is None:
            launched = manager.start_next()  # the run ahead may have died without handing on
            if launched and launched[0].id == run_dir.id:
                proc = launched[1]
        exit_code = proc.poll() if proc is not None else None
        if manager.status(run_dir, exit_code=exit_code).final:
            return
        if record.cancel_requested():
            manager.cancel(run_dir)
            return
        time.sleep(poll)


def launch(record: PipelineRecord) -> subprocess.Popen:
    """Start the runner for a recorded pipeline as its own OS process (its own session, like the run workers)."""
    # cwd: the folder holding the studio package, so that `-m` finds it from a checkout too
    proc = folder.start_detached([*RUNNER, str(record.path)], record.log_path, cwd=str(PACKAGE.parent))
    record.write_state(pid=proc.pid, started=process.start_time(proc.pid))
    return proc


def start(pipeline: Pipeline, description: str = "", refuse_repeats: bool = False) -> PipelineRecord:
    """Record the pipeline and launch its runner; what the UI's Start does (with `refuse_repeats`, see create)."""
    record = create(pipeline, description, refuse_repeats)
    launch(record)
    return record


def start_text(text: str, overrides: list[str] | None = None, refuse_repeats: bool = False) -> PipelineRecord:
    """Validate pipeline YAML text (with --set style overrides), record it and launch its runner."""
    pipeline, description = validate(text, overrides)
    return start(pipeline, description, refuse_repeats)


def gpu_warning(pipeline: Pipeline) -> str | None:
    """The one line a pipeline sized for a GPU gets on a machine without one, naming its tiny twin (or None)."""
    return twins.gpu_warning([stage.config for stage in pipeline.stages])


def find(pipeline_id: str) -> PipelineRecord:
    record = PipelineRecord.of(pipeline_id or "")
    if pipeline_id and "/" not in pipeline_id and record.state_path.is_file():
        return record
    raise StudioError(f"no pipeline with id '{pipeline_id}'")


def cancel(record: PipelineRecord) -> dict:
    """Stop the pipeline: its current run is cancelled (it saves a checkpoint first) and later stages never start."""
    current = status(record)
    if current["state"] in FINAL_STATES:
        return current
    with record.lock():
        record.request_cancel()
        run_ids = [s["run_id"] for s in record.read_state()["stages"] if s.get("run_id")]
    if run_ids:
        manager.cancel(RunDir.of(run_ids[-1]))
    # The runner sees its run end at its next look and records the pipeline's end: wait for that, so the answer
    # says cancelled rather than a stale running.
    deadline = time.monotonic() + RUNNER_GRACE
    while (state := record.read_state()).get("state") not in FINAL_STATES and _runner_alive(state):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    state = record.read_state()
    if state.get("state") not in FINAL_STATES and not _runner_alive(state):
        record.write_state(state=State.CANCELLED.value, error="cancelled")  # nobody left to write the end
    return status(record)


# ---------------------------------------------------------------- reading


def _runner_alive(state: dict) -> bool:
    return process.is_alive(state.get("pid"), state.get("started"))


def status(record: PipelineRecord) -> dict:
    """state.json with each stage's live run state, step, total_steps and time_left (manager.time_left, seconds or
    None), corrected when the runner died unseen. A stage without a run is "waiting" while the pipeline goes on,
    then "skipped" (or "failed", for the stage that could not start)."""
    state, _ = folder.settle(
        record.read_state,
        final=lambda current: current.get("state") in FINAL_STATES,
        accounted=lambda current: not current.get("pid") or _runner_alive(current),  # no pid: not launched yet
        record_gone=lambda: record.write_state(
            state=State.FAILED.value, error=f"the pipeline runner is gone; see {record.log_path}"
        ),
    )
    ended = state.get("state") in FINAL_STATES
    for stage in state.get("stages", []):
        run_id = stage.get("run_id")
        if run_id:
            run = RunDir.of(run_id)
            current = manager.status(run)
            stage.update(
                state=current.state.value,
                step=current.step,
                total_steps=current.total_steps,
                time_left=manager.time_left(current, run=run),
            )
        else:
            stage.update(
                state=State.FAILED.value if stage.get("error") else SKIPPED if ended else WAITING,
                step=None,
                total_steps=None,
                time_left=None,
            )
    return state


def list_pipelines() -> list[dict]:
    """Every recorded pipeline, oldest first, with its stages' live states."""
    root = pipelines_root()
    records = sorted(p for p in root.iterdir() if (p / "state.json").is_file()) if root.is_dir() else []
    return [status(PipelineRecord(path)) for path in records]


# ---------------------------------------------------------------- pipeline YAML text


def parse_text(text: str, where: str = "pipeline YAML") -> dict:
    """A pipeline mapping from YAML text, or one ConfigError line saying what is wrong with it."""
    try:
        raw = yaml.safe_load(text or "")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(raw, dict) or not is_pipeline(raw):
        raise ConfigError(f"{where}: expected a pipeline, a mapping with stages: (see presets/ppo-tiny.yaml)")
    return raw


def validate(text: str, overrides: list[str] | None = None, where: str = "pipeline YAML") -> tuple[Pipeline, str]:
    """(pipeline, description) of pipeline YAML text with --set style overrides; ConfigError names the field."""
    raw = parse_text(text, where)
    return from_dict(raw, overrides), str(raw.get("description") or "")


def main(argv: list[str]) -> int:
    """`python -m studio.pipelines.runner DIR`: run a recorded pipeline to its end (what `launch` starts)."""
    if len(argv) != 2:
        print("usage: python -m studio.pipelines.runner PIPELINE_DIR", file=sys.stderr)
        return 2
    record = PipelineRecord(Path(argv[1]))
    final = run(
        record,
        on_stage=lambda n, total, stage, run_dir: print(
            f"stage {n}/{total}: {stage.name} ({stage.config.stage}) run {run_dir.id}", flush=True
        ),
    )
    print(f"pipeline {final['state']}" + (f": {final['error']}" if final.get("error") else ""), flush=True)
    return 0 if final["state"] == State.COMPLETED else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
