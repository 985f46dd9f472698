"""DPO on the tiny model: it learns polite over rude, the reference is the starting weights (the policy with its
adapter disabled, or a frozen copy without LoRA), the preset trains from the command line, a DPO run can start
from an SFT run, and data or loss settings DPO cannot use are refused in one line.

    python -m pytest tests/test_dpo.py -q
"""

from __future__ import annotations

import json
from statistics import mean

import pytest
import torch

from studio.config import DataSpec, DPOSpec, InitSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec, from_dict, load_config
from studio.errors import ConfigError
from studio.modeling import models
from studio.paths import runs_root
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir, start_weights
from studio.trainers import dpo, sft
from tests.conftest import dolly_row, polite_rude_pairs, run_cli, write_jsonl

REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "loss")


def dpo_config(path, lora: bool = True, **train) -> RunConfig:
    """A quick DPO run on an HH-RLHF file, every step logged, nothing held out or checkpointed."""
    settings = dict(
        max_steps=8,
        learning_rate=5e-3,
        batch_size=8,
        logging_steps=1,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        eval_steps=0,
        save_steps=0,
    )
    return RunConfig(
        stage="dpo",
        data=DataSpec(source="hh-rlhf", path=str(path), eval_fraction=0.0, max_length=128),
        lora=LoraSpec(enabled=lora, dropout=0.0),
        train=TrainSpec(**{**settings, **train}),
    )


def logged(run: RunDir) -> list[dict]:
    """The training log rows that carry DPO's reward metrics, in step order. (TRL also folds the metrics of steps
    after the last logging step into the end-of-training summary row, which has train_loss and no loss.)"""
    return [row for row in read_all(run.metrics_path) if "loss" in row and "rewards/margins" in row]


def sequence_logps(model, batch) -> torch.Tensor:
    """Summed log-probabilities of each sequence's completion tokens, from a plain forward pass (chosen rows first,
    then rejected, as the collator lays them out)."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def reference_logps(trainer, batch) -> torch.Tensor:
    """The reference log-probabilities exactly as TRL computes them for the loss."""
    model = trainer.ref_model if trainer.ref_model is not None else trainer.model
    return torch.cat(trainer.compute_ref_log_probs(model, batch))


# ---------------------------------------------------------------- learning and the reference


@pytest.mark.slow
def test_learns_polite_over_rude(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(48, seed=0))
    config = dpo_config(path, max_steps=24, learning_rate=5e-4)
    run = manager.create(config)
    dpo.train(config, run)

    rows = logged(run)
    assert [row["step"] for row in rows] == list(range(1, 25))
    quarter = len(rows) // 4
    first = {key: mean(row[key] for row in rows[:quarter]) for key in REWARD_KEYS}
    last = {key: mean(row[key] for row in rows[-quarter:]) for key in REWARD_KEYS}
    # Measured (TRL 1.16, CPU, data seeds 0-3): accuracy 0.83 -> 1.00, margin 0.85-0.94 -> 5.1-5.4. Step 1 scores
    # every pair a tie (policy equals reference, and TRL counts a tie as wrong), so the first quarter starts at 0;
    # a policy that learned nothing stays at ties or near chance (0.5), never at 0.95. Margins are beta * log-ratio;
    # a gain of 2 (20 nats of log-likelihood ratio at beta 0.1) is far above what an untrained or mis-referenced
    # run shows (0) and well under what the run reaches, leaving room for other data seeds and library versions.
    assert last["rewards/accuracies"] >= 0.95, (first, last)
    assert last["rewards/accuracies"] > first["rewards/accuracies"], (first, last)
    assert last["rewards/margins"] >= first["rewards/margins"] + 2.0, (first, last)
    assert last["loss"] < first["loss"]
    assert all(row["tokens_per_second"] > 0 and "mfu" not in row for row in rows)  # no MFU on a CPU
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert not (run.adapter_dir / "ref").exists()  # only the trained adapter is saved


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True, False], ids=["lora-adapter-disabled", "full-frozen-copy"])
def test_reference_is_the_starting_weights(studio_home, tmp_path, lora):
    path = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(16, seed=1))
    config = dpo_config(path, lora=lora, learning_rate=5e-3 if lora else 1e-3)
    run = manager.create(config)
    trainer = dpo.build_trainer(config, run)
    if lora:
        # No second model: the reference is the policy with its adapter switched off (and no "ref" adapter copy).
        assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]
    else:
        assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
        assert not any(p.requires_grad for p in trainer.ref_model.parameters())

    batch = next(iter(trainer.get_train_dataloader()))
    start = sequence_logps(models.load_causal_lm(config.model, start_weights(config)), batch)
    # Before training, policy, TRL's reference and a freshly loaded copy of the starting weights agree.
    torch.testing.assert_close(sequence_logps(trainer.model, batch), start, atol=1e-3, rtol=0)
    torch.testing.assert_close(reference_logps(trainer, batch), start, atol=1e-3, rtol=0)

    trainer.train()
    rows = logged(run)
    assert rows[0]["step"] == 1
    # The first logged step is computed before any update, so the implicit rewards are exactly zero.
    assert abs(rows[0]["rewards/margins"]) < 1e-6 and abs(rows[0]["rewards/chosen"]) < 1e-6
    assert rows[-1]["rewards/margins"] > 0.5
    # After training, the policy has moved but the reference still is the starting weights.
    torch.testing.assert_close(reference_logps(trainer, batch), start, atol=1e-3, rtol=0)
    assert (sequence_logps(trainer.model, batch) - start).abs().max() > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("loss_type, label_smoothing", [("ipo", 0.0), ("robust", 0.1), ("exo_pair", 0.001)])
def test_other_losses_train(studio_home, tmp_path, loss_type, label_smoothing):
    """Six steps move the margin up. The rate is lower than the sigmoid test's: at 5e-3 the ipo loss overshoots its
    target margin and swings (measured runs peaked near 5 and ended anywhere from -0.6 to 3.4), so its last step was a
    coin toss; at 2e-3 the three losses end at 4.1 to 5.1, rising every step."""
    path = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(16, seed=2))
    config = dpo_config(path, max_steps=6, learning_rate=2e-3)
    config.dpo = DPOSpec(loss_type=loss_type, label_smoothing=label_smoothing)
    run = manager.create(config)
    dpo.train(config, run)
    rows = logged(run)
    assert len(rows) == 6 and all(set(REWARD_KEYS) <= row.keys() for row in rows)
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"] + 0.1
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


def test_the_margin_column_is_dropped(studio_home, tmp_path):
    rows = [
        {"prompt": f"Question {i}?", "chosen": "A kind answer.", "rejected": "Go away.", "margin": 2.0}
        for i in range(4)
    ]
    config = dpo_config(write_jsonl(tmp_path / "pairs.jsonl", rows), max_steps=1)
    config.data = DataSpec(source="file", path=str(tmp_path / "pairs.jsonl"), eval_fraction=0.0, max_length=128)
    trainer = dpo.build_trainer(config, manager.create(config))
    assert "margin" not in trainer.train_dataset.column_names
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)


@pytest.mark.parametrize(
    "loss_type, label_smoothing, message",
    [
        ("sigmoid", 0.1, "dpo.label_smoothing = 0.1: the sigmoid loss does not use label smoothing"),
        ("exo_pair", 0.0, "dpo.label_smoothing = 0: the exo_pair loss needs a value above 0"),
    ],
)
def test_label_smoothing_the_loss_cannot_use_is_refused(loss_type, label_smoothing, message):
    raw = {
        "stage": "dpo",
        "data": {"source": "hh-rlhf", "path": "sample"},
        "dpo": {"loss_type": loss_type, "label_smoothing": label_smoothing},
    }
    with pytest.raises(ConfigError, match=message):
        from_dict(raw)


# ---------------------------------------------------------------- from the command line


@pytest.mark.slow
def test_train_tiny_preset_from_the_command_line(studio_home):
    result = run_cli("train", "presets/dpo-hh-tiny.yaml")
    assert result.returncode == 0, result.stderr
    run = RunDir.of(result.stdout.split()[1])
    status = run.read_status()
    assert status.state == "completed" and status.step == status.total_steps == 40
    rows = logged(run)
    assert [row["step"] for row in rows] == [1] + list(range(5, 41, 5))
    assert all(set(REWARD_KEYS) <= row.keys() for row in rows)
    assert any("eval_rewards/accuracies" in row for row in read_all(run.metrics_path))
    # What the preset promises: reward accuracy and margin rise on the bundled sample.
    assert rows[-1]["rewards/accuracies"] > rows[0]["rewards/accuracies"] and rows[-1]["rewards/accuracies"] >= 0.9
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"] + 1.0
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert [p.name for p in run.complete_checkpoints()] == ["checkpoint-20", "checkpoint-40"]


@pytest.mark.slow
def test_train_on_any_file_in_hh_rlhf_raw_schema(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "my-pairs.jsonl", polite_rude_pairs(24, seed=3))
    result = run_cli(
        "train",
        "presets/dpo-hh-tiny.yaml",
        "--set",
        f"data.path={path}",
        "--set",
        "train.max_steps=4",
        "--set",
        "train.logging_steps=2",
        "--set",
        "train.save_steps=0",
        "--set",
        "train.eval_steps=0",
    )
    assert result.returncode == 0, result.stderr
    run = RunDir.of(result.stdout.split()[1])
    rows = logged(run)
    assert [row["step"] for row in rows] == [1, 2, 4] and all(set(REWARD_KEYS) <= row.keys() for row in rows)
    assert any("eval_rewards/margins" in row for row in read_all(run.metrics_path))  # eval_steps 0: once, at the end
    assert json.loads((run.path / "data_report.json").read_text())["origin"] == str(path)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_dpo_starts_from_an_sft_run(studio_home, tmp_path, lora):
    dolly = write_jsonl(
        tmp_path / "dolly.jsonl",
        [
            dolly_row("How do I boil an egg?", "Of course! Nine minutes."),
            dolly_row("Name a cat.", "Of course! Luna is lovely."),
        ]
        * 4,
    )
    parent = manager.create(
        RunConfig(
            data=DataSpec(path=str(dolly), eval_fraction=0.0),
            train=TrainSpec(max_steps=4, learning_rate=1e-2, batch_size=8, save_steps=0),
        )
    )
    sft.train(load_config(parent.config_path), parent)
    parent.write_status(state="completed")  # as the worker would

    config = dpo_config(
        write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(16, seed=4)),
        lora=lora,
        max_steps=4,
        learning_rate=5e-3 if lora else 1e-3,
    )
    config.model = ModelSpec(name="HuggingFaceTB/SmolLM2-135M-Instruct")  # the parent's model replaces it
    config.init = InitSpec(from_run=parent.id)
    run = manager.create(config)
    recorded = load_config(run.config_path)
    assert recorded.init.from_run == parent.id and recorded.model.name == "tiny"
    assert run.read_status().parent == parent.id

    # The reference (and the policy's start) is the SFT run's weights, not the base model's; without LoRA too,
    # where TRL left to itself would reload the base model by name.
    trainer = dpo.build_trainer(recorded, run)
    batch = next(iter(trainer.get_train_dataloader()))
    merged = sequence_logps(models.load_causal_lm(recorded.model, start_weights(recorded)), batch)
    base = sequence_logps(models.load_causal_lm(recorded.model), batch)
    torch.testing.assert_close(reference_logps(trainer, batch), merged, atol=1e-3, rtol=0)
    assert (merged - base).abs().max() > 0.1
    del trainer

    dpo.train(recorded, run)
    rows = logged(run)
    assert abs(rows[0]["rewards/margins"]) < 1e-6 and rows[-1]["rewards/margins"] > 0
    assert (run.adapter_dir / ("adapter_model.safetensors" if lora else "model.safetensors")).is_file()


def test_sft_data_is_refused_with_one_line(studio_home):
    result = run_cli("train", "presets/dpo-hh-tiny.yaml", "--set", "data.source=dolly")
    assert result.returncode != 0
    assert result.stderr == (
        "error: data.source = 'dolly' gives sft rows, but the dpo stage trains on preference "
        "rows; pick a source that has them: shp, hh-rlhf, oasst, file, votes\n"
    )
    assert not runs_root().exists() or not any(runs_root().iterdir())


@pytest.mark.slow
def test_an_sft_file_is_refused_with_one_line(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "Hi?", "completion": "Hello."}] * 3)
    result = run_cli("train", "presets/dpo-hh-tiny.yaml", "--set", "data.source=file", "--set", f"data.path={path}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: sft.jsonl: the file has prompt, completion, which looks like SFT data")
    assert "Traceback" not in result.stderr
