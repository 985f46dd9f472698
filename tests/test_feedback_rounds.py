"""The next round (studio/pipelines/rounds.py): RLHF-V1 and V2 trained on the tiny model from scripted graded votes,
their lineage, the compare of V2 against V1 and the win rates; too few pairs refused; one round of a set at a time.

The two rounds are trained once for the module (about a minute on 2 cores): V1 in the foreground with `run`, a vote
cast while it trains; V2 in its own process with `start`, judged by a judge the set names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from studio import config as cfg
from studio.config import JudgeSpec
from studio.data.votes import records, sets
from studio.errors import ConfigError, StudioError
from studio.eval import judges
from studio.pipelines import rounds, runner
from studio.pipelines.rounds import Round
from studio.runs import process
from studio.runs.rundir import RunDir
from studio.serve import compare
from tests.conftest import ANSWERS, QUESTIONS, RUDE, poll

SET = "helpful"
BASE = "base (tiny)"
# Seconds on the tiny model: a few reward steps, two PPO steps of short answers. A quarter of the 12 prompts held
# out gives the compare 3 prompts.
OVERRIDES = [
    "stages.rm.train.max_steps=4",
    "stages.rm.train.batch_size=8",
    "stages.ppo.train.max_steps=2",
    "stages.ppo.train.batch_size=8",
    "stages.ppo.ppo.mini_batch_size=8",
    "stages.ppo.ppo.ppo_epochs=1",
    "stages.ppo.ppo.response_length=12",
    "data.eval_fraction=0.25",
]
LATE_QUESTION = "How do I tie a scarf?"


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def scripted_votes() -> list[dict]:
    """A graded vote per question, the polite answer over a rude one, the four grades in turn; and a tie, which is
    kept and counted but gives no pair."""
    votes = [
        records.pair_vote(
            ask(question),
            f"Of course! {ANSWERS[i]} I hope that helps.",
            RUDE[i % len(RUDE)],
            (BASE, BASE),
            records.GRADES[i % len(records.GRADES)],
            "ana",
        )
        for i, question in enumerate(QUESTIONS)
    ]
    votes.append(records.outcome_vote(ask(QUESTIONS[0]), ["Boil it.", "Cook it in water."], [BASE, BASE], "tie", "ben"))
    return votes


def snapshot_ids(vote_set: sets.VoteSet, version: int) -> list[str]:
    return [v["id"] for v in sets.read_file(rounds.round_folder(vote_set, version) / "votes.jsonl").votes]


def config_of(run_id: str) -> cfg.RunConfig:
    return cfg.load_config(RunDir.of(run_id).config_path)


@pytest.fixture(scope="module")
def trained(module_home) -> dict:
    """Two rounds of SET in the module's home: {"V1", "V2" (the ended rounds), "started" (V2 as start returned it),
    "scripted" (the ids of the votes cast before V1), "late" (the id of the vote cast while V1 trained), "lines"
    (what V1 said)}."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))
        sets.create(sets.VoteSet(SET, guidelines="Prefer the polite, helpful answer.", models=[BASE]))
        scripted = [sets.append(SET, vote)["id"] for vote in scripted_votes()]
        late = records.pair_vote(
            ask(LATE_QUESTION), "Of course! Loop it once. I hope that helps.", RUDE[0], (BASE, BASE), "better", "ana"
        )
        lines: list[str] = []

        def on_line(line: str) -> None:
            lines.append(line)
            if line.startswith("stage 1/2"):  # V1's reward model is training: this vote waits for V2
                sets.append(SET, late)

        first = rounds.run(SET, "ppo", OVERRIDES, on_line=on_line)
        judges.save_judge(JudgeSpec(kind="builtin", builtin="contains", args={"keywords": ["hope"]}, name="polite"))
        vote_set = sets.load(SET)
        vote_set.judges = ["polite"]
        sets.save(vote_set)
        started = rounds.start(SET, "ppo", OVERRIDES)
        second = poll(
            lambda: next((r for r in rounds.rounds(SET) if r.version == 2 and r.state != "running"), None),
            "RLHF-V2 to end",
            timeout=600,
        )
    return {"V1": first, "V2": second, "started": started, "scripted": scripted, "late": late["id"], "lines": lines}


def test_two_rounds_are_rlhf_v1_and_v2_each_from_the_policy_before(trained, in_module_home):
    v1, v2 = trained["V1"], trained["V2"]
    assert v1.state == "completed", v1.error
    assert v2.state == "completed", (v2.error, (rounds.round_folder(sets.load(SET), 2) / "round.log").read_text())
    assert [(r.version, r.label, r.stage, r.state) for r in rounds.rounds(SET)] == [
        (1, "RLHF-V1", "ppo", "completed"),
        (2, "RLHF-V2", "ppo", "completed"),
    ]
    # Lineage: V1 from the set's base model, V2 from V1's policy; each round its own reward model.
    assert v1.previous_policy == BASE
    assert v2.previous_policy == v1.policy_run
    assert len({v1.reward_run, v2.reward_run, v1.policy_run, v2.policy_run}) == 4
    for round_ in (v1, v2):
        assert [config_of(r).stage for r in (round_.reward_run, round_.policy_run)] == ["reward", "ppo"]
        assert config_of(round_.policy_run).rewards.sources[0].run == round_.reward_run
        state = runner.status(runner.PipelineRecord.of(round_.pipeline_id))
        assert state["state"] == "completed"
        assert [(s["name"], s["run_id"]) for s in state["stages"]] == [
            ("rm", round_.reward_run),
            ("ppo", round_.policy_run),
        ]
    assert [config_of(r).init.from_run for r in (v1.reward_run, v1.policy_run)] == [None, None]
    assert [config_of(r).init.from_run for r in (v2.reward_run, v2.policy_run)] == [v1.policy_run, v1.policy_run]
    assert config_of(v1.policy_run).model.name == "tiny"
    # The foreground round said what it did; the started one ran in a process of its own, now ended.
    assert trained["lines"][1:4] == [
        f"pipeline {v1.pipeline_id}",
        f"stage 1/2: rm (reward) run {v1.reward_run}",
        f"stage 2/2: ppo (ppo) run {v1.policy_run}",
    ]
    assert trained["started"].state == "running" and trained["started"].pid is not None
    log_text = (rounds.round_folder(sets.load(SET), 2) / "round.log").read_text()
    assert f"RLHF-V2 completed: policy {v2.policy_run}, reward model {v2.reward_run}" in log_text


def test_each_round_trains_on_the_votes_cast_before_it_started(trained, in_module_home):
    v1, v2 = trained["V1"], trained["V2"]
    vote_set = sets.load(SET)
    assert snapshot_ids(vote_set, 1) == trained["scripted"]  # the vote cast while V1 trained is not in it
    assert snapshot_ids(vote_set, 2) == [*trained["scripted"], trained["late"]]
    assert [v["id"] for v in sets.read(SET).votes] == [*trained["scripted"], trained["late"]]
    assert (v1.votes, v1.pairs) == (13, 12)  # the tie is a vote but no pair
    assert (v2.votes, v2.pairs) == (14, 13)
    for version, round_ in ((1, v1), (2, v2)):
        snapshot = str(rounds.round_folder(vote_set, version) / "votes.jsonl")
        for run_id in (round_.reward_run, round_.policy_run):
            config = config_of(run_id)
            assert (config.data.source, config.data.path) == ("votes", snapshot)
        report = json.loads((RunDir.of(round_.reward_run).path / "data_report.json").read_text())
        assert report["rows"] == round_.pairs
        # Graded votes: the reward model trains with Llama 2's margin loss.
        assert config_of(round_.reward_run).reward.use_margin is True


def test_v2_is_compared_with_v1_on_its_held_out_prompts(trained, in_module_home):
    v1, v2 = trained["V1"], trained["V2"]
    assert v2.comparison == str(in_module_home / "votes" / SET / "rounds" / "V2" / "compare.json")
    saved = json.loads(Path(v2.comparison).read_text())
    assert (saved["round"], saved["new_policy"], saved["previous_policy"]) == ("RLHF-V2", v2.policy_run, v1.policy_run)
    assert saved["labels"] == [BASE, v1.policy_run, v2.policy_run]
    assert saved["reward_run"] == v2.reward_run
    held_out = compare.held_out_prompts(v2.policy_run, rounds.COMPARE_PROMPTS)
    assert saved["prompts"] == held_out and len(held_out) == 3  # a quarter of V2's 13 prompts
    for label in saved["labels"]:
        assert len(saved["answers"][label]) == len(saved["scores"][label]) == 3
    assert [row["model"] for row in saved["summary"]] == saved["labels"]
    # V1 against the base model it started from.
    first = json.loads(Path(v1.comparison).read_text())
    assert (first["labels"], first["previous_policy"]) == ([BASE, v1.policy_run], BASE)


def test_win_rates_against_the_round_before(trained, in_module_home):
    v1, v2 = trained["V1"], trained["V2"]
    # V1: the set names no judge, so its own reward model judges, keyed as the reward it trained against.
    assert list(v1.win_rate) == ["RLHF-V1 reward (trained against)"]
    # V2: the judge the set names.
    assert list(v2.win_rate) == ["polite"]
    for round_, baseline, trained_against, judge in (
        (v1, BASE, True, "rlhf-v1-reward"),
        (v2, v1.policy_run, False, "polite"),
    ):
        (entry,) = round_.win_rate.values()
        assert (entry["judge"], entry["trained_against"]) == (judge, trained_against)
        assert entry["wins"] + entry["ties"] + entry["losses"] == entry["n"] == 3
        assert entry["win_rate"] == pytest.approx((entry["wins"] + entry["ties"] / 2) / 3)
        assert entry["ci_low"] <= entry["win_rate"] <= entry["ci_high"]
        saved = json.loads(Path(entry["path"]).read_text())
        assert (saved["run"], saved["baseline"], saved["judge"]["label"]) == (round_.policy_run, baseline, judge)
        assert bool(saved["warnings"]) is trained_against  # evaluate says the judge is the reward trained against


def test_the_next_votes_and_round_start_from_the_newest_policy(trained, in_module_home):
    v1, v2 = trained["V1"], trained["V2"]
    vote_set = sets.load(SET)
    assert rounds.voting_models(vote_set) == [v2.policy_run, v1.policy_run]
    assert rounds.current_policy(vote_set) == v2.policy_run
    pipeline = rounds.plan(SET, "rejection")
    assert [(s.name, s.config.stage, s.reward_stages) for s in pipeline.stages] == [
        ("rm", "reward", []),
        ("rejection", "rejection", ["rm"]),
    ]
    assert [s.config.init.from_run for s in pipeline.stages] == [v2.policy_run, v2.policy_run]
    v3_votes = str(in_module_home / "votes" / SET / "rounds" / "V3" / "votes.jsonl")
    assert [s.config.data.path for s in pipeline.stages] == [v3_votes, v3_votes]
    assert pipeline.stages[0].config.reward.use_margin is True
    assert not (in_module_home / "votes" / SET / "rounds" / "V3").exists()  # a plan writes nothing
    assert len(rounds.rounds(SET)) == 2


# ---------------------------------------------------------------- refusals and ends (no training)


def few_votes(count: int) -> list[dict]:
    """`count` ungraded pair votes (as the first blind A/B recorded them) and a "both bad"."""
    votes = [
        {
            "kind": "pair",
            "prompt": ask(QUESTIONS[i]),
            "chosen": [{"role": "assistant", "content": ANSWERS[i]}],
            "rejected": [{"role": "assistant", "content": RUDE[i]}],
            "id": f"v{i}",
        }
        for i in range(count)
    ]
    return [*votes, records.outcome_vote(ask(QUESTIONS[5]), ["No.", "Never."], [BASE, BASE], "both_bad", "ana")]


@pytest.fixture
def few() -> sets.VoteSet:
    """A set of 3 pairs and a "both bad" in the test's own empty home (no model is needed to refuse or plan)."""
    vote_set = sets.create(sets.VoteSet("few", models=[BASE, "20260101-000000-sft-abcd"]))
    for vote in few_votes(3):
        sets.append("few", vote)
    return vote_set


def test_a_set_with_too_few_pairs_is_refused_in_one_line_and_nothing_starts(few):
    message = (
        "vote set 'few' has 3 training pairs (from 4 votes); a round needs at least 4: vote on more pairs (ties and "
        '"both bad" give none)'
    )
    for attempt in (rounds.plan, rounds.run, rounds.start):
        with pytest.raises(StudioError) as refused:
            attempt("few", "ppo")
        assert str(refused.value) == message
    assert not runner.pipelines_root().exists() or not list(runner.pipelines_root().iterdir())
    assert not (few.folder / "rounds").exists() and not (few.folder / "rounds.jsonl").exists()
    assert rounds.rounds("few") == []
    # Before any round: the votes sample from the set's models, and the first round starts from its base model.
    assert rounds.voting_models(few) == [BASE, "20260101-000000-sft-abcd"]
    assert rounds.current_policy(few) == BASE


def test_a_round_of_ungraded_votes_trains_without_margins_from_the_base_model(few):
    sets.append("few", few_votes(4)[3])
    pipeline = rounds.plan("few", "ppo", ["stages.ppo.train.max_steps=3"])
    assert pipeline.name == "few-rlhf-v1"
    rm, ppo = (s.config for s in pipeline.stages)
    assert (rm.reward.use_margin, rm.init.from_run, rm.model.name) == (False, None, "tiny")
    assert (ppo.init.from_run, ppo.model.name, ppo.train.max_steps, rm.train.max_steps) == (None, "tiny", 3, -1)
    assert (rm.data.eval_fraction, ppo.data.eval_fraction) == (rounds.HELD_OUT_SHARE, rounds.HELD_OUT_SHARE)


def test_bad_stages_judges_and_held_out_shares_are_refused(few):
    sets.append("few", few_votes(4)[3])
    with pytest.raises(StudioError, match=r"^stage 'dpo': a round trains its policy with ppo or rejection$"):
        rounds.plan("few", "dpo")
    with pytest.raises(StudioError, match=r"^stages\.ppo\.data\.eval_fraction = 0\.0: the round compares"):
        rounds.plan("few", "ppo", ["data.eval_fraction=0"])
    few.judges = ["nobody"]
    sets.save(few)
    with pytest.raises(ConfigError, match=r"^--judge nobody: no judge of that name"):
        rounds.plan("few", "ppo")


def write_round(vote_set: sets.VoteSet, round_: Round) -> None:
    with open(vote_set.folder / "rounds.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(round_)) + "\n")


def fake_pipeline(pipeline_id: str, state: str, pid: int | None = None) -> runner.PipelineRecord:
    record = runner.PipelineRecord.of(pipeline_id)
    record.path.mkdir(parents=True)
    started = process.start_time(pid) if pid else None
    stages = [{"name": "rm", "stage": "reward", "run_id": None}, {"name": "ppo", "stage": "ppo", "run_id": None}]
    record.write_state(
        id=pipeline_id, name=pipeline_id, state=state, error=None, pid=pid, started=started, stages=stages
    )
    return record


def test_a_running_round_refuses_a_second_and_a_round_whose_process_is_gone_reads_failed(few):
    sets.append("few", few_votes(4)[3])
    me = os.getpid()
    fake_pipeline("p-running", "running", pid=me)
    write_round(few, Round(1, "ppo", "p-running", 0.0, 5, 4, BASE, pid=me, pid_started=process.start_time(me)))
    with pytest.raises(StudioError, match=r"^RLHF-V1 of vote set 'few' is still running \(pipeline p-running\); "):
        rounds.run("few", "ppo")
    # Its pipeline completed, and its process ended before the compare was recorded.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    fake_pipeline("p-done", "completed")
    write_round(few, Round(2, "ppo", "p-done", 0.0, 5, 4, BASE, pid=int(gone.stdout), pid_started=1.0))
    fake_pipeline("p-cancelled", "cancelled")
    write_round(few, Round(3, "ppo", "p-cancelled", 0.0, 5, 4, BASE))
    read = {r.version: r for r in rounds.rounds("few")}
    assert read[1].state == "running"
    assert read[2].state == "failed"
    log_path = few.folder / "rounds" / "V2" / "round.log"
    assert read[2].error == f"its process ended without recording the end; see {log_path}"
    assert (read[3].state, read[3].error) == ("cancelled", None)
    # The ends are recorded: a later read finds them without asking the pipelines.
    assert [r.state for r in rounds._read(few)] == ["running", "failed", "cancelled"]
    assert rounds.current_policy(few) == BASE  # no round completed
