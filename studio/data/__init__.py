"""Datasets: each source module turns its raw rows into canonical rows, checked row by row.

Canonical forms (role/content messages, as TRL takes them):
    SFT:        {"prompt": [messages...], "completion": [assistant message]}

    loaded = load(config.data)          # rows from the hub, a local file, or the bundled sample
    train_rows, eval_rows = split_eval(loaded.rows, 0.05, seed=42)

A source module has HUB_ID, FORMAT, COLUMNS, keep(row, spec), convert(row) and check_filters(spec).
Rows that cannot be converted are dropped and counted by reason (data.on_bad_rows: drop), or stop the load
with the first one's row and column (data.on_bad_rows: fail).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import DataSpec
from studio.data import dolly
from studio.data.fields import RowProblem
from studio.data.files import read_rows
from studio.data.hub import load_hub_rows
from studio.errors import DataError

SOURCES = {"dolly": dolly}
SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLE = "sample"  # data.path value that selects the bundled sample


@dataclass
class Loaded:
    source: str
    format: str
    origin: str  # the file or hub id the rows came from
    rows: list[dict]
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    problems: list[str] = field(default_factory=list)  # the first few, each naming row and column


def sample_path(source: str) -> Path:
    return SAMPLES_DIR / f"{source}.jsonl"


def raw_rows(spec: DataSpec) -> tuple[str, object]:
    """(origin, raw rows) from the bundled sample, a local file, or the hub."""
    module = SOURCES[spec.source]
    if spec.path == SAMPLE:
        path = sample_path(spec.source)
        return str(path), read_rows(path)
    if spec.path:
        return spec.path, read_rows(spec.path)
    return module.HUB_ID, load_hub_rows(module.HUB_ID, spec.subset)


def load(spec: DataSpec, keep_problems: int = 5) -> Loaded:
    """Load, filter, convert and check every row of a source."""
    module = SOURCES[spec.source]
    module.check_filters(spec)
    origin, rows = raw_rows(spec)
    loaded = Loaded(spec.source, module.FORMAT, origin, [])
    for number, raw in enumerate(rows, start=1):
        if not module.keep(raw, spec):
            continue
        try:
            loaded.rows.append(module.convert(raw))
        except RowProblem as problem:
            where = f"{Path(origin).name if spec.path else origin} row {number}"
            if spec.on_bad_rows == "fail":
                raise DataError(f"{where}: {problem}") from None
            loaded.dropped[f"{problem.column} {problem.reason}"] += 1
            if len(loaded.problems) < keep_problems:
                loaded.problems.append(f"{where}: {problem}")
        if spec.limit and len(loaded.rows) >= spec.limit:
            break
    if not loaded.rows:
        why = f"; first problem: {loaded.problems[0]}" if loaded.problems else ""
        raise DataError(f"{origin}: no usable rows for source '{spec.source}'{why}")
    return loaded


def split_eval(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle, then the last `fraction` of rows held out (at least one when asked for any)."""
    if fraction <= 0 or len(rows) < 2:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    return [rows[i] for i in order[:-n_eval]], [rows[i] for i in order[-n_eval:]]
