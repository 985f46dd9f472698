"""The Runs tab in a real browser (Debian's chromium, driven by playwright), on runs written by hand (no training):
a refresh comes back to the Runs tab and the selected run (both sit in the address), "Deleted run X." stays after
the delete, a failed run shows its error and the end of its log instead of empty charts, and the tab's timers stop
for a finished run and while another tab is shown.

    python -m pytest tests/test_browser_runs.py -q
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from studio.config import RunConfig
from studio.runs import manager
from studio.runs.metrics import MetricsWriter
from tests.conftest import checked_page, select_in_runs_tab, served_studio
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
]

ERROR = "could not read data.path: no <column> named prompt"
LOG = (
    "loading the model and data\nTraceback (most recent call last):\nValueError: no <column> named prompt in rows.csv\n"
)
RUNS_TIMERS = ("on_tick", "charts_on_tick")

# The rendered height of each header's text in the runs table: one line is the height of "id"'s.
HEADER_HEIGHTS = """() => Object.fromEntries([...document.querySelectorAll('#runs-table th')].map(th => {
    const name = th.innerText.trim();
    const text = [...th.querySelectorAll('*')].find(e => !e.children.length && e.textContent.trim() === name);
    return [name, text ? text.getBoundingClientRect().height : 0];
}))"""


def _finished_run(name: str, steps: int = 20):
    run = manager.create(RunConfig(stage="sft", name=name))
    writer = MetricsWriter(run.metrics_path)
    for step in range(1, steps + 1):
        writer.write(
            {
                "loss": 2.0 / step,
                "grad_norm": 1.0,
                "learning_rate": 1e-4,
                "mean_token_accuracy": 0.5,
                "step": step,
                "epoch": step / steps,
                "time": 1000.0 + step,
            }
        )
    run.write_status(state="completed", step=steps, total_steps=steps)
    return run


@pytest.fixture(scope="module")
def runs(module_home) -> dict:
    """Runs in the module's home: two completed ones (one to delete) and one that failed before logging."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))
        done, doomed = _finished_run("kept"), _finished_run("doomed")
        failed = manager.create(RunConfig(stage="sft", name="broken"))
        failed.log_path.write_text(LOG, encoding="utf-8")
        failed.write_status(state="failed", step=0, total_steps=20, error=ERROR)
    return {"done": done.id, "doomed": doomed.id, "failed": failed.id}


@pytest.fixture(scope="module")
def studio(module_home, runs):
    """(url, chromium browser) of one studio served on the module's home for every test here."""
    from playwright.sync_api import sync_playwright

    with served_studio(module_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield url, browser
        finally:
            browser.close()


@pytest.fixture
def page(studio):
    """A fresh page of the studio; the test fails on any script error in it."""
    url, browser = studio
    with checked_page(browser, url) as page:
        yield page


def _open_run(page, run_id: str) -> None:
    from playwright.sync_api import expect

    select_in_runs_tab(page, run_id)
    # The selection's events have answered (its details; the confirmation box's reset comes with them).
    expect(page.locator("#runs-status")).to_contain_text(run_id, timeout=30_000)


def test_a_refresh_comes_back_to_the_runs_tab_and_the_selected_run(page, runs):
    from playwright.sync_api import expect

    _open_run(page, runs["done"])
    expect(page.locator("#runs-status")).to_contain_text(f"{runs['done']}: completed", timeout=30_000)
    # The address says where the person is (playwright's page.url can trail history.replaceState).
    page.wait_for_function(f"() => location.search.includes('run={runs['done']}')", timeout=10_000)
    assert "tab=runs" in page.evaluate("() => location.search")
    page.reload()
    expect(page.get_by_role("tab", name="Runs", exact=True)).to_have_attribute("aria-selected", "true", timeout=30_000)
    expect(page.get_by_label("Selected run")).to_have_value(runs["done"], timeout=30_000)
    expect(page.locator("#runs-status")).to_contain_text(f"{runs['done']}: completed", timeout=30_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)  # its charts are drawn again


def test_the_deleted_message_stays(page, runs):
    from playwright.sync_api import expect

    doomed = runs["doomed"]
    _open_run(page, doomed)
    page.get_by_label("Yes, delete it").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    message = page.locator("#runs-action")
    expect(message).to_contain_text(f"Deleted run {doomed}.", timeout=30_000)
    expect(page.get_by_label("Selected run")).to_have_value("", timeout=10_000)
    page.wait_for_timeout(3000)  # the selection's reset and a table refresh have come and gone
    expect(message).to_contain_text(f"Deleted run {doomed}.", timeout=1_000)
    expect(page.locator("#runs-table").get_by_text(doomed, exact=True).locator("visible=true")).to_have_count(0)
    assert "run=" not in page.evaluate("() => location.search")  # a refresh opens no deleted run


def test_short_headers_stay_on_one_line_on_a_laptop_screen(page, runs):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1024, "height": 1400})
    page.get_by_role("tab", name="Runs", exact=True).click(timeout=30_000)
    expect(page.locator("#runs-table").get_by_text(runs["done"], exact=True).locator("visible=true")).to_have_count(
        1, timeout=30_000
    )
    heights = page.evaluate(HEADER_HEIGHTS)
    # No run is running, so the ETA column is empty: left to the browser it was squeezed to "E T A".
    assert all(heights[name] == heights["id"] > 0 for name in ("stage", "state", "step", "ETA")), heights


def test_a_failed_run_shows_its_error_and_log_instead_of_empty_charts(page, runs):
    from playwright.sync_api import expect

    _open_run(page, runs["done"])
    plots = page.locator(".js-plotly-plot").locator("visible=true")
    expect(plots.first).to_be_visible(timeout=30_000)
    page.locator("#runs-table").get_by_text(runs["failed"], exact=True).locator("visible=true").first.click()
    health = page.locator("#runs-health")
    expect(health).to_contain_text("It failed before logging any metrics", timeout=30_000)
    expect(health).to_contain_text("ValueError: no <column> named prompt in rows.csv")  # escaped, shown whole
    expect(page.locator("#runs-status")).to_contain_text(f"Error: {ERROR}")
    expect(plots).to_have_count(0)
    assert "no warnings" not in health.inner_text()


def _requests_by_name(page, url: str) -> list[str]:
    """Starts recording the api names of the events the page sends; returns the list it appends to."""
    with urllib.request.urlopen(f"{url}config", timeout=30) as answer:
        names = [dep.get("api_name") for dep in json.loads(answer.read())["dependencies"]]
    sent: list[str] = []

    def record(request):
        if "/queue/join" in request.url and request.post_data:
            sent.append(names[json.loads(request.post_data)["fn_index"]])

    page.on("request", record)  # called while playwright waits (page.wait_for_timeout), not in a time.sleep
    return sent


def _falls_quiet(page, sent: list[str], names, seconds: float = 5, within: float = 40) -> bool:
    """Whether, within `within` seconds, the page goes `seconds` without sending any of these events (a busy
    machine may answer the one that stops a timer late)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        del sent[:]
        page.wait_for_timeout(seconds * 1000)
        if not [name for name in sent if name in names]:
            return True
    return False


def test_timers_stop_for_a_finished_run_and_on_another_tab(page, runs, studio):
    from playwright.sync_api import expect

    sent = _requests_by_name(page, studio[0])
    _open_run(page, runs["done"])
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    # A finished run is drawn once: it used to be redrawn every second, on whichever tab was shown.
    assert _falls_quiet(page, sent, {"charts_on_tick"}), sent
    del sent[:]
    page.wait_for_timeout(5000)
    assert "on_tick" in sent, sent  # the table stays live while the tab is shown
    page.get_by_role("tab", name="Model", exact=True).click()
    assert _falls_quiet(page, sent, RUNS_TIMERS), sent  # a hidden tab costs nothing
    page.get_by_role("tab", name="Runs", exact=True).click()
    expect(page.locator("#runs-status")).to_contain_text(f"{runs['done']}: completed", timeout=30_000)
    del sent[:]
    page.wait_for_timeout(5000)
    assert "on_tick" in sent, sent  # back on the tab, it is live again
