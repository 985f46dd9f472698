"""A completed reward run scored on a preference file: how often it puts the chosen answer above the rejected one,
overall, per subset, and by how much longer the chosen answer is, so that a model that only likes long answers shows.

    report = evaluate("20261206-101500-reward-ab12", "rewardbench.parquet", limit=500)
    report.accuracy, report.subsets, report.by_length, report.longer_won, report.saved
    rlhf-studio eval-rm RUN --data FILE [--limit N] [--json]

The file is read as `data.source: file` reads preference data (studio/data/custom.py): .jsonl, .jsonl.gz, .json,
.csv or .parquet with prompt, chosen and rejected columns, each text or role/content messages, so RewardBench's own
layout (prompt, chosen, rejected, subset) loads as it is. A `subset` column, or else a `category` column, splits the
accuracy per value. Any bad row stops the evaluation in one line naming the file, row and column (a skipped row
would change the accuracy without saying so).

Accuracy counts a pair as right when the chosen answer scores strictly above the rejected one; equal scores count
as wrong, as in TRL's RewardTrainer, and are counted as ties. The report, with every pair's scores, is saved as
<run folder>/eval/<YYYYMMDD-HHMMSS>-rm-<file stem>.json. Never imports gradio.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio import access, data
from studio.config import DataSpec
from studio.data.files import file_kind
from studio.errors import ConfigError, DataError
from studio.runs.folder import write_json_atomic
from studio.serve import scoring

SUBSET_COLUMNS = ("subset", "category")  # RewardBench names its splits `subset`; other sets say `category`
MARGIN_BINS = 20  # bars of the margins histogram, equal widths from the smallest margin to the largest

# Length bins by words, chosen against rejected. Ratios, not word counts, so that the same bins fit three-word and
# three-hundred-word answers: "much" is at least twice as long, "about equal" within a tenth of the longer answer.
MUCH_SHORTER = "chosen much shorter (at most half as long)"
SHORTER = "chosen shorter"
ABOUT_EQUAL = "about equal (within 10%)"
LONGER = "chosen longer"
MUCH_LONGER = "chosen much longer (at least twice as long)"
LENGTH_BINS = (MUCH_SHORTER, SHORTER, ABOUT_EQUAL, LONGER, MUCH_LONGER)


@dataclass
class PairScore:
    """One pair of the file as the run scored it."""

    row: int  # the row's number in the file, from 1
    subset: str | None
    chosen: float
    rejected: float
    chosen_words: int
    rejected_words: int

    @property
    def margin(self) -> float:
        return self.chosen - self.rejected

    @property
    def right(self) -> bool:
        return self.chosen > self.rejected


@dataclass
class SubsetRow:
    subset: str
    n: int
    accuracy: float
    mean_margin: float


@dataclass
class LengthRow:
    bin: str  # one of LENGTH_BINS
    n: int
    accuracy: float | None  # None for a bin with no pairs


@dataclass
class Histogram:
    edges: list[float]  # len(counts) + 1 ascending edges; a margin on an inner edge counts in the bin above it
    counts: list[int]


@dataclass
class RewardModelReport:
    run_id: str
    data: str  # the file, as an absolute path
    n: int
    right: int  # pairs whose chosen answer scored above the rejected one
    accuracy: float
    ties: int  # pairs whose two answers scored the same (counted wrong)
    mean_margin: float  # mean of chosen score minus rejected score
    subset_column: str | None  # the column the subsets come from, None when the file has neither
    subsets: list[SubsetRow]  # in the order each value first appears in the file
    margins: Histogram
    by_length: list[LengthRow]  # every bin of LENGTH_BINS, in that order
    length_pairs: int  # pairs whose answers differ in word count
    longer_won: float | None  # of those, the share whose longer answer scored higher (None when there are none)
    longer_chosen: float | None  # of those, the share whose longer answer is the chosen one: the file's own lean
    pairs: list[PairScore] = field(repr=False)
    created: str = ""
    saved: str = ""  # the JSON file the report was saved to

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(run_id: str, path: str | Path, limit: int | None = None) -> RewardModelReport:
    """Score every pair of a preference file (its first `limit` pairs) with a completed reward run, and save the
    report in the run's eval/ folder."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit = {limit}: score at least 1 pair")
    run = scoring.check_reward_run(run_id)  # before the file is read: a wrong run is the quicker mistake to report
    access.check_readable(str(path), "preference file")  # a studio others can open reads only its own files
    rows, subset_column = _pairs(path, limit)
    prompts = [row["prompt"] for row in rows]
    chosen = [row["chosen"][-1]["content"] for row in rows]
    rejected = [row["rejected"][-1]["content"] for row in rows]
    scores = _scores(run.id, prompts + prompts, chosen + rejected)
    pairs = [
        PairScore(
            row=row["number"],
            subset=row["subset"],
            chosen=scores[i],
            rejected=scores[len(rows) + i],
            chosen_words=len(chosen[i].split()),
            rejected_words=len(rejected[i].split()),
        )
        for i, row in enumerate(rows)
    ]
    report = summarise(run.id, str(Path(path).expanduser().absolute()), pairs, subset_column)
    _save(report, run.path / "eval", Path(path))
    return report


def summarise(run_id: str, data: str, pairs: list[PairScore], subset_column: str | None) -> RewardModelReport:
    """The report of scored pairs (not saved)."""
    length_pairs = [p for p in pairs if p.chosen_words != p.rejected_words]
    longer_won = [
        p.chosen > p.rejected if p.chosen_words > p.rejected_words else p.rejected > p.chosen for p in length_pairs
    ]
    subsets: dict[str, list[PairScore]] = {}
    for pair in pairs:
        if pair.subset is not None:
            subsets.setdefault(pair.subset, []).append(pair)
    by_bin: dict[str, list[PairScore]] = {name: [] for name in LENGTH_BINS}
    for pair in pairs:
        by_bin[length_bin(pair.chosen_words, pair.rejected_words)].append(pair)
    return RewardModelReport(
        run_id=run_id,
        data=data,
        n=len(pairs),
        right=sum(p.right for p in pairs),
        accuracy=_accuracy(pairs),
        ties=sum(p.chosen == p.rejected for p in pairs),
        mean_margin=_mean_margin(pairs),
        subset_column=subset_column,
        subsets=[SubsetRow(name, len(group), _accuracy(group), _mean_margin(group)) for name, group in subsets.items()],
        margins=histogram([p.margin for p in pairs]),
        by_length=[LengthRow(name, len(group), _accuracy(group) if group else None) for name, group in by_bin.items()],
        length_pairs=len(length_pairs),
        longer_won=sum(longer_won) / len(length_pairs) if length_pairs else None,
        longer_chosen=(
            sum(p.chosen_words > p.rejected_words for p in length_pairs) / len(length_pairs) if length_pairs else None
        ),
        pairs=pairs,
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def length_bin(chosen_words: int, rejected_words: int) -> str:
    """Which of LENGTH_BINS a pair falls in, by the word counts of its chosen and rejected answers."""
    longer = max(chosen_words, rejected_words)
    if 10 * abs(chosen_words - rejected_words) <= longer:
        return ABOUT_EQUAL
    if chosen_words >= 2 * rejected_words:
        return MUCH_LONGER
    if rejected_words >= 2 * chosen_words:
        return MUCH_SHORTER
    return LONGER if chosen_words > rejected_words else SHORTER


def histogram(values: list[float], bins: int = MARGIN_BINS) -> Histogram:
    """Counts of `values` in `bins` equal bins from the smallest to the largest (one unit wide around a single
    value); the last bin holds the largest value."""
    low, high = min(values), max(values)
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    edges = [low + i * width for i in range(bins)] + [high]
    counts = [0] * bins
    for value in values:
        counts[min(bisect_right(edges, value) - 1, bins - 1)] += 1
    return Histogram(edges=edges, counts=counts)


def _accuracy(pairs: list[PairScore]) -> float:
    return sum(p.right for p in pairs) / len(pairs)


def _mean_margin(pairs: list[PairScore]) -> float:
    return sum(p.margin for p in pairs) / len(pairs)


def _pairs(path: str | Path, limit: int | None) -> tuple[list[dict], str | None]:
    """(canonical preference rows, each with its row `number` and `subset`; the subset column or None)."""
    spec = DataSpec(source="file", path=str(path), limit=limit, on_bad_rows="fail")
    loaded = data.load(spec, "preference")
    present = set().union(*(columns.keys() for columns in loaded.columns))
    subset_column = next((name for name in SUBSET_COLUMNS if name in present), None)
    rows = []
    for row, number, columns in zip(loaded.rows, loaded.row_numbers, loaded.columns):
        subset = _subset(columns, subset_column, f"{loaded.label} row {number}") if subset_column else None
        rows.append({**row, "number": number, "subset": subset})
    return rows, subset_column


def _subset(columns: dict, column: str, where: str) -> str:
    value = columns.get(column)
    if value is None:
        raise DataError(f"{where}: column '{column}': missing (every row needs one when any row has it)")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: column '{column}': expected text, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: column '{column}': empty")
    return text


def _scores(run_id: str, prompts: list[list[dict]], responses: list[str]) -> list[float]:
    """scoring.score_batch in order of length, put back in the given order: answers of like length share a padded
    batch, so a file of short and long answers does not pad every batch to its longest answer."""
    order = sorted(range(len(responses)), key=lambda i: len(responses[i]) + sum(len(m["content"]) for m in prompts[i]))
    scored = scoring.score_batch(run_id, [prompts[i] for i in order], [responses[i] for i in order])
    scores = [0.0] * len(responses)
    for i, score in zip(order, scored):
        scores[i] = score
    return scores


def _save(report: RewardModelReport, folder: Path, path: Path) -> None:
    """Write the report (with `saved` set) to folder/<YYYYMMDD-HHMMSS>-rm-<stem>.json; a second evaluation of the
    same file in the same second gets -2, -3, ... rather than replacing the first."""
    stem = path.name[: -len(file_kind(path))] or "data"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-rm-{stem}"
    target, copy = folder / f"{name}.json", 1
    while target.exists():
        copy += 1
        target = folder / f"{name}-{copy}.json"
    report.saved = str(target)
    write_json_atomic(target, report.to_dict())
