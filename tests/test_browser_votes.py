"""Voting in a real browser (Debian's chromium, driven by playwright), on the session's finished tiny runs
(conftest.tuned_runs, copied into the module's home, where a vote set is made before the studio starts): a person
opens Compare > Vote, picks the set (its guidelines show above the answers, its models get picked), and votes three
pairs with the keyboard alone: A better by a grade, a tie, and B significantly better taken back with undo; then
ranks four answers. The set's votes file holds exactly those votes afterwards. A screenshot of the Vote view goes to
test-artifacts/vote.png.

    python -m pytest tests/test_browser_votes.py -q
"""

from __future__ import annotations

import re
import shutil

import pytest

from studio.data.votes import sets
from tests.conftest import checked_page, served_studio
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)"),
    pytest.mark.usefixtures("in_module_home"),
]

BASE = "base (tiny)"
SET = "helpful-v1"
GUIDELINES = "Prefer the answer that is polite and helpful."
PROMPTS = ["How do I boil an egg?", "Name a fruit.", "What is a good name for a cat?", "How can I sleep better?"]
NAME = "bastu"  # holds the keys of skip, tie, undo and both sides: typed into its box, none of them may act
RANKS = [2, 1, 3, 3]


@pytest.fixture(scope="module")
def studio(tuned_runs, module_home):
    """(url, chromium browser, runs) of one studio served on a copy of the tuned runs, with the vote set made."""
    from playwright.sync_api import sync_playwright

    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(module_home))
        sets.create(sets.VoteSet(SET, guidelines=GUIDELINES, models=[BASE, tuned_runs["sft"]], prompts=PROMPTS))
    with served_studio(module_home) as (url, _client), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield url, browser, tuned_runs
        finally:
            browser.close()


def _answers(page) -> tuple[str, str]:
    return page.locator("#vote-answer-a textarea").input_value(), page.locator("#vote-answer-b textarea").input_value()


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_a_person_votes_three_pairs_with_the_keyboard_and_ranks_four_answers(studio):
    from playwright.sync_api import expect

    url, browser, runs = studio
    sft = runs["sft"]
    with checked_page(browser, url) as page:
        status, reveal = page.locator("#vote-status"), page.locator("#vote-reveal")
        page.get_by_role("tab", name="Compare", exact=True).click(timeout=30_000)
        page.get_by_role("tab", name="Vote", exact=True).click(timeout=30_000)
        page.locator("#vote-set-name input").first.click()
        page.get_by_role("option", name=SET, exact=True).click()
        expect(page.locator("#vote-guidelines")).to_contain_text(f"Guidelines of {SET}", timeout=30_000)
        expect(page.locator("#vote-guidelines")).to_contain_text(GUIDELINES)
        expect(page.locator("#vote-models")).to_contain_text(f"{sft} (tuned-sft)")
        expect(page.locator("#vote-models")).to_contain_text(BASE)

        page.keyboard.press("g")  # Generate
        expect(status).to_have_text(f"Prompt 1 of 4 of the set '{SET}'. Which answer is better?", timeout=60_000)
        expect(page.locator("#vote-prompt textarea")).to_have_value(PROMPTS[0])  # what the answers answer
        first = _answers(page)
        page.get_by_label("Annotator").press_sequentially(NAME)
        page.keyboard.press("Tab")  # out of the box: the keys act again
        expect(reveal).to_have_text("")  # typing the name voted, skipped and undid nothing
        expect(status).to_contain_text("Prompt 1 of 4")

        # 1: A is better, by "better" (A, then 2); the reveal names the writers and the next pair shows.
        page.keyboard.press("a")
        expect(page.locator("#vote-side")).to_have_text("A is better: now 1 to 4 (Esc: neither).")
        page.keyboard.press("2")
        expect(reveal).to_contain_text("Saved: A is better (better). Answer A was written by ", timeout=30_000)
        written = re.search(r"Answer A was written by (.+?), answer B by (.+?)\. ", reveal.inner_text())
        assert {written[1], written[2]} == {BASE, sft}
        expect(status).to_contain_text("Prompt 2 of 4", timeout=60_000)
        second = _answers(page)
        assert second != first

        # 2: a tie (T).
        page.keyboard.press("t")
        expect(reveal).to_contain_text("Saved: tie.", timeout=30_000)
        expect(status).to_contain_text("Prompt 3 of 4", timeout=60_000)

        # 3: B significantly better (B, then 1), taken back (U).
        page.keyboard.press("b")
        page.keyboard.press("1")
        expect(reveal).to_contain_text("Saved: B is better (significantly better).", timeout=30_000)
        expect(reveal).to_contain_text(f"Set {SET}: 3 votes;")
        page.keyboard.press("u")
        expect(reveal).to_contain_text(f"Took back your vote on “{PROMPTS[2]}”. Set {SET}: 2 votes;", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#vote-view").screenshot(path=str(ARTIFACTS / "vote.png"))

        # Rank K: four answers, ranked with a tie, submitted.
        page.get_by_label("Rank K answers").check()
        expect(page.locator("#vote-k input[type=number]")).to_have_value("4")
        page.locator("#vote-go").click()
        expect(status).to_contain_text("Rank the 4 answers: 1 is the best, equal numbers tie.", timeout=60_000)
        expect(page.locator("#vote-answer-5")).to_be_hidden()
        ranked = [page.locator(f"#vote-answer-{i} textarea").input_value() for i in range(1, 5)]
        for i, rank in enumerate(RANKS, start=1):
            page.locator(f"#vote-rank-{i} input").first.click()
            page.locator(f"#vote-rank-{i}").get_by_role("option", name=str(rank), exact=True).click()
        page.locator("#vote-rank-submit").click()
        expect(reveal).to_contain_text("Saved your ranking (1 at 2, 2 at 1, 3 at 3, 4 at 3).", timeout=30_000)
        expect(reveal).to_contain_text(f"Set {SET}: 3 votes; better 1, tie 1; 1 ranking; 6 training pairs.")

    votes = sets.read(SET).votes
    assert [v.get("grade") or v.get("outcome") or v["kind"] for v in votes] == ["better", "tie", "rank"]
    graded, tie, ranking = votes
    assert all(v["annotator"] == NAME for v in votes)
    assert graded["prompt"] == [{"role": "user", "content": PROMPTS[0]}]
    assert (graded["chosen"], graded["rejected"]) == (_assistant(first[0]), _assistant(first[1]))
    assert (graded["chosen_model"], graded["rejected_model"]) == (written[1], written[2])
    assert tie["prompt"] == [{"role": "user", "content": PROMPTS[1]}] and tie["answers"] == list(second)
    assert (ranking["answers"], ranking["ranks"]) == (ranked, RANKS)
    # The undone vote stays in the log, taken back by the undo line after it.
    lines = sets.read_lines(sets.load(SET).votes_path)
    assert [item.get("grade") or item.get("outcome") or item["kind"] for _n, item in lines] == [
        "better",
        "tie",
        "significantly_better",
        "undo",
        "rank",
    ]
    assert lines[3][1]["undo"] == lines[2][1]["id"] and sets.summarize(SET).undone == 1
