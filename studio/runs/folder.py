"""The file protocol of a folder that a detached process works in while other processes watch it: a run's folder
(studio.runs.rundir: status.json, the worker) and a pipeline's (studio.pipelines.runner: state.json, the runner).

- The state file is JSON replaced atomically (`write_json_atomic`): a reader sees the old or the new file, never
  half of one. `read_json` answers None for a missing or unreadable file; its owner says what that means.
  `update_json` merges changed keys into it (keys it does not know are kept) and stamps `updated`.
- A CANCEL file in the folder asks the working process to stop; it looks for the file between steps.
- `locked(path)` holds an flock on a lock file while a process decides something others must not decide at the same
  time; the kernel releases it when its holder dies, so a killed process never leaves it held.
- `start_detached` starts the working process in its own session, its output appended to the folder's log.
- `settle` is the dead-process correction: a record that is not final and whose process is gone is read once
  more (the process may have recorded its end in between) and, if still not final, recorded as failed.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

CANCEL = "CANCEL"  # the cancel file's name in a run's or a pipeline's folder

Record = TypeVar("Record")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file, then rename: a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in the file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def update_json(path: Path, changes: dict, damaged: dict) -> dict:
    """Merge `changes` into the JSON object in the file, with `updated` set to now, and replace the file atomically;
    returns the object written. A file that exists but cannot be read counts as `damaged` (what its owner reads
    it as), so a write does not silently turn a damaged record into a healthy one."""
    if path.exists():
        current = read_json(path)
        current = dict(damaged) if current is None else current
    else:
        current = {}
    current.update(changes, updated=time.time())
    write_json_atomic(path, current)
    return current


def request_cancel(folder: Path) -> None:
    (folder / CANCEL).touch()


def cancel_requested(folder: Path) -> bool:
    return (folder / CANCEL).exists()


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (created when missing). The fd is not inherited by child processes."""
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start_detached(command: list[str], log_path: Path, cwd: str | None = None) -> subprocess.Popen:
    """Start the folder's working process in its own session (a Ctrl+C meant for the terminal does not stop it
    half-way through a write), stdout and stderr appended to `log_path`, output unbuffered so the log is live."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=cwd,
        )


def settle(
    read: Callable[[], Record],
    final: Callable[[Record], bool],
    accounted: Callable[[Record], bool],
    record_gone: Callable[[], Record],
) -> tuple[Record, bool]:
    """(the record, whether it was just recorded as failed). `accounted(record)` says whether its process is alive
    or it has none yet (a queued run); otherwise the record is read again, since the process may have recorded its
    end between the two reads, and only if it is still not final does `record_gone()` write and return the failure."""
    current = read()
    if final(current) or accounted(current):
        return current, False
    current = read()
    if final(current):
        return current, False
    return record_gone(), True
