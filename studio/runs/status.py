"""A run's status.json as a typed record: `State` and `RunStatus`, read and written only here.

    status = RunStatus.read(run.status_path)          # what RunDir.read_status() answers
    status.state is State.RUNNING, status.step, status.total_steps, status.state.final
    RunStatus.update(run.status_path, step=5)          # what RunDir.write_status(step=5) does

On disk the file stays the JSON object it always was (other processes, the UI and older studios read it): an update
merges the changed keys into the object as read and replaces the file atomically, so keys it does not know are kept.
Reading is tolerant: a missing key takes its default, a value of the wrong type its default, and a missing or
half-written file reads as a failed run saying so (the file is replaced atomically, so that means it was damaged).
A field name that status.json does not have is a programming error and raises TypeError.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path

from studio.runs.folder import read_json, update_json


class State(str, Enum):
    """A run's state; a pipeline's state uses the same words. Equal to its value, so rows read back from JSON or
    the SQLite index compare with it too."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """Whether the run has ended: nothing more will change it unless it is resumed."""
        return self not in (State.QUEUED, State.RUNNING)


UNREADABLE = "status.json is missing or unreadable"


@dataclass(frozen=True)
class RunStatus:
    state: State = State.FAILED  # a file without a state was not written by the studio: it did not run
    pid: int | None = None  # the training process (the one holding the model); None before it starts
    started: float | None = None  # that process's start time: with pid, tells it from a later process given its pid
    supervisor: int | None = None  # the worker's supervisor, which records how the training process ended
    supervisor_started: float | None = None
    step: int = 0
    total_steps: int = 0  # 0 until the trainer knows it
    error: str | None = None  # one line for a failed run
    log_tail: str | None = None  # the end of train.log, for a worker killed from outside
    created: float = 0.0
    updated: float | None = None
    requested: float | None = None  # when the run joined the queue; None for a run created and never started
    resumed_from: int = 0  # the checkpoint step the last resume continued from
    parent: str | None = None  # the run it started from (init.from_run)
    pipeline: str | None = None  # the pipeline that started it
    extra: dict = field(default_factory=dict, compare=False)  # keys this studio does not know, kept as read

    @classmethod
    def from_json(cls, raw: dict) -> RunStatus:
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values = {name: _coerce(name, raw[name]) for name in known if name in raw}
        values = {name: value for name, value in values.items() if value is not _WRONG}
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def to_json(self) -> dict:
        """Every field, with the state as its word (for --json output and the UI)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **out, "state": self.state.value}

    @property
    def final(self) -> bool:
        return self.state.final

    @classmethod
    def read(cls, path: Path) -> RunStatus:
        raw = read_json(path)
        if raw is None:
            return cls(state=State.FAILED, error=UNREADABLE)
        return cls.from_json(raw)

    @classmethod
    def update(cls, path: Path, **changes) -> RunStatus:
        """Merge the changes into the file and replace it atomically; returns the status written."""
        unknown = sorted(set(changes) - {f.name for f in fields(cls)} - {"extra"})
        if unknown:
            raise TypeError(f"status.json has no field {unknown[0]!r}")
        if "state" in changes:
            changes["state"] = State(changes["state"]).value  # a state that is no State raises here, not later
        damaged = {"state": State.FAILED.value, "error": UNREADABLE, "step": 0, "total_steps": 0}
        return cls.from_json(update_json(path, changes, damaged))


_WRONG = object()  # a value of the wrong type: the field keeps its default


def _coerce(name: str, value):
    if name == "state":
        try:
            return State(value)
        except ValueError:
            return _WRONG
    if value is None:
        return None if name not in _NOT_NONE else _WRONG
    if name in ("pid", "supervisor", "step", "total_steps", "resumed_from"):
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if name in ("started", "supervisor_started", "created", "updated", "requested"):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG
    return value if isinstance(value, str) else _WRONG


_NOT_NONE = ("step", "total_steps", "created", "resumed_from")
