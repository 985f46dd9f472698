"""Datasets: each source module turns its raw rows into canonical rows, checked row by row.

Canonical forms (role/content messages, as TRL takes them):
    sft:         {"prompt": [messages...], "completion": [assistant message]}
    preference:  {"prompt": [messages...], "chosen": [assistant message], "rejected": [assistant message],
                  "margin": float (optional: how much better chosen is, for margin losses)}

    loaded = load(config.data, "sft")   # rows from the hub, a local file, or the bundled sample
    check_file(config.data, "dpo")      # a local file loaded as that stage will (a hub one: reachable or cached)
    train, held_out = prepare(config, "sft", tokenizer, run)   # what a stage trains on, its split recorded
    held_out_rows(run.path, config.data)  # the rows that run held out, read back from its record (None: no record)

The train/held-out split is made once, by split_rows, for every stage (the online ones hold out prompts) and for
every count of it (the Data tab, the Train tab's summary); the run records the held-out rows' numbers in its
data_report.json, and whatever needs them later (compare --held-out, the Compare tab, the reward workbench) reads
them back with held_out_rows, never splitting again.

A source module (one per source, see SOURCES) has:
    HUB_ID                         the dataset id on the Hugging Face Hub (None for your own file)
    convert(row, spec, fmt)        one raw row -> one canonical row, or raise RowProblem(column, reason)
  and optionally:
    keep(row, spec) -> bool        filters (category, domain, ...) applied before convert
    check_filters(spec)            refuse filter values the source does not know (ConfigError)
    convert_rows(rows, spec, fmt)  for sources whose rows depend on each other (message trees, detected
                                   layouts): yields (row number, canonical row or RowProblem); replaces
                                   keep and convert
    KEEPS_COLUMNS = False          for a source whose row numbers are not one raw row each (message trees)
    hub_rows(spec)                 when the hub needs more than load_hub_rows(HUB_ID, spec.subset)
    default_path(spec) -> Path     the file an empty data.path reads, for a source with a file of its own
                                   (votes: the set data.votes.set names); raises a DataError saying how to
                                   make it when there is none yet
    file_rows(path)                when a local file needs more than read_rows (votes: a half-written last
                                   line is skipped)

Each kept row also keeps its raw columns (`Loaded.columns`, beside `rows`): the online stages hand them to reward
functions as keyword lists, as TRL does with a dataset's extra columns (a reference `answer`, a `category`).

Rows that cannot be converted are dropped and counted by reason (data.on_bad_rows: drop), or stop the load
with the first one's row and column (data.on_bad_rows: fail). Converted datasets are cached under
<home>/cache/data/, keyed by the source, its options, the file's size and time, and the converter's code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from studio import stages
from studio.config import PROMPT_ONLY, SOURCE_FORMATS, STAGE_FORMATS, DataSpec, RunConfig
from studio.data.fields import RowProblem
from studio.data.files import read_rows
from studio.data.hub import check_dataset, load_hub_rows
from studio.data.lengths import check_lengths
from studio.errors import ConfigError, DataError
from studio.paths import SAMPLES_DIR, studio_home

log = logging.getLogger(__name__)

SFT, PREFERENCE = "sft", "preference"
SOURCES = {
    "dolly": "dolly",
    "alpaca": "alpaca",
    "shp": "shp",
    "hh-rlhf": "hh_rlhf",
    "oasst": "oasst",
    "file": "custom",
    "votes": "votes",
    "arithmetic": "arithmetic",
}  # source name -> module in studio/data/
SAMPLE, HUB = "sample", "hub"  # data.path values for the bundled sample and the Hugging Face Hub


@dataclass
class Loaded:
    source: str
    format: str
    origin: str  # the file or hub id the rows came from
    rows: list[dict]
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    problems: list[str] = field(default_factory=list)  # the first few, each naming row and column
    row_numbers: list[int] = field(default_factory=list)  # each kept row's number in the raw data
    columns: list[dict] = field(default_factory=list)  # each kept row's raw columns (see raw_columns)

    def counts(self) -> dict:
        """What every report of a load says first: where the rows came from, how many, and what was dropped."""
        return {
            "source": self.source,
            "format": self.format,
            "origin": self.origin,
            "rows": len(self.rows),
            "dropped": dict(self.dropped),
            "problems": self.problems,
        }

    @property
    def label(self) -> str:
        """How messages name the origin: a file by its name, the hub by the dataset id."""
        return Path(self.origin).name if Path(self.origin).is_absolute() else self.origin  # files are absolute

    def drop(self, number: int, reason: str, message: str, on_bad_rows: str, keep_problems: int = 5) -> None:
        """Count a bad row by reason, or stop the load in fail mode."""
        where = f"{self.label} row {number}: {message}"
        if on_bad_rows == "fail":
            raise DataError(where)
        self.dropped[reason] += 1
        if len(self.problems) < keep_problems:
            self.problems.append(where)


def source_module(source: str):
    if source not in SOURCES:
        raise ConfigError(f"data.source = {source!r}: allowed values are {', '.join(SOURCES)}")
    return importlib.import_module(f"studio.data.{SOURCES[source]}")


def sample_path(source: str) -> Path:
    return SAMPLES_DIR / f"{source}.jsonl"


def origin_of(spec: DataSpec) -> str:
    module = source_module(spec.source)
    default_path = getattr(module, "default_path", None)
    if spec.path == SAMPLE:
        if not sample_path(spec.source).is_file():
            raise ConfigError(
                f"data.path = sample: the '{spec.source}' source has no bundled sample; "
                + _local_choices(spec.source, default_path)
            )
        return str(sample_path(spec.source))
    if spec.path and spec.path != HUB:
        return str(Path(spec.path).expanduser().absolute())
    if module.HUB_ID is not None:
        return module.HUB_ID
    if spec.path == HUB:
        raise ConfigError(
            f"data.path = hub: the '{spec.source}' source is not on the Hugging Face Hub; "
            + _local_choices(spec.source, default_path)
        )
    if default_path is None:
        raise ConfigError(f"data.path: the '{spec.source}' source needs a local file")
    return str(default_path(spec))


def _local_choices(source: str, default_path) -> str:
    if default_path is None:
        return "give a local file"
    if source == "votes":
        return "leave data.path empty to read the vote set data.votes.set names, or give a votes file"
    return f"leave data.path empty to read the studio's own {source} file, or give a local file"


def raw_rows(spec: DataSpec):
    """The source's raw rows from the bundled sample, a local file, or the hub."""
    module = source_module(spec.source)
    origin = origin_of(spec)
    if origin != module.HUB_ID:
        return module.file_rows(origin) if hasattr(module, "file_rows") else read_rows(origin)
    if hasattr(module, "hub_rows"):
        return module.hub_rows(spec)
    return load_hub_rows(module.HUB_ID, spec.subset)


# Names a reward function is called with by TRL itself: a raw column of one of these names is not passed on.
RESERVED_COLUMNS = frozenset(
    ("prompt", "prompts", "completion", "completions", "completion_ids", "trainer_state", "log_metric")
)


def raw_columns(raw) -> dict:
    """A raw row's columns as reward functions get them: every column but the RESERVED_COLUMNS names."""
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if str(k) not in RESERVED_COLUMNS and _plain(v)}


def _plain(value) -> bool:
    """Whether a value is plain JSON data (text, numbers, lists and mappings of them): what the data cache can keep.
    A Parquet timestamp or bytes column is left out."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _converted(module, rows, spec: DataSpec, fmt: str):
    """(row number, canonical row or RowProblem, raw columns) for every raw row that passes the filters."""
    keeps_columns = getattr(module, "KEEPS_COLUMNS", True)
    if hasattr(module, "convert_rows"):
        rows = list(rows)  # convert_rows numbers rows from 1 in input order: number n is rows[n - 1]
        for number, result in module.convert_rows(rows, spec, fmt):
            yield number, result, raw_columns(rows[number - 1]) if keeps_columns else {}
        return
    keep = getattr(module, "keep", None)
    for number, raw in enumerate(rows, start=1):
        if keep is not None and not keep(raw, spec):
            continue
        try:
            yield number, module.convert(raw, spec, fmt), raw_columns(raw) if keeps_columns else {}
        except RowProblem as problem:
            yield number, problem, {}


def load(spec: DataSpec, fmt: str | None = None, keep_problems: int = 5, use_cache: bool = True) -> Loaded:
    """Load, filter, convert and check every row of a source, in the format a stage trains on."""
    formats = SOURCE_FORMATS[spec.source]
    fmt = fmt or formats[0]
    if fmt not in formats:
        raise ConfigError(f"data.source = '{spec.source}' gives {' and '.join(formats)} rows, not {fmt} rows")
    module = source_module(spec.source)
    if hasattr(module, "check_filters"):
        module.check_filters(spec)
    origin = origin_of(spec)
    key = _cache_key(module, spec, fmt, origin)
    if use_cache and (cached := _read_cache(key)) is not None:
        return cached

    loaded = Loaded(spec.source, fmt, origin, [])
    for number, result, columns in _converted(module, raw_rows(spec), spec, fmt):
        if isinstance(result, RowProblem):
            loaded.drop(number, f"{result.column} {result.reason}", str(result), spec.on_bad_rows, keep_problems)
            continue
        loaded.rows.append(result)
        loaded.row_numbers.append(number)
        loaded.columns.append(columns)
        if spec.limit and len(loaded.rows) >= spec.limit:
            break
    if not loaded.rows:
        why = f"; first problem: {loaded.problems[0]}" if loaded.problems else ""
        raise DataError(f"{origin}: no usable rows for source '{spec.source}'{why}")
    if use_cache:
        _write_cache(key, loaded)
    return loaded


def check_file(spec: DataSpec, stage: str) -> Loaded | None:
    """Load a local file (or the bundled sample) now, as the stage's worker will, so that a broken file, a missing
    column, a bad row in fail mode or a file with no usable row is refused in one line naming the file, row and
    column before a run exists and before any model loads. A hub dataset is not downloaded here: it is refused
    when the Hub cannot be reached and the dataset is not in the local cache (hub.check_dataset), else left to the
    worker.

    The cost is the worker's own: the converted rows go to the cache (keyed by the file's size and time), and the
    worker reads them back instead of converting the file again, so even a large file is parsed once per change."""
    module = source_module(spec.source)
    if origin_of(spec) == module.HUB_ID:
        check_dataset(module.HUB_ID, spec.source, spec.path)
        return None
    fmt = STAGE_FORMATS[stage]
    formats = SOURCE_FORMATS[spec.source] if fmt == PROMPT_ONLY else (fmt,)
    return first_that_loads(formats, lambda fmt: load(spec, fmt))


def first_that_loads(formats, load_one):
    """load_one(fmt) for the first of `formats` that loads; the last one's DataError when none does. The stages that
    only take prompts use it: any format a source gives has prompts, so a preference file gives them too."""
    for fmt in formats[:-1]:
        try:
            return load_one(fmt)
        except DataError:
            pass
    return load_one(formats[-1])


REPORT = "data_report.json"  # in the run folder: what the stage trained on and the rows it held out


def prepare(config: RunConfig, fmt: str, tokenizer, run=None) -> tuple[Loaded, Loaded]:
    """(train, held out): what a stage trains on, the loaded rows checked against the tokenizer's chat template and
    max_length, then split by split_rows. The counts and the held-out rows' numbers are written to the run's
    data_report.json (read back by held_out_rows) and the log before any model loads."""
    spec = config.data
    loaded = check_lengths(load(spec, fmt), tokenizer, spec.max_length, spec.on_bad_rows)
    log.info(
        "data: %d %s rows from %s; dropped %s", len(loaded.rows), fmt, loaded.origin, dict(loaded.dropped) or "none"
    )
    train, held_out = split_rows(loaded, spec.eval_fraction, config.train.seed, config.stage)
    if run is not None:
        _write_report(run.path, loaded, train, held_out, spec.eval_fraction, config.train.seed)
    if not loaded.rows:
        raise DataError(
            f"{loaded.origin}: no rows left after the length check; raise data.max_length (now {spec.max_length})"
        )
    log.info("data: %d rows to train on, %d held out", len(train.rows), len(held_out.rows))
    return train, held_out


def split_eval(rows: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded shuffle, then the last `fraction` of rows held out (at least one when asked for any)."""
    if fraction <= 0 or len(rows) < 2:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
    return [rows[i] for i in order[:-n_eval]], [rows[i] for i in order[-n_eval:]]


def split_rows(loaded: Loaded, fraction: float, seed: int, stage: str | None = None) -> tuple[Loaded, Loaded]:
    """(train, held out): the one train/held-out split of every stage's rows (split_eval's seeded shuffle), each part
    a Loaded keeping its rows' numbers in the source, so that a run can record which rows it held out.

    The stages that sample their own answers train on prompts alone, so for them the prompts are split, not the
    rows: rows sharing a prompt (several preference pairs of one SHP post, say) stay on one side, and a held-out
    prompt is never trained on under another row."""
    columns = loaded.columns if len(loaded.columns) == len(loaded.rows) else [{}] * len(loaded.rows)
    pairs = list(zip(loaded.rows, loaded.row_numbers, columns))
    if stage is not None and stages.get(stage).online:
        prompts = list(dict.fromkeys(_prompt_key(row) for row in loaded.rows))
        _, held_prompts = split_eval(prompts, fraction, seed)
        rank = {prompt: i for i, prompt in enumerate(held_prompts)}
        held_out = sorted((p for p in pairs if _prompt_key(p[0]) in rank), key=lambda p: rank[_prompt_key(p[0])])
        train = [p for p in pairs if _prompt_key(p[0]) not in rank]
    else:  # rows sharing a raw row's number (the pairs of one ranking) stay on one side
        numbers = list(dict.fromkeys(number for _, number, _ in pairs))
        train_numbers, held_numbers = split_eval(numbers, fraction, seed)
        place = {number: i for i, number in enumerate(train_numbers + held_numbers)}  # the shuffled order
        held = set(held_numbers)
        ordered = sorted(pairs, key=lambda p: place[p[1]])
        train, held_out = [p for p in ordered if p[1] not in held], [p for p in ordered if p[1] in held]

    def part(chosen: list) -> Loaded:
        return replace(
            loaded,
            rows=[row for row, _, _ in chosen],
            row_numbers=[number for _, number, _ in chosen],
            columns=[cols for _, _, cols in chosen],
        )

    return part(train), part(held_out)


def _prompt_key(row: dict) -> str:
    return json.dumps(row["prompt"], sort_keys=True, ensure_ascii=False)


def _rows_digest(rows: list[dict]) -> str:
    """Changes when any of the rows does: a source edited since a run trained is noticed, not silently misread."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _write_report(folder: Path, loaded: Loaded, train: Loaded, held_out: Loaded, fraction: float, seed: int) -> None:
    report = {
        **loaded.counts(),
        "train_rows": len(train.rows),
        "held_out_rows": len(held_out.rows),
        "eval_fraction": fraction,
        "seed": seed,
        # The held-out rows by their number in the source (`format` rows of `origin`), in the split's order: the
        # order the trainer evaluates them in.
        "held_out": held_out.row_numbers,
        "held_out_digest": _rows_digest(held_out.rows),
    }
    (folder / REPORT).write_text(json.dumps(report, indent=1), encoding="utf-8")


def held_out_rows(run_folder: Path, spec: DataSpec) -> list[dict] | None:
    """The rows a run held out of training, in its split's order, read back from the source by the numbers its
    data_report.json records (loaded again with the run's data spec, from the recorded file and in the recorded
    format; the length check is not needed: the numbers name the rows). None for a run with no such record
    (trained before runs recorded one). A source that changed since the run trained (a row gone or edited) is a
    DataError naming it."""
    try:
        report = json.loads((Path(run_folder) / REPORT).read_text(encoding="utf-8"))
        numbers, fmt, origin = report["held_out"], report["format"], report["origin"]
        digest = report["held_out_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not numbers:
        return []
    if Path(origin).is_absolute():  # a file (a relative data.path read from another folder would miss it)
        spec = replace(spec, path=origin)
    loaded = load(spec, fmt)
    by_number: dict[int, list[dict]] = {}
    for number, row in zip(loaded.row_numbers, loaded.rows):
        by_number.setdefault(number, []).append(row)  # a ranking's pairs share its line's number
    missing = [n for n in numbers if n not in by_number]
    rows = [row for n in dict.fromkeys(numbers) for row in by_number.get(n, [])]
    if missing or _rows_digest(rows) != digest:
        raise DataError(
            f"{loaded.label}: the {len(numbers)} rows run {Path(run_folder).name} held out are no longer the same "
            "(the data changed since it trained)"
        )
    return rows


# ---------------------------------------------------------------- cache


def _cache_key(module, spec: DataSpec, fmt: str, origin: str) -> str:
    """Changes whenever the rows could: options, the file (size and time), or the converter's code."""
    options = {k: v for k, v in asdict(spec).items() if k not in ("eval_fraction", "max_length")}
    fingerprint = {
        "options": options,
        "format": fmt,
        "origin": origin,
        "code": [*_code_digests(module), _file_digest(Path(__file__).parent / "fields.py")],
    }
    if os.path.isfile(origin):
        stat = os.stat(origin)
        fingerprint["file"] = [stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:24]


def _code_digests(module) -> list[str]:
    """The source module's code: its file, or for a package (votes) every module in it."""
    path = Path(module.__file__)
    files = sorted(path.parent.glob("*.py")) if path.name == "__init__.py" else [path]
    return [_file_digest(f) for f in files]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _cache_path(key: str) -> Path:
    return studio_home() / "cache" / "data" / f"{key}.json"


def _read_cache(key: str) -> Loaded | None:
    try:
        data = json.loads(_cache_path(key).read_text(encoding="utf-8"))
        return Loaded(
            data["source"],
            data["format"],
            data["origin"],
            data["rows"],
            Counter(data["dropped"]),
            data["problems"],
            data["row_numbers"],
            data["columns"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: convert again


def _write_cache(key: str, loaded: Loaded) -> None:
    path = _cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = {
        "source": loaded.source,
        "format": loaded.format,
        "origin": loaded.origin,
        "rows": loaded.rows,
        "dropped": dict(loaded.dropped),
        "problems": loaded.problems,
        "row_numbers": loaded.row_numbers,
        "columns": loaded.columns,
    }
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
