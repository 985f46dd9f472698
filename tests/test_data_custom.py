"""studio/data/custom.py: a user's own file, its layout detected or its columns named, checked row by row.

python -m pytest tests/test_data_custom.py -q
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from studio.config import ColumnMap, DataSpec, load_config
from studio.data import load, sample_path
from studio.data.custom import detect_layout
from studio.errors import DataError
from tests.conftest import write_csv, write_jsonl


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))


def S(content: str) -> dict:
    return {"role": "system", "content": content}


def U(content: str) -> dict:
    return {"role": "user", "content": content}


def A(content: str) -> dict:
    return {"role": "assistant", "content": content}


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def spec(path: Path, **options) -> DataSpec:
    return DataSpec(source="file", path=str(path), **options)


def rows_of(path: Path, fmt: str, **options) -> list[dict]:
    return load(spec(path, **options), fmt, use_cache=False).rows


def refused(path: Path, fmt: str, **options) -> str:
    with pytest.raises(DataError) as info:
        load(spec(path, **options), fmt, use_cache=False)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- SFT layouts, one file each

SFT_CASES = {
    "trl-prompt-completion": (
        [
            {"prompt": "  What is 2 plus 2? ", "completion": " 2 plus 2 is 4.\n", "id": 7},
            {"prompt": [S("Be brief."), U("Name a colour.")], "completion": [A("Blue.")], "id": 8},
            {"prompt": [U("Hi"), A("Hello!"), U("Say it again.")], "completion": [A("first"), A("Hello!")], "id": 9},
        ],
        [
            {"prompt": [U("What is 2 plus 2?")], "completion": [A("2 plus 2 is 4.")]},
            {"prompt": [S("Be brief."), U("Name a colour.")], "completion": [A("Blue.")]},
            {"prompt": [U("Hi"), A("Hello!"), U("Say it again.")], "completion": [A("Hello!")]},
        ],
    ),
    "messages": (
        [
            {"messages": [U("What day follows Monday?"), A("Tuesday.")]},
            {"messages": [S("You are terse."), U("2 plus 3?"), A("5."), U(" And times 2? "), A(" 10. ")]},
        ],
        [
            {"prompt": [U("What day follows Monday?")], "completion": [A("Tuesday.")]},
            {"prompt": [S("You are terse."), U("2 plus 3?"), A("5."), U("And times 2?")], "completion": [A("10.")]},
        ],
    ),
    "sharegpt": (
        [
            {
                "conversations": [
                    {"from": "system", "value": "Answer in French."},
                    {"from": "human", "value": "Hello"},
                    {"from": "gpt", "value": "Bonjour"},
                ]
            },
            {
                "conversations": [
                    {"from": "human", "value": "One"},
                    {"from": "gpt", "value": "Two"},
                    {"from": "human", "value": "Three"},
                    {"from": "gpt", "value": "Four"},
                ]
            },
        ],
        [
            {"prompt": [S("Answer in French."), U("Hello")], "completion": [A("Bonjour")]},
            {"prompt": [U("One"), A("Two"), U("Three")], "completion": [A("Four")]},
        ],
    ),
    "alpaca": (
        [
            {"instruction": "Sort the numbers.", "input": "3, 1, 2", "output": "1, 2, 3"},
            {"instruction": "Name a bird.", "input": "", "output": "A robin."},
            {"instruction": "Name a fish.", "output": "A trout."},
        ],
        [
            {"prompt": [U("Sort the numbers.\n\nInput:\n3, 1, 2")], "completion": [A("1, 2, 3")]},
            {"prompt": [U("Name a bird.")], "completion": [A("A robin.")]},
            {"prompt": [U("Name a fish.")], "completion": [A("A trout.")]},
        ],
    ),
    "prompt-response": (
        [{"prompt": "Opposite of hot?", "response": "Cold."}],
        [{"prompt": [U("Opposite of hot?")], "completion": [A("Cold.")]}],
    ),
    "question-answer": (
        [{"question": "Legs on a spider?", "answer": "Eight — café-free."}],
        [{"prompt": [U("Legs on a spider?")], "completion": [A("Eight — café-free.")]}],
    ),
}


@pytest.mark.parametrize("layout", list(SFT_CASES))
def test_sft_layout_gives_canonical_rows(tmp_path, layout):
    raw, expected = SFT_CASES[layout]
    path = write_jsonl(tmp_path / "mine.jsonl", raw)
    loaded = load(spec(path), "sft", use_cache=False)
    assert loaded.rows == expected
    assert sum(loaded.dropped.values()) == 0
    columns = list(dict.fromkeys(key for row in raw for key in row))
    assert detect_layout(columns, "sft", spec(path)) == layout


PREFERENCE_CASES = {
    "trl-preference": (
        [
            {"prompt": " Capital of France? ", "chosen": "Paris.", "rejected": "Lyon."},
            {
                "prompt": [S("Be kind."), U("Rate my poem.")],
                "chosen": [A("It is lovely.")],
                "rejected": [A("It is bad.")],
            },
        ],
        [
            {"prompt": [U("Capital of France?")], "chosen": [A("Paris.")], "rejected": [A("Lyon.")]},
            {
                "prompt": [S("Be kind."), U("Rate my poem.")],
                "chosen": [A("It is lovely.")],
                "rejected": [A("It is bad.")],
            },
        ],
    ),
    "trl-implicit-preference": (
        [
            {"chosen": [U("2 plus 2?"), A("4.")], "rejected": [U("2 plus 2?"), A("5.")]},
            {
                "chosen": [S("Terse."), U("Hi"), A("Hello."), U("Bye"), A("Goodbye.")],
                "rejected": [S("Terse."), U("Hi"), A("Hello."), U("Bye"), A("Whatever.")],
            },
        ],
        [
            {"prompt": [U("2 plus 2?")], "chosen": [A("4.")], "rejected": [A("5.")]},
            {
                "prompt": [S("Terse."), U("Hi"), A("Hello."), U("Bye")],
                "chosen": [A("Goodbye.")],
                "rejected": [A("Whatever.")],
            },
        ],
    ),
}


@pytest.mark.parametrize("layout", list(PREFERENCE_CASES))
def test_preference_layout_gives_canonical_rows(tmp_path, layout):
    raw, expected = PREFERENCE_CASES[layout]
    path = write_jsonl(tmp_path / "pairs.jsonl", raw)
    assert rows_of(path, "preference") == expected
    assert detect_layout(list(raw[0]), "preference", spec(path)) == layout


def test_margin_column_is_read_as_a_number(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "Q", "chosen": "good", "rejected": "bad", "margin": 2},
            {"prompt": "Q", "chosen": "fine", "rejected": "poor", "margin": 0.5},
        ],
    )
    assert rows_of(path, "preference") == [
        {"prompt": [U("Q")], "chosen": [A("good")], "rejected": [A("bad")], "margin": 2.0},
        {"prompt": [U("Q")], "chosen": [A("fine")], "rejected": [A("poor")], "margin": 0.5},
    ]


# ---------------------------------------------------------------- csv and parquet


def test_csv_prompt_response_with_system_column(tmp_path):
    path = write_csv(
        tmp_path / "mine.csv",
        [
            {"prompt": "List three fruits, comma separated.", "response": "apple, pear, plum", "system": "Be brief."},
            {"prompt": 'Quote it: "hi"\nplease', "response": '"hi"', "system": ""},
        ],
    )
    assert rows_of(path, "sft") == [
        {"prompt": [S("Be brief."), U("List three fruits, comma separated.")], "completion": [A("apple, pear, plum")]},
        {"prompt": [U('Quote it: "hi"\nplease')], "completion": [A('"hi"')]},
    ]


def test_csv_preference_with_margin_as_text(tmp_path):
    path = write_csv(tmp_path / "pairs.csv", [{"prompt": "Q?", "chosen": "Yes.", "rejected": "No.", "margin": "1.5"}])
    assert rows_of(path, "preference") == [
        {"prompt": [U("Q?")], "chosen": [A("Yes.")], "rejected": [A("No.")], "margin": 1.5}
    ]


def test_csv_cells_holding_json_message_lists(tmp_path):
    path = write_csv(
        tmp_path / "chats.csv",
        [{"messages": json.dumps([U("Ping"), A("Pong")])}, {"messages": json.dumps([S("Echo."), U("a"), A("a")])}],
    )
    assert rows_of(path, "sft") == [
        {"prompt": [U("Ping")], "completion": [A("Pong")]},
        {"prompt": [S("Echo."), U("a")], "completion": [A("a")]},
    ]


def test_csv_text_that_only_looks_like_a_list_stays_text(tmp_path):
    path = write_csv(tmp_path / "mine.csv", [{"prompt": "[1, 2, 3] sorted?", "completion": "[1, 2]"}])
    assert rows_of(path, "sft") == [{"prompt": [U("[1, 2, 3] sorted?")], "completion": [A("[1, 2]")]}]


def test_parquet_messages(tmp_path):
    path = write_parquet(tmp_path / "chats.parquet", SFT_CASES["messages"][0])
    assert rows_of(path, "sft") == SFT_CASES["messages"][1]


def test_parquet_implicit_preference(tmp_path):
    raw, expected = PREFERENCE_CASES["trl-implicit-preference"]
    path = write_parquet(tmp_path / "pairs.parquet", raw)
    assert rows_of(path, "preference") == expected


# ---------------------------------------------------------------- detection order


@pytest.mark.parametrize(
    "columns, fmt, layout",
    [
        (["prompt", "completion", "messages"], "sft", "trl-prompt-completion"),
        (["messages", "conversations"], "sft", "messages"),
        (["conversations", "instruction", "output"], "sft", "sharegpt"),
        (["instruction", "input", "output", "prompt", "response"], "sft", "alpaca"),
        (["prompt", "response", "question", "answer"], "sft", "prompt-response"),
        (["id", "question", "answer", "system"], "sft", "question-answer"),
        (["prompt", "chosen", "rejected", "margin"], "preference", "trl-preference"),
        (["chosen", "rejected"], "preference", "trl-implicit-preference"),
        (["prompt", "completion", "chosen", "rejected"], "sft", "trl-prompt-completion"),
        (["prompt", "completion", "chosen", "rejected"], "preference", "trl-preference"),
    ],
)
def test_detect_layout(columns, fmt, layout):
    assert detect_layout(columns, fmt, DataSpec(source="file")) == layout


@pytest.mark.parametrize(
    "columns, fmt",
    [
        (["instruction", "input"], "sft"),  # Alpaca without output
        (["prompt"], "sft"),
        (["chosen"], "preference"),
        (["prompt", "rejected"], "preference"),
    ],
)
def test_detect_layout_refuses_incomplete_layouts(columns, fmt):
    with pytest.raises(DataError):
        detect_layout(columns, fmt, DataSpec(source="file"))


# ---------------------------------------------------------------- column mapping


QA = [{"q": "Opposite of tall?", "a": "Short.", "prompt": "decoy prompt", "completion": "decoy completion"}]


def test_mapped_columns_override_detection(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", QA)
    columns = ColumnMap(prompt="q", response="a")
    assert rows_of(path, "sft", columns=columns) == [{"prompt": [U("Opposite of tall?")], "completion": [A("Short.")]}]
    assert detect_layout(list(QA[0]), "sft", spec(path, columns=columns)) == "mapped"
    assert rows_of(path, "sft") == [{"prompt": [U("decoy prompt")], "completion": [A("decoy completion")]}]


def test_mapped_columns_from_set_overrides(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", QA)
    config = load_config(
        None, ["data.source=file", f"data.path={path}", "data.columns.prompt=q", "data.columns.response=a"]
    )
    assert config.data.columns == ColumnMap(prompt="q", response="a")
    assert load(config.data, "sft", use_cache=False).rows == [
        {"prompt": [U("Opposite of tall?")], "completion": [A("Short.")]}
    ]


def test_unmapped_roles_are_still_detected(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl", [{"question": "Two plus two?", "reply": "Four.", "system": "Be exact."}]
    )
    assert rows_of(path, "sft", columns=ColumnMap(response="reply")) == [
        {"prompt": [S("Be exact."), U("Two plus two?")], "completion": [A("Four.")]}
    ]


def test_mapped_system_column_only(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "Hi", "completion": "Hello", "persona": "Be warm."}])
    assert (
        detect_layout(["prompt", "completion", "persona"], "sft", spec(path, columns=ColumnMap(system="persona")))
        == "trl-prompt-completion"
    )
    assert rows_of(path, "sft", columns=ColumnMap(system="persona")) == [
        {"prompt": [S("Be warm."), U("Hi")], "completion": [A("Hello")]}
    ]


def test_mapped_messages_column(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"dialogue": [U("Knock knock"), A("Who is there?")]}])
    assert rows_of(path, "sft", columns=ColumnMap(messages="dialogue")) == [
        {"prompt": [U("Knock knock")], "completion": [A("Who is there?")]}
    ]


def test_mapped_preference_columns(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Best fruit?", "good": "A plum.", "bad": "Gravel."}])
    columns = ColumnMap(chosen="good", rejected="bad")
    assert rows_of(path, "preference", columns=columns) == [
        {"prompt": [U("Best fruit?")], "chosen": [A("A plum.")], "rejected": [A("Gravel.")]}
    ]
    # the same file for SFT on the preferred answers
    assert rows_of(path, "sft", columns=ColumnMap(response="good")) == [
        {"prompt": [U("Best fruit?")], "completion": [A("A plum.")]}
    ]


def test_missing_mapped_column_names_it_and_the_file_columns(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q", "good": "A", "bad": "B"}])
    message = refused(path, "preference", columns=ColumnMap(chosen="better", rejected="bad"))
    assert message == "pairs.jsonl: data.columns.chosen = 'better': no such column; the file has prompt, good, bad"


def test_mapping_that_leaves_a_needed_role_unfound(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q", "good": "A", "bad": "B"}])
    message = refused(path, "preference", columns=ColumnMap(chosen="good"))
    assert "data.columns.rejected" in message and "prompt, good, bad" in message


def test_messages_and_prompt_both_mapped_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"m": [U("a"), A("b")], "q": "a", "r": "b"}])
    message = refused(path, "sft", columns=ColumnMap(messages="m", prompt="q"))
    assert "data.columns.messages" in message and "data.columns.prompt" in message


# ---------------------------------------------------------------- the wrong format, or no layout


def test_sft_file_asked_for_preference_says_so(tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "Q", "completion": "A"}])
    message = refused(path, "preference")
    assert message.startswith("sft.jsonl: the file has prompt, completion")
    assert (
        "looks like SFT data (prompt/completion); the reward and DPO stages need chosen and rejected columns" in message
    )
    assert "data.columns.chosen=" in message


def test_preference_file_asked_for_sft_says_so(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q", "chosen": "A", "rejected": "B"}])
    message = refused(path, "sft")
    assert "looks like preference data (prompt/chosen/rejected)" in message
    assert "data.columns.response=chosen" in message


def test_implicit_preference_file_asked_for_sft_suggests_the_messages_column(tmp_path):
    raw, _ = PREFERENCE_CASES["trl-implicit-preference"]
    path = write_jsonl(tmp_path / "pairs.jsonl", raw)
    assert "data.columns.messages=chosen" in refused(path, "sft")
    assert rows_of(path, "sft", columns=ColumnMap(messages="chosen"))[0] == {
        "prompt": [U("2 plus 2?")],
        "completion": [A("4.")],
    }


@pytest.mark.parametrize(
    "fmt, accepted",
    [
        (
            "sft",
            [
                "SFT",
                "prompt/completion",
                "messages",
                "ShareGPT",
                "Alpaca",
                "question/answer",
                "data.columns.prompt=",
                "data.columns.response=",
            ],
        ),
        ("preference", ["preference", "prompt/chosen/rejected", "data.columns.chosen=", "data.columns.rejected="]),
    ],
)
def test_undetectable_file_names_columns_format_and_layouts(tmp_path, fmt, accepted):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"title": "x", "body": "y"}, {"title": "z", "tags": "w"}])
    message = refused(path, fmt)
    assert message.startswith("odd.jsonl: ")
    assert "title, body, tags" in message
    for word in accepted:
        assert word in message


def test_header_only_csv_has_no_usable_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("prompt,completion\n", encoding="utf-8")
    assert "no usable rows" in refused(path, "sft")


# ---------------------------------------------------------------- bad rows


GOOD_PAIR = {"prompt": "Good?", "completion": "Yes."}
BAD_PAIRS = [
    GOOD_PAIR,  # row 1
    {"prompt": "No completion here"},  # row 2
    {"prompt": "   ", "completion": "empty prompt"},  # row 3
    {"prompt": 42, "completion": "a number"},  # row 4
    {"prompt": "a dict", "completion": {"text": "no"}},  # row 5
    {"prompt": "user in it", "completion": [U("x"), A("y")]},  # row 6
    {"prompt": [{"role": "robot", "content": "beep"}], "completion": "z"},  # row 7
    {"prompt": [U("q"), A("ends with assistant")], "completion": "z"},  # row 8
    dict(GOOD_PAIR, prompt="Also good?"),  # row 9
]


def test_bad_sft_rows_are_dropped_and_counted_by_reason(tmp_path):
    loaded = load(spec(write_jsonl(tmp_path / "bad.jsonl", BAD_PAIRS)), "sft", use_cache=False, keep_problems=10)
    assert [row["prompt"][0]["content"] for row in loaded.rows] == ["Good?", "Also good?"]
    assert loaded.dropped == Counter(
        {
            "completion missing": 1,
            "prompt empty": 1,
            "prompt expected text or a list of role/content messages, got int": 1,
            "completion expected text or a list of role/content messages, got dict": 1,
            "completion a response message list must hold only assistant messages": 1,
            "prompt message 1 has role 'robot'; allowed roles are system, user, assistant": 1,
            "prompt the prompt must end with a user message": 1,
        }
    )
    assert loaded.problems[0] == "bad.jsonl row 2: column 'completion': missing"


CONVERSATIONS = [
    {"messages": [U("fine"), A("good")]},  # row 1
    {"messages": [U("no answer yet")]},  # row 2
    {"messages": [A("an answer to nobody")]},  # row 3
    {"messages": [U("x"), A("")]},  # row 4
    {"messages": {"role": "user", "content": "a dict"}},  # row 5
    {"messages": "just text"},  # row 6
    {"other": "no messages key"},  # row 7
    {"messages": [S("sys"), A("after a system message")]},  # row 8
]


def test_bad_conversations_are_dropped_and_counted_by_reason(tmp_path):
    loaded = load(spec(write_jsonl(tmp_path / "chats.jsonl", CONVERSATIONS)), "sft", use_cache=False)
    assert loaded.rows == [{"prompt": [U("fine")], "completion": [A("good")]}]
    assert loaded.dropped == Counter(
        {
            "messages the conversation does not end with an assistant message": 1,
            "messages the last assistant message does not follow a user message": 2,
            "messages message 2 content: empty": 1,
            "messages expected a non-empty list of role/content messages, got dict": 1,
            "messages expected a list of messages, got text": 1,
            "messages missing": 1,
        }
    )


def test_bad_sharegpt_speaker_is_dropped(tmp_path):
    path = write_jsonl(
        tmp_path / "share.jsonl",
        [
            {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
            {"conversations": [{"from": "human", "value": "a"}, {"from": "tool", "value": "b"}]},
        ],
    )
    loaded = load(spec(path), "sft", use_cache=False)
    assert len(loaded.rows) == 1
    assert loaded.dropped == Counter({"conversations message 2 is from 'tool'; allowed are human, gpt, system": 1})


BAD_PREFERENCES = [
    {"chosen": [U("q"), A("yes")], "rejected": [U("q"), A("no")]},  # row 1: good
    {"chosen": [U("q"), A("same")], "rejected": [U("q"), A("same")]},  # row 2: identical
    {"chosen": [U("q"), A("yes")], "rejected": [U("other q"), A("no")]},  # row 3: prefixes differ
    {"chosen": "plain yes", "rejected": "plain no"},  # row 4: no prompt
    {"chosen": [U("q"), A("yes"), U("more?")], "rejected": [U("q"), A("no")]},  # row 5: ends with user
]


def test_bad_preference_rows_are_dropped_and_counted_by_reason(tmp_path):
    loaded = load(spec(write_jsonl(tmp_path / "pairs.jsonl", BAD_PREFERENCES)), "preference", use_cache=False)
    assert loaded.rows == [{"prompt": [U("q")], "chosen": [A("yes")], "rejected": [A("no")]}]
    assert loaded.dropped == Counter(
        {
            "rejected identical to chosen": 1,
            "rejected the messages before the last assistant turn differ from chosen's": 1,
            "chosen plain text and no prompt column; set data.columns.prompt": 1,
            "chosen the conversation does not end with an assistant message": 1,
        }
    )


def test_bad_margins_and_identical_explicit_pairs(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1},
            {"prompt": "q", "chosen": "a", "rejected": " a ", "margin": 1},
            {"prompt": "q", "chosen": "a", "rejected": "b", "margin": "lots"},
            {"prompt": "q", "chosen": "a", "rejected": "b"},
            {"prompt": "q", "chosen": "a", "rejected": "b", "margin": True},
        ],
    )
    loaded = load(spec(path), "preference", use_cache=False)
    assert len(loaded.rows) == 1
    assert loaded.dropped == Counter(
        {
            "rejected identical to chosen": 1,
            "margin expected a number, got text": 1,
            "margin missing": 1,
            "margin expected a number, got bool": 1,
        }
    )


def test_plain_text_pairs_without_a_prompt_is_an_error_saying_so(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"chosen": "yes", "rejected": "no"}])
    message = refused(path, "preference")
    assert "no usable rows" in message and "no prompt column" in message and "data.columns.prompt" in message


@pytest.mark.parametrize(
    "name, rows, fmt, row, column",
    [
        ("bad.jsonl", BAD_PAIRS, "sft", 2, "completion"),
        ("bad.jsonl", BAD_PAIRS[3:], "sft", 1, "prompt"),
        ("chats.jsonl", CONVERSATIONS, "sft", 2, "messages"),
        ("pairs.jsonl", BAD_PREFERENCES, "preference", 2, "rejected"),
    ],
)
def test_fail_mode_names_file_row_and_column(tmp_path, name, rows, fmt, row, column):
    message = refused(write_jsonl(tmp_path / name, rows), fmt, on_bad_rows="fail")
    assert message.startswith(f"{name} row {row}: column '{column}'")


def test_fail_mode_on_csv_with_an_empty_cell(tmp_path):
    path = write_csv(tmp_path / "mine.csv", [{"question": "Q1", "answer": "A1"}, {"question": "Q2", "answer": ""}])
    assert refused(path, "sft", on_bad_rows="fail") == "mine.csv row 2: column 'answer': empty"


# ---------------------------------------------------------------- system prompts


def test_system_column_prepended_in_every_layout_shape(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [{"instruction": "Add.", "input": "1 and 2", "output": "3", "system": "Be a calculator."}],
    )
    assert rows_of(path, "sft") == [
        {"prompt": [S("Be a calculator."), U("Add.\n\nInput:\n1 and 2")], "completion": [A("3")]}
    ]
    path = write_jsonl(tmp_path / "chats.jsonl", [{"messages": [U("a"), A("b")], "system": " Rhyme. "}])
    assert rows_of(path, "sft") == [{"prompt": [S("Rhyme."), U("a")], "completion": [A("b")]}]
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "y", "rejected": "n", "system": "Kind."}])
    assert rows_of(path, "preference") == [{"prompt": [S("Kind."), U("q")], "chosen": [A("y")], "rejected": [A("n")]}]


def test_system_column_and_a_system_message(tmp_path):
    path = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {"messages": [S("Same."), U("a"), A("b")], "system": "Same."},
            {"messages": [S("Mine."), U("a"), A("b")], "system": "Other."},
            {"messages": [U("a"), A("b")], "system": None},
            {"messages": [U("a"), A("b")], "system": 3},
        ],
    )
    loaded = load(spec(path), "sft", use_cache=False)
    assert loaded.rows == [
        {"prompt": [S("Same."), U("a")], "completion": [A("b")]},
        {"prompt": [U("a")], "completion": [A("b")]},
    ]
    assert loaded.dropped == Counter(
        {"system the prompt already has a different system message": 1, "system expected text, got int": 1}
    )


# ---------------------------------------------------------------- bundled sample


def test_bundled_sample_loads_120_sft_rows():
    loaded = load(DataSpec(source="file", path="sample"), "sft", use_cache=False)
    assert loaded.origin == str(sample_path("file"))
    assert len(loaded.rows) == 120
    assert sum(loaded.dropped.values()) == 0 and loaded.problems == []
    assert any(row["prompt"][0]["role"] == "system" for row in loaded.rows)
    assert any(row["prompt"][0]["role"] != "system" for row in loaded.rows)
    assert any(sum(m["role"] == "user" for m in row["prompt"]) > 1 for row in loaded.rows)
    for row in loaded.rows:
        assert row["prompt"][-1]["role"] == "user" and [m["role"] for m in row["completion"]] == ["assistant"]


def test_bundled_sample_is_in_the_messages_layout_and_not_preference_data():
    raw = [json.loads(line) for line in sample_path("file").read_text(encoding="utf-8").splitlines()]
    assert all(list(row) == ["messages"] for row in raw)
    assert "looks like SFT data (messages)" in refused(Path("sample"), "preference")
