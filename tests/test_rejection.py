"""Rejection sampling on the tiny model: each round keeps the best of K sampled answers per prompt as scored by a
reward model trained on polite-over-rude pairs, the policy fine-tuned on them samples better answers the next round,
the kept rows written to the run folder agree with the metrics, and bad configs are refused in one line.

    OMP_NUM_THREADS=1 python -m pytest tests/test_rejection.py -q
"""

from __future__ import annotations

import random
from statistics import mean

import pytest
import torch
from safetensors.torch import load_file

from studio import stages
from studio.config import (
    DataSpec,
    InitSpec,
    LoraSpec,
    RejectionSpec,
    RewardSource,
    RewardsSpec,
    RunConfig,
    TrainSpec,
    from_dict,
)
from studio.errors import ConfigError, StudioError
from studio.runs import manager, rollouts
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.trainers import rejection
from studio.trainers.common import seed_model_init
from tests.conftest import polite_rude_pairs, write_jsonl
from tests.test_reward import reward_config, train_to_completion

ROUND_KEYS = (
    "reward",
    "reward_std",
    "reward_best",
    "reward_gain",
    "kept",
    "loss",
    "response_length",
    "best_response_length",
    "eos_fraction",
    "time/generation",
    "time/training",
    "step",
    "epoch",
    "time",
)


def rejection_config(path, reward_run: str, **options) -> RunConfig:
    settings = dict(rounds=6, prompts_per_round=64, samples_per_prompt=4, response_length=12, sft_epochs=2)
    return RunConfig(
        stage="rejection",
        data=DataSpec(source="hh-rlhf", path=str(path), eval_fraction=0.0, max_length=128),
        lora=LoraSpec(r=8, alpha=16, dropout=0.0),
        train=TrainSpec(learning_rate=3e-3, batch_size=8, warmup_ratio=0.0),
        rewards=RewardsSpec(sources=[RewardSource(run=reward_run)]),
        rejection=RejectionSpec(**{**settings, **options}),
    )


def round_rows(run: RunDir, round_no: int) -> list[dict]:
    """The round's rollout rows: one per answer."""
    return [row for row in rollouts.read(run) if row["step"] == round_no]


# ---------------------------------------------------------------- learning, end to end


@pytest.mark.slow
def test_rejection_sampling_raises_the_reward_round_by_round(studio_home, tmp_path):
    """6 rounds of 64 prompts x 4 answers of at most 12 tokens, 2 fine-tuning epochs a round (1 to 1.5 s a round on
    2 shared CPU cores; the test about 13 s once the tiny model is built).

    With this reward model (trained with the default seed) the mean sample reward rose from round 1 to round 6 by
    1.51 (-0.59 -> 0.93), and by 2.04, 1.68, 1.60, 1.78, 0.91 and 1.60 with rejection seeds 1 to 6. A round's mean
    is over 256 answers whose scores spread by about 2.1; across those seeds round 1's mean varied by 0.14, so a
    difference of two rounds varies by about 0.2 by chance: a rise above 0.5 is learning, not luck, and the smallest
    rise seen (0.91) clears it well. With reward models trained with seeds 43 to 46 the rise in 8 rounds was 2.3,
    1.8, 0.3 and 0.7: the weak ones score almost every gibberish answer alike, so best of 4 has little to pick from
    (a gain of 0.2 to 0.6 against about 2 here), which is why the test keeps the default seed."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(160, seed=1))
    reward_run = train_to_completion(reward_config(pairs))

    config = rejection_config(pairs, reward_run.id)
    run = manager.create(config)
    rejection.train(config, run)

    rows = read_all(run.metrics_path)
    assert [r["step"] for r in rows] == list(range(1, 7))
    for row in rows:
        assert all(key in row for key in ROUND_KEYS), sorted(set(ROUND_KEYS) - set(row))
        assert f"reward/{reward_run.id}" in row
        assert row["reward_best"] >= row["reward"]
        assert row["reward_gain"] == pytest.approx(row["reward_best"] - row["reward"])
        assert row["kept"] == 64
    print(
        "reward per round:",
        [round(r["reward"], 3) for r in rows],
        "best of 4:",
        [round(r["reward_best"], 3) for r in rows],
        f"{mean(r['time/generation'] + r['time/training'] for r in rows):.2f} s/round",
    )
    assert rows[-1]["reward"] > rows[0]["reward"] + 0.5, (rows[0]["reward"], rows[-1]["reward"])

    # The rollouts of each round are what its metrics summarise: every score, each prompt's best, what was kept.
    for row in rows:
        answers = round_rows(run, row["step"])
        groups = [[r for r in answers if r["group"] == g] for g in range(64)]
        assert len(answers) == 256 and all(len(group) == 4 for group in groups)
        assert all(r["round"] == row["step"] and r["kl"] is None for r in answers)
        best = [next(r for r in group if r["best"]) for group in groups]
        assert all(b["reward"] == max(r["reward"] for r in group) for b, group in zip(best, groups))
        assert mean(r["reward"] for r in answers) == pytest.approx(row["reward"], abs=1e-5)
        assert mean(b["reward"] for b in best) == pytest.approx(row["reward_best"], abs=1e-5)
        assert sum(r["kept"] for r in answers) == row["kept"] and all(b["kept"] for b in best)  # no min_score
        assert all(r["scores"] == {reward_run.id: r["reward"]} for r in answers)  # one source: its own score
        assert [len(r.get("tokens", [])) for r in answers[:2]] == [r["length"] for r in answers[:2]]
    assert len({r["prompt"] for r in round_rows(run, 1)}) > 1  # a slice of the data, not one prompt repeated

    assert run.read_status().step == 6 and run.read_status().total_steps == 6
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()

    run.write_status(state="completed")  # as the worker would: later policy stages can start from it
    child = RunConfig(stage="dpo", data=DataSpec(source="hh-rlhf", path=str(pairs)), init=InitSpec(from_run=run.id))
    assert manager.link_parent(child).id == run.id

    cancelled = manager.create(config)  # a cancel request is honoured between rounds: nothing trained, nothing saved
    cancelled.request_cancel()
    rejection.train(config, cancelled)
    assert read_all(cancelled.metrics_path) == [] and not cancelled.adapter_dir.exists()


@pytest.mark.slow
def test_min_score_keeps_only_answers_that_reach_it(studio_home, tmp_path):
    """A min_score no answer reaches: nothing is kept, nothing is fine-tuned (no loss row, the adapter's B matrices
    still zero), and the round's file says so."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    reward_run = train_to_completion(reward_config(pairs, max_steps=2))
    config = rejection_config(pairs, reward_run.id, rounds=1, prompts_per_round=8, min_score=1e6)
    run = manager.create(config)
    rejection.train(config, run)

    [row] = read_all(run.metrics_path)
    assert row["kept"] == 0 and "loss" not in row and "best_response_length" not in row
    assert not any(r["kept"] for r in round_rows(run, 1))
    weights = load_file(str(run.adapter_dir / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and all(torch.count_nonzero(w) == 0 for w in lora_b)


def test_a_missing_reward_run_fails_before_any_model_loads(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(8))
    config = rejection_config(pairs, "no-such-run")
    with pytest.raises(StudioError, match="no run with id 'no-such-run'"):
        rejection.train(config, manager.create(config))


# ---------------------------------------------------------------- the pieces


def test_best_of_k_picks_each_prompts_highest_score():
    scores = torch.tensor(
        [[0.1, 2.0, -1.0, 0.5], [-3.0, -2.0, -2.5, -4.0], [1.0, 1.0, 0.0, 1.0]]
    )  # a tie: the earlier answer wins
    best, best_scores, kept = rejection.best_of_k(scores)
    assert best.tolist() == [1, 1, 0]
    assert best_scores.tolist() == [2.0, -2.0, 1.0]
    assert kept.tolist() == [True, True, True]
    _, _, kept = rejection.best_of_k(scores, min_score=0.5)
    assert kept.tolist() == [True, False, True]  # -2.0 is below the bar; 1.0 reaches it


def test_a_rounds_rollouts_keep_each_sources_scores_with_none_where_it_gave_none():
    """Two prompts x 2 answers: one rollout row per answer, each source's score (None where it gave none, not NaN,
    which is not JSON), the prompt's index as its group, its best answer, and what was kept (prompt 2's best was
    below min_score)."""
    prompts = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Bye"}]]
    samples = rejection.Samples([[5], [6, 7], [7], [8]], ["a", "b", "c", "d"], [True, False, True, True])
    nan = float("nan")
    per_source = {"rm": torch.tensor([0.5, 1.5, -1.0, 2.0]), "match": torch.tensor([1.0, nan, nan, nan])}
    scores = torch.tensor([[1.5, 1.5], [-1.0, 2.0]])
    rows = rejection.round_rollouts(
        3, prompts, samples, scores, per_source, torch.tensor([0, 1]), torch.tensor([True, False])
    )
    common = {"step": 3, "kl": None, "round": 3}
    assert rows == [
        {
            **common,
            "prompt": "Hi",
            "answer": "a",
            "reward": 1.5,
            "scores": {"rm": 0.5, "match": 1.0},
            "length": 1,
            "ended": True,
            "group": 0,
            "best": True,
            "kept": True,
        },
        {
            **common,
            "prompt": "Hi",
            "answer": "b",
            "reward": 1.5,
            "scores": {"rm": 1.5, "match": None},
            "length": 2,
            "ended": False,
            "group": 0,
            "best": False,
            "kept": False,
        },
        {
            **common,
            "prompt": "Bye",
            "answer": "c",
            "reward": -1.0,
            "scores": {"rm": -1.0, "match": None},
            "length": 1,
            "ended": True,
            "group": 1,
            "best": False,
            "kept": False,
        },
        {
            **common,
            "prompt": "Bye",
            "answer": "d",
            "reward": 2.0,
            "scores": {"rm": 2.0, "match": None},
            "length": 1,
            "ended": True,
            "group": 1,
            "best": True,
            "kept": False,
        },
    ]


def test_each_round_takes_a_fresh_slice_of_the_prompts():
    slices = rejection.prompt_slices(10, 4, random.Random(0))
    first, second = next(slices), next(slices)
    assert len(first) == len(second) == 4 and not set(first) & set(second)
    third = next(slices)  # two left in the first pass, then a reshuffled second pass
    assert set(first) | set(second) | set(third[:2]) == set(range(10))


def test_fine_tuning_labels_only_the_answer():
    ids, mask, labels = rejection._sft_batch([([5, 6, 7], [8, 2]), ([5], [9, 9, 2])], pad_id=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7, 8, 2], [5, 9, 9, 2, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 2], [-100, 9, 9, 2, -100]]


def test_gradient_checkpointing_saves_memory_not_results(studio_home):
    """The same fine-tuning steps give the same loss with train.gradient_checkpointing on, and it is really on."""
    examples = [([1, 5, 6], [7, 8, 2]), ([1, 9], [10, 2]), ([1, 5], [6, 6, 6, 2])]
    losses = []
    for checkpointing in (False, True):
        config = RunConfig(
            stage="rejection",
            lora=LoraSpec(r=8, alpha=16, dropout=0.0),
            train=TrainSpec(
                learning_rate=3e-3, batch_size=2, gradient_accumulation_steps=2, gradient_checkpointing=checkpointing
            ),
            rewards=RewardsSpec(sources=[RewardSource(run="unused")]),
            rejection=RejectionSpec(sft_epochs=2),
        )
        seed_model_init(config)
        policy = rejection.build_policy(config, torch.device("cpu"))
        base = policy.get_base_model()
        assert (
            getattr(base, "is_activation_checkpointing", None) is checkpointing
            or getattr(base, "is_gradient_checkpointing", None) is checkpointing
        )
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.train.learning_rate)
        losses.append(
            rejection.fine_tune(
                policy, optimizer, params, examples, config, pad_id=0, rng=random.Random(0), device="cpu"
            )
        )
        assert not policy.training  # back in sampling mode
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_rejection_starts_from_policy_runs_and_policies_start_from_it():
    policies = ("sft", "dpo", "kto", "orpo", "simpo", "cpo", "ppo", "rejection", "grpo", "rloo")
    assert stages.starts_from("rejection") == policies
    assert all("rejection" in stages.starts_from(stage) for stage in ("sft", "dpo", "ppo", "reward"))


# ---------------------------------------------------------------- refused configs


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {},
            "rewards.sources is empty: the rejection stage scores its answers with at least one source: a completed "
            "reward run (run: ID), a built-in rule (builtin: format) or a Python function (function: FILE.py:NAME)",
        ),
        ({"rejection": {"samples_per_prompt": 1}}, "rejection.samples_per_prompt = 1: must be at least 2"),
        ({"rejection": {"rounds": 0}}, "rejection.rounds = 0: must be at least 1"),
        ({"rejection": {"temperature": 0}}, "rejection.temperature = 0.0: must be greater than 0.0"),
        ({"rejection": {"sft_epochs": 1.5}}, "rejection.sft_epochs = 1.5: expected an integer"),
        ({"rejection": {"min_score": "high"}}, "rejection.min_score = 'high': expected a number"),
        (
            {"rejection": {"round": 2}},
            "unknown key 'rejection.round'; did you mean 'rejection.rounds'? (keys in "
            "rejection: rounds, prompts_per_round, samples_per_prompt, response_length, "
            "temperature, min_score, sft_epochs, generation_batch_size)",
        ),
        (
            {"train": {"max_steps": 20}},
            "train.max_steps = 20: the rejection stage runs rejection.rounds rounds of "
            "rejection.sft_epochs passes over the kept answers; leave max_steps at -1",
        ),
    ],
)
def test_bad_rejection_configs_are_refused(options, message):
    raw = {"stage": "rejection", "data": {"source": "dolly"}, "rewards": {"sources": [{"run": "a"}]}, **options}
    if not options:
        raw.pop("rewards")
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert str(err.value) == message


def test_rejection_takes_prompts_from_any_source():
    for source in ("dolly", "hh-rlhf", "oasst", "file"):
        config = from_dict(
            {
                "stage": "rejection",
                "data": {"source": source},
                "rewards": {"sources": [{"run": "a"}, {"builtin": "json_valid", "weight": 0.5}]},
                "rejection": {"min_score": "0.5"},
            }
        )
        assert config.stage == "rejection" and config.rejection.min_score == 0.5
        assert [(s.label, s.weight) for s in config.rewards.sources] == [("a", 1.0), ("json_valid", 0.5)]


def test_a_legacy_reward_models_section_names_the_reward_runs():
    config = from_dict({"stage": "rejection", "reward_models": {"runs": ["a", "b"], "weights": [2, 1]}})
    assert [(s.kind, s.run, s.weight) for s in config.rewards.sources] == [("run", "a", 2.0), ("run", "b", 1.0)]
    assert config.rewards.runs == ["a", "b"] and config.rewards.combine == "sum"
