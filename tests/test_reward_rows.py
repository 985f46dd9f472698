"""The Train tab's reward rows without a server: a source shown in a row and read back is the same source, for every
built-in; empty rows are left out; Remove moves the rows below up; the rows' outputs line up with their updates.

    .venv/bin/python -m pytest -q tests/test_reward_rows.py
"""

from __future__ import annotations

import gradio as gr

from components import reward_rows
from components.reward_rows import ROW_KEYS, SLOTS, blank, draft_of, drafts, source_of, sources
from studio import config as cfg
from studio.rewards.builtins import BUILTINS

GIVEN = {  # the required parameters, and a few others set away from their defaults
    "format": {"pattern": r"^The answer is \d+", "match": "full"},
    "length": {"target": 40, "unit": "characters", "tolerance": 5},
    "contains": {"keywords": ["cat", "two words"], "match": "all", "case_sensitive": True},
    "excludes": {"keywords": ["sorry"]},
    "reference_match": {"column": "solution", "mode": "last_number"},
    "json_valid": {"keys": ["name", "age"], "fenced": False},
    "no_repetition": {"n": 4},
}


def _checked(entries: list[dict]) -> list[dict]:
    """The sources as a validated grpo config writes them (defaults filled in)."""
    config = cfg.from_dict({"stage": "grpo", "rewards": {"sources": entries}})
    return cfg.to_dict(config)["rewards"]["sources"]


def _values(rows: list[dict]) -> list:
    return [row[key] for row in rows for key in ROW_KEYS]


def test_every_builtin_shown_in_a_row_reads_back_as_the_same_source():
    assert set(GIVEN) == set(BUILTINS)
    for name, args in GIVEN.items():
        [source] = _checked([{"builtin": name, "args": args, "weight": 0.25, "name": f"my-{name}"}])
        draft = draft_of(source)
        assert (draft["kind"], draft["builtin"], draft["weight"], draft["name"]) == (
            "builtin",
            name,
            0.25,
            f"my-{name}",
        )
        assert _checked([source_of(draft)]) == [source], name


def test_a_run_and_a_function_read_back_and_texts_are_one_a_line():
    entries = [{"run": "rm-1", "weight": -0.5}, {"function": "my_rewards.py:score", "name": "mine"}]
    rows = [draft_of(entry) for entry in entries]
    assert [source_of(row) for row in rows] == [
        {"run": "rm-1", "weight": -0.5},
        {"function": "my_rewards.py:score", "weight": 1.0, "name": "mine"},
    ]
    keywords = draft_of({"builtin": "contains", "args": {"keywords": ["a", "b c"]}})
    assert keywords[reward_rows.param_key("contains", "keywords")] == "a\nb c"


def test_rows_not_in_use_or_naming_nothing_are_left_out_and_typed_numbers_are_numbers():
    typed = {**blank(), "kind": "builtin", "builtin": "length", "args.length.target": " 30 ", "args.length.falloff": ""}
    unnamed_run = {**blank(), "kind": "run", "run": ""}
    unnamed_function = {**blank(), "kind": "function", "function": "  "}
    rows = [blank(), typed, unnamed_run, unnamed_function, blank(), blank()]
    assert sources(_values(rows)) == [
        {
            "builtin": "length",
            "args": {"target": 30, "unit": "words", "tolerance": 0},
            "weight": 1.0,
        }
    ]
    # text that is no number stays text, for the built-in's check to name
    wrong = {**typed, "args.length.target": "ten"}
    assert source_of(wrong)["args"]["target"] == "ten"


def test_remove_moves_the_rows_below_up_and_add_fills_the_first_free_row():
    rows = [draft_of({"run": f"rm-{i}"}) for i in range(3)] + [blank() for _ in range(SLOTS - 3)]
    with gr.Blocks():
        editor = reward_rows.build(lambda: [("rm-0 (judge)", "rm-0")])
    out = reward_rows.removed(1, _values(rows))
    assert len(out) == len(editor.outputs)
    width = len(ROW_KEYS)
    assert all(update == {"__type__": "update"} for update in out[:width])  # the row above stays as it is
    shown = [update["value"] for update in out[width : SLOTS * width]]
    assert [row["run"] for row in drafts([None] * width + shown)[1:3]] == ["rm-2", ""]
    assert [row["kind"] for row in drafts([None] * width + shown)[1:3]] == ["run", ""]
    assert out[-1] == {"__type__": "update", "visible": True}  # Add source shows: a row is free

    out = reward_rows.added(_values(rows), "builtin")
    new = [update.get("value") for update in out[3 * width : 4 * width]]
    assert dict(zip(ROW_KEYS, new))["kind"] == "builtin"
    assert all(update == {"__type__": "update"} for update in out[: 3 * width])
    full = reward_rows.added(_values([draft_of({"run": "rm"}) for _ in range(SLOTS - 1)] + [blank()]), "run")
    assert full[-1] == {"__type__": "update", "visible": False}  # the last free row taken: no more to add
