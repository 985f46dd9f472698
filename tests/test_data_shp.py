"""studio/data/shp.py: SHP rows -> preference pairs with a margin; score-ratio and domain filters; bad rows.

python -m pytest tests/test_data_shp.py -q
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from studio.config import DataSpec
from studio.data import load, sample_path, shp
from studio.data.fields import RowProblem
from studio.data.files import read_rows
from studio.errors import DataError
from tests.conftest import write_csv, write_jsonl


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))  # load() caches under the home


def shp_row(**changes) -> dict:
    """One SHP row in the raw schema, A preferred, with plausible types for every field."""
    row = {
        "post_id": "q1w2e3",
        "domain": "askbaking_train",
        "upvote_ratio": 0.94,
        "history": "  Why did my bread sink?\n\nIt rose well, then fell in the oven. ",
        "c_root_id_A": "hx1a2b3",
        "c_root_id_B": "hx4c5d6",
        "created_at_utc_A": 1600003600,
        "created_at_utc_B": 1600000000,
        "score_A": 14,
        "score_B": 4,
        "human_ref_A": " The dough over-proofed: bake it sooner. ",
        "human_ref_B": "Ovens are weird.",
        "labels": 1,
        "seconds_difference": 3600.0,
        "score_ratio": 3.5,
    }
    row.update(changes)
    return row


def spec(path, **changes) -> DataSpec:
    return DataSpec(source="shp", path=str(path), **changes)


def loaded(path, **changes):
    return load(spec(path, **changes), "preference", use_cache=False)


PROMPT = [{"role": "user", "content": "Why did my bread sink?\n\nIt rose well, then fell in the oven."}]
GOOD = [{"role": "assistant", "content": "The dough over-proofed: bake it sooner."}]
WEAK = [{"role": "assistant", "content": "Ovens are weird."}]


# ---------------------------------------------------------------- conversion


def test_labels_1_prefers_comment_a(tmp_path):
    path = write_jsonl(tmp_path / "shp.jsonl", [shp_row()])
    assert loaded(path).rows == [{"prompt": PROMPT, "chosen": GOOD, "rejected": WEAK, "margin": 1.2528}]


def test_labels_0_prefers_comment_b(tmp_path):
    row = shp_row(
        human_ref_A="Ovens are weird.",
        human_ref_B=" The dough over-proofed: bake it sooner. ",
        score_A=4,
        score_B=14,
        labels=0,
    )
    path = write_jsonl(tmp_path / "shp.jsonl", [row])
    assert loaded(path).rows == [{"prompt": PROMPT, "chosen": GOOD, "rejected": WEAK, "margin": 1.2528}]


@pytest.mark.parametrize("ratio, margin", [(2.0, 0.6931), (2, 0.6931), (4.0, 1.3863), (1.0, 0.0), (2.5, 0.9163)])
def test_margin_is_the_log_of_the_score_ratio(ratio, margin):
    row = shp_row(score_ratio=ratio)
    assert shp.convert(row, DataSpec(source="shp"), "preference")["margin"] == margin
    assert isinstance(shp.convert(row)["margin"], float)
    assert margin == round(math.log(ratio), 4)


def test_csv_text_values_convert_the_same(tmp_path):
    rows = [shp_row(), shp_row(labels=0, score_ratio=2.0, human_ref_A="B is better here, really.")]
    from_jsonl = loaded(write_jsonl(tmp_path / "shp.jsonl", rows)).rows
    csv_path = write_csv(tmp_path / "shp.csv", rows)
    raw = read_rows(csv_path)
    assert raw[0]["labels"] == "1" and raw[1]["score_ratio"] == "2.0"  # CSV gives text, not numbers
    assert loaded(csv_path).rows == from_jsonl
    assert [r["margin"] for r in from_jsonl] == [1.2528, 0.6931]
    assert from_jsonl[1]["chosen"] == WEAK and from_jsonl[1]["rejected"][0]["content"] == "B is better here, really."


@pytest.mark.parametrize("value", [" 1 ", "1"])
def test_label_text_with_spaces_is_read(value):
    assert shp.convert(shp_row(labels=value))["chosen"] == GOOD


# ---------------------------------------------------------------- filters and limit


def ratio_rows() -> list[dict]:
    ratios = [1.5, 2.0, 3.0, 10.0, 1.99]
    domains = ["askbaking_train", "askvet_train", "askbaking_train", "askscience_train", "askvet_train"]
    return [shp_row(history=f"post {i}", score_ratio=r, domain=d) for i, (r, d) in enumerate(zip(ratios, domains))]


def posts(result) -> list[str]:
    return [row["prompt"][0]["content"] for row in result.rows]


@pytest.mark.parametrize(
    "minimum, expected",
    [
        (None, ["post 1", "post 2", "post 3"]),  # default 2.0, the SHP authors' advice; 2.0 itself is kept
        (1.0, ["post 0", "post 1", "post 2", "post 3", "post 4"]),
        (3.0, ["post 2", "post 3"]),
        (20.0, None),
    ],
)
def test_score_ratio_filter(tmp_path, minimum, expected):
    path = write_jsonl(tmp_path / "shp.jsonl", ratio_rows())
    changes = {} if minimum is None else {"min_score_ratio": minimum}
    if expected is None:
        with pytest.raises(DataError, match="no usable rows"):
            loaded(path, **changes)
        return
    result = loaded(path, **changes)
    assert posts(result) == expected
    assert sum(result.dropped.values()) == 0  # filtered rows are not problems


def test_default_min_score_ratio_is_two():
    assert DataSpec().min_score_ratio == 2.0


@pytest.mark.parametrize(
    "domains, expected",
    [
        (["askvet_train"], ["post 1"]),  # post 4 is askvet too, but its ratio is under 2
        (["askbaking_train", "askscience_train"], ["post 2", "post 3"]),
        (["askbaking"], ["post 2"]),  # the domain name without its split suffix matches too
        ([], ["post 1", "post 2", "post 3"]),
    ],
)
def test_domain_filter(tmp_path, domains, expected):
    path = write_jsonl(tmp_path / "shp.jsonl", ratio_rows())
    result = loaded(path, domains=domains)
    assert posts(result) == expected
    assert sum(result.dropped.values()) == 0


def test_domain_and_ratio_filters_together(tmp_path):
    path = write_jsonl(tmp_path / "shp.jsonl", ratio_rows())
    assert posts(loaded(path, domains=["askvet_train"], min_score_ratio=1.0)) == ["post 1", "post 4"]


def test_domain_that_matches_nothing(tmp_path):
    path = write_jsonl(tmp_path / "shp.jsonl", ratio_rows())
    with pytest.raises(DataError, match="no usable rows"):
        loaded(path, domains=["legaladvice_train"])


@pytest.mark.parametrize(
    "limit, expected", [(1, ["post 1"]), (2, ["post 1", "post 2"]), (9, ["post 1", "post 2", "post 3"])]
)
def test_limit_counts_rows_after_the_filters(tmp_path, limit, expected):
    path = write_jsonl(tmp_path / "shp.jsonl", ratio_rows())
    assert posts(loaded(path, limit=limit)) == expected


# ---------------------------------------------------------------- bad rows


BAD_ROWS = [
    shp_row(history="good 1"),  # row 1
    shp_row(labels=2),  # row 2
    shp_row(labels="yes"),  # row 3
    shp_row(labels=0.5),  # row 4
    shp_row(labels=True),  # row 5: bools are not labels
    {k: v for k, v in shp_row().items() if k != "labels"},  # row 6
    shp_row(score_ratio="lots"),  # row 7
    shp_row(score_ratio=0.5),  # row 8
    shp_row(score_ratio=None),  # row 9
    shp_row(human_ref_B=" The dough over-proofed: bake it sooner."),  # row 10: same text as A
    shp_row(history="   "),  # row 11
    shp_row(human_ref_A=17),  # row 12
    shp_row(history="good 2", labels=0),  # row 13
]


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path):
    result = loaded(write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS))
    assert posts(result) == ["good 1", "good 2"]
    assert result.rows[1]["chosen"] == WEAK
    assert result.dropped == Counter(
        {
            "labels expected 0 or 1 (1: A preferred, 0: B preferred), got 2": 1,
            "labels expected 0 or 1 (1: A preferred, 0: B preferred), got 'yes'": 1,
            "labels expected 0 or 1 (1: A preferred, 0: B preferred), got 0.5": 1,
            "labels expected 0 or 1 (1: A preferred, 0: B preferred), got True": 1,
            "labels missing": 1,
            "score_ratio expected a number, got text": 1,
            "score_ratio below 1 (it is the preferred score over the other)": 1,
            "score_ratio missing": 1,
            "human_ref_B identical to human_ref_A": 1,
            "history empty": 1,
            "human_ref_A expected text, got int": 1,
        }
    )
    assert (
        result.problems[0] == "bad.jsonl row 2: column 'labels': expected 0 or 1 (1: A preferred, "
        "0: B preferred), got 2"
    )


def test_a_bad_score_ratio_is_reported_not_filtered(tmp_path):
    rows = [shp_row(history="good", score_ratio=9.0), shp_row(score_ratio="n/a"), shp_row(score_ratio=0.25)]
    result = loaded(write_jsonl(tmp_path / "bad.jsonl", rows), min_score_ratio=5.0)
    assert posts(result) == ["good"]
    assert result.dropped == Counter(
        {
            "score_ratio expected a number, got text": 1,
            "score_ratio below 1 (it is the preferred score over the other)": 1,
        }
    )


@pytest.mark.parametrize("value", ["inf", float("nan"), [2.0], {"ratio": 2}])
def test_keep_does_not_crash_on_odd_ratios_and_convert_reports_them(value):
    row = shp_row(score_ratio=value)
    assert shp.keep(row, DataSpec(source="shp")) is True
    with pytest.raises(RowProblem) as info:
        shp.convert(row)
    assert info.value.column == "score_ratio"


def test_keep_with_a_missing_domain():
    row = {k: v for k, v in shp_row().items() if k != "domain"}
    assert shp.keep(row, DataSpec(source="shp")) is True
    assert shp.keep(row, DataSpec(source="shp", domains=["askbaking_train"])) is False


@pytest.mark.parametrize(
    "rows, row, column",
    [
        (BAD_ROWS, 2, "labels"),
        (BAD_ROWS[6:], 1, "score_ratio"),
        (BAD_ROWS[9:], 1, "human_ref_B"),
    ],
)
def test_fail_mode_names_file_row_and_column(tmp_path, rows, row, column):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        loaded(path, on_bad_rows="fail")
    assert str(info.value).startswith(f"bad.jsonl row {row}: column '{column}'")
    assert "\n" not in str(info.value)


def test_fail_mode_on_a_csv_row_without_a_label(tmp_path):
    path = write_csv(tmp_path / "shp.csv", [shp_row(), shp_row(labels="")])
    with pytest.raises(DataError) as info:
        loaded(path, on_bad_rows="fail")
    assert str(info.value) == "shp.csv row 2: column 'labels': missing"


# ---------------------------------------------------------------- hub and bundled sample


def test_hub_subset_is_a_data_directory(monkeypatch):
    calls = []
    monkeypatch.setattr(shp, "load_hub_rows", lambda *args, **kwargs: calls.append((args, kwargs)) or [shp_row()])
    result = load(DataSpec(source="shp", subset="askbaking"), "preference", use_cache=False)
    assert calls == [(("stanfordnlp/SHP", None), {"data_dir": "askbaking"})]
    assert result.origin == "stanfordnlp/SHP" and len(result.rows) == 1


def test_bundled_sample_loads_120_of_150_rows_by_default():
    result = load(DataSpec(source="shp", path="sample"), "preference", use_cache=False)
    assert len(result.rows) == 120
    assert sum(result.dropped.values()) == 0 and result.problems == []
    for row in result.rows:
        assert [m["role"] for m in row["prompt"]] == ["user"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
        assert row["margin"] >= 0.6931


def test_bundled_sample_spans_five_domains_with_balanced_labels():
    raw = read_rows(sample_path("shp"))
    assert len(raw) == 150
    assert set(raw[0]) == set(shp.COLUMNS)
    assert Counter(r["labels"] for r in raw) == Counter({0: 75, 1: 75})
    domains = Counter(r["domain"] for r in raw)
    assert len(domains) == 5 and all(d.endswith("_train") for d in domains)
    assert len(load(DataSpec(source="shp", path="sample", min_score_ratio=1.0), "preference").rows) == 150
    for domain in domains:
        assert len(load(DataSpec(source="shp", path="sample", domains=[domain]), "preference").rows) == 24
