"""Rollouts (studio/runs/rollouts.py): every answer an online stage sampled, recorded per step with its scores and KL.
The presets scored by rules (conftest.rule_preset_runs, trained once per session) are read back step by step; a PPO
run killed after its first checkpoint and resumed records each step once; the keep rules and size cap; the answer
statistics and the health checks that read them; `rlhf-studio rollouts`.

    python -m pytest tests/test_rollouts.py -q              # the quick ones
    python -m pytest tests/test_rollouts.py -q -m slow      # the presets (about 3 minutes the first time) and the kill
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import defaultdict
from statistics import mean

import pytest
import torch

from studio import config as cfg
from studio.config import DataSpec, LoraSpec, PPOSpec, RewardSource, RewardsSpec, RolloutsSpec, RunConfig, TrainSpec
from studio.errors import StudioError
from studio.monitor import health
from studio.runs import manager, rollouts
from studio.runs.metrics import read_all
from studio.runs.rollouts import RolloutWriter
from studio.runs.rundir import RunDir
from studio.runs.status import State
from studio.trainers.rollout_rows import answer_stats
from tests.conftest import polite_rude_pairs, poll, run_cli, write_jsonl


def by_step(rows: list[dict]) -> dict[int, list[dict]]:
    steps = defaultdict(list)
    for row in rows:
        steps[row["step"]].append(row)
    return dict(steps)


def combined(row: dict, weights: dict[str, float]) -> float:
    """The sum of weighted source scores, None counting 0 (rewards.combine: sum)."""
    return sum(weights[name] * (score or 0.0) for name, score in row["scores"].items())


# ---------------------------------------------------------------- the presets, read back


@pytest.mark.slow
def test_ppo_rollouts_hold_every_answer_and_average_to_the_logged_reward(in_rule_preset_home):
    run = RunDir.of(in_rule_preset_home["ppo-format-tiny"]["ppo"])
    config = cfg.load_config(run.config_path)
    weights = {source.label: source.weight for source in config.rewards.sources}
    metrics = [row for row in read_all(run.metrics_path) if "reward" in row]
    steps = by_step(rollouts.read(run))
    assert sorted(steps) == [row["step"] for row in metrics] == list(range(1, config.train.max_steps + 1))
    for row in metrics:
        answers = steps[row["step"]]
        assert len(answers) == config.train.batch_size
        # The `reward` metric is the combined score before the missing-EOS penalty, as the rows hold it.
        assert mean(a["reward"] for a in answers) == pytest.approx(row["reward"], abs=1e-5)
        assert mean(a["reward"] - a["penalty"] for a in answers) == pytest.approx(
            row["reward_with_eos_penalty"], abs=1e-5
        )
        assert mean(a["kl"] for a in answers) == pytest.approx(row["kl"], abs=1e-4)
        assert mean(a["length"] for a in answers) == pytest.approx(row["response_length"], abs=1e-5)
        for a in answers:
            assert a["reward"] == pytest.approx(combined(a, weights), abs=1e-5)
            assert a["penalty"] == (0.0 if a["ended"] else config.ppo.missing_eos_penalty)
        detailed = [a for a in answers if "tokens" in a]
        assert detailed == answers[: config.rollouts.token_samples]
        for a in detailed:
            assert len(a["tokens"]) == len(a["logprobs"]) == len(a["ref_logprobs"]) == a["length"]
            # The answer's KL is its tokens' policy-minus-reference log-probs, summed (ppo.kl_estimator k1).
            assert sum(p - r for p, r in zip(a["logprobs"], a["ref_logprobs"])) == pytest.approx(a["kl"], abs=2e-3)
    assert all(a["kl"] == pytest.approx(0.0, abs=1e-5) for a in steps[1])  # a fresh adapter: policy = reference
    assert {"answers/repeated", "answers/length_share", "answers/unscored"} <= set(metrics[0])


@pytest.mark.slow
def test_grpo_rollouts_come_in_groups_of_num_generations(in_rule_preset_home):
    run = RunDir.of(in_rule_preset_home["grpo-math-tiny"]["grpo"])
    config = cfg.load_config(run.config_path)
    weights = {source.label: source.weight for source in config.rewards.sources}
    generations = config.grpo.num_generations
    metrics = [row for row in read_all(run.metrics_path) if "reward" in row]
    steps = by_step(rollouts.read(run))
    assert sorted(steps) == [row["step"] for row in metrics] == list(range(1, config.train.max_steps + 1))
    for row in metrics:
        answers = steps[row["step"]]
        assert len(answers) == config.train.batch_size  # TRL's batch counts answers
        assert mean(a["reward"] for a in answers) == pytest.approx(row["reward"], abs=1e-5)
        groups = defaultdict(list)
        for a in answers:
            groups[a["group"]].append(a)
        assert sorted(groups) == list(range(config.train.batch_size // generations))
        for group in groups.values():
            assert len(group) == generations and len({a["prompt"] for a in group}) == 1
            # GRPO's advantage is the answer's reward against its group's mean: they cancel within a group.
            assert sum(a["advantage"] for a in group) == pytest.approx(0.0, abs=1e-3)
            best = max(group, key=lambda a: a["reward"])
            assert best["advantage"] == max(a["advantage"] for a in group)
        for a in answers:
            assert a["reward"] == pytest.approx(combined(a, weights), abs=1e-5)
            assert a["kl"] is not None and a["length"] <= config.grpo.max_completion_length
        for a in answers[: config.rollouts.token_samples]:
            assert len(a["tokens"]) == len(a["logprobs"]) == len(a["ref_logprobs"]) == a["length"]
    right = [a for a in rollouts.read(run) if a["scores"]["reference_match"] == 1.0]
    assert right and all(a["answer"].rstrip(".").split()[-1] for a in right)


@pytest.mark.slow
def test_the_cli_prints_the_two_best_answers_of_step_3(in_rule_preset_home):
    run_id = in_rule_preset_home["ppo-format-tiny"]["ppo"]
    done = run_cli("rollouts", run_id, "--step", "3", "--sort", "reward", "--top", "2", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    step_3 = sorted((a for a in rollouts.read(RunDir.of(run_id)) if a["step"] == 3), key=lambda a: -a["reward"])
    assert shown == step_3[:2] and shown[0]["reward"] >= shown[1]["reward"]

    worst = json.loads(run_cli("rollouts", run_id, "--step", "3", "--bottom", "1", "--json", timeout=120).stdout)
    assert worst == [step_3[-1]]
    text = run_cli("rollouts", run_id, "--last", "--sort", "length", "--top", "1", timeout=120)
    assert text.returncode == 0 and text.stdout.startswith("=== step 40 · reward "), text.stdout[:300]
    assert "  prompt: " in text.stdout and "  answer: " in text.stdout and "  scores: " in text.stdout


# ---------------------------------------------------------------- a killed run, resumed

BLOCKING_REWARD = '''
"""Scores each answer by its word count; at the 4th training step (8 answers) of the first run it signals and waits
to be killed."""
from pathlib import Path

HERE = Path(__file__).parent


def words_then_wait(prompts, completions, **kwargs):
    answers = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    if len(answers) == 8 and not (HERE / "blocked").exists():
        calls = HERE / "calls"
        calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
        if len(calls.read_text()) == 4:
            (HERE / "blocked").write_text("waiting to be killed")
            import time

            time.sleep(50)
    return [float(len(answer.split())) for answer in answers]
'''


@pytest.mark.slow
def test_a_killed_ppo_run_resumes_with_each_steps_rollouts_once(studio_home, tmp_path):
    """PPO on the tiny model scored by a function that blocks in step 4 of the first run: the run is killed there
    (checkpoint-2 saved, step 3 recorded), resumed from checkpoint-2, and ends with steps 1 to 6 recorded once each."""
    (tmp_path / "reward_fn.py").write_text(BLOCKING_REWARD, encoding="utf-8")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    config = RunConfig(
        stage="ppo",
        data=DataSpec(source="hh-rlhf", path=str(pairs), eval_fraction=0.0, max_length=128),
        lora=LoraSpec(r=8, alpha=16, dropout=0.0),
        train=TrainSpec(max_steps=6, batch_size=8, learning_rate=3e-3, save_steps=2, logging_steps=1),
        rewards=RewardsSpec(sources=[RewardSource(function=f"{tmp_path / 'reward_fn.py'}:words_then_wait")]),
        ppo=PPOSpec(response_length=12, mini_batch_size=4, ppo_epochs=1),
    )
    run, _ = manager.start(config)
    poll(lambda: (tmp_path / "blocked").exists(), "step 4 to block", 120)
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-2"]
    assert rollouts.steps(rollouts.read(run)) == [1, 2, 3]
    os.kill(run.read_status().pid, signal.SIGKILL)
    poll(lambda: manager.status(run).state == State.FAILED, "the run to fail")

    manager.resume(run)
    assert rollouts.steps(rollouts.read(run)) == [1, 2]  # step 3 is sampled again from checkpoint-2
    poll(lambda: manager.status(run).state == State.COMPLETED, "the resumed run to complete", 300)
    steps = by_step(rollouts.read(run))
    assert sorted(steps) == list(range(1, 7)) and all(len(rows) == 8 for rows in steps.values())
    logged = [row for row in read_all(run.metrics_path) if "reward" in row]
    assert [row["step"] for row in logged] == list(range(1, 7))
    for row in logged:
        assert mean(a["reward"] for a in steps[row["step"]]) == pytest.approx(row["reward"], abs=1e-5)


# ---------------------------------------------------------------- keep rules and the size cap


def rows_of(step: int, count: int = 2, text: str = "x" * 100) -> list[dict]:
    return [{"step": step, "prompt": "p", "answer": text, "reward": 1.0, "scores": {}} for _ in range(count)]


def test_steps_kept_by_keep_first_and_keep_every(tmp_path):
    writer = RolloutWriter(tmp_path / "rollouts.jsonl", RolloutsSpec(keep_first=3, keep_every=5))
    assert [step for step in range(1, 20) if writer.due(step)] == [1, 2, 3, 8, 13, 18]
    assert not RolloutWriter(tmp_path / "off.jsonl", RolloutsSpec(record=False)).due(1)


def test_the_size_cap_thins_at_half_then_stops_saying_so_once_each(tmp_path, caplog):
    path = tmp_path / "rollouts.jsonl"
    one_step = len(json.dumps(rows_of(1)[0])) * 2 + 2  # bytes a step's two rows take
    writer = RolloutWriter(path, RolloutsSpec(max_mb=one_step * 4.5 / 1e6))  # room for 4 steps, half after 3
    with caplog.at_level(logging.INFO, logger="studio.runs.rollouts"):
        written = [step for step in range(1, 60) if writer.due(step) and writer.write(step, rows_of(step))]
    # Steps 1-3 fill half the cap; from then one step in 10 (10, 20) until the cap is reached; then none.
    assert written == [1, 2, 3, 10, 20]
    assert rollouts.steps(rollouts.read(RunDir(tmp_path))) == written
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 2
    assert notes[0].startswith("rollouts.jsonl passed half of rollouts.max_mb") and "at step 4" in notes[0]
    assert notes[1].startswith("rollouts.jsonl reached rollouts.max_mb") and "at step 21" in notes[1]
    assert not writer.due(40)


def test_rows_are_written_rounded_with_nan_as_text(tmp_path):
    writer = RolloutWriter(tmp_path / "rollouts.jsonl", RolloutsSpec())
    row = {**rows_of(1, 1)[0], "reward": 1 / 3, "kl": float("nan"), "scores": {"a": 2 / 3, "b": None}}
    writer.write(1, [{**row, "logprobs": [-1 / 3], "ref_logprobs": [-2 / 3]}])
    (back,) = rollouts.read(RunDir(tmp_path))
    assert (back["reward"], back["kl"], back["scores"]) == (0.333333, "nan", {"a": 0.666667, "b": None})
    assert (back["logprobs"], back["ref_logprobs"]) == ([-0.3333], [-0.6667])


# ---------------------------------------------------------------- choosing rows


ROWS = [
    {"step": 1, "prompt": "Name a fruit", "answer": "apple", "reward": 0.5, "kl": 0.1, "length": 2},
    {"step": 1, "prompt": "Name a color", "answer": "red", "reward": 2.0, "kl": None, "length": 1},
    {"step": 1, "prompt": "Name a fruit", "answer": "Banana split", "reward": -1.0, "kl": 0.3, "length": 3},
    {"step": 2, "prompt": "Name a fruit", "answer": "pear", "reward": 9.0, "kl": 0.0, "length": 2},
]


def test_select_sorts_filters_and_cuts():
    answers = [row["answer"] for row in rollouts.select(ROWS, step=1, sort="reward")]
    assert answers == ["red", "apple", "Banana split"]
    assert [r["answer"] for r in rollouts.select(ROWS, step=1, sort="kl")] == ["Banana split", "apple", "red"]
    assert [r["answer"] for r in rollouts.select(ROWS, step=1, top=1)] == ["red"]
    assert [r["answer"] for r in rollouts.select(ROWS, step=1, sort="kl", bottom=2)] == ["apple", "Banana split"]
    assert [r["answer"] for r in rollouts.select(ROWS, text="BANANA")] == ["Banana split"]
    assert [r["answer"] for r in rollouts.select(ROWS, text="fruit", sort="length")] == [
        "Banana split",
        "apple",
        "pear",
    ]
    assert rollouts.select(ROWS, step=1) == ROWS[:3]  # no sort asked: the order written
    with pytest.raises(StudioError, match="rows sort by reward, kl, length"):
        rollouts.select(ROWS, sort="answer")


def test_step_ranges():
    assert rollouts.step_ranges([1, 2, 3, 5, 10, 11]) == "1-3, 5, 10-11"


def recorded_run(stage: str = "grpo") -> RunDir:
    config = RunConfig(stage=stage, rewards=RewardsSpec(sources=[RewardSource(builtin="length", args={"target": 10})]))
    run = manager.create(config)
    if stage == "grpo":
        writer = RolloutWriter(run.rollouts_path, RolloutsSpec())
        for step in (1, 2, 3, 5):
            writer.write(step, [{**row, "step": step} for row in ROWS[:3]])
    return run


def test_the_cli_refuses_in_one_line(studio_home):
    run = recorded_run()
    for args, code, message in (
        ((run.id, "--step", "4"), 1, f"error: step 4 of run {run.id} was not recorded; recorded steps: 1-3, 5"),
        ((run.id, "--top", "0"), 2, "error: --top 0: give at least 1"),
        (("nosuchrun",), 1, "error: no run with id 'nosuchrun' (see `rlhf-studio runs`)"),
    ):
        done = run_cli("rollouts", *args, timeout=60)
        assert (done.returncode, done.stderr.strip()) == (code, message)
    sft = manager.create(RunConfig(stage="sft"))
    done = run_cli("rollouts", sft.id, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == (
        f"error: run {sft.id} trains sft: only the stages that sample answers (ppo, rejection, grpo, rloo) "
        "record rollouts"
    )
    empty = recorded_run("rloo")
    assert run_cli("rollouts", empty.id, timeout=60).stderr.strip() == (
        f"error: run {empty.id} has recorded no rollouts yet: its first step has not ended, or rollouts.record is off"
    )
    both = run_cli("rollouts", run.id, "--top", "1", "--bottom", "1", timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr  # argparse's own one-line usage error


def test_the_python_api_gives_the_newest_step_by_default(studio_home):
    run = recorded_run()
    assert [row["step"] for row in rollouts.load(run.id)] == [5, 5, 5]
    assert [row["answer"] for row in rollouts.load(run.id, step=2, sort="reward", top=1)] == ["red"]
    assert len(rollouts.load(run.id, every_step=True)) == 12


# ---------------------------------------------------------------- answer statistics and their health checks


def messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_answer_stats():
    prompts = [messages(p) for p in "abcdd"]
    answers = ["same", "same ", "other", " same", "x"]
    per_source = {"rm": torch.tensor([1.0, float("nan"), 2.0, 3.0, 4.0]), "f": torch.tensor([float("nan")] * 4 + [1])}
    stats = answer_stats(prompts, answers, per_source, [4, 8, 2, 6, 0], length_limit=10)
    # "same" answers prompts a, b and d: 3 of the 4 distinct prompts; answer 2 has no score from any source.
    assert stats == {"answers/length_share": 0.4, "answers/unscored": 0.2, "answers/repeated": 0.75}
    few = answer_stats([messages("a")] * 4, ["same"] * 4, {"rm": torch.ones(4)}, [1] * 4, length_limit=4)
    assert few["answers/repeated"] == 0.0  # one prompt: too few to call it collapse


def series(**columns: list[float]):
    return {key: (list(range(1, len(values) + 1)), values) for key, values in columns.items()}


def test_answer_health_checks_fire_on_what_they_read():
    calm = series(
        reward=[0.0] * 12,
        **{"answers/repeated": [0.1] * 12, "answers/length_share": [0.3] * 12, "answers/unscored": [0.0] * 12},
    )
    assert health.check("grpo", calm) == []

    collapsing = series(reward=[0.0] * 12, **{"answers/repeated": [0.1] * 5 + [1.0] * 7})
    (warning,) = health.check("grpo", collapsing)
    assert (warning.check, warning.step) == ("repeated_answers", 8)  # 5-row mean 0.64 at step 8
    assert warning.message.startswith("the policy gives different prompts the same answer: 100% of a step's prompts")
    assert "grpo.beta" in warning.suggestion

    hacking = series(reward=[0.0] * 5 + [1.0] * 7, **{"answers/length_share": [0.3] * 5 + [1.0] * 7})
    (warning,) = health.check("ppo", hacking)
    assert (warning.check, warning.step) == ("length_hacking", 9)  # 5-row mean 0.86 at step 9
    flat_reward = series(reward=[1.0] * 12, **{"answers/length_share": [0.3] * 5 + [1.0] * 7})
    assert health.check("ppo", flat_reward) == []  # longer answers the reward did not pay for: not hacking

    unscored = series(reward=[0.0] * 8, **{"answers/unscored": [0.0] * 4 + [0.5] * 4})
    (warning,) = health.check("rejection", unscored)
    assert (warning.check, warning.step) == ("unscored_answers", 5)
    assert warning.message.startswith("answers that no reward source scored: 40% of answers at step 8")
