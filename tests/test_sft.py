"""SFT on the tiny model: the loss sees only response tokens, and training really learns."""

from __future__ import annotations

import pytest

from studio.config import DataSpec, RunConfig, TrainSpec
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.trainers import sft
from tests.conftest import dolly_row, write_jsonl

ROWS = [
    dolly_row("What is 2 plus 2?", "2 plus 2 is 4."),
    dolly_row("Name a colour of the sky.", "The sky is often blue."),
    dolly_row("Summarize this passage in one sentence.", "Asterby is a small town by the sea.",
              context="Asterby is a small town. It lies by the sea. Boats leave every morning."),
    dolly_row("Which day comes after Friday?", "Saturday comes after Friday."),
]


def test_labels_mask_every_prompt_token(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    config = RunConfig(data=DataSpec(path=str(path), eval_fraction=0.0), train=TrainSpec(max_steps=1, batch_size=4))
    trainer = sft.build_trainer(config, manager.create(config))
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))

    expected = {}
    for raw in ROWS:
        prompt = [{"role": "user", "content": raw["instruction"] + (f"\n\nContext:\n{raw['context']}"
                                                                  if raw["context"] else "")}]
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False)
        expected[tuple(prompt_ids)] = raw["response"]

    seen = 0
    for ids, labels, mask in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                                 batch["attention_mask"].tolist()):
        prompt_ids = next(p for p in expected if tuple(ids[:len(p)]) == p)
        n_prompt, n_real = len(prompt_ids), sum(mask)
        assert all(label == -100 for label in labels[:n_prompt]), "a prompt token is trained"
        assert labels[n_prompt:n_real] == ids[n_prompt:n_real], "a response token is masked"
        assert all(label == -100 for label in labels[n_real:]), "padding is trained"
        trained = tokenizer.decode(ids[n_prompt:n_real])
        assert trained.startswith(expected[prompt_ids]) and "<|im_end|>" in trained
        seen += 1
    assert seen == len(ROWS)


@pytest.mark.slow
def test_loss_falls_by_half_on_a_memorisable_set(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "memorise.jsonl", ROWS * 2)
    config = RunConfig(data=DataSpec(path=str(path), eval_fraction=0.0),
                       train=TrainSpec(max_steps=40, learning_rate=5e-3, batch_size=8, logging_steps=1,
                                       warmup_ratio=0.0, lr_scheduler="constant", save_steps=0))
    run = manager.create(config)
    sft.train(config, run)

    losses = [row["loss"] for row in read_all(run.metrics_path) if "loss" in row]
    assert len(losses) == 40
    assert losses[-1] <= losses[0] / 2, f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["alpaca", "oasst", "file"])
def test_sft_trains_on_every_source_that_gives_sft_rows(studio_home, source):
    config = RunConfig(data=DataSpec(source=source, path="sample", eval_fraction=0.0),
                       train=TrainSpec(max_steps=3, batch_size=4, logging_steps=1, save_steps=0))
    run = manager.create(config)
    sft.train(config, run)
    rows = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert len(rows) == 3 and all(row["loss"] > 0 for row in rows)
    assert all(row["tokens_per_second"] > 0 for row in rows)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
