"""Stanford Human Preferences (stanfordnlp/SHP) -> preference pairs with a margin.

    load(DataSpec(source="shp", path="sample", domains=["askbaking_train"]), "preference")

Raw schema: post_id, domain, upvote_ratio, history, c_root_id_A, c_root_id_B, created_at_utc_A,
created_at_utc_B, score_A, score_B, human_ref_A, human_ref_B, labels, seconds_difference, score_ratio.
The post (`history`) is the user turn; `labels` 1 means comment A is preferred, 0 means comment B is.

Margin: `margin = ln(score_ratio)`, rounded to 4 decimals (ratio 2 -> 0.6931, ratio 1 -> 0.0). The score
ratio is how many times more upvotes the preferred comment got; its log is positive, grows slowly for lopsided
pairs and suits the Llama-2 margin loss, -log(sigmoid(r_chosen - r_rejected - margin)).

Filters (skipped rows are not problems): `data.min_score_ratio` (the SHP authors advise 2) and
`data.domains`, which matches the raw domain ("askbaking_train") or its name without the split suffix
("askbaking"). On the hub, `data.subset` is a domain's data directory (e.g. askbaking).
"""

from __future__ import annotations

import math

from studio.data.fields import RowProblem, assistant, text, user
from studio.data.hub import load_hub_rows

HUB_ID = "stanfordnlp/SHP"
COLUMNS = (
    "post_id",
    "domain",
    "upvote_ratio",
    "history",
    "c_root_id_A",
    "c_root_id_B",
    "created_at_utc_A",
    "created_at_utc_B",
    "score_A",
    "score_B",
    "human_ref_A",
    "human_ref_B",
    "labels",
    "seconds_difference",
    "score_ratio",
)


def hub_rows(spec):
    return load_hub_rows(HUB_ID, None, data_dir=spec.subset)


def label(row: dict) -> int:
    """1 (A preferred) or 0 (B preferred); CSV files give the text "1" or "0"."""
    value = row.get("labels")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowProblem("labels", "missing")
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    shown = repr(value) if len(repr(value)) <= 20 else type(value).__name__
    raise RowProblem("labels", f"expected 0 or 1 (1: A preferred, 0: B preferred), got {shown}")


def score_ratio(row: dict) -> float:
    """The preferred comment's score over the other's: a finite number >= 1 (text from CSV is read)."""
    value = row.get("score_ratio")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowProblem("score_ratio", "missing")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RowProblem("score_ratio", f"expected a number, got {type(value).__name__}")
    try:
        ratio = float(value)
    except ValueError:
        raise RowProblem("score_ratio", "expected a number, got text") from None
    if not math.isfinite(ratio):
        raise RowProblem("score_ratio", "expected a finite number")
    if ratio < 1:
        raise RowProblem("score_ratio", "below 1 (it is the preferred score over the other)")
    return ratio


def in_domains(domain, domains) -> bool:
    if not domains:
        return True
    if not isinstance(domain, str):
        return False
    return domain in domains or domain.rsplit("_", 1)[0] in domains


def keep(row: dict, spec) -> bool:
    if not in_domains(row.get("domain"), spec.domains):
        return False
    try:
        ratio = score_ratio(row)
    except RowProblem:
        return True  # a bad ratio is a problem to report, not a filter: convert names it
    return ratio >= spec.min_score_ratio


def convert(row: dict, spec=None, fmt: str = "preference") -> dict:
    history = text(row, "history")
    ref_a, ref_b = text(row, "human_ref_A"), text(row, "human_ref_B")
    preferred_a = label(row) == 1
    ratio = score_ratio(row)
    if ref_a == ref_b:
        raise RowProblem("human_ref_B", "identical to human_ref_A")
    chosen, rejected = (ref_a, ref_b) if preferred_a else (ref_b, ref_a)
    return {
        "prompt": [user(history)],
        "chosen": [assistant(chosen)],
        "rejected": [assistant(rejected)],
        "margin": round(math.log(ratio), 4),
    }
