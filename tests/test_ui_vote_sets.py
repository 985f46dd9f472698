"""The Compare tab's "Vote set" section (components/vote_sets_view.py) through the served studio's endpoints: a set
made and edited, scripted votes of two annotators summarized with exact counts, shares and Cohen's kappa, the
export's zip, and the refusals (a bad or used name, a push without a token, a round with too few pairs). Nothing
trains: the completed runs the pickers list are made by hand.

    .venv/bin/python -m pytest -q tests/test_ui_vote_sets.py
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from components import vote_sets_view as view
from components.oneline import as_error
from studio.data.votes import records, sets
from tests.conftest import served_studio

pytestmark = pytest.mark.usefixtures("in_module_home")

SET = "helpful-v1"
BASE = "base (tiny)"
GUIDELINES = "Prefer the answer that helps; a rude answer is never better."


@pytest.fixture(scope="module")
def policy(module_home) -> str:
    """A completed SFT run made by hand (nothing trains): the pickers list it and its base model."""
    from studio.config import RunConfig
    from studio.runs import manager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))
        run = manager.create(RunConfig(name="policy-a"))
        run.write_status(state="completed")
    return run.id


@pytest.fixture(scope="module")
def client(module_home, policy, tmp_path_factory):
    """The whole studio on the module's home, with no Hub token anywhere and the Hub offline."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))  # no stored login
        mp.setenv("HF_HUB_OFFLINE", "1")
        with served_studio(module_home) as (_url, served):
            yield served


def create(client, name: str, guidelines="", models=(), prompts_from="", prompts="", policy="", judges=()) -> tuple:
    """/vote_set_create as the Create button sends the form: (set picker, message)."""
    return client.predict(
        name, guidelines, list(models), prompts_from, prompts, policy, list(judges), api_name="/vote_set_create"
    )


def test_a_set_is_created_once_with_a_good_name_and_selected(client, policy):
    picker, message = create(client, "helpful v1!")
    assert message == as_error(
        "vote set name 'helpful v1!': use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
    )
    assert SET not in sets.names()

    picker, message = create(client, SET, GUIDELINES, [BASE, policy], "", "How do I boil an egg?\n\nName a fruit.\n")
    assert message == f"Created the vote set `{SET}` and selected it: votes now go into it."
    assert picker["value"] == SET and [SET, SET] in picker["choices"]
    made = sets.load(SET)
    assert (made.guidelines, made.models, made.prompts_from, made.prompts, made.policy, made.judges) == (
        GUIDELINES,
        [BASE, policy],
        None,
        ["How do I boil an egg?", "Name a fruit."],
        None,
        [],
    )

    _picker, message = create(client, SET, "other guidelines")
    assert message == as_error(f"a vote set named '{SET}' exists already; pick another name")
    assert sets.load(SET).guidelines == GUIDELINES


def test_the_selected_sets_settings_are_edited_and_saved(client, policy):
    created = sets.load(SET).created
    edited = "Prefer the kinder answer.\nA tie when both are fine."
    judges = ["builtin:length"]
    message = client.predict(SET, edited, [policy], policy, "", policy, judges, api_name="/vote_set_save")
    assert message == f"Saved the settings of the vote set `{SET}`; its votes are kept."
    saved = sets.load(SET)
    assert (saved.guidelines, saved.models, saved.prompts_from, saved.prompts, saved.policy, saved.judges) == (
        edited,
        [policy],
        policy,
        [],
        policy,
        judges,
    )
    assert saved.created == created
    *form, line = client.predict(SET, api_name="/vote_set_load")
    assert [box["value"] if isinstance(box, dict) else box for box in form] == [
        edited,
        [policy],
        policy,
        "",
        policy,
        judges,
    ]
    assert line == ""
    # Back to the guidelines the rest of the module expects, a base model as the policy, no judges.
    client.predict(SET, GUIDELINES, [BASE, policy], "", "Name a fruit.", "", [], api_name="/vote_set_save")
    assert (sets.load(SET).policy, sets.load(SET).judges) == (None, [])
    # With no set picked (the picker cleared), nothing is written.
    assert view.vote_set_save(None, "x", [], "", "", "", []) == as_error(
        "pick the vote set to save into, or create one"
    )


def _prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _pair(i: int, winner: str, grade: str | None, annotator: str) -> dict:
    """A graded vote on item i: "first" prefers the answer whose text sorts first ("Alpha ..."), "second" the other."""
    first, second = f"Alpha answer {i}.", f"Beta answer {i}."
    chosen, rejected = (first, second) if winner == "first" else (second, first)
    return records.pair_vote(_prompt(f"Question {i}?"), chosen, rejected, ("m1", "m2"), grade, annotator)


def _outcome(i: int, outcome: str, annotator: str) -> dict:
    return records.outcome_vote(
        _prompt(f"Question {i}?"), [f"Beta answer {i}.", f"Alpha answer {i}."], ["m2", "m1"], outcome, annotator
    )


@pytest.fixture(scope="module")
def voted(client, module_home):
    """Scripted votes in the set: ana and bo judge questions 1 to 4 (ana: first, first, second, tie; bo: first,
    second, second, tie); bo also marks question 5 both bad and gives one ungraded vote; ana ranks four answers and
    takes back one vote; one line of the file is broken by hand."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))
        if SET not in sets.names():
            create(client, SET, GUIDELINES)
        for vote in [
            _pair(1, "first", "significantly_better", "ana"),
            _pair(1, "first", "better", "bo"),
            _pair(2, "first", "better", "ana"),
            _pair(2, "second", "negligibly_better", "bo"),
            _pair(3, "second", "slightly_better", "ana"),
            _pair(3, "second", "better", "bo"),
            _outcome(4, "tie", "ana"),
            _outcome(4, "tie", "bo"),
            _outcome(5, "both_bad", "bo"),
            _pair(6, "first", None, "bo"),
            records.ranking(
                _prompt("Question 7?"), [f"Answer 7.{k}" for k in range(4)], ["m1"] * 4, [1, 2, 3, 4], "ana"
            ),
        ]:
            sets.append(SET, vote)
        with open(sets.load(SET).votes_path, "a", encoding="utf-8") as f:
            f.write('{"kind": "pair", "prompt": \n')  # line 12: edited by hand into something that is no vote
        sets.append(SET, _pair(8, "first", "better", "ana"))
        sets.undo_last(SET, "ana")
        return sets.read(SET)


def test_the_summary_shows_exact_counts_shares_and_kappa(client, voted):
    summary, levels, agreement = client.predict(SET, "ana", api_name="/vote_set_summary")
    assert summary.split("\n\n") == [
        f"**`{SET}`**: 11 votes (1 ranking) giving 13 training pairs; 1 vote undone.",
        "Annotators: ana 5, bo 6.",
        "Yours (ana): 5 votes.",
        "Skipped 1 broken line of the votes file:\n- votes.jsonl line 12: column 'line': not valid JSON; skipped",
    ]
    assert levels["headers"] == view.LEVEL_COLUMNS
    assert levels["data"] == [
        ["Significantly better", 1, "10.0%"],
        ["Better", 3, "30.0%"],
        ["Slightly better", 1, "10.0%"],
        ["Negligibly better / unsure", 1, "10.0%"],
        ["Ungraded (before grades)", 1, "10.0%"],
        ["Tie", 2, "20.0%"],
        ["Both bad", 1, "10.0%"],
    ]
    # Agreed on questions 1, 3 and 4 of 4. ana says first 2, second 1, tie 1; bo first 1, second 2, tie 1: chance
    # agreement (2*1 + 1*2 + 1*1) / 16 = 5/16, kappa (12/16 - 5/16) / (11/16) = 7/11.
    assert agreement["headers"] == view.AGREEMENT_COLUMNS
    assert agreement["data"] == [["ana & bo", 4, 3, "75.0%", f"{7 / 11:.3f}"]]
    assert f"{7 / 11:.3f}" == "0.636"


def test_a_set_with_no_shared_pairs_says_so(client):
    name = "solo"
    create(client, name)
    sets.append(name, _pair(1, "first", "better", "ana"))
    summary, levels, agreement = client.predict(name, "", api_name="/vote_set_summary")
    assert summary.split("\n\n") == [
        f"**`{name}`**: 1 vote (0 rankings) giving 1 training pair; 0 votes undone.",
        "Annotators: ana 1.",
        "Agreement: no answer pair has been judged by two annotators yet.",
    ]
    assert levels["data"][1] == ["Better", 1, "100.0%"] and agreement["data"] in ([], [["", "", "", "", ""]])


def test_the_export_is_a_zip_of_the_dataset_folder(client, voted):
    message, download = client.predict(SET, api_name="/vote_set_export")
    assert download["visible"] is True
    with zipfile.ZipFile(download["value"]) as archive:
        assert sorted(archive.namelist()) == ["README.md", "pairs/train.parquet", "votes/train.parquet"]
        pairs = pq.read_table(io.BytesIO(archive.read("pairs/train.parquet"))).to_pylist()
        votes = pq.read_table(io.BytesIO(archive.read("votes/train.parquet"))).to_pylist()
        card = archive.read("README.md").decode("utf-8")
    assert len(pairs) == 13 and len(votes) == 11
    assert sorted(p["margin_small"] for p in pairs if p["grade"]) == pytest.approx(
        [0.0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0]
    )
    assert GUIDELINES in card
    folder = Path(message.split("`")[3])
    assert message == f"Exported the vote set `{SET}` as a dataset to `{folder}`:\n" + "\n".join(
        f"- `{name}`" for name in ["README.md", "pairs/train.parquet", "votes/train.parquet"]
    )


def test_push_without_a_token_is_one_line(client, voted):
    from studio.publish import share

    assert client.predict(SET, "me/helpful-votes", True, api_name="/vote_set_push") == as_error(share.NO_TOKEN)
    assert client.predict(SET, " ", False, api_name="/vote_set_push") == as_error(
        "type a dataset repo id, such as your-name/helpful-votes"
    )
    token_line = client.predict([], "", "", [], api_name="/vote_set_pickers")[-1]
    assert "none found" in token_line


def test_the_pickers_list_the_completed_run_and_its_base_model(client, policy):
    pickers = client.predict([], "", "", ["builtin:length"], api_name="/vote_set_pickers")[:4]
    listed = [[value for _label, value in picker["choices"]] for picker in pickers]
    # The judges picker keeps a typed judge listed; no judges.yaml saves others.
    assert listed == [[BASE, policy], [view.NO_RUN, policy], [view.NO_RUN, BASE, policy], ["builtin:length"]]


def test_a_round_with_too_few_pairs_is_refused_in_one_line(client):
    name = "few"
    create(client, name, models=[BASE])
    sets.append(name, _pair(1, "first", "better", "ana"))
    sets.append(name, _outcome(2, "tie", "ana"))
    assert client.predict(name, "ppo", api_name="/vote_round_start") == as_error(
        f"vote set '{name}' has 1 training pair (from 2 votes); a round needs at least 4: vote on more pairs (ties "
        'and "both bad" give none)'
    )
    note, table = client.predict(name, api_name="/vote_rounds")
    assert (note, table["data"]) == (view.NO_ROUNDS, [])
    assert not (sets.load(name).folder / "rounds.jsonl").exists()
    # Without a policy or a base model to start from, the round says what to set.
    create(client, "nopolicy")
    for i in range(4):
        sets.append("nopolicy", _pair(i, "first", "better", "ana"))
    assert client.predict("nopolicy", "rejection", api_name="/vote_round_start") == as_error(
        "vote set 'nopolicy' names no policy to train from: set its policy (a completed run) or add a base model to "
        "its models"
    )


def test_the_rounds_table_shows_lineage_and_win_rates(client, voted):
    from studio.pipelines import rounds

    started = 1_790_000_000.0
    judged = {
        "RLHF-V1 reward (trained against)": {
            "win_rate": 0.75,
            "ci_low": 0.5,
            "ci_high": 0.9,
            "wins": 6,
            "ties": 0,
            "losses": 2,
            "n": 8,
            "judge": "rlhf-v1-reward",
            "trained_against": True,
        }
    }
    written = [
        rounds.Round(1, "ppo", "p1", started, 11, 13, BASE, "rm-1", "ppo-1", "completed", judged),
        rounds.Round(
            2, "rejection", "p2", started + 60, 12, 15, "ppo-1", "rm-2", None, "failed", error="out of memory"
        ),
    ]
    path = sets.load(SET).folder / rounds.ROUNDS_FILE
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in written), encoding="utf-8")
    note, table = client.predict(SET, api_name="/vote_rounds")
    when = [time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) for r in written]
    assert note == "2 rounds, oldest first."
    assert table["headers"] == view.ROUND_COLUMNS
    assert table["data"] == [
        ["RLHF-V1", "PPO", "completed", f"{BASE} -> ppo-1", "rm-1", "11 / 13", "75% [50%, 90%] on 8 prompts"]
        + ["RLHF-V1 reward (trained against)", when[0]],
        ["RLHF-V2", "Rejection sampling", "failed: out of memory", "ppo-1 -> (none)", "rm-2", "12 / 15", ""]
        + ["", when[1]],
    ]
