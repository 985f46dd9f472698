"""The Runs tab's Rollouts view in a real browser (Debian's chromium, driven by playwright), on the tiny PPO and GRPO
presets trained once per session (conftest's rule_preset_runs): a person opens the finished PPO run's answers, moves
the step slider, sorts by reward, opens the token view (a screenshot of the view goes to test-artifacts/rollouts.png,
the picture in docs/), and opens a GRPO run's group view; scripts read the same answers through /rollouts.

    python -m pytest tests/test_browser_rollouts.py -q
"""

from __future__ import annotations

import re

import pytest

from studio.monitor import rollout_view as rv
from studio.runs import manager, rollouts
from tests.conftest import checked_page, select_in_runs_tab, served_studio
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]

# The cells of each rendered row of a table (the grid renders the rows in view; the header row has no cells).
GRID_ROWS = """(selector) => [...document.querySelectorAll(selector + ' [role=row]')]
    .map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))
    .filter(cells => cells.length)"""
GRID_HEADERS = """(selector) => [...document.querySelectorAll(selector + ' [role=columnheader]')]
    .map(cell => cell.innerText.trim())"""
# The title and the marked step of each plotly chart in the Rollouts view.
CHARTS = """() => [...document.querySelectorAll('#rollouts .js-plotly-plot')].map(plot => [
    plot.layout.title.text, plot.layout.shapes && plot.layout.shapes.length ? plot.layout.shapes[0].x0 : null])"""


@pytest.fixture(scope="module")
def studio(rule_preset_runs):
    """(url, gradio client, chromium browser) of one studio served on the trained presets' home."""
    from playwright.sync_api import sync_playwright

    with served_studio(rule_preset_runs["home"]) as (url, client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield url, client, browser
        finally:
            browser.close()


@pytest.fixture
def page(studio):
    """A fresh page of the studio; the test fails on any script error in it."""
    url, _client, browser = studio
    with checked_page(browser, url) as page:
        yield page


def _open_rollouts(page, run_id: str) -> None:
    from playwright.sync_api import expect

    select_in_runs_tab(page, run_id)
    expect(page.locator("#rollouts")).to_be_visible(timeout=30_000)
    page.locator("#rollouts").scroll_into_view_if_needed()


def _table(page, selector: str) -> tuple[list[str], list[list[str]]]:
    return page.evaluate(GRID_HEADERS, selector), page.evaluate(GRID_ROWS, selector)


def _numbers(rows: list[dict], picked: list[dict]) -> list[str]:
    """The "#" each picked row has in its step (its place in the order written), as the table shows it."""
    return [str(next(i for i, row in enumerate(rows, 1) if row is one)) for one in picked]


def test_a_person_browses_the_ppo_runs_answers_sorts_them_and_opens_the_token_view(page, in_rule_preset_home):
    from playwright.sync_api import expect

    run = manager.find(in_rule_preset_home["ppo-format-tiny"]["ppo"])
    rows = rollouts.read(run)
    steps = rollouts.steps(rows)
    last = steps[-1]
    _open_rollouts(page, run.id)
    table = page.locator("#rollouts-table")
    at_last = [row for row in rows if row["step"] == last]
    # It opens on the newest step, the answers in the order sampled.
    expect(table).to_contain_text(f"Step {last}: {len(at_last)} of {len(at_last)} answers", timeout=30_000)
    headers, shown = _table(page, "#rollouts-table")
    assert headers[:3] == ["#", "prompt", "answer"] and headers[-3:] == ["reward", "KL", "length"]
    assert [cells[0] for cells in shown[:3]] == ["1", "2", "3"]
    expect(page.locator("#rollouts-group")).to_be_hidden()  # ppo answers one prompt once: no groups

    # The slider to a step half way (at the first, the policy is still the reference: every token would be white):
    # the table and the charts' marked step follow.
    middle = steps[len(steps) // 2]
    slider = page.locator("#rollouts-step input[type=range]")
    slider.focus()
    slider.press("Home")
    for _ in range(steps.index(middle)):
        slider.press("ArrowRight")
    at_middle = [row for row in rows if row["step"] == middle]
    expect(table).to_contain_text(f"Step {middle}: {len(at_middle)} of {len(at_middle)} answers", timeout=30_000)
    page.wait_for_function(f"() => ({CHARTS})().every(([, marked]) => marked === {middle})", timeout=30_000)
    assert [title for title, _ in page.evaluate(CHARTS)] == ["Reward per step", "Answer length per step (tokens)"]

    # Sorted by reward, the best answer of the step comes first.
    page.get_by_label("Sort by (high to low)").click()
    page.get_by_role("option", name="reward", exact=True).click()
    best_first = rollouts.select(at_middle, sort="reward")
    expected = _numbers(at_middle, best_first)
    top = ",".join(expected[:3])
    page.wait_for_function(
        f"() => ({GRID_ROWS})('#rollouts-table').slice(0, 3).map(cells => cells[0]).join() === '{top}'", timeout=30_000
    )
    headers, shown = _table(page, "#rollouts-table")
    reward, answer = headers.index("reward"), headers.index("answer")
    assert [cells[reward] for cells in shown[:3]] == [f"{row['reward']:.4g}" for row in best_first[:3]]
    assert [" ".join(cells[answer].split()) for cells in shown[:3]] == [
        " ".join(row["answer"].split()) for row in best_first[:3]
    ]

    # The token view of the second answer recorded token by token.
    with_tokens = [i for i, row in enumerate(at_middle, 1) if row.get("tokens")]
    assert len(with_tokens) >= 2
    page.get_by_label("Token view (answers recorded token by token)").click()
    page.get_by_role("option", name=re.compile(rf"^#{with_tokens[1]} ")).click()
    row = at_middle[with_tokens[1] - 1]
    spans = page.locator("#rollouts-tokens span.rollout-token")
    expect(spans).to_have_count(len(row["tokens"]), timeout=30_000)
    assert spans.all_inner_texts() == [rv.token_text(token) for token in row["tokens"]]  # "<|im_end|>" as text
    view = rv.token_view(rows, middle, with_tokens[1])
    titles = [spans.nth(i).get_attribute("title") for i in range(len(row["tokens"]))]
    assert titles == [re.search(r'title="([^"]*)"', span)[1] for span in view.html.split("<span")[1:]]
    # Each token coloured by policy minus reference; by now the policy has moved, so not every token is white.
    backgrounds = [spans.nth(i).get_attribute("style") for i in range(len(row["tokens"]))]
    assert backgrounds == [f"background:{rv.colour(token.delta, view.scale)}" for token in view.tokens]
    assert set(backgrounds) != {"background:#ffffff"}
    assert titles[0].startswith(f"policy {row['logprobs'][0]:.4f} · ")
    spans.first.hover()
    expect(page.locator("#rollouts-tokens")).to_contain_text("Hover a token for its log-probabilities")

    # Best and worst of the whole run, with their steps.
    extremes = rv.best_and_worst(rows)
    _headers, best = _table(page, "#rollouts-best")
    assert [cells[:2] for cells in best[:2]] == [[str(r[0]), f"{r[1]:.4g}"] for r in extremes.best[:2]]
    _headers, worst = _table(page, "#rollouts-worst")
    assert [cells[:2] for cells in worst[:2]] == [[str(r[0]), f"{r[1]:.4g}"] for r in extremes.worst[:2]]

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#rollouts").screenshot(path=str(ARTIFACTS / "rollouts.png"))


def test_a_person_opens_a_grpo_runs_group_view(page, in_rule_preset_home):
    from playwright.sync_api import expect

    run = manager.find(in_rule_preset_home["grpo-math-tiny"]["grpo"])
    rows = rollouts.read(run)
    last = rollouts.steps(rows)[-1]
    groups = rv.group_choices(rows, last)
    assert len(groups) >= 2
    _open_rollouts(page, run.id)
    group_table = page.locator("#rollouts-group-table")
    expect(group_table).to_be_visible(timeout=30_000)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(groups[0].prompt, timeout=30_000)

    # The second group: its prompt, its answers best first, each with its advantage.
    page.get_by_label("Group (one prompt's answers)").click()
    page.get_by_role("option", name=re.compile(rf"^group {groups[1].group} \(")).click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(groups[1].prompt, timeout=30_000)
    view = rv.group_view(rows, last, groups[1].group)
    expect(group_table).to_contain_text(f"Group {groups[1].group} of step {last}: {len(view.rows)} answers")
    headers, shown = _table(page, "#rollouts-group-table")
    assert headers == view.headers and "advantage" in headers
    assert len(shown) == len(view.rows) == groups[1].answers
    assert [cells[0] for cells in shown] == [str(cells[0]) for cells in view.rows]
    advantage = headers.index("advantage")
    assert [cells[advantage] for cells in shown] == [f"{cells[advantage]:.4g}" for cells in view.rows]


def test_scripts_read_the_same_answers_through_the_endpoints(studio, in_rule_preset_home):
    _url, client, _browser = studio
    run = manager.find(in_rule_preset_home["ppo-format-tiny"]["ppo"])
    rows = rollouts.read(run)
    answer = client.predict(run.id, 3, "reward", "", api_name="/rollouts")
    best = rollouts.select(rows, step=3, sort="reward")
    at_step = [row for row in rows if row["step"] == 3]
    assert answer["step"] == 3 and answer["stage"] == "ppo" and answer["total"] == len(at_step)
    assert [cells[0] for cells in answer["rows"]] == [int(n) for n in _numbers(at_step, best)]
    tokens = client.predict(run.id, 3, None, api_name="/rollout_tokens")
    assert tokens["index"] == 1 and [t["text"] for t in tokens["tokens"]] == at_step[0]["tokens"]
    overview = client.predict(run.id, api_name="/rollout_overview")
    assert overview["reward"]["steps"] == rollouts.steps(rows)
    assert overview["best"][0][1] == max(row["reward"] for row in rows if rv.number(row["reward"]) is not None)
    sft = in_rule_preset_home["ppo-format-tiny"]["sft"]
    refused = client.predict(sft, None, "", "", api_name="/rollouts")
    assert refused["error"].startswith(f"run {sft} trains sft: only the stages that sample answers")
