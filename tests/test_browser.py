"""A real browser (Debian's chromium, driven by playwright) uses the studio as a person would: it sees the tabs,
loads the tiny SFT preset in the Train tab, starts it, selects the run in the Runs tab, and watches the loss chart
gain points until the run completes. A screenshot of the Runs tab is saved to test-artifacts/.

    python -m pytest tests/test_browser.py -q
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from studio.runs import manager
from studio.runs.metrics import read_all
from tests.conftest import REPO, served_studio

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a headless chromium in a container with no GPU, sandbox or network to phone home to.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
TABS = ("Model", "Data", "Train", "Runs")

# The number of points in the trace of the plotly chart titled "Loss" (0 while there is none).
LOSS_POINTS = """() => {
    for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        const title = plot.layout && plot.layout.title && (plot.layout.title.text || plot.layout.title);
        if (String(title).startsWith('Loss') && plot.data && plot.data.length) return plot.data[0].x.length;
    }
    return 0;
}"""


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_a_person_starts_the_tiny_sft_preset_and_watches_it_train(studio_home):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with served_studio(studio_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            page.goto(url)
            for name in TABS:
                expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=30_000)

            page.get_by_role("tab", name="Train").click()
            preset = page.get_by_label("Preset", exact=True)
            preset.click()
            page.get_by_role("option", name=re.compile(r"^sft-dolly-tiny")).click()
            page.get_by_role("button", name="Load", exact=True).click()
            expect(page.get_by_text(re.compile(r"Loaded"))).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Start", exact=True).click()
            expect(page.get_by_text(re.compile(r"Started|Queued"))).to_be_visible(timeout=60_000)
            runs = manager.list_runs()
            assert len(runs) == 1 and runs[0]["name"] == "sft-dolly-tiny"
            run_id = runs[0]["id"]

            page.get_by_role("tab", name="Runs").click()
            # Its row in the runs table (the text also sits, hidden, in the Train tab's message and the table's sizer).
            page.get_by_text(run_id, exact=True).locator("visible=true").first.click(timeout=30_000)
            seen: list[int] = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                seen.append(page.evaluate(LOSS_POINTS))
                if manager.status(manager.find(run_id))["state"] == "completed" and seen[-1] >= 13:
                    break
                time.sleep(1)
            time.sleep(3)  # the last points reach the chart on the next refresh
            seen.append(page.evaluate(LOSS_POINTS))
            page.screenshot(path=str(ARTIFACTS / "runs-tab-sft-tiny.png"), full_page=True)
        finally:
            browser.close()

    run = manager.find(run_id)
    assert manager.status(run)["state"] == "completed"
    logged = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert len(logged) == 13  # the preset logs the loss at step 1 and every 5 of its 60 steps
    growth = sorted(set(seen))
    # The chart ends with every logged point and showed counts on the way: it grew live, not all at once.
    assert growth[-1] == len(logged), seen
    assert [n for n in growth if 0 < n < len(logged)], seen
    assert not errors, errors
