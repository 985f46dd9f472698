"""Run summaries: one typed row per run, with its place in the queue, its time left and its latest numbers, for
`rlhf-studio runs` and the Runs tab alike (each lays out and formats its own columns).

    from studio.runs import table
    for row in table.run_rows():        # oldest first
        row.id, row.stage, row.state_label, row.step, row.total_steps, row.time_left, row.main, row.learning
    table.same_stage(run)               # (id, name) of the other runs of its stage, newest first
    table.stage_of(run)                 # a run's stage, from its config.yaml

The time left is manager.time_left (timed from the first step the run logged); `estimating` says a running run's is
not known yet. `main` is the last loss, or the last reward for a stage that learns from one, and `learning` the
number that says whether the stage is learning (the stage registry's key_metric and learning_metric). They are read
from the end of metrics.jsonl only when the file changed since the last summary.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import yaml

from studio import stages
from studio.runs import manager
from studio.runs.metrics import last_value
from studio.runs.rundir import RunDir
from studio.runs.status import State
from studio.runs.store import RunIndex


@dataclass(frozen=True)
class Metric:
    name: str  # as a table names it: "loss", "reward", "token acc"
    value: float | int | str  # as logged ("nan" and "inf" are logged as text)


@dataclass(frozen=True)
class RunRow:
    id: str
    name: str  # the run's name, '' when it has none
    model: str
    stage: str
    state: State
    state_label: str  # for people: "queued (2nd)" for a waiting run, else the state
    queue_position: int | None  # 1 = next, for a waiting run
    queued_behind: str | None
    step: int
    total_steps: int  # 0 until the trainer knows it
    time_left: float | None  # seconds, for a running run once a few steps were timed
    created: float
    parent: str  # the run it started from, '' when none
    error: str
    last_loss: float | None
    main: Metric | None  # the last loss, or the last reward for a stage that learns from a reward
    learning: Metric | None  # the number that says whether the stage is learning

    @property
    def estimating(self) -> bool:
        """A running run whose time left cannot be told yet."""
        return self.state is State.RUNNING and self.time_left is None

    def to_json(self) -> dict:
        """The row as `rlhf-studio runs --json` prints it: the index's keys, then the queue, time and metrics."""
        return {**asdict(self), "state": self.state.value}


_latest: dict[str, tuple[tuple[int, int], tuple[Metric | None, Metric | None]]] = {}


def _latest_metrics(run: RunDir, stage: str) -> tuple[Metric | None, Metric | None]:
    """(main, learning) from the end of metrics.jsonl, read again only when the file changed."""
    try:
        st = os.stat(run.metrics_path)
    except OSError:
        return None, None
    stamp = (st.st_size, st.st_mtime_ns)
    cached = _latest.get(run.id)
    if cached and cached[0] == stamp:
        return cached[1]
    record = stages.find(stage)
    main_key = record.key_metric if record else "loss"
    key, name = record.learning_metric if record else ("", "")
    found = []
    for logged, shown in ((main_key, main_key), (key, name)):
        value = last_value(run.metrics_path, logged) if logged else None
        found.append(Metric(shown, value) if value is not None and not isinstance(value, bool) else None)
    _latest[run.id] = (stamp, (found[0], found[1]))
    return found[0], found[1]


def run_rows(now: float | None = None) -> list[RunRow]:
    """Every run, oldest first, with live states (manager.list_runs brings the index up to date on the way)."""
    rows = []
    for r in manager.list_runs():
        run = RunDir.of(r["id"])
        state = State(r["state"])
        left = manager.time_left(run.read_status(), now, run=run) if state is State.RUNNING else None
        main, learning = _latest_metrics(run, r["stage"])
        rows.append(
            RunRow(
                id=r["id"],
                name=r["name"] or "",
                model=r["model"] or "",
                stage=r["stage"] or "",
                state=state,
                state_label=manager.state_label(r),
                queue_position=r.get("queue_position"),
                queued_behind=r.get("queued_behind"),
                step=r["step"] or 0,
                total_steps=r["total_steps"] or 0,
                time_left=left,
                created=r["created"] or 0.0,
                parent=r["parent"] or "",
                error=r["error"] or "",
                last_loss=r["last_loss"],
                main=main,
                learning=learning,
            )
        )
    return rows


def stage_of(run: RunDir) -> str:
    """A run's stage, from its config.yaml; '' when that cannot be read."""
    try:
        return (yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}).get("stage", "")
    except (OSError, yaml.YAMLError, AttributeError):
        return ""


def same_stage(run: RunDir) -> list[tuple[str, str]]:
    """(id, name) of the other runs of a run's stage, newest first, as the index lists them."""
    stage = stage_of(run)
    rows = reversed(RunIndex().rows())
    return [(r["id"], r["name"] or "") for r in rows if r["stage"] == stage and r["id"] != run.id]
