"""Evaluation in a real browser (Debian's chromium, driven by playwright), on the session's finished tiny runs
(conftest.tuned_runs, copied into the module's home, where the evaluation is saved): a person opens Compare > Judge,
picks the SFT run, the reward run as the judge and 4 held-out prompts, clicks Evaluate, watches the progress lines
and reads the win-rate table with its interval; the Runs tab then lists that evaluation for the run. A screenshot
of the Judge sub-tab goes to test-artifacts/eval.png, the picture in docs/.

    python -m pytest tests/test_browser_eval.py -q
"""

from __future__ import annotations

import re
import shutil

import pytest

from components import eval_view
from studio.eval import evaluate as evaluation
from tests.conftest import checked_page, served_studio
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
    pytest.mark.usefixtures("in_module_home"),
]

# The cells of each rendered row of a table (the grid renders the rows in view; the header row has no cells).
GRID_ROWS = """(selector) => [...document.querySelectorAll(selector + ' [role=row]')]
    .map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))
    .filter(cells => cells.length)"""
GRID_HEADERS = """(selector) => [...document.querySelectorAll(selector + ' [role=columnheader]')]
    .map(cell => cell.innerText.trim())"""
RATE = re.compile(r"(\d+)% \[(\d+)%, (\d+)%\]")


@pytest.fixture(scope="module")
def studio(tuned_runs, module_home):
    """(url, chromium browser, runs) of one studio served on a copy of the tuned runs."""
    from playwright.sync_api import sync_playwright

    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    with served_studio(module_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield url, browser, tuned_runs
        finally:
            browser.close()


def _pick(page, field: str, option: str) -> None:
    """Open the dropdown `field` (its elem_id) and click the option whose name starts with `option`."""
    page.locator(f"#{field} input").first.click()
    page.get_by_role("option", name=re.compile("^" + re.escape(option))).click()


def _rows(page, selector: str) -> list[list[str]]:
    return page.evaluate(GRID_ROWS, selector)


def test_a_person_judges_the_sft_run_and_finds_the_evaluation_in_the_runs_tab(studio):
    from playwright.sync_api import expect

    url, browser, runs = studio
    sft, reward = runs["sft"], runs["reward"]
    with checked_page(browser, url) as page:
        page.get_by_role("tab", name="Compare", exact=True).click(timeout=30_000)
        page.get_by_role("tab", name="Judge", exact=True).click(timeout=30_000)
        judge_view = page.locator("#compare-judge")
        expect(judge_view).to_be_visible(timeout=30_000)

        _pick(page, "eval-runs", sft)
        page.keyboard.press("Escape")  # a multiselect stays open after a pick
        expect(page.locator("#eval-kind input[value=reward_run]")).to_be_checked()
        _pick(page, "eval-reward-run", reward)
        count = page.locator("#eval-count input")
        count.fill("4")
        count.press("Tab")
        page.locator("#eval-go").click()

        # Progress lines while it runs, then one row with the win rate and its interval.
        expect(page.locator("#eval-progress textarea")).to_have_value(
            re.compile(rf"^{re.escape(sft)}: answering 4 prompts"), timeout=60_000
        )
        page.wait_for_function(
            f"() => ({GRID_ROWS})('#eval-table').some(cells => cells.length > 5 && /%/.test(cells[5]))",
            timeout=180_000,
        )
        (saved,) = evaluation.evaluations(sft)
        expected = eval_view.table_rows([saved])
        assert page.evaluate(GRID_HEADERS, "#eval-table") == eval_view.TABLE_COLUMNS
        (shown,) = _rows(page, "#eval-table")
        assert shown == expected[0]
        assert shown[:4] == [f"tuned-sft ({sft})", "base (tiny)", reward, "4"]
        rate, low, high = (int(n) for n in RATE.fullmatch(shown[5]).groups())
        assert low <= rate <= high
        wins, ties, losses = (int(n) for n in shown[4].split(" / "))
        assert wins + ties + losses == 4
        expect(page.locator("#eval-progress textarea")).to_have_value(
            re.compile(rf"{re.escape(sft)}: judged 4 of 4$"), timeout=30_000
        )
        expect(page.get_by_role("button", name="Download summary CSV")).to_be_visible(timeout=30_000)
        page.wait_for_function(f"() => ({GRID_ROWS})('#eval-rows').length === 4", timeout=30_000)
        # Each prompt as the grid shows it: its line breaks as spaces.
        shown_prompts = [" ".join(cells[1].split()) for cells in _rows(page, "#eval-rows")]
        assert shown_prompts == [" ".join(r["prompt"].split()) for r in saved["rows"]]

        ARTIFACTS.mkdir(exist_ok=True)
        judge_view.screenshot(path=str(ARTIFACTS / "eval.png"))

        # The Runs tab lists the evaluation with the run's details, newest first, with its CSV.
        page.get_by_role("tab", name="Runs", exact=True).click()
        # The run's own row (the chained run's row names it too, as its parent): the one with its name.
        row = page.locator("#runs-table [role=row]").filter(has_text="tuned-sft").locator("visible=true").first
        row.get_by_text(sft, exact=True).click(timeout=30_000)
        expect(page.get_by_label("Selected run")).to_have_value(sft, timeout=30_000)
        expect(page.locator("#runs-evaluations-note")).to_contain_text("1 evaluation, newest first.", timeout=30_000)
        page.wait_for_function(f"() => ({GRID_ROWS})('#runs-evaluations').length === 1", timeout=30_000)
        assert _rows(page, "#runs-evaluations") == expected
        expect(page.get_by_role("button", name="Download evaluations CSV")).to_be_visible()
