"""Reward modelling on the tiny model: it learns polite over rude, the margin loss is Llama 2's, the preset trains
from the command line, a reward model can start from an SFT run, and scoring agrees with training.

    python -m pytest tests/test_reward.py -q
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from studio import data
from studio.config import DataSpec, InitSpec, LoraSpec, ModelSpec, RewardSpec, RunConfig, TrainSpec, load_config
from studio.errors import ConfigError, StudioError
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.serve import scoring
from studio.trainers import reward, sft
from tests.conftest import dolly_row, polite_rude_pairs, run_cli, write_jsonl

METRIC_KEYS = ("loss", "accuracy", "margin", "chosen_reward", "rejected_reward")


def reward_config(path, **train) -> RunConfig:
    """A quick reward run on an HH-RLHF file: 20% held out, evaluated only at the end."""
    settings = dict(
        max_steps=16, learning_rate=3e-3, batch_size=8, logging_steps=4, eval_steps=0, save_steps=0, warmup_ratio=0.0
    )
    return RunConfig(
        stage="reward",
        data=DataSpec(source="hh-rlhf", path=str(path), eval_fraction=0.2, max_length=128),
        lora=LoraSpec(dropout=0.0),
        train=TrainSpec(**{**settings, **train}),
    )


def train_to_completion(config: RunConfig) -> RunDir:
    """Train in this process, then mark the run completed as the worker would."""
    run = manager.create(config)
    {"sft": sft, "reward": reward}[config.stage].train(config, run)
    run.write_status(state="completed")
    return run


def split(rows: list[dict]) -> tuple[list, list, list]:
    return (
        [r["prompt"] for r in rows],
        [r["chosen"][0]["content"] for r in rows],
        [r["rejected"][0]["content"] for r in rows],
    )


def final_eval(run: RunDir) -> dict:
    rows = read_all(run.metrics_path)
    last_step = max(r["step"] for r in rows)
    evals = [r for r in rows if "eval_accuracy" in r]
    assert evals and evals[-1]["step"] == last_step, "no evaluation of the final weights in metrics.jsonl"
    return evals[-1]


def assert_scores_match_training(run: RunDir, config: RunConfig) -> None:
    """score_batch on the run's own eval pairs gives the mean rewards the trainer logged for them."""
    rows = data.load(config.data, "preference").rows
    _, eval_rows = data.split_eval(rows, config.data.eval_fraction, config.train.seed)
    assert len(eval_rows) % config.train.batch_size == 0  # equal eval batches: TRL's mean of means is the mean
    prompts, chosen, rejected = split(eval_rows)
    logged = final_eval(run)
    for answers, key in ((chosen, "eval_chosen_reward"), (rejected, "eval_rejected_reward")):
        scores = scoring.score_batch(run.id, prompts, answers)
        assert sum(scores) / len(scores) == pytest.approx(logged[key], abs=1e-4), key


# ---------------------------------------------------------------- learning


@pytest.mark.slow
def test_learns_polite_over_rude_on_held_out_pairs(studio_home, tmp_path):
    config = reward_config(write_jsonl(tmp_path / "train.jsonl", polite_rude_pairs(160, seed=1)))
    run = train_to_completion(config)

    rows = read_all(run.metrics_path)
    assert all(key in rows[0] for key in METRIC_KEYS)
    assert final_eval(run)["eval_accuracy"] >= 0.9
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()

    fresh = [data.source_module("hh-rlhf").convert(r) for r in polite_rude_pairs(60, seed=99)]
    prompts, chosen, rejected = split(fresh)
    good, bad = scoring.score_batch(run.id, prompts, chosen), scoring.score_batch(run.id, prompts, rejected)
    accuracy = sum(g > b for g, b in zip(good, bad)) / len(fresh)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.2f}"
    assert scoring.score(run.id, prompts[0], chosen[0]) == pytest.approx(good[0], abs=1e-5)  # batching changes nothing
    assert_scores_match_training(run, config)


# ---------------------------------------------------------------- the margin loss


MARGIN_ROWS = [
    {
        "prompt": "How do I boil an egg?",
        "chosen": "Nine minutes in boiling water.",
        "rejected": "Go away.",
        "margin": 2.0,
    },
    {
        "prompt": "What is a good name for a cat?",
        "chosen": "Luna is a lovely name.",
        "rejected": "Nobody cares.",
        "margin": 0.5,
    },
    {
        "prompt": "What is a quick breakfast?",
        "chosen": "Oats with fruit.",
        "rejected": "Figure it out yourself.",
        "margin": -1.0,
    },
]


def margin_trainer(tmp_path, use_margin: bool):
    path = write_jsonl(tmp_path / "margins.jsonl", MARGIN_ROWS)
    config = RunConfig(
        stage="reward",
        data=DataSpec(source="file", path=str(path), eval_fraction=0.0),
        reward=RewardSpec(use_margin=use_margin),
        train=TrainSpec(max_steps=1, batch_size=3),
    )
    return reward.build_trainer(config, manager.create(config))


def test_margin_loss_is_llama2s_formula(studio_home, tmp_path):
    trainer = margin_trainer(tmp_path, use_margin=True)
    model, tokenizer = trainer.model.eval(), trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    assert "margin" in batch and batch["margin"].tolist() != [0.0, 0.0, 0.0]

    # Each pair's reward, computed one sequence at a time from our own rendering, matched to its margin by text.
    def reward_of(prompt: str, answer: str) -> torch.Tensor:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], return_dict=True
        )["input_ids"]
        return model(input_ids=torch.tensor([ids])).logits[0, 0]

    with torch.no_grad():
        by_margin = {row["margin"]: row for row in MARGIN_ROWS}
        order = [by_margin[m] for m in batch["margin"].tolist()]  # the loader shuffles
        r_c = torch.stack([reward_of(row["prompt"], row["chosen"]) for row in order])
        r_r = torch.stack([reward_of(row["prompt"], row["rejected"]) for row in order])
        m = torch.tensor([row["margin"] for row in order])
        expected = -torch.nn.functional.logsigmoid(r_c - r_r - m).mean()
        plain = -torch.nn.functional.logsigmoid(r_c - r_r).mean()
        loss = trainer.compute_loss(model, dict(batch))
        loss_without = trainer.compute_loss(model, {k: v for k, v in batch.items() if k != "margin"})

    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert loss_without.item() == pytest.approx(plain.item(), abs=1e-5)
    assert abs(loss.item() - plain.item()) > 1e-2, "the margin did not change the loss"


def test_without_use_margin_the_margin_column_is_dropped(studio_home, tmp_path):
    trainer = margin_trainer(tmp_path, use_margin=False)
    assert "margin" not in trainer.train_dataset.column_names
    assert "margin" not in next(iter(trainer.get_train_dataloader()))


def test_margin_rows_fill_missing_margins_and_refuse_data_without_any():
    rows = [{"prompt": [], "chosen": [], "rejected": [], "margin": 1.5}, {"prompt": [], "chosen": [], "rejected": []}]
    assert [r["margin"] for r in reward.margin_rows(rows, use_margin=True)] == [1.5, 0.0]
    assert all("margin" not in r for r in reward.margin_rows(rows, use_margin=False))
    with pytest.raises(ConfigError, match=r"^reward\.use_margin: .*no margins.*use SHP or a file with a margin column"):
        reward.margin_rows([rows[1]], use_margin=True)


def test_use_margin_on_data_without_margins_is_refused_before_the_model_loads(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "hh.jsonl", polite_rude_pairs(4))
    config = RunConfig(
        stage="reward", data=DataSpec(source="hh-rlhf", path=str(path)), reward=RewardSpec(use_margin=True)
    )
    with pytest.raises(ConfigError, match="no margins"):
        reward.build_trainer(config, manager.create(config))


# ---------------------------------------------------------------- the command line


def assert_reward_metrics(stdout: str, min_accuracy: float) -> RunDir:
    run = RunDir.of(stdout.split()[1])
    assert run.read_status().state == "completed"
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert train_rows and all(key in r for r in train_rows for key in METRIC_KEYS)
    assert all(math.isfinite(r["chosen_reward"]) and math.isfinite(r["rejected_reward"]) for r in train_rows)
    evaluation = final_eval(run)
    assert {"eval_loss", "eval_margin", "eval_chosen_reward", "eval_rejected_reward"} <= evaluation.keys()
    assert evaluation["eval_accuracy"] >= min_accuracy
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    return run


@pytest.mark.slow
def test_train_tiny_reward_preset_from_the_command_line(studio_home, tmp_path):
    result = run_cli("train", "presets/rm-hh-tiny.yaml")
    assert result.returncode == 0, result.stderr
    run = assert_reward_metrics(result.stdout, min_accuracy=0.8)
    assert load_config(run.config_path).stage == "reward"

    path = write_jsonl(tmp_path / "hh-raw.jsonl", polite_rude_pairs(40, seed=3))
    result = run_cli("train", "presets/rm-hh-tiny.yaml", "--set", f"data.path={path}", "--set", "train.max_steps=4")
    assert result.returncode == 0, result.stderr
    run = assert_reward_metrics(result.stdout, min_accuracy=0.0)  # 4 steps: that it evaluates, not how well
    assert json.loads((run.path / "data_report.json").read_text())["rows"] == 40


# ---------------------------------------------------------------- chaining and scoring


@pytest.mark.slow
def test_reward_model_starts_from_an_sft_run_and_scores(studio_home, tmp_path):
    dolly = write_jsonl(
        tmp_path / "dolly.jsonl",
        [
            dolly_row("How do I boil an egg?", "Nine minutes in boiling water."),
            dolly_row("Name a cat.", "Luna is a lovely name."),
        ]
        * 4,
    )
    parent = train_to_completion(
        RunConfig(
            data=DataSpec(path=str(dolly), eval_fraction=0.0),
            train=TrainSpec(max_steps=4, learning_rate=1e-2, batch_size=8, save_steps=0),
        )
    )

    config = reward_config(write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=5)), max_steps=4)
    config.model = ModelSpec(name="HuggingFaceTB/SmolLM2-135M-Instruct")  # the parent's model replaces it
    config.init = InitSpec(from_run=parent.id)
    run = train_to_completion(config)

    recorded = load_config(run.config_path)
    assert recorded.init.from_run == parent.id and recorded.model.name == "tiny"
    assert run.read_status().parent == parent.id
    prompt = [{"role": "user", "content": "How do I boil an egg?"}]
    assert isinstance(scoring.score(run.id, prompt, "Nine minutes in boiling water."), float)
    # Scores agree with training only if scoring rebuilt the body with the SFT adapter merged in.
    assert_scores_match_training(run, recorded)


@pytest.mark.slow
def test_scores_a_reward_model_trained_without_lora(studio_home, tmp_path):
    config = reward_config(
        write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=6)), max_steps=2, learning_rate=1e-3
    )
    config.lora = LoraSpec(enabled=False)
    run = train_to_completion(config)
    assert not (run.adapter_dir / "adapter_config.json").exists()
    assert_scores_match_training(run, config)


def test_scoring_refuses_a_run_that_is_not_a_completed_reward_model(studio_home, tmp_path):
    sft_run = manager.create(RunConfig())
    sft_run.write_status(state="completed")
    with pytest.raises(StudioError, match=r"is not a reward model \(its stage is sft\)") as info:
        scoring.score(sft_run.id, [{"role": "user", "content": "hi"}], "hello")
    assert "\n" not in str(info.value)

    queued = manager.create(RunConfig(stage="reward", data=DataSpec(source="hh-rlhf", path="sample")))
    with pytest.raises(StudioError, match=r"is queued; only a completed reward run can score"):
        scoring.score(queued.id, [{"role": "user", "content": "hi"}], "hello")

    with pytest.raises(StudioError, match="no run with id 'nope'"):
        scoring.score_batch("nope", [], [])
