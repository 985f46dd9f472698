"""Blind A/B votes (studio/serve/voting.py) and the `votes` data source (studio/data/votes.py): votes load back as the
preference pairs voted for, train a reward model, and every way they can go wrong gets one clear line.

    OMP_NUM_THREADS=1 python -m pytest tests/test_votes.py -q
"""

from __future__ import annotations

import json
import random

import pytest

from studio import data
from studio.config import DataSpec
from studio.errors import ConfigError, DataError, StudioError
from studio.paths import votes_file
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.serve.voting import BlindPair, read_votes, record_vote
from tests.conftest import ANSWERS, QUESTIONS, RUDE, run_cli, write_jsonl


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def cast_votes(n: int, seed: int = 0) -> list[dict]:
    """Vote n times for a polite answer over a rude one, shown as A or as B at random; returns the preference rows
    the votes should load as."""
    rng = random.Random(seed)
    expected, choices = [], []
    for k in range(n):
        i = k % len(QUESTIONS)
        prompt = [user(QUESTIONS[i])]
        # The tag keeps every pair distinct: the same pair is saved only once.
        good, bad = f"Of course! {ANSWERS[i]} I hope that helps.", f"{rng.choice(RUDE)} (vote {seed}.{k})"
        if rng.random() < 0.5:
            pair, choice = BlindPair(prompt, (good, bad), ("tuned", "base")), "a"
        else:
            pair, choice = BlindPair(prompt, (bad, good), ("base", "tuned")), "b"
        record_vote(pair, choice)
        choices.append(choice)
        expected.append({"prompt": prompt, "chosen": [assistant(good)], "rejected": [assistant(bad)]})
    assert n < 8 or {"a", "b"} <= set(choices)  # both answer positions get voted for
    return expected


def load_votes(**changes) -> data.Loaded:
    return data.load(DataSpec(source="votes", **changes), "preference")


def test_votes_load_back_as_the_pairs_voted_for(studio_home):
    expected = cast_votes(48)
    loaded = load_votes()
    assert loaded.rows == expected
    assert loaded.origin == str(votes_file()) and not loaded.dropped
    assert {(v["chosen_model"], v["rejected_model"]) for v in read_votes()} == {("tuned", "base")}

    # A new vote is in the next load (the converted rows are cached, keyed by the file's size and time).
    expected += cast_votes(1, seed=7)
    assert load_votes().rows == expected


def test_a_half_written_last_vote_is_skipped_and_a_broken_earlier_one_is_not(studio_home):
    expected = cast_votes(3)
    with open(votes_file(), "a", encoding="utf-8") as f:
        f.write('{"prompt": [{"role": "user", "content": "Cut o')  # the studio stopped while saving a vote
    assert load_votes().rows == expected
    assert len(read_votes()) == 3

    lines = votes_file().read_text(encoding="utf-8").splitlines()
    votes_file().write_text("\n".join([lines[0], lines[3], lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        load_votes()
    assert str(raised.value).startswith(f"{votes_file()} line 2: not valid JSON")


def test_bad_votes_name_the_row_and_column(studio_home, tmp_path):
    good = {"prompt": [user("Hi?")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")]}
    rows = [
        good,
        {k: v for k, v in good.items() if k != "chosen"},
        {**good, "rejected": [assistant("Hello!")]},
        {**good, "prompt": [user("Hi?"), assistant("Hello!")]},
        {**good, "chosen": "Hello!"},
        {**good, "rejected": [user("Go away."), assistant("Fine.")]},
    ]
    path = write_jsonl(tmp_path / "kept-votes.jsonl", rows)
    loaded = load_votes(path=str(path))
    assert loaded.rows == [good]
    assert loaded.problems == [
        "kept-votes.jsonl row 2: column 'chosen': missing",
        "kept-votes.jsonl row 3: column 'rejected': identical to chosen",
        "kept-votes.jsonl row 4: column 'prompt': the prompt must end with a user message",
        "kept-votes.jsonl row 5: column 'chosen': expected a non-empty list of role/content messages, got str",
        "kept-votes.jsonl row 6: column 'rejected': expected one assistant message",
    ]
    with pytest.raises(DataError, match=r"^kept-votes.jsonl row 2: column 'chosen': missing$"):
        load_votes(path=str(path), on_bad_rows="fail")


def test_a_vote_between_equal_answers_or_for_neither_is_refused(studio_home):
    same = BlindPair([user("Hi?")], ("Hello!", " Hello! "), ("tuned", "base"))
    with pytest.raises(StudioError, match="the two answers are the same"):
        record_vote(same, "a")
    with pytest.raises(StudioError, match="vote 'c': vote a or b"):
        record_vote(BlindPair([user("Hi?")], ("Hello!", "Go away."), ("tuned", "base")), "c")
    assert not votes_file().exists()


def test_a_pair_already_saved_is_not_saved_again(studio_home):
    prompt = [user("How do I boil an egg?")]
    record_vote(BlindPair(prompt, ("Nine minutes in boiling water.", "Go away."), ("tuned", "base")), "a")
    again = [
        BlindPair(prompt, ("Nine minutes in boiling water.", "Go away."), ("tuned", "base")),
        BlindPair(prompt, ("Go away.", "Nine minutes in boiling water. "), ("base", "tuned")),
    ]  # shown swapped
    for pair in again:
        for choice in ("a", "b"):
            with pytest.raises(StudioError, match="^a vote on this prompt and these two answers is already saved"):
                record_vote(pair, choice)
    assert len(read_votes()) == 1

    # Another prompt, or another answer to the same prompt, is a new pair.
    record_vote(BlindPair([user("How do I fry an egg?")], ("In butter.", "Go away."), ("tuned", "base")), "a")
    record_vote(BlindPair(prompt, ("Nine minutes in boiling water.", "Ask someone else."), ("tuned", "base")), "a")
    assert len(read_votes()) == 3


def test_no_votes_no_sample_no_hub_each_get_one_line(studio_home):
    result = run_cli("data", "votes")
    assert result.returncode != 0
    assert result.stderr == (
        f"error: no votes yet ({votes_file()} does not exist): vote in the Compare tab's blind "
        "A/B mode first, then train on your votes\n"
    )
    for path, word in (("sample", "has no bundled sample"), ("hub", "is not on the Hugging Face Hub")):
        with pytest.raises(ConfigError) as raised:
            load_votes(path=path)
        assert str(raised.value) == (
            f"data.path = {path}: the 'votes' source {word}; leave data.path empty to read "
            "the studio's own votes file, or give a local file"
        )


def test_the_data_command_reads_your_votes(studio_home):
    expected = cast_votes(12)
    for path in ([], ["--path", ""], ["--path", str(votes_file())]):
        result = run_cli("data", "votes", *path, "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["source"], report["format"], report["rows"]) == ("votes", "preference", 12)
        assert report["origin"] == str(votes_file()) and report["examples"] == expected[:3]


@pytest.mark.slow
def test_votes_train_a_reward_model_that_prefers_what_was_voted_for(studio_home):
    cast_votes(48)
    result = run_cli("train", "presets/rm-hh-tiny.yaml", "--set", "data.source=votes", "--set", "data.path=")
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunDir.of(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("run ")))
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert (report["origin"], report["rows"]) == (str(votes_file()), 48)

    metrics = read_all(run.metrics_path)
    losses = [row["loss"] for row in metrics if "loss" in row]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert [row for row in metrics if "eval_accuracy" in row][-1]["eval_accuracy"] > 0.5
