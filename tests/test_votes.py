"""Blind votes into vote sets (studio/serve/voting.py, studio/data/votes/sets.py) and the `votes` data source
(studio/data/votes.py): votes load back as the preference pairs voted for, with their Llama 2 margins, train a
reward model, and every way they can go wrong gets one clear line.

    OMP_NUM_THREADS=1 python -m pytest tests/test_votes.py -q
"""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from studio import data
from studio.config import DataSpec, VotesSpec
from studio.data.votes import sets
from studio.errors import ConfigError, DataError, StudioError
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.serve.voting import BlindPair, record_vote
from tests.conftest import ANSWERS, QUESTIONS, RUDE, run_cli, write_jsonl

SET = "polite"
GRADES = ("significantly_better", "better", "slightly_better", "negligibly_better")
SMALL = {"significantly_better": 1.0, "better": 2 / 3, "slightly_better": 1 / 3, "negligibly_better": 0.0}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


@pytest.fixture
def vote_set(studio_home) -> str:
    sets.create(sets.VoteSet(SET, guidelines="Prefer the polite, helpful answer."))
    return SET


def cast_votes(n: int, seed: int = 0, annotator: str = "ana") -> list[dict]:
    """Vote n times for a polite answer over a rude one, shown as A or as B at random, the grades in turn; returns
    the preference rows the votes should load as (small margin scale)."""
    rng = random.Random(seed)
    expected, choices = [], []
    for k in range(n):
        i = k % len(QUESTIONS)
        prompt = [user(QUESTIONS[i])]
        # The tag keeps every pair distinct: one annotator saves the same pair only once.
        good, bad = f"Of course! {ANSWERS[i]} I hope that helps.", f"{rng.choice(RUDE)} (vote {seed}.{k})"
        grade = GRADES[k % len(GRADES)]
        if rng.random() < 0.5:
            pair, choice = BlindPair(prompt, (good, bad), ("tuned", "base")), "a"
        else:
            pair, choice = BlindPair(prompt, (bad, good), ("base", "tuned")), "b"
        record_vote(SET, pair, choice, grade=grade, annotator=annotator)
        choices.append(choice)
        expected.append(
            {"prompt": prompt, "chosen": [assistant(good)], "rejected": [assistant(bad)], "margin": SMALL[grade]}
        )
    assert n < 8 or {"a", "b"} <= set(choices)  # both answer positions get voted for
    return expected


def load_votes(**changes) -> data.Loaded:
    return data.load(DataSpec(source="votes", votes=VotesSpec(set=SET), **changes), "preference")


def test_votes_load_back_as_the_pairs_voted_for(vote_set):
    expected = cast_votes(48)
    loaded = load_votes()
    assert loaded.rows == expected
    assert loaded.origin == str(sets.load(SET).votes_path) and not loaded.dropped
    votes = sets.read(SET).votes
    assert {(v["chosen_model"], v["rejected_model"], v["annotator"]) for v in votes} == {("tuned", "base", "ana")}
    assert [v["grade"] for v in votes[:5]] == [*GRADES, GRADES[0]]

    # The large scale gives the same pairs Llama 2's other margins.
    large = {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0}
    rows = data.load(DataSpec(source="votes", votes=VotesSpec(set=SET, margin_scale="large")), "preference").rows
    assert [r["margin"] for r in rows[:4]] == [3.0, 2.0, 1.0, 0.0] == [large[g] for g in GRADES]
    assert [r["margin"] for r in loaded.rows[:4]] == [float(Fraction(m)) for m in (1, "2/3", "1/3", 0)]

    # A new vote is in the next load (the converted rows are cached, keyed by the file's size and time).
    expected += cast_votes(1, seed=7)
    assert load_votes().rows == expected


def test_a_half_written_last_vote_is_skipped_and_a_broken_line_is_named_and_skipped(vote_set):
    expected = cast_votes(3)
    path = sets.load(SET).votes_path
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"prompt": [{"role": "user", "content": "Cut o')  # the studio stopped while saving a vote
    assert load_votes().rows == expected
    assert len(sets.read(SET).votes) == 3 and sets.read(SET).problems == []

    # A line edited by hand anywhere in the file is named and skipped; the votes around it are kept.
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], '{"prompt": oops', lines[1], lines[2]]) + "\n", encoding="utf-8")
    loaded = load_votes()
    assert loaded.rows == expected
    assert loaded.problems == ["votes.jsonl row 2: column 'line': not valid JSON"]
    vote_log = sets.read(SET)
    assert vote_log.numbers == [1, 3, 4]
    assert vote_log.problems == ["votes.jsonl line 2: column 'line': not valid JSON; skipped"]
    assert sets.summarize(SET).problems == vote_log.problems and sets.summarize(SET).votes == 3
    with pytest.raises(DataError, match=r"^votes.jsonl row 2: column 'line': not valid JSON$"):
        load_votes(on_bad_rows="fail")


def test_bad_votes_name_the_row_and_column(studio_home, tmp_path):
    good = {"prompt": [user("Hi?")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")]}
    rows = [
        good,
        {k: v for k, v in good.items() if k != "chosen"},
        {**good, "rejected": [assistant("Hello!")]},
        {**good, "prompt": [user("Hi?"), assistant("Hello!")]},
        {**good, "chosen": "Hello!"},
        {**good, "rejected": [user("Go away."), assistant("Fine.")]},
        {**good, "grade": "much_better"},
        {"kind": "rank", "prompt": [user("Hi?")], "answers": ["Hello!"], "ranks": [1]},
    ]
    path = write_jsonl(tmp_path / "kept-votes.jsonl", rows)
    loaded = data.load(DataSpec(source="votes", path=str(path)), "preference")
    assert loaded.rows == [good]
    assert loaded.problems == [
        "kept-votes.jsonl row 2: column 'chosen': missing",
        "kept-votes.jsonl row 3: column 'rejected': identical to chosen",
        "kept-votes.jsonl row 4: column 'prompt': the prompt must end with a user message",
        "kept-votes.jsonl row 5: column 'chosen': expected a non-empty list of role/content messages, got str",
        "kept-votes.jsonl row 6: column 'rejected': expected one assistant message",
    ]  # the first five; all seven are counted
    assert sum(loaded.dropped.values()) == 7
    assert loaded.dropped["answers a ranking of 1 answer ranks nothing; rank 2 or more"] == 1
    with pytest.raises(DataError, match=r"^kept-votes.jsonl row 2: column 'chosen': missing$"):
        data.load(DataSpec(source="votes", path=str(path), on_bad_rows="fail"), "preference")


def test_a_vote_between_equal_answers_without_a_grade_or_for_neither_is_refused(vote_set):
    same = BlindPair([user("Hi?")], ("Hello!", " Hello! "), ("tuned", "base"))
    with pytest.raises(StudioError, match="the two answers are the same"):
        record_vote(SET, same, "a", grade="better", annotator="ana")
    pair = BlindPair([user("Hi?")], ("Hello!", "Go away."), ("tuned", "base"))
    with pytest.raises(StudioError, match=r"^vote 'c': vote a, b, tie, both_bad$"):
        record_vote(SET, pair, "c", annotator="ana")
    for grade in (None, "much_better"):
        with pytest.raises(StudioError, match="^say by how much answer B is better: significantly_better, better"):
            record_vote(SET, pair, "b", grade=grade, annotator="ana")
    assert not sets.load(SET).votes_path.exists()


def test_one_annotator_saves_a_pair_once_and_a_second_annotator_can_judge_it(vote_set):
    prompt = [user("How do I boil an egg?")]
    record_vote(
        SET, BlindPair(prompt, ("Nine minutes in boiling water.", "Go away."), ("tuned", "base")), "a", "better", "ana"
    )
    again = [
        BlindPair(prompt, ("Nine minutes in boiling water.", "Go away."), ("tuned", "base")),
        BlindPair(prompt, ("Go away.", "Nine minutes in boiling water. "), ("base", "tuned")),
    ]  # shown swapped
    for pair in again:
        for choice, grade in (("a", "better"), ("b", "slightly_better"), ("tie", None)):
            with pytest.raises(StudioError, match="^ana already voted on this prompt and these answers in the set"):
                record_vote(SET, pair, choice, grade, "ana")
    assert len(sets.read(SET).votes) == 1

    # Another prompt, another answer, or another annotator is a new vote.
    record_vote(
        SET,
        BlindPair([user("How do I fry an egg?")], ("In butter.", "Go away."), ("tuned", "base")),
        "a",
        "better",
        "ana",
    )
    record_vote(
        SET,
        BlindPair(prompt, ("Nine minutes in boiling water.", "Ask someone else."), ("tuned", "base")),
        "tie",
        annotator="ana",
    )
    record_vote(SET, again[1], "b", "significantly_better", "bob")
    assert [(v["annotator"], v.get("grade"), v.get("outcome")) for v in sets.read(SET).votes] == [
        ("ana", "better", None),
        ("ana", "better", None),
        ("ana", None, "tie"),
        ("bob", "significantly_better", None),
    ]


def test_no_votes_no_set_no_sample_no_hub_each_get_one_line(vote_set):
    path = sets.load(SET).votes_path
    result = run_cli("data", "votes", "--set", f"data.votes.set={SET}")
    assert result.returncode != 0
    assert result.stderr == (
        f"error: no votes in the set '{SET}' yet ({path} does not exist): vote in the Compare tab's Vote view "
        "first, then train on your votes\n"
    )
    result = run_cli("data", "votes", "--set", "data.votes.set=nosuchset")
    assert result.stderr == (
        f"error: no vote set named 'nosuchset' (sets: {SET}); create it in the Compare tab's Vote view\n"
    )
    for path, word in (("sample", "has no bundled sample"), ("hub", "is not on the Hugging Face Hub")):
        with pytest.raises(ConfigError) as raised:
            load_votes(path=path)
        assert str(raised.value).startswith(f"data.path = {path}: the 'votes' source {word}; leave data.path empty")


def test_the_data_command_reads_a_vote_set(vote_set):
    expected = cast_votes(12)
    for path in ([], ["--path", ""], ["--path", str(sets.load(SET).votes_path)]):
        result = run_cli("data", "votes", *path, "--set", f"data.votes.set={SET}", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["source"], report["format"], report["rows"]) == ("votes", "preference", 12)
        assert report["origin"] == str(sets.load(SET).votes_path) and report["examples"] == expected[:3]


@pytest.mark.slow
def test_votes_train_a_reward_model_that_prefers_what_was_voted_for(vote_set):
    cast_votes(48)
    result = run_cli(
        "train",
        "presets/rm-hh-tiny.yaml",
        "--set",
        "data.source=votes",
        "--set",
        f"data.votes.set={SET}",
        "--set",
        "data.path=",
        "--set",
        "reward.use_margin=true",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunDir.of(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("run ")))
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert (report["origin"], report["rows"]) == (str(sets.load(SET).votes_path), 48)

    metrics = read_all(run.metrics_path)
    losses = [row["loss"] for row in metrics if "loss" in row]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert [row for row in metrics if "eval_accuracy" in row][-1]["eval_accuracy"] > 0.5
