"""The SQLite index of runs: a cache of the run directories, rebuilt from them at any time.

Each write is one transaction, so a process killed mid-write leaves the index as it was before.
`sync()` brings the index up to date with the directories; `rebuild()` starts it from scratch.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml

from studio.paths import runs_root, studio_home
from studio.runs.metrics import last_value
from studio.runs.rundir import RunDir
from studio.runs.status import RunStatus

COLUMNS = ("id", "stage", "name", "model", "created", "state", "step", "total_steps", "last_loss", "parent", "error")


def summarize(run: RunDir, status: RunStatus | None = None) -> dict:
    """One index row from a run directory (its state as the word, a plain string as SQLite gives it back)."""
    status = status if status is not None else run.read_status()
    try:
        config = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    return {
        "id": run.id,
        "stage": config.get("stage", ""),
        "name": config.get("name") or "",
        "model": (config.get("model") or {}).get("name", ""),
        "created": status.created,
        "state": status.state.value,
        "step": status.step,
        "total_steps": status.total_steps,
        "last_loss": last_value(run.metrics_path, "loss"),
        "parent": status.parent or "",
        "error": status.error or "",
    }


class RunIndex:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else studio_home() / "index.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, stage TEXT, name TEXT, model TEXT, "
            "created REAL, state TEXT, step INTEGER, total_steps INTEGER, last_loss REAL, parent TEXT, error TEXT)"
        )
        return conn

    def upsert(self, row: dict) -> None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                    [_storable(row.get(c)) for c in COLUMNS],
                )
        finally:
            conn.close()

    def delete(self, run_id: str) -> None:
        """Forget one run (its directory is the caller's to remove)."""
        conn = self._connect()
        try:
            with conn:
                conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        finally:
            conn.close()

    def rows(self) -> list[dict]:
        conn = self._connect()
        try:
            cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY created, id")
            return [dict(zip(COLUMNS, values)) for values in cursor.fetchall()]
        finally:
            conn.close()

    def sync(self, summaries: list[dict] | None = None) -> list[dict]:
        """Make the index match the run directories; returns the rows, oldest first."""
        if summaries is None:
            summaries = [summarize(run) for run in all_run_dirs()]
        conn = self._connect()
        try:
            with conn:
                conn.execute("DELETE FROM runs")
                conn.executemany(
                    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
                    [[_storable(s.get(c)) for c in COLUMNS] for s in summaries],
                )
        finally:
            conn.close()
        return self.rows()

    def rebuild(self) -> list[dict]:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return self.sync()


def _storable(value):
    # A diverged loss is kept as the text "nan" in metrics.jsonl; the index stores it as NULL.
    return None if isinstance(value, str) and value in ("nan", "inf", "-inf") else value


def all_run_dirs() -> list[RunDir]:
    root = runs_root()
    if not root.is_dir():
        return []
    return sorted((RunDir(p) for p in root.iterdir() if (p / "status.json").is_file()), key=lambda r: r.id)
