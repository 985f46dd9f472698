"""Reward modelling with TRL's RewardTrainer on prompt -> chosen / rejected pairs.

A causal LM body with a scalar score head (read at the last token) learns to score the chosen answer above the
rejected one: loss -log sigmoid(r_chosen - r_rejected), or with reward.use_margin the Llama 2 margin loss
-log sigmoid(r_chosen - r_rejected - margin), the margin taken from the data. Rows with a "group" (the pairs of one
ranking, from the votes source) are weighed as InstructGPT did: a group of P pairs counts as one comparison, each
pair 1/P. Score a response with a finished run through `studio.serve.scoring.score`. Run it with
`rlhf-studio train presets/rm-hh-tiny.yaml`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn
from trl import RewardTrainer
from trl.trainer.reward_trainer import DataCollatorForPreference

from studio import data
from studio.config import RunConfig
from studio.errors import ConfigError
from studio.modeling import models
from studio.runs.rundir import RunDir, start_weights
from studio.trainers.common import StudioCallback, fit_and_save, seed_model_init, training_arguments

log = logging.getLogger(__name__)


class StudioRewardTrainer(RewardTrainer):
    """RewardTrainer that also logs the mean chosen and mean rejected reward ("chosen_reward",
    "rejected_reward", and eval_ variants): TRL logs only their difference ("margin") and the overall
    min/mean/max, which hide whether the model pushes chosen up or rejected down."""

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys([*self._signature_columns, "weight"]))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weight = inputs.pop("weight", None)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if weight is not None:  # TRL's loss with each pair weighed: the mean of weight * -log sigmoid(...)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            gap = chosen - rejected - inputs["margin"] if "margin" in inputs else chosen - rejected
            loss = (weight * -nn.functional.logsigmoid(gap)).mean()
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean((chosen + rejected) ** 2)
        mode = "train" if self.model.training else "eval"  # the same test TRL uses, so log() finds the values
        with torch.no_grad():
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)  # the collator puts chosen first
            for key, rewards in (("chosen_reward", chosen), ("rejected_reward", rejected)):
                mean = self.accelerator.gather_for_metrics(rewards.mean()).mean().item()
                self._metrics[mode][key].append(mean)
        return (loss, outputs) if return_outputs else loss


def margin_rows(rows: list[dict], use_margin: bool) -> list[dict]:
    """Rows as the loss should see them. TRL applies a "margin" column whenever one is present, so without
    reward.use_margin it is removed; with it, rows lacking one get 0.0 (the plain loss for that pair)."""
    if not use_margin:
        return [{k: v for k, v in row.items() if k != "margin"} for row in rows]
    if not any(row.get("margin") is not None for row in rows):
        raise ConfigError(
            "reward.use_margin: true, but this data has no margins (no row has a margin); use SHP "
            "or a file with a margin column, or turn reward.use_margin off"
        )
    return [{**row, "margin": float(row["margin"]) if row.get("margin") is not None else 0.0} for row in rows]


@dataclass
class WeightedPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator, also batching each pair's "weight"."""

    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["weight"] = torch.tensor([example["weight"] for example in examples], dtype=torch.float)
        return batch


def group_weights(rows: list[dict], weigh: bool) -> list[dict]:
    """Rows without their "group" key, and with `weigh` a "weight" each: a group of P pairs (one ranking's) shares one
    pair's worth, 1/P each, a pair in no group 1, scaled to average 1 so that the learning rate means what it means
    for ungrouped pairs."""
    rows = [{k: v for k, v in row.items() if k != "group"} | {"_group": row.get("group")} for row in rows]
    if weigh and rows:
        sizes = Counter(row["_group"] for row in rows if row["_group"])
        raw = [1.0 / sizes[row["_group"]] if row["_group"] else 1.0 for row in rows]
        rows = [row | {"weight": w * len(raw) / sum(raw)} for row, w in zip(rows, raw)]
    return [{k: v for k, v in row.items() if k != "_group"} for row in rows]


def build_trainer(config: RunConfig, run: RunDir):
    """The RewardTrainer for a config, with data loaded and checked and the model wrapped in LoRA."""
    from datasets import Dataset
    from trl import RewardConfig

    seed_model_init(config)
    tokenizer = models.load_tokenizer(config.model)
    train, held_out = data.prepare(config, "preference", tokenizer, run)
    rows = margin_rows(train.rows + held_out.rows, config.reward.use_margin)  # "has no margins" asks of all rows
    groups = len({row["group"] for row in rows if row.get("group")})
    train_rows, eval_rows = (
        group_weights(part, groups > 0) for part in (rows[: len(train.rows)], rows[len(train.rows) :])
    )
    log.info(
        "data: %d train pairs, %d eval pairs%s",
        len(train_rows),
        len(eval_rows),
        ", margin loss" if config.reward.use_margin else "",
    )
    if groups:
        log.info("data: the pairs of each of %d rankings weighed as one comparison", groups)

    model = models.load_reward_model(config.model, start_weights(config), pad_token_id=tokenizer.pad_token_id)
    # PEFT's SEQ_CLS task adds the score head to modules_to_save, so the fresh head trains (and is saved) in full.
    model = models.add_lora(model, config.lora, config.model, "SEQ_CLS", config.train.gradient_checkpointing)
    trainable, total = models.count_parameters(model)
    log.info("model: %s, %d parameters, %d trainable", config.model.name, total, trainable)

    # RewardConfig's disable_dropout (on by default) turns every dropout off, LoRA's too: noise would blur the
    # comparison of the two answers of a pair.
    args = RewardConfig(
        **training_arguments(config, run, has_eval=bool(eval_rows)),
        max_length=config.data.max_length,
        center_rewards_coefficient=config.reward.center_rewards_coefficient,
    )
    collator = WeightedPreferenceCollator(pad_token_id=tokenizer.pad_token_id) if groups else None
    return StudioRewardTrainer(
        model=model,
        data_collator=collator,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[StudioCallback(run, config.train.save_total_limit)],
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
