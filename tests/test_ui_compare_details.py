"""The Compare tab's details, through its handlers (components/compare_tab.py) on a copy of the session's finished
tiny runs: held-out prompts sampled when that source is picked or when Generate finds none, columns headed by run
names, and scores at three decimals while the exports keep every digit. (Votes: tests/test_ui_votes.py.)

    OMP_NUM_THREADS=1 python -m pytest tests/test_ui_compare_details.py -q
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict

import pytest

from components import compare_tab
from studio.config import GenerationSpec
from studio.serve import compare
from studio.serve.compare import Comparison

pytestmark = pytest.mark.usefixtures("in_module_home")

BASE = "base (tiny)"
HELD_OUT, TYPED = compare_tab.HELD_OUT, compare_tab.TYPED


def settings(**overrides) -> tuple:
    """The generation boxes' values, in GenerationSpec's key order (the order of the tab's boxes)."""
    return tuple({**asdict(GenerationSpec(max_new_tokens=16)), **overrides}.values())


@pytest.fixture(scope="module")
def runs(tuned_runs, module_home) -> dict:
    """The tuned runs, copied into the module's home (the data caches of their held-out prompts land there)."""
    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    return {**tuned_runs, "home": module_home}


def _texts(prompts: list[list[dict]]) -> list[str]:
    return [compare.prompt_text(p) for p in prompts]


# ---------------------------------------------------------------- held-out prompts without the hidden button


def test_picking_the_held_out_source_samples_and_opens_the_prompts(runs):
    sft = runs["sft"]
    sampled, table, message, accordion = compare_tab.pick_source(HELD_OUT, [sft], 3, 7)
    expected = compare.held_out_prompts(sft, 3, 7)
    assert sampled["prompts"] == expected
    assert table == [[i, text] for i, text in enumerate(_texts(expected), 1)]
    assert message == f"3 held-out prompts from run {sft}; Generate answers them."
    assert accordion.open is True  # the sampled prompts show without opening anything

    _sampled, _table, message, _accordion = compare_tab.pick_source(HELD_OUT, [], 3, 7)
    assert message == "pick a run first: the prompts come from the first run's held-out data"
    assert compare_tab.pick_source(TYPED, [sft], 3, 7)[2] == ""  # typed prompts: nothing to sample


def test_generate_on_held_out_prompts_samples_them_when_none_were(runs):
    sft, chained = runs["sft"], runs["chained"]
    _comparison, message, page, _summary, sampled = compare_tab.run_compare(
        [sft], HELD_OUT, "", "", None, *settings(), 3, 7
    )
    assert message == "3 prompts answered by 2 models (pick a reward run to score them and get win rates)."
    assert sampled["prompts"] == compare.held_out_prompts(sft, 3, 7)
    shown = [p for p in re.findall(r'<td class="prompt"><div class="text">(.*?)</div>', page, re.S)]
    assert len(shown) == 3
    assert compare_tab.sampled_rows(sampled) == [[i, t] for i, t in enumerate(_texts(sampled["prompts"]), 1)]

    # The same boxes reuse what was sampled; another first run, count or seed samples anew.
    again = compare_tab.run_compare([sft], HELD_OUT, "", "", sampled, *settings(), 3, 7)[4]
    assert again is sampled
    moved = compare_tab.run_compare([chained, sft], HELD_OUT, "", "", sampled, *settings(), 2, 1)[4]
    assert moved["key"] == (chained, 2, 1) and moved["prompts"] == compare.held_out_prompts(chained, 2, 1)

    message = compare_tab.run_compare([], HELD_OUT, "", "", None, *settings(), 3, 7)[1]
    assert message == "pick at least one finished run to compare with its base model"


# ---------------------------------------------------------------- run names and scores


def test_columns_and_summary_name_the_runs_with_their_ids_small_below(runs):
    sft, chained = runs["sft"], runs["chained"]
    result, _message, page, summary, _sampled = compare_tab.run_compare(
        [sft, chained], TYPED, "Name a fruit.", "", None, *settings(), 8, 0
    )
    heads = re.findall(r'<th data-model="([^"]*)">(.*?)</th>', page)
    assert heads == [
        (BASE, BASE),
        (sft, f'tuned-sft<div class="run-id">{sft}</div>'),
        (chained, f'tuned-chained<div class="run-id">{chained}</div>'),
    ]
    assert [row[0] for row in summary] == [BASE, "tuned-sft", "tuned-chained"]
    assert result.labels == [BASE, sft, chained]  # the keys (and the exports' columns) stay the ids


def test_names_that_clash_carry_their_ids():
    result = Comparison(
        prompts=[[{"role": "user", "content": "Hi"}]],
        labels=[BASE, "run-1", "run-2", "run-3"],
        answers={},
        tokens_per_second={},
        names={BASE: BASE, "run-1": "mine", "run-2": "mine", "run-3": "run-3"},
    )
    assert [result.title(label) for label in result.labels] == [BASE, "mine (run-1)", "mine (run-2)", "run-3"]


def test_scores_show_three_decimals_and_the_exports_keep_every_digit():
    scores = {BASE: [0.12345678912345678], "run-1": [-2.718281828459045]}
    result = Comparison(
        prompts=[[{"role": "user", "content": "Hi"}]],
        labels=[BASE, "run-1"],
        answers={BASE: ["Hello"], "run-1": ["Hi there"]},
        tokens_per_second={BASE: 9.0, "run-1": 8.0},
        reward_run="rm",
        scores=scores,
        names={BASE: BASE, "run-1": "tuned"},
    )
    page = compare_tab.answers_html(result)
    assert re.findall(r'class="score[^"]*">score ([^<]*)</div>', page) == ["0.123", "-2.718"]
    assert [row[1] for row in compare_tab.summary_rows(result)] == [0.123, -2.718]
    record = json.loads(compare.to_jsonl(result))
    assert record[f"{BASE} score"] == 0.12345678912345678 and record["run-1 score"] == -2.718281828459045
    assert "0.12345678912345678" in compare.to_csv(result)
