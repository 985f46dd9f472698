"""Direct preference optimisation with TRL's DPOTrainer on prompt -> chosen/rejected rows.

The policy learns to raise the likelihood of the chosen answer over the rejected one, relative to a frozen
reference: the starting weights (the base model, or the run named in init.from_run). TRL logs the implicit
rewards beta * log(policy / reference) as rewards/chosen, rewards/rejected, rewards/margins and
rewards/accuracies, next to loss and logps/*; all of them reach metrics.jsonl unchanged. As TRL advises, dropout
is switched off (lora.dropout included), so policy and reference score the same tokens the same way at step 0.
Run it with `rlhf-studio train presets/dpo-hh-tiny.yaml`.
"""

from __future__ import annotations

import logging

from studio.config import RunConfig, label_smoothing_option
from studio.modeling import models
from studio.runs.rundir import RunDir
from studio.trainers import timeline_writer
from studio.trainers.common import (
    StudioCallback,
    drop_ref_adapter,
    fit_and_save,
    policy_and_reference,
    policy_pairs,
    seed_model_init,
    training_arguments,
)

log = logging.getLogger(__name__)


def build_trainer(config: RunConfig, run: RunDir):
    """The DPOTrainer for a config, with data loaded and checked, the policy wrapped in LoRA and its reference."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    seed_model_init(config)
    tokenizer = models.load_tokenizer(config.model)
    train_rows, eval_rows = policy_pairs(config, tokenizer, run)

    policy, reference = policy_and_reference(config)

    args = DPOConfig(
        **training_arguments(config, run, has_eval=bool(eval_rows)),
        beta=config.dpo.beta,
        loss_type=[config.dpo.loss_type],
        max_length=config.data.max_length,
        **label_smoothing_option(config),
    )
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[
            StudioCallback(run, config.train.save_total_limit),
            *timeline_writer.callbacks(config, run, tokenizer),
        ],
    )
    drop_ref_adapter(trainer)
    return trainer


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
