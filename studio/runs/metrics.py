"""Append-only metrics: one JSON object per line, flushed as written; an incremental reader for the tail.

The worker writes every key the trainer logs plus `step`, `epoch` and `time`. Readers (charts, the CLI)
keep a byte offset and read only what is new; a half-written last line is left for the next read.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(value):
    # JSON has no NaN or infinity; a diverged loss is written as the string "nan" so the line stays valid.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, row: dict) -> None:
        self.write_many([row])

    def write_many(self, rows: list[dict]) -> None:
        """Append rows in one write, flushed: a reader sees all of them or, mid-write, a torn last line it skips."""
        text = "".join(json.dumps(_cleaned(row), allow_nan=False) + "\n" for row in rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()


def _cleaned(value):
    """A row with every non-finite float, at any depth, written as its string."""
    if isinstance(value, dict):
        return {k: _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return _clean(value)


class MetricsReader:
    """Reads new complete lines since the last call. A file replaced since then (a resume rewrites metrics.jsonl
    without the rows after its checkpoint) is read again from the start, and `restarted` says so."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self.restarted = False  # whether the last read_new started over on a replaced file

    def has_new(self) -> bool:
        """Whether read_new would return anything new (or start over), from one stat of the file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return st.st_ino != self.inode or st.st_size != self.offset

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                self.restarted = self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset)
                if self.restarted:
                    self.offset = 0
                self.inode = st.st_ino
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            self.restarted = False
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = []
        for line in chunk[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash mid-write: skip it, keep the rest
            if isinstance(row, dict):
                rows.append(row)
        return rows


def read_all(path: Path) -> list[dict]:
    return MetricsReader(path).read_new()


def last_value(path: Path, key: str, window: int = 65536) -> float | None:
    """The latest value of `key`, read from the end of the file only."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and key in row:
            return row[key]
    return None


def first_row_after(path: Path, step: float) -> dict | None:
    """The first row logged at a step after `step` (with its `time`), read from the start of the file up to it:
    when a run, or a resumed run, logged its first new step."""
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a torn or half-written line
                if (
                    isinstance(row, dict)
                    and isinstance(row.get("step"), (int, float))
                    and row["step"] > step
                    and isinstance(row.get("time"), (int, float))
                ):
                    return row
    except FileNotFoundError:
        pass
    return None


def truncate_after(path: Path, step: int) -> None:
    """Drop rows logged after `step` (a resumed run logs them again from its checkpoint). Atomic; a missing file
    stays missing."""
    if not path.is_file():
        return
    rows = [row for row in read_all(path) if (row.get("step") or 0) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
