"""In a real browser: a person adds a `format` reward source in the Train tab, starts a short GRPO run, and sees the
source's own chart line, reward/format, in the Runs tab once the run has trained.

    python -m pytest tests/test_browser_reward_chart.py -q
"""

from __future__ import annotations

import re
import time

import pytest

from studio import config as cfg
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import served_studio
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]


def field(page, key: str, label: str):
    """The visible input labelled in words with its config key on its info line."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(label)}\s+{re.escape(key)} · ")).locator("visible=true")


def test_a_format_source_added_in_the_train_tab_has_its_chart_in_the_runs_tab(studio_home):
    from playwright.sync_api import expect, sync_playwright

    with served_studio(studio_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url)
            page.get_by_role("tab", name="Data").click(timeout=30_000)
            field(page, "data.path", "Data file").fill("sample")  # the bundled Dolly sample: its prompts
            field(page, "data.limit", "Max rows").fill("24")
            page.get_by_role("tab", name="Train").click()
            page.locator("#field-stage input").click()
            page.get_by_role("option", name=re.compile(r"^grpo:")).click()
            page.locator("#field-train-max_steps input").fill("3")
            page.locator("#field-grpo-max_completion_length input").fill("8")
            page.locator("#reward-source-add").click(timeout=30_000)
            page.locator("#reward-source-0-kind").get_by_label("Built-in", exact=True).check(timeout=30_000)
            page.locator("#reward-source-0-args-format-pattern").get_by_role("textbox").fill(r"\w")
            # Weighed 0.5, so its line differs from the combined reward's (a source equal to it is not drawn twice).
            page.locator("#reward-source-0-weight input").fill("0.5")

            page.get_by_role("button", name="Start", exact=True).locator("visible=true").click()
            started = page.get_by_text(re.compile(r"^Started \S+-grpo-"))
            expect(started).to_be_visible(timeout=60_000)
            run_id = re.search(r"\S+-grpo-[0-9a-f]+", started.inner_text())[0]
            run = RunDir.of(run_id)
            assert [s.label for s in cfg.load_config(run.config_path).rewards.sources] == ["format"]
            deadline = time.monotonic() + 300
            while not (status := manager.status(run)).final:
                assert time.monotonic() < deadline, "the run did not end in 300 s"
                time.sleep(1)
            assert status.state == "completed", run.log_tail(30)
            logged = [row for row in read_all(run.metrics_path) if "reward/format" in row]
            assert logged and all(0.0 <= row["reward/format"] <= 1.0 for row in logged)

            page.get_by_role("tab", name="Runs", exact=True).click()
            page.locator("#runs-table").get_by_text(run_id, exact=True).locator("visible=true").first.click()
            expect(page.get_by_label("Selected run")).to_have_value(run_id, timeout=30_000)
            reward_chart = page.locator(".js-plotly-plot", has_text="reward/format").locator("visible=true")
            expect(reward_chart.first).to_be_visible(timeout=60_000)
            assert errors == []
        finally:
            browser.close()
