"""The arithmetic source: question/solution/answer rows -> SFT rows, its answer column kept for reward rules, a bad
row named by its column; the bundled sample; and the tiny model not pretrained on it.

    python -m pytest tests/test_data_arithmetic.py -q
"""

from __future__ import annotations

import pytest

from studio import data
from studio.config import DataSpec
from studio.errors import DataError
from studio.modeling import model_files
from tests.conftest import write_jsonl

ROWS = [
    {"question": "What is 7 + 2?", "solution": "7 + 2: 8 (1), 9 (0). The answer is 9.", "answer": "9"},
    {"question": "What is 3 - 1?", "solution": "3 - 1: 2 (0). The answer is 2.", "answer": 2},
    {"question": "What is 5 + 1?", "solution": "5 + 1: 6 (0). The answer is 7.", "answer": "6"},
    {"question": "What is 4 + 0?", "solution": "4 + 0: nothing to count. The answer is 4.", "answer": "four"},
]


def test_rows_convert_and_keep_their_answer_column(tmp_path):
    loaded = data.load(DataSpec(source="arithmetic", path=str(write_jsonl(tmp_path / "a.jsonl", ROWS))), "sft")
    assert loaded.rows == [
        {
            "prompt": [{"role": "user", "content": "What is 7 + 2?"}],
            "completion": [{"role": "assistant", "content": "7 + 2: 8 (1), 9 (0). The answer is 9."}],
        },
        {
            "prompt": [{"role": "user", "content": "What is 3 - 1?"}],
            "completion": [{"role": "assistant", "content": "3 - 1: 2 (0). The answer is 2."}],
        },
    ]
    assert [c["answer"] for c in loaded.columns] == ["9", 2]  # as written: reward functions get the raw value
    assert loaded.row_numbers == [1, 2]
    assert loaded.problems == [
        "a.jsonl row 3: column 'solution': ends with 7, not the answer 6",
        "a.jsonl row 4: column 'answer': expected a number, got 'four'",
    ]


def test_a_bad_row_in_fail_mode_stops_the_load_naming_row_and_column(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ROWS)
    with pytest.raises(DataError, match=r"^a\.jsonl row 3: column 'solution': ends with 7, not the answer 6$"):
        data.load(DataSpec(source="arithmetic", path=str(path), on_bad_rows="fail"), "sft")


def test_the_sample_holds_every_single_digit_sum_and_difference_once():
    loaded = data.load(DataSpec(source="arithmetic", path="sample"), "sft")
    questions = [row["prompt"][0]["content"] for row in loaded.rows]
    assert len(questions) == len(set(questions)) == 200 and not loaded.dropped
    assert {c["answer"] for c in loaded.columns} == {str(n) for n in range(-9, 19)}


def test_the_tiny_model_is_not_pretrained_on_the_arithmetic_sample():
    corpus = model_files.tiny_corpus()
    assert corpus and not any("The answer is" in doc and "(0)" in doc for doc in corpus)
