"""studio/data/oasst.py: oasst1 message trees -> SFT rows (best-ranked path) and ranked preference pairs;
language filter, deleted and failed-review subtrees, bad messages; the bundled sample.

    python -m pytest tests/test_data_oasst.py -q
"""

from __future__ import annotations

from collections import Counter

import pytest

import studio.data
from studio.config import DataSpec
from studio.data import load, oasst, sample_path
from studio.data.fields import RowProblem
from studio.data.files import read_rows
from studio.errors import DataError
from tests.conftest import write_jsonl


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))  # load() caches under the home


def message(
    message_id: str,
    parent_id: str | None,
    role: str,
    text,
    rank=None,
    lang: str = "en",
    created: str = "2023-03-01T10:00:00.000000+00:00",
    tree: str = "t1",
    **changes,
) -> dict:
    """One oasst1 row, every column present with the real data's types."""
    row = {
        "message_id": message_id,
        "parent_id": parent_id,
        "user_id": f"user-{message_id}",
        "created_date": created,
        "text": text,
        "role": role,
        "lang": lang,
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "detoxify": {
            "toxicity": 0.0004,
            "severe_toxicity": 0.00002,
            "obscene": 0.0001,
            "identity_attack": 0.0001,
            "insult": 0.0002,
            "threat": 0.00003,
            "sexual_explicit": 0.00002,
        },
        "message_tree_id": tree,
        "tree_state": "ready_for_export",
        "emojis": {"name": ["+1"], "count": [2]},
        "labels": {"name": ["quality"], "value": [0.8], "count": [3]},
    }
    row.update(changes)
    return row


# A tree of 11 messages, written with replies before the messages they answer (row order must not matter):
#   R  "What is a good name for a cat?"                                  (row 1)
#   +- A1 rank 0  polite -> P2 follow-up -> B2 rank 0, B1 rank 1, B3 unranked
#   +- A2 rank 1  curt   -> P3 follow-up -> C1 rank 0, C2 rank 1
#   +- A3 rank 2  unhelpful
TREE = [
    message("R", None, "prompter", "  What is a good name for a cat? "),  # 1
    message("A2", "R", "assistant", "Biscuit.", rank=1),  # 2
    message("B2", "P2", "assistant", "Of course! What about Pepper, or Juniper if you like longer names?", rank=0),  # 3
    message("A3", "R", "assistant", "Cats don't need names.", rank=2),  # 4
    message("P2", "A1", "prompter", "Biscuit is taken. Another one?"),  # 5
    message("B1", "P2", "assistant", "Pepper.", rank=1),  # 6
    message("A1", "R", "assistant", "How about Biscuit? It is short and friendly.\n", rank=0),  # 7
    message("B3", "P2", "assistant", "Mittens", created="2023-03-01T09:00:00.000000+00:00"),  # 8
    message("P3", "A2", "prompter", "Why so short?"),  # 9
    message("C2", "P3", "assistant", "Because.", rank=1),  # 10
    message("C1", "P3", "assistant", "Sorry about that! Short names are easy to call out.", rank=0),  # 11
]


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def bot(content: str) -> dict:
    return {"role": "assistant", "content": content}


ASK = user("What is a good name for a cat?")
A1, A2, A3 = (bot("How about Biscuit? It is short and friendly."), bot("Biscuit."), bot("Cats don't need names."))
P2, P3 = user("Biscuit is taken. Another one?"), user("Why so short?")
B1, B2 = bot("Pepper."), bot("Of course! What about Pepper, or Juniper if you like longer names?")
C1, C2 = bot("Sorry about that! Short names are easy to call out."), bot("Because.")

SFT_ROW = {"prompt": [ASK, A1, P2], "completion": [B2]}
PAIRS = [
    {"prompt": [ASK], "chosen": [A1], "rejected": [A2], "margin": 1.0},
    {"prompt": [ASK], "chosen": [A1], "rejected": [A3], "margin": 2.0},
    {"prompt": [ASK, A1, P2], "chosen": [B2], "rejected": [B1], "margin": 1.0},
    {"prompt": [ASK, A2, P3], "chosen": [C1], "rejected": [C2], "margin": 1.0},
]


def spec(path, **changes) -> DataSpec:
    return DataSpec(source="oasst", path=str(path), **changes)


def loaded(path, fmt: str, **changes):
    return load(spec(path, **changes), fmt, use_cache=False)


def sft(tmp_path, rows, **changes):
    return loaded(write_jsonl(tmp_path / "o.jsonl", rows), "sft", **changes)


def pairs(tmp_path, rows, **changes):
    return loaded(write_jsonl(tmp_path / "o.jsonl", rows), "preference", **changes)


# ---------------------------------------------------------------- the hand-written tree


def test_sft_row_is_the_best_ranked_path(tmp_path):
    result = sft(tmp_path, TREE)
    assert result.rows == [SFT_ROW]
    assert result.source == "oasst" and result.format == "sft"
    assert sum(result.dropped.values()) == 0 and result.problems == []


def test_preference_pairs_with_prompts_and_margins(tmp_path):
    result = pairs(tmp_path, TREE)
    assert result.rows == PAIRS
    assert all(type(row["margin"]) is float for row in result.rows)
    assert sum(result.dropped.values()) == 0 and result.problems == []


def test_row_numbers_are_those_of_the_messages_that_end_each_row():
    assert [n for n, _ in oasst.convert_rows(TREE, DataSpec(source="oasst"), "sft")] == [3]  # B2
    assert [n for n, _ in oasst.convert_rows(TREE, DataSpec(source="oasst"), "preference")] == [2, 4, 6, 10]


@pytest.mark.parametrize("order", [list(range(11)), list(reversed(range(11))), [5, 0, 9, 2, 7, 1, 10, 3, 8, 4, 6]])
def test_the_order_of_rows_in_the_file_does_not_matter(tmp_path, order):
    rows = [TREE[i] for i in order]
    assert sft(tmp_path, rows).rows == [SFT_ROW]
    assert pairs(tmp_path, rows).rows == PAIRS


def test_float_ranks_as_in_the_hub_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(row, rank=None if row["rank"] is None else float(row["rank"])) for row in TREE]
    path = tmp_path / "o.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert loaded(path, "sft").rows == [SFT_ROW]
    assert loaded(path, "preference").rows == PAIRS


def test_hub_rows_load_through_the_default_hub_loader(monkeypatch):
    asked = []

    def fake_hub(hub_id, subset=None, **kwargs):
        asked.append((hub_id, subset))
        return iter(TREE)  # the hub gives an iterable, read once

    monkeypatch.setattr(studio.data, "load_hub_rows", fake_hub)
    result = load(DataSpec(source="oasst"), "preference", use_cache=False)
    assert result.rows == PAIRS and result.origin == "OpenAssistant/oasst1"
    assert asked == [("OpenAssistant/oasst1", None)]


# ---------------------------------------------------------------- ranking rules


def test_unranked_replies_come_after_ranked_ones(tmp_path):
    rows = [
        message("R", None, "prompter", "Hi?"),
        message("U", "R", "assistant", "Unranked but early", created="2023-01-01T00:00:00+00:00"),
        message("K", "R", "assistant", "Ranked 1", rank=1),
    ]
    assert sft(tmp_path, rows).rows == [{"prompt": [user("Hi?")], "completion": [bot("Ranked 1")]}]


def test_ties_go_to_the_earlier_message_then_the_smaller_id(tmp_path):
    early, late = "2023-03-01T09:00:00+00:00", "2023-03-01T11:00:00+00:00"
    by_date = [
        message("R", None, "prompter", "Hi?"),
        message("a", "R", "assistant", "later", rank=0, created=late),
        message("b", "R", "assistant", "earlier", rank=0, created=early),
    ]
    assert sft(tmp_path, by_date).rows[0]["completion"] == [bot("earlier")]
    by_id = [
        message("R", None, "prompter", "Hi?"),
        message("y", "R", "assistant", "id y", rank=0),
        message("x", "R", "assistant", "id x", rank=0),
    ]
    assert sft(tmp_path, by_id).rows[0]["completion"] == [bot("id x")]


def test_equal_ranks_give_no_pair(tmp_path):
    rows = [
        message("R", None, "prompter", "Hi?"),
        message("a", "R", "assistant", "one", rank=0),
        message("b", "R", "assistant", "two", rank=0),
        message("c", "R", "assistant", "three", rank=2),
    ]
    assert pairs(tmp_path, rows).rows == [
        {"prompt": [user("Hi?")], "chosen": [bot("one")], "rejected": [bot("three")], "margin": 2.0}
    ]


def test_a_single_ranked_reply_gives_no_pair(tmp_path):
    rows = TREE + [
        message("S", None, "prompter", "Alone?"),
        message("S1", "S", "assistant", "Yes.", rank=0),
        message("S2", "S", "assistant", "No."),
    ]
    assert pairs(tmp_path, rows).rows == PAIRS


def test_a_trailing_prompter_message_is_dropped(tmp_path):
    rows = [
        message("R", None, "prompter", "Hi?"),
        message("A", "R", "assistant", "Hello!", rank=0),
        message("P", "A", "prompter", "Anyone there?"),
    ]
    assert sft(tmp_path, rows).rows == [{"prompt": [user("Hi?")], "completion": [bot("Hello!")]}]


def test_a_tree_nobody_answered_gives_no_row_and_is_no_problem(tmp_path):
    result = sft(tmp_path, [message("Q", None, "prompter", "Unanswered?", tree="t0")] + TREE)
    assert result.rows == [SFT_ROW]
    assert sum(result.dropped.values()) == 0


def test_trees_come_in_the_order_of_their_first_messages(tmp_path):
    second = [
        message("S", None, "prompter", "Second?", tree="t2"),
        message("S1", "S", "assistant", "Second answer.", rank=0, tree="t2"),
    ]
    rows = [TREE[6], second[1]] + second[:1] + TREE[:6] + TREE[7:]  # S's root comes before R's root
    assert sft(tmp_path, rows).rows == [{"prompt": [user("Second?")], "completion": [bot("Second answer.")]}, SFT_ROW]


# ---------------------------------------------------------------- language filter


def tree_in(lang: str, word: str) -> list[dict]:
    root = f"{lang}-root"
    return [
        message(root, None, "prompter", f"{word}?", lang=lang, tree=root),
        message(f"{lang}-a", root, "assistant", f"{word}!", rank=0, lang=lang, tree=root),
        message(f"{lang}-b", root, "assistant", f"{word}.", rank=1, lang=lang, tree=root),
    ]


LANG_ROWS = tree_in("en", "Hello") + tree_in("de", "Hallo") + tree_in("es", "Hola")


def first_prompts(result) -> list[str]:
    return [row["prompt"][0]["content"] for row in result.rows]


@pytest.mark.parametrize(
    "languages, expected",
    [
        (None, ["Hello?"]),  # the default: English
        (["de"], ["Hallo?"]),
        (["es", "en"], ["Hello?", "Hola?"]),
        ([], ["Hello?", "Hallo?", "Hola?"]),
    ],
)
def test_language_filter_keeps_trees_by_their_first_message(tmp_path, languages, expected):
    changes = {} if languages is None else {"languages": languages}
    result = sft(tmp_path, LANG_ROWS, **changes)
    assert first_prompts(result) == expected
    assert sum(result.dropped.values()) == 0  # filtered trees are not problems
    assert first_prompts(pairs(tmp_path, LANG_ROWS, **changes)) == expected


def test_language_of_replies_does_not_decide(tmp_path):
    rows = [dict(row, lang="de") if row["role"] == "assistant" else row for row in TREE]
    assert sft(tmp_path, rows).rows == [SFT_ROW]


def test_bad_messages_in_filtered_trees_are_not_reported(tmp_path):
    rows = LANG_ROWS + [
        message("de-bad", "de-root", "system", "x", lang="de"),
        message("de-orphan", "nowhere", "assistant", "y", lang="de"),
    ]
    result = sft(tmp_path, rows)
    assert first_prompts(result) == ["Hello?"] and sum(result.dropped.values()) == 0
    assert sum(sft(tmp_path, rows, languages=[]).dropped.values()) == 2


# ---------------------------------------------------------------- deleted and failed review


@pytest.mark.parametrize("change", [{"deleted": True}, {"review_result": False}])
def test_deleted_or_failed_review_subtrees_are_skipped(tmp_path, change):
    rows = [dict(row, **change) if row["message_id"] == "A1" else row for row in TREE]
    rows.append(message("bad-below", "P2", "system", "never checked"))  # would be a problem if it were read
    result = sft(tmp_path, rows)
    assert result.rows == [{"prompt": [ASK, A2, P3], "completion": [C1]}]  # A1 and everything below it is gone
    assert sum(result.dropped.values()) == 0 and result.problems == []
    assert pairs(tmp_path, rows).rows == [
        {"prompt": [ASK], "chosen": [A2], "rejected": [A3], "margin": 1.0},  # ranks as given: 2 - 1
        {"prompt": [ASK, A2, P3], "chosen": [C1], "rejected": [C2], "margin": 1.0},
    ]


def test_a_deleted_first_message_drops_its_tree(tmp_path):
    rows = [dict(TREE[0], deleted=True)] + TREE[1:] + tree_in("en", "Hello")
    result = sft(tmp_path, rows)
    assert first_prompts(result) == ["Hello?"] and sum(result.dropped.values()) == 0


def test_review_result_null_is_kept(tmp_path):
    rows = [dict(row, review_result=None) for row in TREE]
    assert sft(tmp_path, rows).rows == [SFT_ROW]


# ---------------------------------------------------------------- bad messages


ORPHAN = message("O", "gone", "assistant", "My parent is not in the file.", rank=0)
BAD_ROLE = message("X", "R", "system", "You are a cat-naming bot.")
BELOW_BAD = message("X1", "X", "prompter", "A reply under the bad message")  # not at fault itself
BAD = TREE[:3] + [ORPHAN] + TREE[3:6] + [BAD_ROLE, BELOW_BAD] + TREE[6:]  # ORPHAN is row 4, BAD_ROLE row 8


def test_orphan_and_bad_role_are_dropped_and_counted_once(tmp_path):
    for result, expected in ((sft(tmp_path, BAD), [SFT_ROW]), (pairs(tmp_path, BAD), PAIRS)):
        assert result.rows == expected
        assert result.dropped == Counter(
            {"parent_id parent message not found": 1, "role expected prompter or assistant, got 'system'": 1}
        )
        assert result.problems == [
            "o.jsonl row 4: column 'parent_id': parent message not found",
            "o.jsonl row 8: column 'role': expected prompter or assistant, got 'system'",
        ]


@pytest.mark.parametrize(
    "rows, row, column",
    [
        (BAD, 4, "parent_id"),
        (TREE[:3] + [BAD_ROLE, BELOW_BAD] + TREE[3:] + [ORPHAN], 4, "role"),
    ],
)
def test_fail_mode_names_file_row_and_column_of_the_first_problem(tmp_path, rows, row, column):
    for fmt in ("sft", "preference"):
        with pytest.raises(DataError) as info:
            loaded(write_jsonl(tmp_path / "o.jsonl", rows), fmt, on_bad_rows="fail")
        message_text = str(info.value)
        assert message_text.startswith(f"o.jsonl row {row}: column '{column}'")
        assert "\n" not in message_text


def test_problems_come_in_row_order_among_the_rows():
    rows = tree_in("en", "Hello") + [ORPHAN] + TREE
    out = list(oasst.convert_rows(rows, DataSpec(source="oasst"), "sft"))
    assert [(n, type(item).__name__) for n, item in out] == [(2, "dict"), (4, "RowProblem"), (7, "dict")]


@pytest.mark.parametrize(
    "bad, reason",
    [
        (message("E", "R", "assistant", "   ", rank=3), "text empty"),
        (message("E", "R", "assistant", None, rank=3), "text missing"),
        (message("E", "R", "assistant", 7, rank=3), "text expected text, got int"),
        (message("E", "R", "assistant", "Fine", rank="first"), "rank expected a number or null, got str"),
        (message("E", "R", "assistant", "Fine", rank=3, deleted="no"), "deleted expected true, false or null, got str"),
        (
            message("E", "R", "prompter", "Two prompts in a row"),
            "role a prompter message replies to another prompter message",
        ),
        (
            message("E", None, "assistant", "An answer to nothing"),
            "role a conversation must open with a prompter message",
        ),
        (
            message("E", "E", "assistant", "My own parent", rank=3),
            "parent_id replies form a loop with no first message above them",
        ),
        (message("A1", "R", "assistant", "A second A1", rank=3), "message_id repeats the message_id of row 7"),
        (message("", "R", "assistant", "No id", rank=3), "message_id empty"),
        (message(None, "R", "assistant", "No id", rank=3), "message_id missing"),
        (message("E", 5, "assistant", "Numeric parent", rank=3), "parent_id expected text, got int"),
    ],
)
def test_other_bad_messages_are_counted_by_reason(tmp_path, bad, reason):
    result = sft(tmp_path, TREE + [bad])
    assert result.rows == [SFT_ROW]
    assert result.dropped == Counter({reason: 1})
    assert result.problems[0].startswith("o.jsonl row 12: ")


def test_a_loop_is_reported_on_its_messages_not_on_replies_hanging_below():
    rows = TREE + [
        message("L1", "L2", "prompter", "loop one"),
        message("L2", "L1", "assistant", "loop two"),
        message("L3", "L2", "prompter", "hangs below"),
    ]
    problems = [
        (n, p.column) for n, p in oasst.convert_rows(rows, DataSpec(source="oasst"), "sft") if isinstance(p, RowProblem)
    ]
    assert problems == [(12, "parent_id"), (13, "parent_id")]


def test_every_tree_bad_is_a_data_error(tmp_path):
    with pytest.raises(DataError) as info:
        sft(tmp_path, [ORPHAN, BAD_ROLE])
    assert "no usable rows" in str(info.value)
    assert "o.jsonl row 1: column 'parent_id': parent message not found" in str(info.value)


# ---------------------------------------------------------------- bundled sample


SAMPLE_COUNTS = {  # (languages, format) -> rows; the sample has 40 trees, 33 in English, 4 German, 3 Spanish
    ("en", "sft"): 33,
    ("en", "preference"): 75,
    ("all", "sft"): 40,
    ("all", "preference"): 86,
    ("de es", "sft"): 7,
    ("de es", "preference"): 11,
}


@pytest.mark.parametrize("languages, fmt", list(SAMPLE_COUNTS))
def test_bundled_sample_loads_in_both_formats(languages, fmt):
    chosen = {"en": ["en"], "all": [], "de es": ["de", "es"]}[languages]
    result = load(DataSpec(source="oasst", path="sample", languages=chosen), fmt, use_cache=False)
    assert len(result.rows) == SAMPLE_COUNTS[languages, fmt]
    assert sum(result.dropped.values()) == 0 and result.problems == []
    assert result.origin == str(sample_path("oasst"))
    for row in result.rows:
        roles = [m["role"] for m in row["prompt"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]  # alternating, ends with the user
        answers = row["completion"] if fmt == "sft" else row["chosen"] + row["rejected"]
        assert all(m["role"] == "assistant" and m["content"] for m in answers)
        if fmt == "preference":
            assert row["chosen"] != row["rejected"] and row["margin"] in (1.0, 2.0)


def test_bundled_sample_is_the_raw_schema():
    raw = read_rows(sample_path("oasst"))
    assert len(raw) == 215
    columns = [
        "message_id",
        "parent_id",
        "user_id",
        "created_date",
        "text",
        "role",
        "lang",
        "review_count",
        "review_result",
        "deleted",
        "rank",
        "synthetic",
        "model_name",
        "detoxify",
        "message_tree_id",
        "tree_state",
        "emojis",
        "labels",
    ]
    assert all(list(row) == columns for row in raw)
    roots = [row for row in raw if row["parent_id"] is None]
    assert len(roots) == 40 and all(row["role"] == "prompter" for row in roots)
    assert all(row["message_tree_id"] == row["message_id"] for row in roots)
    assert {row["lang"] for row in roots} == {"en", "de", "es"}
    assert any(row["deleted"] for row in raw) and any(row["review_result"] is False for row in raw)
    assert all(row["rank"] is None or isinstance(row["rank"], int) for row in raw)
    ids = {row["message_id"] for row in raw}
    assert len(ids) == len(raw) and all(row["parent_id"] in ids for row in raw if row["parent_id"] is not None)
