"""GRPO and RLOO (TRL's trainers) with our reward sources: bad configs are refused in one line, the reward function
hands TRL the score the rewards section combines (one or two runs, sum or safety-gated) and logs each source's mean, the
reference is the starting weights, and on the tiny model a polite-vs-rude reward model's score rises.

    OMP_NUM_THREADS=1 python -m pytest tests/test_grpo_rloo.py -q
"""

from __future__ import annotations

import pytest
import torch

from studio import stages
from studio.config import (
    DataSpec,
    GRPOSpec,
    InitSpec,
    LoraSpec,
    ModelSpec,
    RewardSource,
    RewardsSpec,
    RLOOSpec,
    RunConfig,
    TrainSpec,
    from_dict,
)
from studio.errors import ConfigError, StudioError
from studio.modeling import models
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.serve import rewards, scoring
from studio.serve.rewards import RewardSet
from studio.trainers import grpo, rloo
from studio.trainers.online import CombinedReward
from studio.trainers.rewards import StageRewards
from tests.conftest import polite_rude_pairs, write_jsonl
from tests.test_reward import reward_config, train_to_completion

STAGES = {"grpo": grpo, "rloo": rloo}
STEP_KEYS = (
    "reward",
    "reward_std",
    "kl",
    "entropy",
    "loss",
    "completions/mean_length",
    "completions/clipped_ratio",
    "clip_ratio/region_mean",
    "rewards/combined/mean",
    "step_time",
    "step",
    "epoch",
    "time",
)


def online_config(stage: str, pairs, reward_runs: list[str], lora: bool = True, **train) -> RunConfig:
    """A short online run on an HH-RLHF file: every step logged, answers of at most 12 tokens, nothing held out."""
    settings = dict(
        max_steps=40, learning_rate=3e-3, batch_size=32, logging_steps=1, warmup_ratio=0.0, save_steps=0, eval_steps=0
    )
    spec = GRPOSpec(max_completion_length=12) if stage == "grpo" else RLOOSpec(max_completion_length=12)
    return RunConfig(
        stage=stage,
        data=DataSpec(source="hh-rlhf", path=str(pairs), eval_fraction=0.0, max_length=128),
        lora=LoraSpec(enabled=lora, r=8, alpha=16, dropout=0.0),
        train=TrainSpec(**{**settings, **train}),
        rewards=RewardsSpec(sources=[RewardSource(run=run_id) for run_id in reward_runs]),
        **{stage: spec},
    )


def bare_run(name: str) -> RunDir:
    """A run folder without the index or reward-run checks of manager.create (for hand-scored reward runs)."""
    run = RunDir.of(name)
    run.path.mkdir(parents=True)
    return run


# ---------------------------------------------------------------- refused configs


def refused(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return str(info.value)


@pytest.mark.parametrize("stage", ["grpo", "rloo"])
@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"train": {"batch_size": 6}},
            "{s}.num_generations = 4: must divide the answers sampled per step, train.batch_size x "
            "train.gradient_accumulation_steps = 6 x 1 = 6",
        ),
        (
            {
                "train": {"batch_size": 4, "gradient_accumulation_steps": 3},
                "{s}": {"num_generations": 8},
                "data": {"eval_fraction": 0},
            },
            "{s}.num_generations = 8: must divide the answers sampled per step, train.batch_size x "
            "train.gradient_accumulation_steps = 4 x 3 = 12",
        ),
        (
            {"train": {"batch_size": 2, "gradient_accumulation_steps": 2}},
            "{s}.num_generations = 4: must divide train.batch_size (2) to score held-out prompts, which are sampled in "
            "batches of train.batch_size answers; or set data.eval_fraction to 0",
        ),
        ({"{s}": {"num_generations": 1}}, "{s}.num_generations = 1: must be at least 2"),
        ({"{s}": {"epsilon": 1.0}}, "{s}.epsilon = 1.0: must be less than 1.0"),
        ({"{s}": {"beta": -0.1}}, "{s}.beta = -0.1: must be at least 0.0"),
        (
            {"reward_models": {"runs": []}},
            "rewards.sources is empty: the {s} stage scores its answers with at least one source: a completed reward "
            "run (run: ID), a built-in rule (builtin: format) or a Python function (function: FILE.py:NAME)",
        ),
    ],
)
def test_bad_group_configs_are_refused(stage, options, message):
    raw = {"stage": stage, "reward_models": {"runs": ["rm"]}}
    for key, value in options.items():
        raw[key.format(s=stage)] = value
    assert refused(raw) == message.format(s=stage)


def test_grpo_loss_options_are_checked():
    base = {"stage": "grpo", "reward_models": {"runs": ["rm"]}}
    assert refused({**base, "grpo": {"loss_type": "cispo"}}) == (
        "grpo.epsilon_high is empty: the cispo loss caps each importance weight at epsilon_high (ScaleRL uses 5); "
        "set it"
    )
    assert refused({**base, "grpo": {"loss_type": "ppo"}}) == (
        "grpo.loss_type = 'ppo': allowed values are dapo, grpo, dr_grpo, bnpo, cispo, sapo, luspo, vespo"
    )
    assert from_dict({**base, "grpo": {"loss_type": "cispo", "epsilon_high": 5}}).grpo.epsilon_high == 5.0


def test_defaults_are_valid_and_the_divisibility_rule_counts_answers_per_step():
    for stage in ("grpo", "rloo"):
        config = from_dict({"stage": stage, "reward_models": {"runs": ["rm"]}})
        assert getattr(config, stage).num_generations == 4 and config.train.batch_size == 4
        # 2 answers per forward pass, 4 passes per step: 8 answers, two whole groups of 4 (nothing held out)
        from_dict(
            {
                "stage": stage,
                "reward_models": {"runs": ["rm"]},
                "data": {"eval_fraction": 0},
                "train": {"batch_size": 2, "gradient_accumulation_steps": 4},
            }
        )


def test_the_group_rules_apply_only_to_grpo_and_rloo():
    assert from_dict({"stage": "sft", "train": {"batch_size": 6}}).train.batch_size == 6


def test_online_stages_start_from_policies_and_are_policies():
    policies = ("sft", "dpo", "kto", "orpo", "simpo", "cpo", "ppo", "rejection", "grpo", "rloo")
    for stage in ("grpo", "rloo"):
        assert stages.starts_from(stage) == policies
        # their adapter is a plain policy adapter: DPO or PPO can start from it
        assert stage in stages.starts_from("dpo")


# ---------------------------------------------------------------- the reward function, on hand-made scores


PROMPT = [{"role": "user", "content": "How do I boil an egg?"}]
POLITE = "Of course, boil it nine minutes."
RUDE = "That is a stupid question."
SCORERS = {
    "help": lambda answer: float(len(answer.split())),  # helpfulness: counts words
    "safe": lambda answer: -1.0 if "stupid" in answer else 1.0,
}  # safety: an insult scores -1


@pytest.fixture
def hand_scored(monkeypatch):
    """Reward runs 'help' (reward.kind helpfulness) and 'safe' (safety) scored by SCORERS instead of models; returns
    the (run id, number of answers) of every scoring call."""
    calls = []

    def score_checked(run_id, prompts, answers):  # the "run" is its id here, as check_reward_run below returns it
        assert len(prompts) == len(answers)
        calls.append((run_id, len(answers)))
        return [SCORERS[run_id](answer) for answer in answers]

    monkeypatch.setattr(scoring, "check_reward_run", lambda run_id: run_id)
    monkeypatch.setattr(scoring, "score_checked", score_checked)
    monkeypatch.setattr(
        rewards, "reward_kinds", lambda runs: {r: {"help": "helpfulness", "safe": "safety"}[r] for r in runs}
    )
    return calls


def combined(*sources: RewardSource, **options) -> CombinedReward:
    return CombinedReward(StageRewards(RewardSet(RewardsSpec(sources=list(sources), **options))), length_limit=12)


def call_as_trl(reward: CombinedReward, completions: list) -> tuple[list[float], dict]:
    """Call the reward function with the keywords TRL 1.16 passes; returns the scores and the metrics it logged."""
    logged = {}
    n = len(completions)
    scores = reward(
        prompts=[PROMPT] * n,
        completions=completions,
        completion_ids=[[1]] * n,
        trainer_state=None,
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    return scores, logged


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_one_reward_model_scores_every_completion_in_order(hand_scored):
    reward = combined(RewardSource(run="help"))
    assert hand_scored == [("help", 0)]  # the model loaded when the function was made, before any sampling
    assert reward.__name__ == "combined"  # TRL logs rewards/combined/mean after this name
    scores, logged = call_as_trl(reward, [assistant(POLITE), assistant(RUDE), "plain text answer"])
    assert scores == [6.0, 5.0, 3.0] and all(type(s) is float for s in scores)
    assert logged == {
        "reward/help": pytest.approx(14 / 3),
        "reward_std/help": pytest.approx((14 / 9) ** 0.5),  # the spread over the three answers
        "scored/help": 1.0,
        # What the health checks read from the answers: one token each of the 12 allowed (TRL's completion_ids),
        # each scored, one prompt only (too few to call repeats collapse).
        "answers/length_share": pytest.approx(1 / 12),
        "answers/unscored": 0.0,
        "answers/repeated": 0.0,
    }


def test_two_reward_models_sum_with_weights(hand_scored):
    reward = combined(RewardSource(run="help"), RewardSource(run="safe", weight=2.0))
    scores, logged = call_as_trl(reward, [assistant(POLITE), assistant(RUDE)])
    assert scores == [6.0 + 2.0, 5.0 - 2.0]
    assert logged == {
        "reward/help": pytest.approx(5.5),
        "reward/safe": pytest.approx(0.0),
        "reward_std/help": pytest.approx(0.5),
        "reward_std/safe": pytest.approx(1.0),
        "scored/help": 1.0,
        "scored/safe": 1.0,
        "answers/length_share": pytest.approx(1 / 12),
        "answers/unscored": 0.0,
        "answers/repeated": 0.0,
    }


def test_two_reward_models_safety_gated(hand_scored):
    """Llama 2: the safety score where it is below the threshold, else the helpfulness score."""
    reward = combined(RewardSource(run="help"), RewardSource(run="safe"), combine="safety_gated", safety_threshold=0.15)
    scores, logged = call_as_trl(reward, [assistant(POLITE), assistant(RUDE)])
    assert scores == [6.0, -1.0]
    assert {k: v for k, v in logged.items() if k.startswith("reward/")} == {
        "reward/help": pytest.approx(5.5),
        "reward/safe": pytest.approx(0.0),
    }


def test_safety_gated_without_a_safety_run_fails_when_the_function_is_made(hand_scored, monkeypatch):
    monkeypatch.setattr(rewards, "reward_kinds", lambda runs: {r: "helpfulness" for r in runs})
    with pytest.raises(ConfigError, match="needs one reward run trained with reward.kind safety"):
        combined(RewardSource(run="help"), RewardSource(run="safe"), combine="safety_gated")


# ---------------------------------------------------------------- the reference


def lora_parent(name: str) -> str:
    """A completed-looking policy run whose LoRA adapter really changes the tiny model (B is not zero)."""
    spec = ModelSpec()
    model = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=4, alpha=8), spec, "CAUSAL_LM")
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    run = bare_run(name)
    model.save_pretrained(run.adapter_dir)
    return run.id


def test_the_reference_is_the_starting_weights_with_and_without_lora(studio_home, tmp_path, hand_scored):
    """LoRA: no second model and no 'ref' copy of the adapter (TRL would add one to a PeftModel); the adapter-disabled
    policy is the reference. Full fine-tuning from a LoRA parent: TRL reloads the reference by the base model's name,
    which lacks the parent's merged adapter; build_trainer copies the starting weights over it."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(16))
    config = online_config("grpo", pairs, ["help"], max_steps=1, batch_size=4)
    trainer = grpo.build_trainer(config, bare_run("grpo-lora"))
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]

    config = online_config("rloo", pairs, ["help"], lora=False, max_steps=1, batch_size=4)
    config.init = InitSpec(from_run=lora_parent("sft-parent"))
    trainer = rloo.build_trainer(config, bare_run("rloo-full"))
    weight = "model.layers.0.self_attn.q_proj.weight"
    start, reference = trainer.model.state_dict()[weight], trainer.ref_model.state_dict()[weight]
    base = models.load_causal_lm(ModelSpec()).state_dict()[weight]
    assert not torch.equal(start, base), "the parent's adapter was not merged into the starting weights"
    assert torch.equal(reference, start)


def test_a_missing_reward_run_fails_before_any_model_loads(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(8))
    config = online_config("grpo", pairs, ["no-such-run"])
    with pytest.raises(StudioError, match="no run with id 'no-such-run'"):
        grpo.train(config, bare_run("grpo-missing"))
    assert not (RunDir.of("grpo-missing").path / "data_report.json").exists()  # it failed before loading data


# ---------------------------------------------------------------- learning


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["grpo", "rloo"])
def test_the_reward_rises_and_every_step_logs_reward_and_kl(stage, studio_home, tmp_path):
    """40 steps of 32 answers (8 prompts x 4) of at most 12 tokens: 0.21 s a step for GRPO and 0.23 for RLOO on 2 idle
    CPU cores (0.35 with another training beside it); the test about 11 s with the reward model.

    Measured (reward model and policy seeds 0, 1, 2, 3, 42): the first quarter of steps averages -2.2 to -0.1 and the
    rise to the last quarter is 2.5, 1.0, 1.4, 0.6, 1.7 for GRPO and 2.7, 1.5, 0.9, 0.3, 1.6 for RLOO (seed 3's
    reward model scores everything the tiny policy says near -2, and both stages barely move it). With the seeds here
    (42) the rise is 1.7 (GRPO: -0.06 -> 1.60) and 1.6 (RLOO: -0.14 -> 1.42). Steps vary by about 0.3, so a quarter's
    mean of 10 steps varies by about 0.1: a rise above 0.5 is learning, not noise. What the policy learns is whatever
    this tiny reward model rates highly; most answers run to the 12-token limit."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(160, seed=1))
    torch.manual_seed(0)  # as test_ppo.py does; the reward stage also seeds itself from its train.seed (42)
    reward_run = train_to_completion(reward_config(pairs))

    config = online_config(stage, pairs, [reward_run.id])
    run = manager.create(config)
    STAGES[stage].train(config, run)

    rows = [row for row in read_all(run.metrics_path) if "reward" in row]
    assert [row["step"] for row in rows] == list(range(1, 41))
    for row in rows:
        assert all(key in row for key in STEP_KEYS), sorted(set(STEP_KEYS) - set(row))
        # one reward model: the mean our function logs for it is the mean TRL logs for the function
        assert row[f"reward/{reward_run.id}"] == pytest.approx(row["rewards/combined/mean"], abs=1e-4)
    quarter = len(rows) // 4
    first = sum(row["reward"] for row in rows[:quarter]) / quarter
    last = sum(row["reward"] for row in rows[-quarter:]) / quarter
    late_kl = sum(row["kl"] for row in rows[-quarter:]) / quarter
    seconds = sum(row["step_time"] for row in rows) / len(rows)
    print(
        f"{stage}: reward first quarter {first:.3f}, last quarter {last:.3f}, last-quarter kl {late_kl:.3f}, "
        f"{seconds:.3f} s/step"
    )
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # a fresh adapter (B = 0): the policy is the reference
    assert late_kl > 0.05  # the policy moved away from its starting weights, and the kl metric sees it
    assert last > first + 0.5, (first, last)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (run.adapter_dir / "adapter_config.json").is_file()
    assert not (run.adapter_dir / "ref").exists()  # no second adapter saved next to the trained one


def test_checkpoints_resume_and_a_final_eval_on_held_out_prompts(studio_home, tmp_path):
    """GRPO through fit_and_save as every TRL stage: complete checkpoints every 2 steps, a run asked for more steps
    resumes from the last one instead of starting over, and held-out prompts are sampled and scored at the end."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    reward_run = train_to_completion(reward_config(pairs, max_steps=4))
    config = online_config("grpo", pairs, [reward_run.id], max_steps=4, batch_size=8, save_steps=2)
    config.data.eval_fraction = 0.2
    run = manager.create(config)
    grpo.train(config, run)
    assert [p.name for p in run.complete_checkpoints()] == ["checkpoint-2", "checkpoint-4"]

    config.train.max_steps = 6
    grpo.train(config, run)
    rows = read_all(run.metrics_path)
    assert [row["step"] for row in rows if "reward" in row] == [1, 2, 3, 4, 5, 6]  # 5 and 6 only, after the resume
    evals = [row for row in rows if "eval_reward" in row]
    assert [row["step"] for row in evals] == [4, 6]
    assert all(f"eval_reward/{reward_run.id}" in row and "eval_kl" in row for row in evals)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
