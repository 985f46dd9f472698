"""SFT on the tiny model: the loss sees only response tokens, and training really learns."""

from __future__ import annotations

import pytest
import torch

from studio.config import DataSpec, RunConfig, SFTSpec, TrainSpec
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.trainers import sft
from tests.conftest import dolly_row, write_jsonl

ROWS = [
    dolly_row("What is 2 plus 2?", "2 plus 2 is 4."),
    dolly_row("Name a colour of the sky.", "The sky is often blue."),
    dolly_row(
        "Summarize this passage in one sentence.",
        "Asterby is a small town by the sea.",
        context="Asterby is a small town. It lies by the sea. Boats leave every morning.",
    ),
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
        prompt = [
            {
                "role": "user",
                "content": raw["instruction"] + (f"\n\nContext:\n{raw['context']}" if raw["context"] else ""),
            }
        ]
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        expected[tuple(prompt_ids)] = raw["response"]

    seen = 0
    for ids, labels, mask in zip(
        batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
    ):
        prompt_ids = next(p for p in expected if tuple(ids[: len(p)]) == p)
        n_prompt, n_real = len(prompt_ids), sum(mask)
        assert all(label == -100 for label in labels[:n_prompt]), "a prompt token is trained"
        assert labels[n_prompt:n_real] == ids[n_prompt:n_real], "a response token is masked"
        assert all(label == -100 for label in labels[n_real:]), "padding is trained"
        trained = tokenizer.decode(ids[n_prompt:n_real])
        assert trained.startswith(expected[prompt_ids]) and "<|im_end|>" in trained
        seen += 1
    assert seen == len(ROWS)


def examples_of(batch) -> list[tuple[list[int], list[int], int, int]]:
    """(input_ids, labels, row, start) of each example in a packed batch, split where the positions restart."""
    found = []
    for row, (ids, labels, positions) in enumerate(
        zip(batch["input_ids"].tolist(), batch["labels"].tolist(), batch["position_ids"].tolist())
    ):
        starts = [i for i, p in enumerate(positions) if p == 0 and i + 1 < len(positions) and positions[i + 1] == 1]
        for start, end in zip(starts, starts[1:] + [None]):
            length = next((j for j, p in enumerate(positions[start + 1 : end], 1) if p == 0), len(positions[start:end]))
            found.append((ids[start : start + length], labels[start : start + length], row, start))
    return found


@pytest.mark.parametrize("completion_only_loss", [True, False])
def test_packed_rows_train_each_example_as_if_it_were_alone(studio_home, tmp_path, completion_only_loss):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS * 2)
    data = DataSpec(path=str(path), eval_fraction=0.0, max_length=96)
    train = TrainSpec(max_steps=1, batch_size=8)
    padded = RunConfig(data=data, train=train, sft=SFTSpec(completion_only_loss=completion_only_loss))
    padded_trainer = sft.build_trainer(padded, manager.create(padded))
    config = RunConfig(data=data, train=train, sft=SFTSpec(completion_only_loss=completion_only_loss, packing=True))
    trainer = sft.build_trainer(config, manager.create(config))
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[1] <= 96
    assert 1 < batch["input_ids"].shape[0] < 8, "nothing was packed, or the packed rows were flattened into one"

    # The same examples, with the same trained tokens, as the padded batch holds (an example's first label is
    # never used: the loss predicts token t from the tokens before it)
    reference = next(iter(padded_trainer.get_train_dataloader()))
    alone = sorted(
        (ids[:n], labels[1:n])
        for ids, labels, n in zip(
            reference["input_ids"].tolist(), reference["labels"].tolist(), reference["attention_mask"].sum(1).tolist()
        )
    )
    packed = examples_of(batch)
    assert sorted((ids, labels[1:]) for ids, labels, _, _ in packed) == alone
    assert batch["labels"][batch["position_ids"] == 0].eq(-100).all(), "padding or an example's first token trains"

    # TRL's num_tokens counts every packed row (it counted one: a padding-free batch is one row to TRL)
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch)
    assert trainer._metrics["train"]["num_tokens"] == [batch["input_ids"].numel()]

    # Each example's logits in the packed row are those it gets alone: nothing attends across examples
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        for ids, _, row, start in packed:
            own = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(logits[row, start : start + len(ids)], own, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True])
def test_loss_falls_by_half_on_a_memorisable_set(studio_home, tmp_path, packing):
    path = write_jsonl(tmp_path / "memorise.jsonl", ROWS * 2)
    config = RunConfig(
        data=DataSpec(path=str(path), eval_fraction=0.0),
        train=TrainSpec(
            max_steps=40,
            learning_rate=5e-3,
            batch_size=8,
            logging_steps=1,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            save_steps=0,
        ),
        sft=SFTSpec(packing=packing),
    )
    run = manager.create(config)
    sft.train(config, run)

    losses = [row["loss"] for row in read_all(run.metrics_path) if "loss" in row]
    assert len(losses) == 40
    assert losses[-1] <= losses[0] / 2, f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["alpaca", "oasst", "file"])
def test_sft_trains_on_every_source_that_gives_sft_rows(studio_home, source):
    config = RunConfig(
        data=DataSpec(source=source, path="sample", eval_fraction=0.0),
        train=TrainSpec(max_steps=3, batch_size=4, logging_steps=1, save_steps=0),
    )
    run = manager.create(config)
    sft.train(config, run)
    rows = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert len(rows) == 3 and all(row["loss"] > 0 for row in rows)
    assert all(row["tokens_per_second"] > 0 for row in rows)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
