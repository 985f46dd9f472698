"""A real browser (Debian's chromium, driven by playwright) uses the studio as a person would: it sees the tabs,
loads the tiny SFT preset in the Train tab, starts it, selects the run in the Runs tab, and watches the loss chart
gain points until the run completes; on finished runs it compares base and tuned answers side by side and watches a
chat reply stream in. Screenshots of the Runs, Compare and Chat tabs are saved to test-artifacts/.

    python -m pytest tests/test_browser.py -q
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from studio.runs import manager
from studio.runs.metrics import read_all
from tests.conftest import REPO, served_studio

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a headless chromium in a container with no GPU, sandbox or network to phone home to.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
TABS = ("Model", "Data", "Train", "Pipelines", "Runs", "Compare", "Chat", "Rewards", "Share")

# The number of points in the trace of the plotly chart titled "Loss" (0 while there is none).


@contextmanager
def studio_page(home: Path):
    """(page, errors) of chromium showing a studio served on this home; errors collects the page's script errors."""
    from playwright.sync_api import sync_playwright

    with served_studio(home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


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
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with studio_page(studio_home) as (page, errors):
        for name in TABS:
            expect(page.get_by_role("tab", name=name, exact=True)).to_be_visible(timeout=30_000)

        page.get_by_role("tab", name="Train").click()
        preset = page.get_by_label("Preset", exact=True)
        preset.click()
        page.get_by_role("option", name=re.compile(r"^sft-dolly-tiny")).click()
        # The list's refresh on focus answers after the pick, and must leave it in place.
        time.sleep(2)
        expect(preset).to_have_value("sft-dolly-tiny")
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
            if manager.status(manager.find(run_id)).state == "completed" and seen[-1] >= 13:
                break
            time.sleep(1)
        time.sleep(3)  # the last points reach the chart on the next refresh
        seen.append(page.evaluate(LOSS_POINTS))
        page.screenshot(path=str(ARTIFACTS / "runs-tab-sft-tiny.png"), full_page=True)

    run = manager.find(run_id)
    assert manager.status(run).state == "completed"
    logged = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert len(logged) == 13  # the preset logs the loss at step 1 and every 5 of its 60 steps
    growth = sorted(set(seen))
    # The chart ends with every logged point and showed counts on the way: it grew live, not all at once.
    assert growth[-1] == len(logged), seen
    assert [n for n in growth if 0 < n < len(logged)], seen
    assert not errors, errors


# Records, in the page, each new length of the newest chat reply as the chatbot redraws it.
WATCH_REPLY = """() => {
    window.replyLengths = [];
    const log = document.querySelector('#chat-window');
    new MutationObserver(() => {
        const replies = log.querySelectorAll('[data-testid="bot"]');
        if (!replies.length) return;
        const n = replies[replies.length - 1].innerText.length, seen = window.replyLengths;
        if (!seen.length || seen[seen.length - 1] !== n) seen.push(n);
    }).observe(log, {subtree: true, childList: true, characterData: true});
}"""
LAST_REPLY = """() => {
    const replies = document.querySelectorAll('#chat-window [data-testid="bot"]');
    return replies.length ? replies[replies.length - 1].innerText : '';
}"""


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_a_person_compares_base_and_tuned_answers_and_chats(in_tuned_home):
    from playwright.sync_api import expect

    sft = in_tuned_home["sft"]
    ARTIFACTS.mkdir(exist_ok=True)
    with studio_page(in_tuned_home["home"]) as (page, errors):
        page.get_by_role("tab", name="Compare").click(timeout=30_000)
        page.get_by_label("Runs to compare").click()
        page.get_by_role("option", name=re.compile(re.escape(sft))).click()
        page.keyboard.press("Escape")
        page.get_by_label("Prompts (one per line)").fill("How do I boil an egg?")
        page.get_by_role("button", name="Generate", exact=True).locator("visible=true").click()
        answers = page.locator("#compare-answers td.answer")
        expect(answers).to_have_count(2, timeout=120_000)
        columns = [answers.nth(i).get_attribute("data-model") for i in range(2)]
        texts = [answers.nth(i).inner_text().strip() for i in range(2)]
        headers = page.locator("#compare-answers th").all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "compare-tab.png"), full_page=True)

        page.get_by_role("tab", name="Chat").click()
        page.get_by_text("Generation settings").locator("visible=true").click()
        # Greedy with a repetition penalty below 1: the tiny base model writes all 1500 tokens, a few seconds.
        for label, value in (("Max new tokens", "1500"), ("Temperature", "0"), ("Repetition penalty", "0.8")):
            box = page.get_by_label(label, exact=True).locator("visible=true")
            box.fill(value)
            box.press("Tab")  # leaving the box commits its value before Send reads it (it once sent the default)
            expect(box).to_have_value(value)
        page.get_by_label("Message").fill("Tell me a story")
        page.evaluate(WATCH_REPLY)
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=120_000)
        lengths = page.evaluate("() => window.replyLengths")
        reply = page.evaluate(LAST_REPLY)
        stats = page.locator("#chat-stats").inner_text()
        page.screenshot(path=str(ARTIFACTS / "chat-tab.png"), full_page=True)

    assert columns == ["base (tiny)", sft] and headers[-2:] == ["base (tiny)", f"tuned-sft\n{sft}"]  # name, id
    assert all(texts), texts
    # The reply showed up in pieces that grew, before the whole of it.
    partial = [n for n in lengths if 0 < n < len(reply)]
    assert len(partial) >= 2 and partial == sorted(partial), lengths
    assert lengths[-1] == len(reply) > 0
    assert stats.startswith("base (tiny) reply: 1500 tokens in "), stats
    assert not errors, errors


# How many stages the selected pipeline's graph shows as completed.
COMPLETED_STAGES = """() => document.querySelectorAll('.pipeline-graph g.stage[data-state="completed"]').length"""


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_a_person_starts_the_instructgpt_recipe_and_sees_its_three_stages_complete(studio_home):
    from playwright.sync_api import expect

    from studio import config as cfg
    from studio.pipelines import runner

    ARTIFACTS.mkdir(exist_ok=True)
    with studio_page(studio_home) as (page, errors):
        page.get_by_role("tab", name="Pipelines").click(timeout=30_000)
        page.get_by_label("Recipe", exact=True).click()
        page.get_by_role("option", name=re.compile(r"^InstructGPT \(tiny\) · ppo-tiny")).click()
        expect(page.get_by_text(re.compile(r"^InstructGPT \(tiny\): SFT -> reward model -> PPO"))).to_be_visible(
            timeout=30_000
        )
        page.get_by_label("Overrides").fill("train.max_steps=4")  # every stage: 4 steps keep the test short
        page.get_by_role("button", name="Start", exact=True).locator("visible=true").click()
        expect(page.get_by_text(re.compile(r"Started pipeline"))).to_be_visible(timeout=60_000)
        deadline = time.monotonic() + 600
        while page.evaluate(COMPLETED_STAGES) < 3:
            assert time.monotonic() < deadline, page.locator("body").inner_text()[-2000:]
            time.sleep(2)
        expect(page.get_by_text(re.compile(r"\(ppo-tiny\): completed"))).to_be_visible(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "pipelines-tab-instructgpt.png"), full_page=True)

    [state] = runner.list_pipelines()
    assert state["name"] == "ppo-tiny" and state["state"] == "completed"
    ids = {s["name"]: s["run_id"] for s in state["stages"]}
    configs = {name: cfg.load_config(manager.find(run_id).config_path) for name, run_id in ids.items()}
    assert [c.stage for c in configs.values()] == ["sft", "reward", "ppo"]
    assert configs["rm"].init.from_run == configs["ppo"].init.from_run == ids["sft"]
    assert configs["ppo"].rewards.runs == [ids["rm"]]
    assert all(c.train.max_steps == 4 for c in configs.values())
    assert [r["state"] for r in manager.list_runs()] == ["completed"] * 3  # normal runs, in the Runs tab's list
    assert not errors, errors
