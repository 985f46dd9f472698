"""The Compare tab's Vote view through the served studio's endpoints (components/vote_view.py), on the session's
finished tiny runs: graded votes, ties and "both bad" recorded into a vote set and trained on by a reward run with
Llama 2's margins, a rank-4 vote, undo, the one-line refusals, and the queue that makes the next item while the
current one is read (studio/serve/vote_queue.py).

The runs are copied into the module's own home, where the vote sets are made before the studio starts (so its set
picker lists them) and where the votes land.

    OMP_NUM_THREADS=1 python -m pytest tests/test_ui_votes.py -q
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, replace
from fractions import Fraction

import pytest

from studio import data
from studio.config import DataSpec, GenerationSpec, VotesSpec
from studio.data.votes import records, sets
from studio.errors import StudioError
from studio.serve import compare, vote_queue, voting
from tests.conftest import error_shown, poll, run_cli

pytestmark = pytest.mark.usefixtures("in_module_home")

BASE = "base (tiny)"
GRADED, RANKED, QUEUED = "graded", "ranked", "queued"
PROMPTS = ["How do I boil an egg?", "Name a fruit.", "What is a good name for a cat?", "How can I sleep better?"]
GUIDELINES = "Prefer the answer that is *polite* and helpful."
ANA = "ana"
NO_NAME = "type your name in the Annotator box first: every vote records who cast it"
ITEM_OUTPUTS = 2 + 1 + 1 + 9 + 9 + 1  # answer A, B, status, prompt, 9 answers, 9 rank pickers, guidelines


def settings(**overrides) -> tuple:
    """The generation boxes' values, in GenerationSpec's key order (the order of the tab's boxes)."""
    return tuple({**asdict(GenerationSpec(max_new_tokens=24)), **overrides}.values())


@pytest.fixture(scope="module")
def runs(tuned_runs, module_home) -> dict:
    """The tuned runs copied into the module's home, and its vote sets made there."""
    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(module_home))
        for name in (GRADED, RANKED, QUEUED):
            models = [BASE, tuned_runs["sft"]] if name == GRADED else [tuned_runs["sft"]]
            sets.create(sets.VoteSet(name, guidelines=GUIDELINES, models=models, prompts=PROMPTS))
    return {**tuned_runs, "home": module_home}


@pytest.fixture(scope="module")
def client(runs, module_client):
    return module_client


def generate(client, set_name: str, models: list[str], mode: str = "pair", k: int = 4, **gen) -> tuple:
    """/vote_generate on the set's prompts: (answer A, answer B, status, the ranking answers shown, the nine rank
    pickers, guidelines); the prompt shown is checked to be one of the set's."""
    out = client.predict(set_name, models, mode, k, "set", "", *settings(**gen), api_name="/vote_generate")
    assert len(out) == ITEM_OUTPUTS
    if isinstance(out[3], str):  # an item shown (a refusal leaves the boxes as they were): the prompt it answers
        vote_set = sets.load(set_name)
        assert (out[3] in vote_set.prompts) if vote_set.prompts else out[3], out[3]
    answers = [box["value"] for box in out[4:13] if box.get("visible")] if isinstance(out[4], dict) else out[4:13]
    return out[0], out[1], out[2], answers, list(out[13:22]), out[22]


def revealed(reveal: str) -> tuple[str, str]:
    """(who wrote answer A, who wrote answer B) as the reveal after a pair's vote names them."""
    written = re.search(r"Answer A was written by \*\*(.+?)\*\*, answer B by \*\*(.+?)\*\*\.", reveal)
    assert written, reveal
    return written[1], written[2]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------- graded pairs, trained on


VOTES = [
    ("a", "significantly_better"),
    ("b", "better"),
    ("a", "slightly_better"),
    ("b", "negligibly_better"),
    ("tie", None),
    ("both_bad", None),
]


def test_picking_a_set_shows_its_guidelines_and_picks_its_models(client, runs):
    sft = runs["sft"]
    set_picker, models = client.predict(GRADED, [], api_name="/vote_choices")
    assert [c[1] for c in set_picker["choices"]] == sorted(["default", GRADED, RANKED, QUEUED])
    assert [c[1] for c in models["choices"]] == [BASE, runs["chained"], sft]
    guidelines, models, status = client.predict(GRADED, api_name="/vote_pick_set")
    assert guidelines == f"**Guidelines of `{GRADED}`**\n\n{GUIDELINES}"
    assert models["value"] == [BASE, sft]
    assert status == f"The set draws from `{BASE}`, `{sft}`."


def test_graded_votes_train_a_reward_run_on_their_llama_2_margins(client, runs):
    sft = runs["sft"]
    shown = []
    for number, (choice, grade) in enumerate(VOTES):
        a, b, status, answers, _ranks, guidelines = generate(client, GRADED, [BASE, sft])
        prompt = PROMPTS[number % len(PROMPTS)]
        assert status == f"Prompt {number % 4 + 1} of 4 of the set '{GRADED}'. Which answer is better?"
        assert guidelines.endswith(GUIDELINES) and answers == []
        assert a and b and a != b
        reveal = client.predict(GRADED, ANA, choice, grade, api_name="/vote_pair")
        verdict = records.OUTCOME_LABELS[choice].lower() if grade is None else None
        verdict = verdict or f"{choice.upper()} is better ({records.GRADE_LABELS[grade].lower()})"
        assert reveal.startswith(f"Saved: {verdict}. Answer A was written by **"), reveal
        model_a, model_b = revealed(reveal)
        assert {model_a, model_b} == {BASE, sft}
        shown.append((prompt, a, b, model_a, model_b))
    assert reveal.endswith(
        f"Set `{GRADED}`: 6 votes; significantly better 1, better 1, slightly better 1, negligibly better / unsure 1, "
        "tie 1, both bad 1; 4 training pairs."
    ), reveal

    # The set's file holds each vote as cast: the clicked answer chosen, with its grade and its annotator.
    votes = sets.read(GRADED).votes
    assert len(votes) == 6
    for vote, (choice, grade), (prompt, a, b, model_a, model_b) in zip(votes, VOTES, shown):
        assert vote["prompt"] == [{"role": "user", "content": prompt}] and vote["annotator"] == ANA
        if grade is None:
            assert (vote["outcome"], vote["answers"], vote["models"]) == (choice, [a, b], [model_a, model_b])
            continue
        won, lost = (a, b) if choice == "a" else (b, a)
        assert (vote["chosen"], vote["rejected"], vote["grade"]) == (_assistant(won), _assistant(lost), grade)
        assert (vote["chosen_model"], vote["rejected_model"]) == (
            (model_a, model_b) if choice == "a" else (model_b, model_a)
        )

    # The training rows: one per graded vote with its level's margin on each scale; the tie and "both bad" none.
    chosen = [_assistant(a if choice == "a" else b) for (choice, grade), (_p, a, b, *_m) in zip(VOTES, shown) if grade]
    small = [1.0, float(Fraction(2, 3)), float(Fraction(1, 3)), 0.0]  # Llama 2, Table 27, in the order voted
    for scale, margins in (("small", small), ("large", [3.0, 2.0, 1.0, 0.0])):
        loaded = data.load(DataSpec(source="votes", votes=VotesSpec(set=GRADED, margin_scale=scale)), "preference")
        assert [row["margin"] for row in loaded.rows] == margins
        assert [row["chosen"] for row in loaded.rows] == chosen
    summary = sets.summarize(GRADED)
    assert (summary.votes, summary.pairs, summary.by_level["tie"], summary.by_level["both_bad"]) == (6, 4, 1, 1)

    done = run_cli(
        "train",
        "presets/rm-hh-tiny.yaml",
        *("--set", "data.source=votes", "--set", f"data.votes.set={GRADED}", "--set", "data.path="),
        *("--set", "reward.use_margin=true", "--set", "train.max_steps=2", "--set", "name=rm-on-votes"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = next(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("dir "))
    from pathlib import Path

    status = json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    report = json.loads((Path(run_dir) / "data_report.json").read_text(encoding="utf-8"))
    assert status["state"] == "completed"
    assert (report["source"], report["rows"], report["train_rows"] + report["held_out_rows"]) == ("votes", 4, 4)
    assert report["origin"] == str(sets.load(GRADED).votes_path) and report["dropped"] == {}


# ---------------------------------------------------------------- ranking, undo, refusals


def test_a_rank_4_vote_records_every_rank_and_gives_the_ordered_pairs(client, runs):
    sft = runs["sft"]
    a, b, status, answers, ranks, _guidelines = generate(client, RANKED, [sft], mode="rank", k=4)
    assert (a, b) == ("", "")
    assert status == f"Prompt 1 of 4 of the set '{RANKED}'. Rank the 4 answers: 1 is the best, equal numbers tie."
    shown = answers
    assert len(shown) == 4 and all(shown) and len(set(shown)) == 4
    assert [r["visible"] for r in ranks] == [True] * 4 + [False] * 5
    assert [[value for _label, value in r["choices"]] for r in ranks[:4]] == [[1, 2, 3, 4]] * 4

    refused = client.predict(RANKED, ANA, 2, 1, 3, None, *[None] * 5, api_name="/vote_rank")
    assert error_shown(refused) == "give every answer a rank: answer 4 has none"
    refused = client.predict(RANKED, ANA, 2, 2, 2, 2, *[None] * 5, api_name="/vote_rank")
    assert error_shown(refused) == "ranking: every answer has the same rank, so the ranking prefers none"
    assert sets.read(RANKED).votes == []

    reveal = client.predict(RANKED, ANA, 2, 1, 3, 3, *[None] * 5, api_name="/vote_rank")
    assert reveal.startswith("Saved your ranking (1 at 2, 2 at 1, 3 at 3, 4 at 3). Written by: 1 **")
    assert reveal.endswith(f"Set `{RANKED}`: 1 vote; 1 ranking; 5 training pairs.")
    (vote,) = sets.read(RANKED).votes
    assert (vote["kind"], vote["answers"], vote["ranks"], vote["models"]) == ("rank", shown, [2, 1, 3, 3], [sft] * 4)
    rows = data.load(DataSpec(source="votes", votes=VotesSpec(set=RANKED, group_rankings=True)), "preference").rows
    best, second, third, fourth = shown[1], shown[0], shown[2], shown[3]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        (best, second),
        (second, third),
        (second, fourth),
        (best, third),
        (best, fourth),
    ]
    assert {r["group"] for r in rows} == {vote["id"]}

    # The ranking is gone once voted on; the next one is the set's next prompt.
    assert error_shown(client.predict(RANKED, ANA, 1, 2, 3, 4, *[None] * 5, api_name="/vote_rank")) == (
        "Nothing to vote on: press Generate (G) first."
    )
    assert generate(client, RANKED, [sft], mode="rank", k=4)[2].startswith("Prompt 2 of 4")


def test_undo_takes_back_the_annotators_last_vote(client, runs):
    sft = runs["sft"]
    generate(client, RANKED, [BASE, sft])
    assert client.predict(RANKED, "bo", "b", "better", api_name="/vote_pair").startswith("Saved: B is better")
    generate(client, RANKED, [BASE, sft])
    assert client.predict(RANKED, ANA, "tie", None, api_name="/vote_pair").startswith("Saved: tie.")
    before = sets.read(RANKED).votes
    reveal = client.predict(RANKED, "bo", api_name="/vote_undo")
    prompt = compare.prompt_text(before[-2]["prompt"])
    assert reveal.startswith(f"Took back your vote on “{prompt}”. Set `{RANKED}`: ")
    assert sets.read(RANKED).votes == [before[0], before[2]]  # bo's vote gone; ana's ranking and tie stay
    assert sets.summarize(RANKED).undone == 1
    assert error_shown(client.predict(RANKED, "bo", api_name="/vote_undo")) == (
        f"nothing to undo: no vote by bo in the set '{RANKED}'"
    )


def test_votes_without_a_name_a_grade_or_a_pair_are_refused_in_one_line(client, runs):
    sft = runs["sft"]
    before = sets.read(RANKED).votes
    generate(client, RANKED, [BASE, sft])
    assert error_shown(client.predict(RANKED, "  ", "a", "better", api_name="/vote_pair")) == NO_NAME
    assert error_shown(client.predict(RANKED, ANA, "a", None, api_name="/vote_pair")) == (
        f"say by how much answer A is better: {', '.join(records.GRADES)}"
    )
    assert error_shown(client.predict(RANKED, ANA, *[None] * 9, api_name="/vote_rank")) == (
        "the answers shown are a pair: pick A or B"
    )
    # The pair is still shown after those refusals: a skip reveals it and saves nothing.
    skipped = client.predict(api_name="/vote_skip")
    assert skipped.startswith("Skipped; nothing saved. Answer A was written by **")
    assert error_shown(client.predict(RANKED, ANA, "b", "better", api_name="/vote_pair")) == (
        "Nothing to vote on: press Generate (G) first."
    )
    assert error_shown(client.predict(api_name="/vote_skip")) == "Nothing to vote on: press Generate (G) first."
    assert sets.read(RANKED).votes == before

    def status_of(models, mode="pair", k=4, **gen):
        return error_shown(generate(client, RANKED, models, mode=mode, k=k, **gen)[2])

    assert status_of([sft]) == "pick two models to vote between (1 picked)"
    assert status_of([BASE, sft], mode="rank", k=3, temperature=0.0) == (
        "temperature 0 gives one model the same answer every time; raise the temperature to rank several samples "
        "of one model"
    )
    assert status_of([BASE, sft, runs["chained"]], mode="rank", k=4, max_new_tokens=0) == (
        "generation.max_new_tokens = 0: must be at least 1"
    )


# ---------------------------------------------------------------- the queue ahead


def spec(**overrides) -> GenerationSpec:
    return GenerationSpec(**{**asdict(GenerationSpec(max_new_tokens=12)), **overrides})


def test_the_next_item_is_made_ahead_and_dropped_when_the_plan_changes(runs):
    sft = runs["sft"]
    queue = vote_queue.VoteQueue()
    typed = ("Name a fruit.", "Name a colour.", "How do I boil an egg?")
    plan = vote_queue.Plan(QUEUED, (BASE, sft), settings=spec(seed=5), typed=typed)
    first = queue.next(plan)
    assert (first.number, first.note, first.seed) == (0, "typed prompt 1 of 3", 5)  # the set has no votes yet
    assert first.shown.prompt == [{"role": "user", "content": typed[0]}]
    assert set(first.shown.models) == {BASE, sft}
    poll(queue.ready, "the item made ahead")
    second = queue.next(plan)
    assert (second.number, second.note, second.seed) == (1, "typed prompt 2 of 3", 6)
    poll(queue.ready, "the item after it")

    # Another setting: what was made ahead is dropped, and the new plan starts from its first prompt.
    ranked = replace(plan, models=(sft,), mode=vote_queue.RANK, k=3)
    third = queue.next(ranked, ahead=False)
    assert (third.plan, third.number, third.note) == (ranked, 0, "typed prompt 1 of 3")
    assert isinstance(third.shown, voting.BlindRanking) and third.shown.models == [sft] * 3
    assert not queue.ready()

    # The set's own prompts: its held-out run's, once the set names one.
    sets.save(replace(sets.load(QUEUED), prompts_from=sft))
    from_set = replace(plan, typed=())
    item = queue.next(from_set, ahead=False)
    assert item.note == f"a held-out prompt of the set's run {sft}"
    assert item.shown.prompt in compare.held_out_prompts(sft, compare.MAX_HELD_OUT)

    # The item ahead fails (the set now draws from a run that is gone): its error comes with the next request.
    sets.save(replace(sets.load(QUEUED), prompts_from="20990101-000000-gone-0000"))
    queue.prefetch()
    poll(queue.ready, "the failed item ahead")
    with pytest.raises(StudioError) as failed:
        queue.next(from_set)
    with pytest.raises(StudioError) as directly:
        compare.held_out_prompts("20990101-000000-gone-0000", 1)
    assert str(failed.value) == str(directly.value) and "\n" not in str(failed.value)
    sets.save(replace(sets.load(QUEUED), prompts_from=sft))
    assert queue.next(from_set).number == 2  # the next request makes a new one
    queue.cancel()
    assert not queue.ready()


def test_held_out_draws_show_every_prompt_once_before_starting_over(runs):
    sft = runs["sft"]
    everything = {compare.prompt_text(p) for p in compare.held_out_prompts(sft, compare.MAX_HELD_OUT)}
    assert len(everything) > 3
    plan = vote_queue.Plan(sets.DEFAULT_SET, (BASE, sft))  # a set naming no prompts: the picked run's held-out ones
    shown: list[str] = []
    for number in range(len(everything)):
        prompt, note, started_over = vote_queue.draw(plan, number, shown)
        assert (note, started_over) == (f"a held-out prompt of the picked run {sft}", False)
        shown.append(compare.prompt_text(prompt))
    assert len(shown) == len(everything) and set(shown) == everything  # every one once, none twice
    prompt, note, started_over = vote_queue.draw(plan, len(shown), shown)
    assert started_over and compare.prompt_text(prompt) in everything
    assert note == f"a held-out prompt of the picked run {sft}; every one was shown this session, starting over"

    with pytest.raises(StudioError) as refused:
        vote_queue.draw(vote_queue.Plan(sets.DEFAULT_SET, (BASE,)), 0, [])
    assert str(refused.value) == (
        "the vote set 'default' names no prompts and only base models are picked: type prompts, or pick a run, whose "
        "held-out prompts are drawn"
    )
