"""studio/data/files.py and studio.data.load with the Dolly source: every file format, row checks, clear errors.

python -m pytest tests/test_data_files.py -q
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from studio.config import DataSpec
from studio.data import Loaded, dolly, held_out_rows, load, prepare, sample_path, split_eval, split_rows
from studio.data.files import read_rows
from studio.errors import ConfigError, DataError
from tests.conftest import dolly_row, write_jsonl

REPO = Path(__file__).resolve().parent.parent

# Three Dolly rows in the raw schema: one with context, one without, one whose context is only spaces;
# text with surrounding whitespace, newlines, quotes, commas and non-ASCII characters.
RAW = [
    {
        "instruction": "  Summarize the passage in one sentence. ",
        "context": 'Mossgate is a town on the river Ouse Minor.\nIt is known for clock making, "fine" ones. ',
        "response": " Mossgate is a clock-making town on the Ouse Minor.\n",
        "category": "summarization",
    },
    {
        "instruction": "What is the capital of France?",
        "context": "",
        "response": "Paris, a city of about 2.1 million people — café included.",
        "category": "open_qa",
    },
    {
        "instruction": "Name three colours, comma separated.",
        "context": "   ",
        "response": "red, green, blue",
        "category": "brainstorming",
    },
]

EXPECTED = [
    {
        "prompt": [
            {
                "role": "user",
                "content": "Summarize the passage in one sentence.\n\nContext:\n"
                "Mossgate is a town on the river Ouse Minor.\n"
                'It is known for clock making, "fine" ones.',
            }
        ],
        "completion": [{"role": "assistant", "content": "Mossgate is a clock-making town on the Ouse Minor."}],
    },
    {
        "prompt": [{"role": "user", "content": "What is the capital of France?"}],
        "completion": [{"role": "assistant", "content": "Paris, a city of about 2.1 million people — café included."}],
    },
    {
        "prompt": [{"role": "user", "content": "Name three colours, comma separated."}],
        "completion": [{"role": "assistant", "content": "red, green, blue"}],
    },
]


def write_format(directory: Path, suffix: str, rows: list[dict]) -> Path:
    path = directory / f"dolly{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, rows)
    elif suffix == ".jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif suffix == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        raise AssertionError(suffix)
    return path


def spec(path, **changes) -> DataSpec:
    return DataSpec(source="dolly", path=str(path), **changes)


def data_error(path, **changes) -> str:
    with pytest.raises(DataError) as info:
        load(spec(path, **changes))
    message = str(info.value)
    assert "\n" not in message, message
    return message


FORMATS = [".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"]


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("suffix", FORMATS)
def test_read_rows_gives_the_raw_rows_in_every_format(tmp_path, suffix):
    path = write_format(tmp_path, suffix, RAW)
    assert read_rows(path) == RAW


@pytest.mark.parametrize("suffix", FORMATS)
def test_load_gives_the_same_rows_in_every_format(tmp_path, suffix):
    path = write_format(tmp_path, suffix, RAW)
    loaded = load(spec(path))
    assert isinstance(loaded, Loaded)
    assert loaded.rows == EXPECTED
    assert loaded.source == "dolly" and loaded.format == "sft"
    assert loaded.origin == str(path)
    assert sum(loaded.dropped.values()) == 0 and loaded.problems == []


def test_all_formats_load_identically(tmp_path):
    results = []
    for suffix in FORMATS:
        directory = tmp_path / suffix.strip(".").replace(".", "-")
        directory.mkdir()
        results.append(load(spec(write_format(directory, suffix, RAW))).rows)
    assert all(rows == results[0] for rows in results)


def test_json_wrapped_in_a_split_name(tmp_path):
    path = tmp_path / "dolly.json"
    path.write_text(json.dumps({"train": RAW}), encoding="utf-8")
    assert load(spec(path)).rows == EXPECTED


def test_jsonl_with_byte_order_mark_and_blank_lines(tmp_path):
    path = tmp_path / "dolly.jsonl"
    body = "\n\n".join(json.dumps(r) for r in RAW) + "\n\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert load(spec(path)).rows == EXPECTED


def test_suffix_is_case_insensitive(tmp_path):
    path = write_jsonl(tmp_path / "DOLLY.JSONL", RAW)
    assert load(spec(path)).rows == EXPECTED


# ---------------------------------------------------------------- conversion


def test_row_with_context_folds_it_into_the_prompt(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"instruction": "Q?", "context": "C.", "response": "A.", "category": "closed_qa"}]
    )
    assert load(spec(path)).rows == [
        {
            "prompt": [{"role": "user", "content": "Q?\n\nContext:\nC."}],
            "completion": [{"role": "assistant", "content": "A."}],
        }
    ]


def test_row_without_context_column_is_fine(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": " Q? ", "response": " A. "}])
    assert load(spec(path)).rows == [
        {"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant", "content": "A."}]}
    ]


def test_null_context_is_no_context(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "Q?", "context": None, "response": "A."}])
    assert load(spec(path)).rows[0]["prompt"] == [{"role": "user", "content": "Q?"}]


# ---------------------------------------------------------------- filters and limit


def many_rows() -> list[dict]:
    categories = ["open_qa", "summarization", "open_qa", "brainstorming", "open_qa", "classification"]
    return [
        {"instruction": f"instruction {i}", "context": "", "response": f"response {i}", "category": c}
        for i, c in enumerate(categories)
    ]


def prompts(loaded: Loaded) -> list[str]:
    return [row["prompt"][0]["content"] for row in loaded.rows]


def test_category_filter_keeps_only_those(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    assert prompts(load(spec(path, categories=["open_qa"]))) == ["instruction 0", "instruction 2", "instruction 4"]
    assert prompts(load(spec(path, categories=["summarization", "classification"]))) == [
        "instruction 1",
        "instruction 5",
    ]


def test_filtered_rows_are_not_counted_as_dropped(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    loaded = load(spec(path, categories=["brainstorming"]))
    assert len(loaded.rows) == 1 and sum(loaded.dropped.values()) == 0


def test_unknown_category_raises_config_error_naming_it(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    with pytest.raises(ConfigError) as info:
        load(spec(path, categories=["open_qa", "poetry"]))
    message = str(info.value)
    assert "poetry" in message and "data.categories" in message
    assert "open_qa" in message  # the allowed ones are listed
    assert "\n" not in message


def test_category_filter_that_matches_nothing_is_a_data_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    assert "no usable rows" in data_error(path, categories=["general_qa"])


@pytest.mark.parametrize("limit, expected", [(1, 1), (4, 4), (6, 6), (100, 6)])
def test_limit_caps_kept_rows(tmp_path, limit, expected):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    loaded = load(spec(path, limit=limit))
    assert prompts(loaded) == [f"instruction {i}" for i in range(expected)]


def test_limit_applies_after_the_category_filter(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", many_rows())
    assert prompts(load(spec(path, categories=["open_qa"], limit=2))) == ["instruction 0", "instruction 2"]


# ---------------------------------------------------------------- bad rows


GOOD = {"instruction": "Good question?", "context": "", "response": "Good answer.", "category": "open_qa"}
BAD_ROWS = [
    GOOD,  # row 1
    {"instruction": "No response here", "context": "", "category": "open_qa"},  # row 2
    {"instruction": "Empty response", "context": "", "response": "  ", "category": "open_qa"},  # row 3
    {"instruction": 42, "context": "", "response": "A number asked", "category": "open_qa"},  # row 4
    dict(GOOD, instruction="Another good one?"),  # row 5
]


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS)
    loaded = load(spec(path))  # on_bad_rows="drop" is the default
    assert prompts(loaded) == ["Good question?", "Another good one?"]
    assert loaded.dropped == Counter(
        {"response missing": 1, "response empty": 1, "instruction expected text, got int": 1}
    )
    assert loaded.problems == [
        "bad.jsonl row 2: column 'response': missing",
        "bad.jsonl row 3: column 'response': empty",
        "bad.jsonl row 4: column 'instruction': expected text, got int",
    ]


def test_drop_is_the_default():
    assert DataSpec().on_bad_rows == "drop"


def test_problems_are_capped_but_every_drop_counted(tmp_path):
    rows = [GOOD] + [{"instruction": "x", "response": ""} for _ in range(9)]
    loaded = load(spec(write_jsonl(tmp_path / "bad.jsonl", rows)), keep_problems=3)
    assert loaded.dropped == Counter({"response empty": 9})
    assert loaded.problems == [f"bad.jsonl row {n}: column 'response': empty" for n in (2, 3, 4)]


def test_row_numbers_count_rows_skipped_by_the_filter(tmp_path):
    rows = [
        dict(GOOD, category="summarization"),
        dict(GOOD, category="summarization"),
        {"instruction": "x", "response": None, "category": "open_qa"},
        GOOD,
    ]
    loaded = load(spec(write_jsonl(tmp_path / "bad.jsonl", rows), categories=["open_qa"]))
    assert loaded.problems == ["bad.jsonl row 3: column 'response': missing"]


@pytest.mark.parametrize(
    "rows, row, column",
    [
        (BAD_ROWS, 2, "response"),
        (BAD_ROWS[2:], 1, "response"),
        (BAD_ROWS[3:], 1, "instruction"),
    ],
)
def test_fail_mode_names_file_row_and_column(tmp_path, rows, row, column):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    message = data_error(path, on_bad_rows="fail")
    assert message.startswith(f"bad.jsonl row {row}: column '{column}'")


def test_fail_mode_on_a_csv_missing_a_column(tmp_path):
    path = tmp_path / "dolly.csv"
    path.write_text("instruction,context,category\nWhat?,,open_qa\n", encoding="utf-8")
    assert data_error(path, on_bad_rows="fail") == "dolly.csv row 1: column 'response': missing"


def test_fail_mode_with_good_rows_loads(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", RAW)
    assert load(spec(path, on_bad_rows="fail")).rows == EXPECTED


def test_every_row_bad_is_a_data_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS[1:4])
    message = data_error(path)
    assert str(path) in message
    assert "no usable rows" in message
    assert "bad.jsonl row 1: column 'response': missing" in message  # the first problem, to act on


def test_parquet_with_wrong_types_is_dropped_by_reason(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"instruction": [1, 2], "response": ["a", "b"]}), path)
    assert "d.parquet row 1: column 'instruction': expected text, got int" in data_error(path)


# ---------------------------------------------------------------- broken files


def lines_of(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_truncated_last_line_names_line_and_cut_off(tmp_path):
    path = tmp_path / "cut.jsonl"
    whole = lines_of(RAW)
    path.write_text(whole[: whole.rindex('"response"') + 15], encoding="utf-8")  # mid-object, no newline
    message = data_error(path)
    assert str(path) in message
    assert "line 3" in message and "cut off" in message


def test_complete_last_line_without_newline_is_fine(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(lines_of(RAW).rstrip("\n"), encoding="utf-8")
    assert load(spec(path)).rows == EXPECTED


def test_windows_line_endings(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(lines_of(RAW).replace("\n", "\r\n").encode("utf-8"))
    assert load(spec(path)).rows == EXPECTED


def test_corrupt_middle_line_names_the_line_and_is_not_cut_off(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RAW[0]) + '\n{"instruction": oops\n' + json.dumps(RAW[2]) + "\n", encoding="utf-8")
    message = data_error(path)
    assert f"{path} line 2: not valid JSON" in message
    assert "cut off" not in message


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps(RAW[0]) + "\n[1, 2]\n", encoding="utf-8")
    message = data_error(path)
    assert f"{path} line 2" in message and "list" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    message = data_error(path)
    assert str(path) in message and "empty" in message


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "dolly.txt"
    path.write_text(lines_of(RAW), encoding="utf-8")
    message = data_error(path)
    assert str(path) in message and "unsupported" in message
    assert ".jsonl" in message and ".parquet" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "dolly.jsonl"
    message = data_error(path)
    assert message == f"{path}: no such file"


def test_directory_is_not_a_file(tmp_path):
    path = tmp_path / "folder.jsonl"
    path.mkdir()
    assert str(path) in data_error(path)


def test_binary_bytes_in_jsonl(tmp_path):
    path = tmp_path / "image.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    message = data_error(path)
    assert str(path) in message and "UTF-8" in message


def test_html_page_saved_as_jsonl(tmp_path):
    path = tmp_path / "dolly.jsonl"
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>Rate limited</title></head>\n"
        "<body><p>Too many requests</p></body></html>\n",
        encoding="utf-8",
    )
    message = data_error(path)
    assert (
        message == f"{path}: an HTML page (a web page saved instead of the data file?), not JSON lines (one JSON "
        "object per line)"
    )
    assert "Expecting value" not in message


@pytest.mark.parametrize(
    "name, text, kind",
    [
        ("rows.json", "<!doctype html><html><body>Not found</body></html>", "an HTML page"),
        ("rows.jsonl", "<?xml version='1.0'?><rows><row/></rows>", "an XML document"),
        ("rows.jsonl", "prompt,response\nHi,Hello\n", "a CSV table (name it .csv)"),
    ],
)
def test_a_file_that_is_not_json_is_named_for_what_it_looks_like(tmp_path, name, text, kind):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    message = data_error(path)
    assert message.startswith(f"{path}: {kind}") and "Expecting" not in message


def test_a_json_mistake_past_the_first_character_still_names_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "Hi", "response": "Hello"}\n{"prompt": "Hi", response}\n', encoding="utf-8")
    assert data_error(path).startswith(f"{path} line 2: not valid JSON (Expecting property name")


def test_not_gzip_with_gz_suffix(tmp_path):
    path = tmp_path / "dolly.jsonl.gz"
    path.write_text(lines_of(RAW), encoding="utf-8")
    assert str(path) in data_error(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "dolly.jsonl.gz"
    data = gzip.compress(lines_of(RAW * 50).encode("utf-8"))
    path.write_bytes(data[: len(data) // 2])
    assert str(path) in data_error(path)


def test_garbage_parquet(tmp_path):
    path = tmp_path / "dolly.parquet"
    path.write_bytes(b"this is not parquet at all\n" * 10)
    assert str(path) in data_error(path)


def test_invalid_json_file_names_the_line(tmp_path):
    path = tmp_path / "dolly.json"
    path.write_text('[\n  {"instruction": "a"},\n  {oops}\n]\n', encoding="utf-8")
    assert f"{path} line 3: not valid JSON" in data_error(path)


@pytest.mark.parametrize("body", ['{"instruction": "a"}', "[1, 2]", '"text"'])
def test_json_that_is_not_a_list_of_objects(tmp_path, body):
    path = tmp_path / "dolly.json"
    path.write_text(body, encoding="utf-8")
    assert str(path) in data_error(path)


def test_csv_row_with_more_values_than_columns(tmp_path):
    path = tmp_path / "dolly.csv"
    path.write_text("instruction,response\nQ,A\nQ,A,extra\n", encoding="utf-8")
    message = data_error(path)
    assert f"{path} line 3" in message


# ---------------------------------------------------------------- bundled sample


def test_bundled_sample_loads_whole():
    loaded = load(DataSpec(source="dolly", path="sample"))
    assert len(loaded.rows) == 200
    assert sum(loaded.dropped.values()) == 0 and loaded.problems == []
    assert loaded.origin == str(sample_path("dolly"))
    for row in loaded.rows:
        assert [m["role"] for m in row["prompt"]] == ["user"]
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        assert row["prompt"][0]["content"] and row["completion"][0]["content"]


def test_bundled_sample_has_every_dolly_category():
    raw = read_rows(sample_path("dolly"))
    assert {row["category"] for row in raw} == set(dolly.CATEGORIES)
    counts = {c: len(load(DataSpec(path="sample", categories=[c])).rows) for c in dolly.CATEGORIES}
    assert all(n >= 1 for n in counts.values()), counts
    assert sum(counts.values()) == 200


def test_bundled_sample_with_limit():
    assert len(load(DataSpec(path="sample", limit=17)).rows) == 17


# ---------------------------------------------------------------- split_eval


def numbered(n: int) -> list[dict]:
    return [{"id": i} for i in range(n)]


def ids(rows) -> list[int]:
    return [r["id"] for r in rows]


def test_split_is_deterministic_for_a_seed():
    rows = numbered(100)
    assert split_eval(rows, 0.1, seed=3) == split_eval(rows, 0.1, seed=3)
    assert split_eval(rows, 0.1, seed=3) != split_eval(rows, 0.1, seed=4)


@pytest.mark.parametrize("n, fraction", [(100, 0.05), (200, 0.1), (37, 0.2), (10, 0.01), (3, 0.1), (2, 0.49)])
def test_split_is_disjoint_complete_and_sized(n, fraction):
    rows = numbered(n)
    train, evals = split_eval(rows, fraction, seed=42)
    assert not set(ids(train)) & set(ids(evals))
    assert sorted(ids(train) + ids(evals)) == list(range(n))
    assert len(evals) == max(1, round(n * fraction))
    assert len(train) >= 1


def test_split_shuffles():
    train, evals = split_eval(numbered(100), 0.1, seed=42)
    assert ids(evals) != list(range(90, 100))


def test_split_does_not_change_the_input():
    rows = numbered(20)
    split_eval(rows, 0.2, seed=1)
    assert rows == numbered(20)


@pytest.mark.parametrize("n", [0, 1, 50])
def test_fraction_zero_gives_no_eval_rows(n):
    train, evals = split_eval(numbered(n), 0.0, seed=42)
    assert evals == []
    assert ids(train) == list(range(n))


def test_split_rows_splits_as_split_eval_and_keeps_each_rows_number_in_the_source():
    rows = numbered(30)
    loaded = Loaded("dolly", "sft", "/data/x.jsonl", rows, Counter({"bad": 2}), ["p"], [2 * i + 5 for i in range(30)])
    train, held_out = split_rows(loaded, 0.2, seed=7)
    assert (train.rows, held_out.rows) == split_eval(rows, 0.2, seed=7)
    for part in (train, held_out):
        assert part.row_numbers == [2 * row["id"] + 5 for row in part.rows]
        assert (part.source, part.format, part.origin, part.dropped) == ("dolly", "sft", "/data/x.jsonl", {"bad": 2})
    assert loaded.rows == numbered(30)  # the loaded rows are left as they were


def test_the_online_stages_split_prompts_so_rows_sharing_a_prompt_stay_on_one_side():
    # 12 prompts, each in 1 to 3 preference pairs (as SHP gives several pairs per post): 24 rows
    rows, numbers = [], []
    for p in range(12):
        for k in range(1 + p % 3):
            rows.append({"prompt": [{"role": "user", "content": f"P{p}"}], "pair": k})
            numbers.append(len(numbers) + 1)
    loaded = Loaded("shp", "preference", "/data/shp.jsonl", rows, Counter(), [], numbers)
    for stage in ("ppo", "rejection", "grpo", "rloo"):
        train, held_out = split_rows(loaded, 0.25, seed=5, stage=stage)
        trained = {row["prompt"][0]["content"] for row in train.rows}
        held = [row["prompt"][0]["content"] for row in held_out.rows]
        assert len(set(held)) == 3 and not trained & set(held)  # a quarter of the 12 prompts, none trained on
        assert sorted(train.row_numbers + held_out.row_numbers) == numbers
        assert held == sorted(held, key=held.index)  # a held-out prompt's rows come together
    # the other stages split rows, as before (split_eval's shuffle over the rows)
    train, held_out = split_rows(loaded, 0.25, seed=5, stage="dpo")
    assert (train.rows, held_out.rows) == split_eval(rows, 0.25, seed=5)


@pytest.fixture
def held_out_run(studio_home, tmp_path):
    """(config, run, train, held out): 20 Dolly rows of which row 4 is dropped (no response), prepared and split
    by data.prepare for a run folder, as a stage's worker does before it trains."""
    from studio.config import RunConfig, TrainSpec
    from studio.modeling import models
    from studio.runs.rundir import RunDir

    raw = [dolly_row(f"Question {n}?", "" if n == 4 else f"Answer {n}.") for n in range(1, 21)]
    path = write_jsonl(tmp_path / "mine.jsonl", raw)
    config = RunConfig(data=DataSpec(path=str(path), eval_fraction=0.2), train=TrainSpec(seed=3))
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    train, held_out = prepare(config, "sft", models.load_tokenizer(config.model), run)
    return config, run, train, held_out


def test_a_run_records_the_rows_it_held_out_and_they_read_back(held_out_run):
    config, run, train, held_out = held_out_run
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert report["held_out"] == held_out.row_numbers and len(held_out.row_numbers) == round(19 * 0.2)
    assert sorted(report["held_out"] + train.row_numbers) == [n for n in range(1, 21) if n != 4]
    assert (report["rows"], report["train_rows"], report["held_out_rows"]) == (19, 15, 4)
    assert (report["source"], report["format"], report["origin"]) == ("dolly", "sft", config.data.path)
    assert (report["dropped"], report["eval_fraction"], report["seed"]) == ({"response empty": 1}, 0.2, 3)
    # Each held-out row is the source row of that number (Question n), in the split's order.
    assert [row["prompt"][0]["content"] for row in held_out.rows] == [f"Question {n}?" for n in report["held_out"]]
    assert held_out_rows(run.path, config.data) == held_out.rows
    assert held_out_rows(run.path / "nowhere", config.data) is None  # a run without the record


def test_held_out_rows_refuse_a_source_changed_since_the_run(held_out_run):
    config, run, _, held_out = held_out_run
    path = Path(config.data.path)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    edited = [dict(row) for row in raw]
    edited[held_out.row_numbers[0] - 1]["response"] = "Edited since."
    write_jsonl(path, edited)
    with pytest.raises(DataError) as err:
        held_out_rows(run.path, config.data)
    assert str(err.value) == (
        f"mine.jsonl: the 4 rows run {run.id} held out are no longer the same (the data changed since it trained)"
    )
    write_jsonl(path, raw[: max(held_out.row_numbers) - 1])  # the file cut short: a held-out row is gone
    with pytest.raises(DataError, match="no longer the same"):
        held_out_rows(run.path, config.data)


# ---------------------------------------------------------------- hub out of reach


HUB_SCRIPT = """
import json
import sys
from studio.config import DataSpec
from studio.data import load
from studio.errors import DataError
try:
    loaded = load(DataSpec(source="dolly"))
except DataError as err:
    print("DataError: " + json.dumps(str(err)))
    sys.exit(0)
print("loaded without error: " + repr(loaded.origin))
sys.exit(1)
"""


def test_hub_unreachable_says_what_to_do(tmp_path, monkeypatch):
    # datasets and huggingface_hub read HF_*_OFFLINE when first imported, so this runs in a fresh process.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("DataError: ")]
    assert len(lines) == 1, result.stdout
    message = json.loads(lines[0][len("DataError: ") :])
    assert "\n" not in message
    assert "databricks/databricks-dolly-15k" in message
    assert "data.path" in message
