"""studio/data/alpaca.py: Alpaca rows -> SFT rows, the input folded into the prompt; bad rows; the sample.

python -m pytest tests/test_data_alpaca.py -q
"""

from __future__ import annotations

from collections import Counter

import pytest

from studio.config import DataSpec
from studio.data import alpaca, load, sample_path
from studio.data.files import read_rows
from studio.errors import ConfigError, DataError
from tests.conftest import write_jsonl


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))  # load() caches under the home


def alpaca_row(instruction: str, extra: str, output: str) -> dict:
    """A raw row; `text` is rendered differently from what the loader builds, so using it would show."""
    rendered = f"PRE-RENDERED\n### Instruction:\n{instruction}\n### Input:\n{extra}\n### Response:\n{output}"
    return {"instruction": instruction, "input": extra, "output": output, "text": rendered}


RAW = [
    alpaca_row("  Sort these numbers from smallest to largest. ", " 12, 5, 30\n", " 5, 12, 30 "),
    alpaca_row('Give the opposite of the word "early".', "", 'The opposite of "early" is "late".'),
    alpaca_row("Name a café in Mossgate.", "   ", "Crumb and Crust — on the market square."),
]
EXPECTED = [
    {
        "prompt": [{"role": "user", "content": "Sort these numbers from smallest to largest.\n\nInput:\n12, 5, 30"}],
        "completion": [{"role": "assistant", "content": "5, 12, 30"}],
    },
    {
        "prompt": [{"role": "user", "content": 'Give the opposite of the word "early".'}],
        "completion": [{"role": "assistant", "content": 'The opposite of "early" is "late".'}],
    },
    {
        "prompt": [{"role": "user", "content": "Name a café in Mossgate."}],
        "completion": [{"role": "assistant", "content": "Crumb and Crust — on the market square."}],
    },
]


def spec(path, **changes) -> DataSpec:
    return DataSpec(source="alpaca", path=str(path), **changes)


def loaded(path, **changes):
    return load(spec(path, **changes), "sft", use_cache=False)


# ---------------------------------------------------------------- conversion


def test_rows_with_and_without_input_convert_exactly(tmp_path):
    result = loaded(write_jsonl(tmp_path / "a.jsonl", RAW))
    assert result.rows == EXPECTED
    assert result.source == "alpaca" and result.format == "sft"
    assert sum(result.dropped.values()) == 0 and result.problems == []


def test_sft_is_the_default_format(tmp_path):
    assert load(spec(write_jsonl(tmp_path / "a.jsonl", RAW)), use_cache=False).rows == EXPECTED


@pytest.mark.parametrize(
    "row",
    [
        {"instruction": "Q?", "output": "A."},  # no input column
        {"instruction": "Q?", "input": None, "output": "A.", "text": ""},  # null input
        {"instruction": "Q?", "input": "", "output": "A."},  # no text column either
    ],
)
def test_input_is_optional(tmp_path, row):
    assert loaded(write_jsonl(tmp_path / "a.jsonl", [row])).rows == [
        {"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant", "content": "A."}]}
    ]


def test_the_pre_rendered_text_column_is_not_used(tmp_path):
    result = loaded(write_jsonl(tmp_path / "a.jsonl", RAW))
    assert not any(
        "PRE-RENDERED" in m["content"] or "###" in m["content"]
        for row in result.rows
        for m in row["prompt"] + row["completion"]
    )


def test_alpaca_gives_no_preference_rows(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(spec(write_jsonl(tmp_path / "a.jsonl", RAW)), "preference", use_cache=False)
    assert "alpaca" in str(info.value) and "not preference rows" in str(info.value)


def test_hub_id_is_the_real_dataset():
    assert alpaca.HUB_ID == "tatsu-lab/alpaca"


# ---------------------------------------------------------------- bad rows


BAD = [
    alpaca_row("Good instruction?", "", "Good output."),  # row 1
    {"instruction": "No output here", "input": "", "text": "x"},  # row 2
    alpaca_row("  ", "some input", "An output for nothing."),  # row 3
    {"instruction": "Numbers as input", "input": 42, "output": "42"},  # row 4
    {"instruction": ["a", "list"], "input": "", "output": "A list asked"},  # row 5
    alpaca_row("Another good one?", "with input", "Fine."),  # row 6
]


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path):
    result = loaded(write_jsonl(tmp_path / "bad.jsonl", BAD))
    assert [row["prompt"][0]["content"] for row in result.rows] == [
        "Good instruction?",
        "Another good one?\n\nInput:\nwith input",
    ]
    assert result.dropped == Counter(
        {
            "output missing": 1,
            "instruction empty": 1,
            "input expected text, got int": 1,
            "instruction expected text, got list": 1,
        }
    )
    assert result.problems == [
        "bad.jsonl row 2: column 'output': missing",
        "bad.jsonl row 3: column 'instruction': empty",
        "bad.jsonl row 4: column 'input': expected text, got int",
        "bad.jsonl row 5: column 'instruction': expected text, got list",
    ]


@pytest.mark.parametrize("rows, row, column", [(BAD, 2, "output"), (BAD[2:], 1, "instruction"), (BAD[3:], 1, "input")])
def test_fail_mode_names_file_row_and_column(tmp_path, rows, row, column):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        loaded(path, on_bad_rows="fail")
    assert str(info.value).startswith(f"bad.jsonl row {row}: column '{column}'")


# ---------------------------------------------------------------- bundled sample


def test_bundled_sample_loads_whole():
    result = load(DataSpec(source="alpaca", path="sample"), "sft", use_cache=False)
    assert len(result.rows) == 150
    assert sum(result.dropped.values()) == 0 and result.problems == []
    assert result.origin == str(sample_path("alpaca"))
    with_input = [row for row in result.rows if "\n\nInput:\n" in row["prompt"][0]["content"]]
    assert len(with_input) == 60
    for row in result.rows:
        assert [m["role"] for m in row["prompt"]] == ["user"]
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["prompt"][0]["content"] and row["completion"][0]["content"]


def test_bundled_sample_follows_the_raw_schema():
    raw = read_rows(sample_path("alpaca"))
    assert all(list(row) == list(alpaca.COLUMNS) for row in raw)
    assert all(isinstance(row[column], str) for row in raw for column in alpaca.COLUMNS)
    assert sum(1 for row in raw if row["input"] == "") == 90  # no input is an empty string, as in the real data
    assert all(row["instruction"] in row["text"] and row["output"] in row["text"] for row in raw)
