"""One run's directory, its status file, and `Run`: the folder, its status and its config together.

    <home>/runs/<run_id>/
        config.yaml     the validated RunConfig
        status.json     state, pid, process start time, step, total steps, error (replaced atomically); the
                        worker's supervisor and, for a worker killed from outside, log_tail (studio.runs.worker);
                        read and written as a RunStatus (studio.runs.status)
        metrics.jsonl   one JSON object per log event (see studio.runs.metrics)
        train.log       the worker's stdout and stderr
        timeline.jsonl  answers to config.timeline.prompts by step (see studio.monitor.timeline), when it has prompts
        rollouts.jsonl  an online stage's sampled answers by step (see studio.runs.rollouts)
        trackers.json   where each tracker of train.report_to keeps this run, and how its logging went
                        (studio.runs.trackers); tensorboard/ holds TensorBoard's event files
        eval/           evaluations of the finished run, one JSON file each (see studio.eval.evaluate)
        checkpoints/    resumable checkpoints; only those holding the COMPLETE marker count (checkpoint_saved)
        adapter/        the final LoRA adapter (or full model) as safetensors, renamed into place whole
                        (publishing_adapter)
        CANCEL          asks the worker to save and stop (the folder protocol: studio.runs.folder)

`<home>` is $RLHF_STUDIO_HOME, by default ~/.rlhf-studio (on a Space with persistent storage /data/rlhf-studio).
The directory is the truth about a run; the SQLite index is a cache of it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from studio.errors import StudioError
from studio.paths import runs_root
from studio.runs import folder
from studio.runs.status import RunStatus, State

if TYPE_CHECKING:
    from studio.config import RunConfig

STATES = tuple(State)
FINAL_STATES = tuple(s for s in State if s.final)
CHECKPOINT_COMPLETE = "COMPLETE"  # written into a checkpoint folder once everything in it is on disk


def new_run_id(stage: str) -> str:
    """Sortable by creation time, readable, and unique without coordination."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{stage}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, run_id: str) -> RunDir:
        return cls(runs_root() / run_id)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def timeline_path(self) -> Path:
        return self.path / "timeline.jsonl"

    @property
    def rollouts_path(self) -> Path:
        return self.path / "rollouts.jsonl"

    @property
    def trackers_path(self) -> Path:
        return self.path / "trackers.json"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def eval_dir(self) -> Path:
        """Evaluations of the finished run: one JSON file each (studio/eval)."""
        return self.path / "eval"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def cancel_path(self) -> Path:
        return self.path / folder.CANCEL

    def exists(self) -> bool:
        return self.status_path.is_file()

    def read_status(self) -> RunStatus:
        return RunStatus.read(self.status_path)

    def write_status(self, **changes) -> RunStatus:
        """Merge the changes into status.json and replace it atomically (see studio.runs.status)."""
        return RunStatus.update(self.status_path, **changes)

    def request_cancel(self) -> None:
        folder.request_cancel(self.path)

    def cancel_requested(self) -> bool:
        return folder.cancel_requested(self.path)

    def checkpoint_dir(self, step: int) -> Path:
        """Where the checkpoint of `step` is saved (the folder name transformers' Trainer uses too)."""
        return self.checkpoints_dir / f"checkpoint-{step}"

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoint folders whose save finished, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.glob("checkpoint-*") if (p / CHECKPOINT_COMPLETE).is_file()]
        return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))

    def checkpoint_saved(self, step: int, keep: int) -> None:
        """Mark the checkpoint of `step` complete once everything in it is on disk, then remove the oldest complete
        ones beyond `keep`: pruning only after the newer one is complete, a crash mid-save never leaves none."""
        saved = self.checkpoint_dir(step)
        if saved.is_dir():
            with open(saved / CHECKPOINT_COMPLETE, "w") as f:
                f.write(f"{step}\n")
                f.flush()
                os.fsync(f.fileno())
        for old in self.complete_checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def publishing_adapter(self) -> Iterator[Path]:
        """A fresh folder to save the final adapter (or model) into; once the block ends it replaces adapter/ in one
        rename, so a reader (a later stage, compare, chat) never sees half of one. A block that raises leaves
        adapter/ as it was."""
        tmp = self.path / ".adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        yield tmp
        shutil.rmtree(self.adapter_dir, ignore_errors=True)
        os.replace(tmp, self.adapter_dir)

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_weights(config: RunConfig) -> Path | None:
    """The earlier run's weights a run starts from (init.from_run), or None for the base model."""
    return RunDir.of(config.init.from_run).adapter_dir if config.init.from_run else None


@dataclass(frozen=True)
class Run:
    """One run as the engine uses it: its folder, its status as read (see manager.open_run for a live one), and its
    config, read when first asked for."""

    folder: RunDir
    status: RunStatus

    @property
    def id(self) -> str:
        return self.folder.id

    @cached_property
    def config(self) -> RunConfig:
        from studio.config import load_config

        return load_config(self.folder.config_path)

    def require_completed(self, what: str, subject: str | None = None) -> Run:
        """This run, if it completed and its weights are there; else one line: "<subject> is <state>; only a
        completed <what>" (`what` such as "run can be shared"; `subject` by default "run '<id>'")."""
        subject = subject or f"run '{self.id}'"
        if self.status.state is not State.COMPLETED:
            raise StudioError(f"{subject} is {self.status.state}; only a completed {what}")
        if not self.folder.adapter_dir.is_dir():
            raise StudioError(f"{subject} is completed, but its weights are gone: {self.folder.adapter_dir} is missing")
        return self
