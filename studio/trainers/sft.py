"""Supervised fine-tuning with TRL's SFTTrainer on prompt -> completion rows.

The chat template is applied to every example and, with sft.completion_only_loss on (the default), only
the completion's tokens count in the loss. Run it with `rlhf-studio train presets/sft-dolly-tiny.yaml`.
"""

from __future__ import annotations

import logging

import torch
from trl import SFTTrainer

from studio import data
from studio.config import RunConfig
from studio.modeling import accel, models
from studio.runs.rundir import RunDir
from studio.trainers import packing, timeline_writer
from studio.trainers.common import StudioCallback, fit_and_save, load_policy, seed_model_init, training_arguments

log = logging.getLogger(__name__)


class StudioSFTTrainer(SFTTrainer):
    """SFTTrainer that, packing without a variable-length attention kernel, keeps each packed row apart
    (studio/trainers/packing.py), and whose `num_tokens` then counts every row: TRL counts a batch without an
    attention mask as one flattened row."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.packing and not packing.flattens_well(self.model):
            # Swapped in after construction: SFTTrainer refuses a custom collator when it packs.
            collator = self.data_collator
            self.data_collator = packing.RowPackingCollator(collator.pad_token_id, collator.pad_to_multiple_of)
            log.info(
                "packing: each packed row kept apart (no variable-length attention kernel to flatten the batch for)"
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        counted = self._total_train_tokens
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self._total_train_tokens != counted and "attention_mask" not in inputs:
            positions = inputs["position_ids"]
            tokens = self.accelerator.gather_for_metrics(torch.tensor(positions.numel(), device=positions.device))
            self._total_train_tokens = counted + tokens.sum().item() // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result


def build_trainer(config: RunConfig, run: RunDir):
    """The SFTTrainer for a config, with data loaded and checked and the model wrapped in LoRA."""
    from datasets import Dataset
    from trl import SFTConfig

    seed_model_init(config)
    tokenizer = models.load_tokenizer(config.model)
    train, held_out = data.prepare(config, "sft", tokenizer, run)
    train_rows, eval_rows = train.rows, held_out.rows

    model = load_policy(config)

    args = SFTConfig(
        **training_arguments(config, run, has_eval=bool(eval_rows)),
        max_length=config.data.max_length,
        packing=config.sft.packing,
        completion_only_loss=config.sft.completion_only_loss,
        use_liger_kernel=accel.use_liger_kernel(config),
    )
    return StudioSFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[
            StudioCallback(run, config.train.save_total_limit),
            *timeline_writer.callbacks(config, run, tokenizer),
        ],
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
