"""KTO (Kahneman-Tversky optimisation) with TRL's KTOTrainer, on preference data made unpaired.

Each preference pair becomes two examples: the chosen answer labelled desirable and the rejected one
undesirable. KTO then needs no pairing at training time, so it also suits data where good and bad answers come
from different prompts. The reference is the starting weights, as in DPO (see common.policy_and_reference).
TRL logs rewards/chosen, rewards/rejected, rewards/margins, kl and loss.
Run it with `rlhf-studio train presets/kto-hh-tiny.yaml`.
"""

from __future__ import annotations

import logging

from studio import data
from studio.config import RunConfig
from studio.modeling import models
from studio.runs.rundir import RunDir
from studio.trainers import timeline_writer
from studio.trainers.common import (
    StudioCallback,
    drop_ref_adapter,
    fit_and_save,
    policy_and_reference,
    seed_model_init,
    training_arguments,
)

log = logging.getLogger(__name__)


def unpaired(rows: list[dict]) -> list[dict]:
    """prompt/chosen/rejected pairs -> prompt/completion/label rows (chosen True, rejected False)."""
    out = []
    for row in rows:
        out.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        out.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return out


def build_trainer(config: RunConfig, run: RunDir):
    """The KTOTrainer for a config, with pairs loaded, checked and unpaired, and the policy wrapped in LoRA."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    seed_model_init(config)
    tokenizer = models.load_tokenizer(config.model)
    # Split pairs before unpairing, so no prompt has one answer in training and the other held out.
    train_pairs, eval_pairs = data.prepare(config, "preference", tokenizer, run)
    train_rows, eval_rows = unpaired(train_pairs.rows), unpaired(eval_pairs.rows)
    log.info("data: %d train examples, %d eval examples (two per pair)", len(train_rows), len(eval_rows))

    policy, reference = policy_and_reference(config)
    args = KTOConfig(
        **training_arguments(config, run, has_eval=bool(eval_rows)),
        beta=config.kto.beta,
        loss_type=config.kto.loss_type,
        desirable_weight=config.kto.desirable_weight,
        undesirable_weight=config.kto.undesirable_weight,
        max_length=config.data.max_length,
    )
    trainer = KTOTrainer(
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
