"""The Rewards tab's "Try reward sources" through the served studio's endpoints: typed answers scored by a `format`
and a `length` built-in (exact per-source and combined scores, and their spread), the no-signal warning, a run's
configured rewards, answers sampled from the tiny model, and bad sources refused in one line. One server for the
module; expected sampled scores are computed in this process with the engine (studio.serve.reward_trial). Last, a
real browser (Debian's chromium through playwright) opens the tab, types two answers, scores them and reads both
rows of scores in the table.

    .venv/bin/python -m pytest -q tests/test_ui_rewards.py
"""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest

from studio import config as cfg
from studio.config import DataSpec, GenerationSpec
from studio.runs import manager
from studio.serve import reward_trial
from tests.conftest import error_shown, served_studio
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.usefixtures("in_module_home")

FORMAT_AND_LENGTH = """- builtin: format
  args: {pattern: 'answer is \\d+'}
- builtin: length
  args: {target: 4}
  weight: 0.5
"""
PROMPT = "What is 2 + 2?"
FIRST, SECOND = "The answer is 4", "I would say it is four, probably"
ANSWERS = f"{FIRST}\n---\n{SECOND}"


@pytest.fixture(scope="module")
def served(module_home):
    """(url, gradio_client Client) of the studio served on the module's home."""
    with served_studio(module_home) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def try_rewards(client, sources_yaml: str, answers: str = ANSWERS, columns: str = "", combine: str = "sum"):
    return client.predict("written", sources_yaml, combine, None, PROMPT, answers, columns, api_name="/try_rewards")


def test_two_typed_answers_get_each_sources_score_the_combined_score_and_the_spread(client):
    message, table, spread, warnings = try_rewards(client, FORMAT_AND_LENGTH)
    assert message == "2 typed answers scored by 2 sources (format, length), combined by sum."
    assert table["headers"] == ["#", "answer", "format", "length", "combined"]
    # format: 1 when "answer is <digits>" appears; length: 4 words scores 1, 7 words 1 - 3/4 (falloff = target);
    # combined: format + 0.5 * length.
    assert table["data"] == [[1, FIRST, "1.000", "1.000", "1.500"], [2, SECOND, "0.000", "0.250", "0.125"]]
    assert spread["headers"] == ["source", "scored", "unscored", "min", "max", "mean", "std"]
    assert spread["data"] == [
        ["format", 2, 0, "0.000", "1.000", "0.500", "0.500"],
        ["length", 2, 0, "0.250", "1.000", "0.625", "0.375"],
        ["combined", 2, 0, "0.125", "1.500", "0.812", "0.688"],
    ]
    assert warnings == ""


def test_a_source_that_tells_no_answer_apart_or_scores_none_gets_a_warning_line(client):
    sources = "- builtin: format\n  args: {pattern: 'four|4'}\n- builtin: reference_match\n  name: ref"
    message, table, spread, warnings = try_rewards(client, sources, columns="answer:")
    assert table["data"] == [[1, FIRST, "1.000", "no score", "1.000"], [2, SECOND, "1.000", "no score", "1.000"]]
    assert spread["data"][1] == ["ref", 0, 2, "", "", "", ""]
    assert warnings.splitlines() == [
        "- **Warning:** source 'format' gives every answer the same score, 1: no signal to tell them apart",
        "- **Warning:** source 'ref' scores none of the 2 answers: it adds nothing to the combined score",
        "- **Warning:** the combined score gives every answer the same score, 1: no signal to tell them apart",
    ]
    # The reference given as a data column: reference_match tells the answers apart.
    _message, table, _spread, warnings = try_rewards(client, sources, answers="4\n---\nfive", columns="answer: 4")
    assert table["data"] == [[1, "4", "1.000", "1.000", "2.000"], [2, "five", "0.000", "0.000", "0.000"]]
    assert warnings == ""


@pytest.mark.parametrize(
    ("sources", "columns", "line"),
    [
        (
            "- builtin: format\n  args: {pattern: [",
            "",
            "reward sources: not valid YAML at line 2 (expected the node content, but found '<stream end>')",
        ),
        (
            "- builtin: format\n  args: {patern: x}",
            "",
            "rewards.sources[0].args: unknown argument 'patern'; did you mean 'pattern'? "
            "(format takes pattern, match, dotall, ignore_case)",
        ),
        ("- builtin: length\n  args: {target: -3}", "", "rewards.sources[0].args.target = -3: must be at least 1"),
        ("- builtin: format\n  args: {pattern: '(x'}", "", None),
        (FORMAT_AND_LENGTH, "answer 4", "data columns line 1 'answer 4': write it as column: value"),
    ],
)
def test_bad_sources_or_columns_get_one_error_line_and_no_table(client, sources, columns, line):
    message, table, spread, warnings = try_rewards(client, sources, columns=columns)
    shown = error_shown(message)
    assert shown is not None and "\n" not in shown and "Traceback" not in shown
    if line is not None:
        assert shown == line
    else:  # the regex error's wording is Python's own
        assert shown.startswith("rewards.sources[0].args.pattern = '(x': not a valid regular expression (")
    assert (table["headers"], table["data"], spread["data"]) == (["#", "answer", "combined"], [], [])
    assert warnings == ""


@pytest.fixture(scope="module")
def grpo_run(module_home) -> str:
    """A grpo run on the tiny model, created in the served home and never started, with two built-in sources."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(module_home))
        raw = {
            "stage": "grpo",
            "name": "trial",
            "model": {"name": "tiny"},
            "data": {"source": "dolly", "path": "sample"},
            "rewards": {
                "sources": [
                    {"builtin": "no_repetition", "args": {"n": 1}},
                    {"builtin": "length", "args": {"target": 6}, "weight": 2.0},
                ]
            },
        }
        return manager.create(cfg.from_dict(raw)).id


def test_a_runs_configured_rewards_are_listed_shown_and_tried(client, grpo_run):
    runs, models = client.predict(None, None, api_name="/trial_lists")
    assert runs["value"] == grpo_run
    assert [c[1] for c in runs["choices"]] == [grpo_run]
    assert runs["choices"][0][0] == f"{grpo_run} (trial) · queued"
    assert models["value"] == "base (tiny)"
    shown, note = client.predict(grpo_run, api_name="/trial_run_rewards")
    assert note == ""
    assert shown.startswith("sources:\n- builtin: no_repetition\n  args:\n    n: 1\n  weight: 1.0\n- builtin: length\n")
    message, table, _spread, _warnings = client.predict(
        "run", "", "sum", grpo_run, PROMPT, "a a b\n---\none two three four five six", "", api_name="/try_rewards"
    )
    assert message == "2 typed answers scored by 2 sources (no\\_repetition, length), combined by sum."
    # no_repetition with n 1: distinct words / words; length 6: 3 words is 3 short of 6, falling over 6 words.
    assert table["data"] == [
        [1, "a a b", "0.667", "0.500", "1.667"],
        [2, "one two three four five six", "1.000", "1.000", "3.000"],
    ]
    message, _table, _spread, _warnings = client.predict(
        "run", "", "sum", None, PROMPT, "a", "", api_name="/try_rewards"
    )
    assert error_shown(message) == f"pick a run whose configured rewards to try ({', '.join(cfg.ONLINE_STAGES)})"


def test_answers_sampled_from_the_tiny_model_are_scored_as_the_engine_scores_them(client, grpo_run, module_home):
    settings = GenerationSpec(max_new_tokens=8, temperature=0.0)
    message, table, spread, _warnings = client.predict(
        "written",
        FORMAT_AND_LENGTH,
        "sum",
        grpo_run,
        "base (tiny)",
        "dolly",
        "sample",
        3,
        5,
        *asdict(settings).values(),
        api_name="/sample_rewards",
    )
    expected = reward_trial.try_sampled(
        reward_trial.Sources(text=FORMAT_AND_LENGTH),
        "base (tiny)",
        DataSpec(source="dolly", path="sample"),
        3,
        5,
        settings,
    )
    assert message == "3 answers sampled from base (tiny) scored by 2 sources (format, length), combined by sum."
    assert table["headers"] == ["#", "prompt", "answer", "format", "length", "combined"]
    assert [row[1:3] for row in table["data"]] == [
        [prompt[-1]["content"], answer] for prompt, answer in zip(expected.prompts, expected.answers)
    ]
    per_source = expected.scored.per_source
    assert [row[3:] for row in table["data"]] == [
        [f"{per_source['format'][i]:.3f}", f"{per_source['length'][i]:.3f}", f"{expected.scored.combined[i]:.3f}"]
        for i in range(3)
    ]
    assert [row[:3] for row in spread["data"]] == [["format", 3, 0], ["length", 3, 0], ["combined", 3, 0]]
    message, *_ = client.predict(
        "written",
        FORMAT_AND_LENGTH,
        "sum",
        None,
        "base (tiny)",
        "dolly",
        "sample",
        0,
        0,
        *asdict(settings).values(),
        api_name="/sample_rewards",
    )
    assert error_shown(message) == f"answers to sample = 0: a whole number from 1 to {reward_trial.MAX_SAMPLES}"


# ---------------------------------------------------------------- in a real browser


def _box(page, label: str):
    """The visible text box labelled `label` (its accessible name goes on with its info line)."""
    return page.get_by_role("textbox", name=re.compile(rf"^\s*{re.escape(label)}(\s|$)")).locator("visible=true")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_in_a_browser_two_typed_answers_are_scored_and_both_rows_show_their_scores(served):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            page.goto(served[0])
            page.get_by_role("tab", name="Rewards").click(timeout=30_000)
            _box(page, "Sources (YAML)").fill(FORMAT_AND_LENGTH)
            _box(page, "Prompt of the answers").fill(PROMPT)
            _box(page, "Answers").fill(ANSWERS)
            page.get_by_role("button", name="Score typed answers").click()

            message = page.locator("#trial-message")
            scored = "2 typed answers scored by 2 sources (format, length), combined by sum."
            expect(message).to_have_text(scored, timeout=60_000)
            table = page.locator("#trial-scores")
            # gradio's table draws each shown cell as a grid cell named by its row and column (cell-ROW-COLUMN).
            expected = [["1", FIRST, "1.000", "1.000", "1.500"], ["2", SECOND, "0.000", "0.250", "0.125"]]
            for row, values in enumerate(expected):
                for column, value in enumerate(values):
                    expect(table.locator(f"[data-testid='cell-{row}-{column}']")).to_have_text(value)
            expect(table.locator("[data-testid^='cell-2-']")).to_have_count(0)  # two answers, two rows

            _box(page, "Sources (YAML)").fill("- builtin: format\n  args: {patern: x}")
            page.get_by_role("button", name="Score typed answers").click()
            expect(message.locator(".studio-error")).to_have_text(
                "rewards.sources[0].args: unknown argument 'patern'; did you mean 'pattern'? "
                "(format takes pattern, match, dotall, ignore_case)",
                timeout=60_000,
            )
            # The answers scored before are gone with the error.
            expect(table.locator("[role=gridcell]", has_text=FIRST)).to_have_count(0)
        finally:
            browser.close()
    assert not errors, errors
