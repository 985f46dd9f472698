"""PPO on the tiny model: a reward model trained on polite-over-rude pairs scores the policy's answers, the policy's
reward rises while its KL to the starting weights stays bounded, and bad PPO configs are refused clearly.

    python -m pytest tests/test_ppo.py -q
"""

from __future__ import annotations

import pytest
import torch

from studio import stages
from studio.config import (
    DataSpec,
    LoraSpec,
    PPOSpec,
    RewardSource,
    RewardsSpec,
    RunConfig,
    TrainSpec,
    from_dict,
)
from studio.errors import ConfigError
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.serve.rewards import RewardSet, Scored
from studio.trainers import ppo
from studio.trainers.rewards import source_means
from studio.trainers.sampling import response_mask
from tests.conftest import polite_rude_pairs, write_jsonl
from tests.test_reward import reward_config, train_to_completion

STEP_KEYS = (
    "reward",
    "reward_std",
    "kl",
    "kl_coef",
    "entropy",
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "approx_kl",
    "response_length",
    "time/generation",
    "time/optimization",
    "tokens_per_second",
    "step",
    "epoch",
    "time",
)


def ppo_config(path, reward_run: str, **ppo_options) -> RunConfig:
    options = dict(response_length=12, kl_coef=0.2, ppo_epochs=2, mini_batch_size=16)
    return RunConfig(
        stage="ppo",
        data=DataSpec(source="hh-rlhf", path=str(path), eval_fraction=0.0, max_length=128),
        lora=LoraSpec(r=8, alpha=16, dropout=0.0),
        train=TrainSpec(max_steps=40, learning_rate=3e-3, batch_size=32, logging_steps=4, warmup_ratio=0.0),
        rewards=RewardsSpec(sources=[RewardSource(run=reward_run)]),
        ppo=PPOSpec(**{**options, **ppo_options}),
    )


@pytest.mark.slow
def test_ppo_raises_the_reward_while_kl_stays_bounded(studio_home, tmp_path):
    """40 steps of 32 answers (about 0.15 s a step on 2 CPU cores; the whole test about 25 s, most of it loading).

    With the seeds fixed here the first quarter of steps averages 0.32 against 2.51 for the last (a rise of 2.2);
    with other reward model inits the rise was 1.0 to 2.8. A quarter averages 320 answers, so its noise is near
    0.05: a rise above 0.5 is learning, not luck. The KL per answer (summed over its tokens, the quantity target_kl
    aims at) averages 7.1 in the last quarter, 8.2 at most, so the last quarter's mean must stay under 10 and no
    step may pass 15. What the policy learns is whatever this
    tiny reward model overrates (it ends answers with a word it likes): PPO doing its job on a weak reward model."""
    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(160, seed=1))
    reward_run = train_to_completion(reward_config(pairs))

    config = ppo_config(pairs, reward_run.id)
    run = manager.create(config)
    ppo.train(config, run)

    rows = read_all(run.metrics_path)
    assert [r["step"] for r in rows] == list(range(1, 41))
    for row in rows:
        assert all(key in row for key in STEP_KEYS), sorted(set(STEP_KEYS) - set(row))
        assert f"reward/{reward_run.id}" in row
    quarter = len(rows) // 4
    first = sum(r["reward"] for r in rows[:quarter]) / quarter
    last = sum(r["reward"] for r in rows[-quarter:]) / quarter
    late_kl = sum(r["kl"] for r in rows[-quarter:]) / quarter
    seconds = sum(r["time/generation"] + r["time/optimization"] for r in rows) / len(rows)
    print(
        f"reward first quarter {first:.3f}, last quarter {last:.3f}, last-quarter kl {late_kl:.2f}, "
        f"max kl {max(r['kl'] for r in rows):.2f}, {seconds:.3f} s/step"
    )
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # fresh LoRA (B = 0): the policy is the reference
    assert last > first + 0.5, (first, last)
    assert late_kl < 10
    assert max(r["kl"] for r in rows) < 15
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (run.adapter_dir / ppo.VALUE_HEAD_FILE).is_file()

    cancelled = manager.create(config)  # a cancel request is honoured between steps: nothing trained, nothing saved
    cancelled.request_cancel()
    ppo.train(config, cancelled)
    assert read_all(cancelled.metrics_path) == [] and not cancelled.adapter_dir.exists()


# ---------------------------------------------------------------- refused configs


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {},
            "rewards.sources is empty: the ppo stage scores its answers with at least one source: a completed reward "
            "run (run: ID), a built-in rule (builtin: format) or a Python function (function: FILE.py:NAME)",
        ),
        (
            {"rewards": {"sources": [{"run": "a"}, {"run": "a"}]}},
            "rewards.sources[1]: the name 'a' is taken by rewards.sources[0]; give one of them a name of its own",
        ),
        (
            {"rewards": {"sources": [{"run": "a"}], "combine": "safety_gated"}},
            "rewards.combine = 'safety_gated': needs two reward runs (helpfulness and safety), got 1",
        ),
        (
            {"rewards": {"sources": [{"run": "a"}, {"run": "b", "weight": 2}], "combine": "safety_gated"}},
            "rewards.sources[1].weight = 2: with combine safety_gated the two reward runs are gated, not weighted; "
            "leave their weights at 1",
        ),
        (
            {"rewards": {"sources": [{"run": "a"}]}, "ppo": {"mini_batch_size": 3}},
            "ppo.mini_batch_size = 3: must divide train.batch_size",
        ),
        (
            {"rewards": {"sources": [{"run": "a"}, {"run": "b", "weight": "x"}]}},
            "rewards.sources[1].weight = 'x': expected a number",
        ),
    ],
)
def test_bad_ppo_configs_are_refused(options, message):
    with pytest.raises(ConfigError) as err:
        from_dict({"stage": "ppo", "data": {"source": "dolly"}, **options})
    assert message in str(err.value)


def test_ppo_takes_prompts_from_any_source():
    for source in ("dolly", "hh-rlhf", "oasst", "file"):
        config = from_dict({"stage": "ppo", "data": {"source": source}, "rewards": {"sources": [{"run": "a"}]}})
        assert config.stage == "ppo"


def test_any_number_of_reward_runs_and_rules_score_together():
    """No limit of two: three reward runs and a built-in, each weight read from a YAML number or text."""
    sources = [{"run": "a"}, {"run": "b", "weight": "0.5"}, {"run": "c", "weight": -1}, {"builtin": "format"}]
    sources[3]["args"] = {"pattern": "[.!?]$"}
    config = from_dict({"stage": "ppo", "rewards": {"sources": sources}})
    assert config.rewards.runs == ["a", "b", "c"]
    assert [(s.kind, s.label, s.weight) for s in config.rewards.sources] == [
        ("run", "a", 1.0),
        ("run", "b", 0.5),
        ("run", "c", -1.0),
        ("builtin", "format", 1.0),
    ]


def test_the_legacy_reward_models_section_is_read_as_run_sources():
    """Configs written before `rewards` still load: runs become run sources, weights their weights, combine and
    safety_threshold carry over; a weight list of the wrong length is refused in the old section's words."""
    config = from_dict(
        {"stage": "ppo", "reward_models": {"runs": ["a", "b"], "weights": [1, "0.5"], "safety_threshold": 0.3}}
    )
    assert [(s.kind, s.run, s.weight) for s in config.rewards.sources] == [("run", "a", 1.0), ("run", "b", 0.5)]
    assert (config.rewards.combine, config.rewards.safety_threshold) == ("sum", 0.3)
    gated = from_dict({"stage": "ppo", "reward_models": {"runs": ["a", "b"], "combine": "safety_gated"}})
    assert (gated.rewards.runs, gated.rewards.combine) == (["a", "b"], "safety_gated")
    for legacy, message in (
        (
            {"runs": ["a", "b"], "weights": [1.0]},
            "reward_models.weights = [1.0]: give one weight per reward run (2), or none to weigh each 1",
        ),
        ({"runs": ["a"], "weights": ["x"]}, "reward_models.weights[0] = 'x': expected a number"),
    ):
        with pytest.raises(ConfigError) as err:
            from_dict({"stage": "ppo", "reward_models": legacy})
        assert str(err.value) == message


def keyword(word: str, weight: float) -> RewardSource:
    return RewardSource(builtin="contains", args={"keywords": [word]}, weight=weight, name=word)


def test_reward_sources_combine_by_weight_and_none_counts_zero():
    """sum: each answer's weighted sum over the sources. A source's None (no score for that answer) counts 0 in the
    combined score and is left out of that source's mean, and of the reward/<name> and reward_std/<name> the stage
    logs."""
    rewards = RewardSet(RewardsSpec(sources=[keyword("please", 1.0), keyword("idiot", -2.0)]))
    assert rewards.names == ["please", "idiot"]
    prompt = [{"role": "user", "content": "Pass the salt."}]
    scored = rewards.score([prompt] * 3, ["Here, please.", "Get it, idiot.", "Please, idiot."])
    assert scored.per_source == {"please": [1.0, 0.0, 1.0], "idiot": [0.0, 1.0, 1.0]}
    assert scored.combined == [1.0, -2.0, -1.0]

    per_source = {"please": [1.0, None, 0.5], "idiot": [None, None, 1.0]}
    assert rewards.combine(per_source) == [1.0, 0.0, -1.5]
    assert Scored(rewards.combine(per_source), per_source).means() == {"please": 0.75, "idiot": 1.0}
    assert Scored([0.0], {"please": [None]}).means() == {"please": None}

    nan = float("nan")
    logged = source_means({"please": torch.tensor([1.0, nan, 0.5, nan]), "idiot": torch.tensor([nan, nan])})
    assert logged == {"reward/please": 0.75, "reward_std/please": 0.25, "scored/please": 0.5, "scored/idiot": 0.0}


def test_response_mask_stops_after_the_first_eos():
    responses = torch.tensor([[5, 6, 2, 7, 2], [5, 6, 7, 8, 9]])
    mask, ended = response_mask(responses, eos_id=2)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert ended.tolist() == [True, False]


def test_a_missing_reward_run_fails_before_any_model_loads(tmp_path):
    from studio.errors import StudioError

    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(8))
    config = ppo_config(pairs, "no-such-run")
    with pytest.raises(StudioError, match="no run with id 'no-such-run'"):
        ppo.train(config, manager.create(config))


def test_ppo_starts_from_policy_runs_only():
    policies = ("sft", "dpo", "kto", "orpo", "simpo", "cpo", "ppo", "rejection", "grpo", "rloo")
    assert stages.starts_from("ppo") == policies
    assert stages.starts_from("reward")[-1] == "reward"  # a reward model may also start from one


@pytest.mark.slow
def test_two_processes_share_the_prompts_and_only_rank_0_writes(studio_home, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo) runs the same worker: 3 steps of 8 answers per process,
    one metrics row per step (rank 0 only) with rewards gathered over both processes' 16 answers, one adapter."""
    import os
    import subprocess
    import sys

    from studio.runs.rundir import RunDir

    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    reward_run = train_to_completion(reward_config(pairs, max_steps=4))
    config = ppo_config(pairs, reward_run.id, mini_batch_size=4, ppo_epochs=1)
    config.train = TrainSpec(max_steps=3, batch_size=8, learning_rate=3e-3, logging_steps=1)
    run = manager.create(config)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # accelerate's --cpu starts one process; --multi_gpu on a machine without a GPU starts torch.distributed (gloo).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "studio.runs.worker",
            str(run.path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("run completed") == 2  # both ranks trained to the end
    assert "2 process(es), DistributedType.MULTI_CPU, this one rank 1" in result.stdout
    rows = read_all(run.metrics_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert RunDir(run.path).read_status().state == "completed"
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    logged = [line for line in result.stdout.splitlines() if "step 3/3" in line]
    assert len(logged) == 1  # rank 1 does not log steps either


@pytest.mark.slow
def test_a_cancelled_ppo_run_resumes_exactly_where_it_stopped(studio_home, tmp_path, monkeypatch):
    """Cancel after step 4 saves checkpoint-4 (weights, optimizer, KL coefficient, prompt order, generators); the
    resumed run's steps 5 and 6 equal those of a run that was never stopped."""
    from studio.runs.metrics import truncate_after
    from studio.runs.rundir import RunDir

    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    reward_run = train_to_completion(reward_config(pairs, max_steps=4))
    config = ppo_config(pairs, reward_run.id, mini_batch_size=4, ppo_epochs=2, target_kl=1.0)
    config.train = TrainSpec(max_steps=6, batch_size=8, learning_rate=3e-3, save_steps=100, warmup_ratio=0.2)

    straight = manager.create(config)
    ppo.train(config, straight)
    assert not straight.complete_checkpoints()  # no checkpoint is due within 6 steps of save_steps 100

    stopped = manager.create(config)
    write_status = RunDir.write_status

    def cancel_after_step_4(self, **fields):
        result = write_status(self, **fields)
        if fields.get("step") == 4:
            self.request_cancel()
        return result

    monkeypatch.setattr(RunDir, "write_status", cancel_after_step_4)
    ppo.train(config, stopped)
    monkeypatch.setattr(RunDir, "write_status", write_status)
    assert [c.name for c in stopped.complete_checkpoints()] == ["checkpoint-4"]
    assert not stopped.adapter_dir.exists()

    truncate_after(stopped.metrics_path, 4)  # what manager.resume does before relaunching
    stopped.cancel_path.unlink()
    ppo.train(config, stopped)
    expected, resumed = read_all(straight.metrics_path), read_all(stopped.metrics_path)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for key in ("reward", "kl", "kl_coef", "policy_loss", "value_loss", "learning_rate"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in expected], abs=1e-5), key
    assert expected[5]["kl_coef"] != expected[0]["kl_coef"]  # the adaptive coefficient moved, and was restored
    rates = [r["learning_rate"] for r in expected]  # 20% warm-up, then cosine decay, restored on resume too
    assert rates[0] < rates[1] and rates[1] > rates[-1]
    assert (stopped.adapter_dir / "adapter_model.safetensors").is_file()


def test_log_probs_come_from_the_tempered_distribution_answers_are_sampled_from(studio_home):
    """With ppo.temperature T the policy's and the reference's logits are divided by T, as sampling divides them."""
    from studio.config import ModelSpec
    from studio.modeling import models

    torch.manual_seed(0)
    policy = models.add_lora(models.load_causal_lm(ModelSpec()), LoraSpec(), ModelSpec(), "CAUSAL_LM")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    mask = torch.ones_like(ids)
    plain, tempered = ppo.PolicyWithValue(policy), ppo.PolicyWithValue(policy, temperature=0.5)
    logits, _ = plain(ids, mask, prompt_width=3)
    hot, _ = tempered(ids, mask, prompt_width=3)
    assert torch.allclose(hot, logits / 0.5)
    assert torch.allclose(tempered.reference_logits(ids, mask, 3), plain.reference_logits(ids, mask, 3) / 0.5)
    assert not torch.allclose(hot, logits)


class _RunsCode:
    """A pickled object whose unpickling would call print: what a planted checkpoint file could do."""

    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_a_checkpoint_state_file_is_loaded_as_data_never_as_code(tmp_path, capsys):
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(folder / ppo.TRAINABLE_FILE))
    torch.save({"step": 4, "optimizer": _RunsCode()}, folder / ppo.STATE_FILE)
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(Exception, match="Weights only load failed"):
        ppo.load_checkpoint(folder, model, None, None, None, None)
    assert "code from a checkpoint ran" not in capsys.readouterr().out
