"""studio/data/hh_rlhf.py: HH-RLHF transcripts -> prompt messages plus chosen and rejected answers.

python -m pytest tests/test_data_hh_rlhf.py -q
"""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from studio.config import DataSpec
from studio.data import hh_rlhf, load, sample_path
from studio.data.files import read_rows
from studio.errors import ConfigError, DataError
from tests.conftest import write_jsonl


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))  # load() caches under the home


def spec(path, **changes) -> DataSpec:
    return DataSpec(source="hh-rlhf", path=str(path), **changes)


def loaded(path, **changes):
    return load(spec(path, **changes), "preference", use_cache=False)


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


SINGLE = {
    "chosen": "\n\nHuman: What is 2 plus 3?\n\nAssistant: Sure! 2 plus 3 is 5.",
    "rejected": "\n\nHuman: What is 2 plus 3?\n\nAssistant: Figure it out yourself.",
}
SINGLE_ROW = {
    "prompt": [user("What is 2 plus 3?")],
    "chosen": [assistant("Sure! 2 plus 3 is 5.")],
    "rejected": [assistant("Figure it out yourself.")],
}

SHARED = (
    "\n\nHuman: Can you help me write a note?\n\nAssistant: Of course. Here is one:\n\nDear Ada,\n"
    "thank you.\nWarm wishes\n\nHuman: Thanks!  Is a fox a mammal?  \n\nAssistant: Yes, a fox is a mammal."
    "\n\nHuman: And a robin?"
)
MULTI = {
    "chosen": SHARED + "\n\nAssistant: A robin is a bird. I hope that helps!",
    "rejected": SHARED + "\n\nAssistant: Stop bothering me with this.",
}
MULTI_ROW = {
    "prompt": [
        user("Can you help me write a note?"),
        assistant("Of course. Here is one:\n\nDear Ada,\nthank you.\nWarm wishes"),
        user("Thanks!  Is a fox a mammal?"),
        assistant("Yes, a fox is a mammal."),
        user("And a robin?"),
    ],
    "chosen": [assistant("A robin is a bird. I hope that helps!")],
    "rejected": [assistant("Stop bothering me with this.")],
}


# ---------------------------------------------------------------- conversion


def test_single_turn(tmp_path):
    assert loaded(write_jsonl(tmp_path / "hh.jsonl", [SINGLE])).rows == [SINGLE_ROW]


def test_multi_turn_prompt_is_every_shared_message(tmp_path):
    result = loaded(write_jsonl(tmp_path / "hh.jsonl", [MULTI, SINGLE]))
    assert result.rows == [MULTI_ROW, SINGLE_ROW]
    assert result.rows[0]["prompt"] == MULTI_ROW["prompt"]  # user/assistant/user/assistant/user


def test_first_turn_without_the_leading_blank_line(tmp_path):
    row = {
        "chosen": "Human: What is 2 plus 3?\n\nAssistant: Sure! 2 plus 3 is 5.",
        "rejected": "  \n\nHuman: What is 2 plus 3?\n\nAssistant: Figure it out yourself.\n",
    }
    assert loaded(write_jsonl(tmp_path / "hh.jsonl", [row])).rows == [SINGLE_ROW]


def test_marker_words_inside_a_turn_do_not_split_it():
    transcript = (
        "\n\nHuman: In my script a line reads Human: hello. Is that odd?\n\nAssistant: Not at all; "
        "Assistant: is just a word there.\nHuman: can start a line too."
    )
    assert hh_rlhf.parse(transcript, "chosen") == [
        user("In my script a line reads Human: hello. Is that odd?"),
        assistant("Not at all; Assistant: is just a word there.\nHuman: can start a line too."),
    ]


def test_final_answer_without_a_space_after_the_marker():
    assert hh_rlhf.parse("\n\nHuman: hi\n\nAssistant:hello", "chosen") == [user("hi"), assistant("hello")]


def test_csv_file_loads_the_same(tmp_path):
    path = tmp_path / "hh.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["chosen", "rejected"])
        writer.writeheader()
        writer.writerows([MULTI, SINGLE])
    assert loaded(path).rows == [MULTI_ROW, SINGLE_ROW]


# ---------------------------------------------------------------- bad rows


def pair(chosen: str, rejected: str) -> dict:
    return {"chosen": chosen, "rejected": rejected}


OK = "\n\nHuman: Hi there?\n\nAssistant: Hello! How can I help?"
RUDE = "\n\nHuman: Hi there?\n\nAssistant: Go away."
BAD_ROWS = [
    pair(OK, RUDE),  # row 1: good
    pair("Just some text with no turns at all.", RUDE),  # row 2
    pair("Preamble first.\n\nHuman: Hi there?\n\nAssistant: Hello!", RUDE),  # row 3
    pair("\n\nAssistant: I speak first.\n\nHuman: Hi there?", RUDE),  # row 4
    pair("\n\nHuman: Hi there?\n\nHuman: Hello?\n\nAssistant: Hello!", RUDE),  # row 5
    pair(OK, "\n\nHuman: Hi there?\n\nAssistant: Go away.\n\nHuman: Rude!"),  # row 6
    pair(OK, "\n\nHuman: Hi there?\n\nAssistant:   "),  # row 7
    pair("\n\nHuman: Hi there?\n\nAssistant: Hello! How can I help?", OK),  # row 8: same answers
    pair(OK, "\n\nHuman: Hello there?\n\nAssistant: Go away."),  # row 9: other question
    pair("\n\nHuman: \n\nAssistant: Hello!", "\n\nHuman: \n\nAssistant: Go away."),  # row 10
    {"chosen": OK},  # row 11
    pair(OK, ["not", "text"]),  # row 12
    pair(OK + "\n\nHuman: Thanks!\n\nAssistant: You are welcome.", RUDE),  # row 13: lengths differ
    pair("\n\nHuman: Second good?\n\nAssistant: Yes, gladly.", "Human: Second good?\n\nAssistant: No."),  # 14
]


def test_every_drop_reason_is_counted(tmp_path):
    result = loaded(write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS))
    assert [row["prompt"] for row in result.rows] == [[user("Hi there?")], [user("Second good?")]]
    assert result.dropped == Counter(
        {
            "chosen unparseable transcript: no Human/Assistant turns": 1,
            "chosen unparseable transcript: does not start with a Human turn": 2,
            "chosen unparseable transcript: turns do not alternate Human/Assistant": 1,
            "rejected does not end with an Assistant answer": 1,
            "rejected empty final answer": 1,
            "rejected final answer identical to chosen": 1,
            "rejected conversation differs from chosen before the final answer": 2,
            "chosen empty turn before the final answer": 1,
            "rejected missing": 1,
            "rejected expected text, got list": 1,
        }
    )
    assert result.problems == [
        "bad.jsonl row 2: column 'chosen': unparseable transcript: no Human/Assistant turns",
        "bad.jsonl row 3: column 'chosen': unparseable transcript: does not start with a Human turn",
        "bad.jsonl row 4: column 'chosen': unparseable transcript: does not start with a Human turn",
        "bad.jsonl row 5: column 'chosen': unparseable transcript: turns do not alternate Human/Assistant",
        "bad.jsonl row 6: column 'rejected': does not end with an Assistant answer",
    ]


def test_reasons_are_stable_phrases_whatever_the_text(tmp_path):
    rows = [
        pair(f"\n\nHuman: question {i}?\n\nAssistant: answer {i}", f"\n\nHuman: other {i}?\n\nAssistant: no")
        for i in range(4)
    ] + [pair(OK, RUDE)]
    result = loaded(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert result.dropped == Counter({"rejected conversation differs from chosen before the final answer": 4})


@pytest.mark.parametrize(
    "rows, row, column, reason",
    [
        (BAD_ROWS, 2, "chosen", "unparseable transcript"),
        (BAD_ROWS[5:], 1, "rejected", "does not end with an Assistant answer"),
        (BAD_ROWS[7:], 1, "rejected", "final answer identical to chosen"),
        (BAD_ROWS[8:], 1, "rejected", "conversation differs from chosen"),
    ],
)
def test_fail_mode_names_file_row_and_column(tmp_path, rows, row, column, reason):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        loaded(path, on_bad_rows="fail")
    message = str(info.value)
    assert message.startswith(f"bad.jsonl row {row}: column '{column}': {reason}")
    assert "\n" not in message


def test_every_row_bad_is_a_data_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS[1:4])
    with pytest.raises(DataError) as info:
        loaded(path)
    assert "no usable rows" in str(info.value) and "bad.jsonl row 1: column 'chosen'" in str(info.value)


# ---------------------------------------------------------------- subsets and hub


@pytest.mark.parametrize("subset", ["red-team-attempts", "helpful", "Helpful-Base"])
def test_unknown_subset_is_refused(tmp_path, subset):
    path = write_jsonl(tmp_path / "hh.jsonl", [SINGLE])
    with pytest.raises(ConfigError) as info:
        loaded(path, subset=subset)
    message = str(info.value)
    assert message.startswith(f"data.subset = '{subset}'")
    assert all(name in message for name in hh_rlhf.SUBSETS)
    assert "\n" not in message


@pytest.mark.parametrize("subset", [*hh_rlhf.SUBSETS, None])
def test_known_subsets_pass_and_go_to_the_hub_as_a_data_directory(monkeypatch, subset):
    calls = []
    monkeypatch.setattr(hh_rlhf, "load_hub_rows", lambda *args, **kwargs: calls.append((args, kwargs)) or [SINGLE])
    result = load(DataSpec(source="hh-rlhf", subset=subset), "preference", use_cache=False)
    assert calls == [(("Anthropic/hh-rlhf", None), {"data_dir": subset})]
    assert result.rows == [SINGLE_ROW] and result.origin == "Anthropic/hh-rlhf"


# ---------------------------------------------------------------- bundled sample


def test_bundled_sample_loads_whole():
    result = load(DataSpec(source="hh-rlhf", path="sample"), "preference", use_cache=False)
    assert len(result.rows) == 150
    assert sum(result.dropped.values()) == 0 and result.problems == []
    assert Counter(len(row["prompt"]) for row in result.rows) == Counter({1: 90, 3: 40, 5: 20})
    for row in result.rows:
        roles = [m["role"] for m in row["prompt"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]


def test_bundled_sample_is_raw_transcripts():
    raw = read_rows(sample_path("hh-rlhf"))
    assert len(raw) == 150
    assert all(set(row) == {"chosen", "rejected"} for row in raw)
    assert all(row["chosen"].startswith("\n\nHuman: ") for row in raw)
    assert any(
        "\n" in turn["content"]
        for row in load(DataSpec(source="hh-rlhf", path="sample"), "preference").rows
        for turn in row["chosen"]
    )
