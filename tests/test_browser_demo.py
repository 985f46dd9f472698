"""A newcomer's first click, in a real browser: on a fresh studio home the Start here strip offers the offline demo;
Run the offline demo trains its four runs (watched in the Runs tab) and then shows base and tuned answers side by side
in the Compare tab. Once runs exist, the strip no longer opens by itself.

    python -m pytest tests/test_browser_demo.py -q
"""

from __future__ import annotations

import time

import pytest

from studio import demo
from studio.runs import manager
from tests.conftest import served_studio
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]


def test_run_the_offline_demo_from_the_start_strip(studio_home):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with served_studio(studio_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        strip = page.locator("#start-here")
        expect(strip).to_contain_text("Start here", timeout=30_000)
        expect(strip).to_contain_text("Model")
        page.screenshot(path=str(ARTIFACTS / "start-here.png"))

        page.get_by_role("button", name="Run the offline demo").click()
        expect(page.get_by_role("tab", name="Runs", exact=True)).to_have_attribute(
            "aria-selected", "true", timeout=30_000
        )
        deadline = time.monotonic() + 600
        while True:
            runs = manager.list_runs()
            if len(runs) == 4 and all(r["state"] == "completed" for r in runs):
                break
            assert not [r for r in runs if r["state"] in ("failed", "cancelled")], runs
            assert time.monotonic() < deadline, runs
            time.sleep(2)
        assert sorted(r["stage"] for r in runs) == ["dpo", "ppo", "reward", "sft"]
        for run in runs:  # each in the Runs tab's table, which refreshes while it is shown
            expect(page.get_by_text(run["id"], exact=True).locator("visible=true").first).to_be_visible(timeout=30_000)
        expect(page.locator("#demo-progress")).to_contain_text("Demo completed", timeout=60_000)

        page.get_by_role("tab", name="Compare", exact=True).click()
        answers = page.locator("#compare-answers td.answer")
        questions = demo.held_out_questions()[:8]
        expect(answers).to_have_count(8 * 4, timeout=300_000)  # 8 held-out questions, base and 3 tuned models
        table = page.locator("#compare-answers").inner_text()
        assert all(q in table for q in questions)
        assert "score" in table  # scored by the demo's reward model
        page.screenshot(path=str(ARTIFACTS / "compare-demo.png"), full_page=True)

        page.goto(url)  # runs exist now: the strip stays closed
        expect(page.get_by_role("tab", name="Model", exact=True)).to_be_visible(timeout=30_000)
        time.sleep(2)
        assert not page.locator("#start-here").is_visible()
        browser.close()
    assert not errors, errors
