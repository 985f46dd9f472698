"""One run's directory and its status file.

    <home>/runs/<run_id>/
        config.yaml     the validated RunConfig
        status.json     state, pid, process start time, step, total steps, error (replaced atomically); the
                        worker's supervisor and, for a worker killed from outside, log_tail (studio.runs.worker)
        metrics.jsonl   one JSON object per log event (see studio.runs.metrics)
        train.log       the worker's stdout and stderr
        timeline.jsonl  answers to config.timeline.prompts by step (see studio.monitor.timeline), when it has prompts
        checkpoints/    resumable checkpoints; only those holding the COMPLETE marker count
        adapter/        the final LoRA adapter (or full model) as safetensors

`<home>` is $RLHF_STUDIO_HOME, by default ~/.rlhf-studio (on a Space with persistent storage /data/rlhf-studio).
The directory is the truth about a run; the SQLite index is a cache of it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from studio.paths import runs_root

if TYPE_CHECKING:
    from studio.config import RunConfig

STATES = ("queued", "running", "completed", "failed", "cancelled")
FINAL_STATES = ("completed", "failed", "cancelled")
CHECKPOINT_COMPLETE = "COMPLETE"  # written into a checkpoint folder once everything in it is on disk


def new_run_id(stage: str) -> str:
    """Sortable by creation time, readable, and unique without coordination."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{stage}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file, then rename: a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def cancel_path(self) -> Path:
        return self.path / "CANCEL"

    def exists(self) -> bool:
        return self.status_path.is_file()

    def read_status(self) -> dict:
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status = None
        if not isinstance(status, dict):
            return {"state": "failed", "error": "status.json is missing or unreadable", "step": 0, "total_steps": 0}
        return status

    def write_status(self, **changes) -> dict:
        """Merge the changes into status.json and replace it atomically."""
        status = self.read_status() if self.status_path.exists() else {}
        status.update(changes, updated=time.time())
        write_json_atomic(self.status_path, status)
        return status

    def request_cancel(self) -> None:
        self.cancel_path.touch()

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoint folders whose save finished, oldest first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.glob("checkpoint-*") if (p / CHECKPOINT_COMPLETE).is_file()]
        return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))

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
