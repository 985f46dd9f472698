"""What the reference-free preference stages (orpo, simpo, cpo) share: TRL's experimental trainers, imported here
only, and one builder that feeds them prompt -> chosen/rejected rows.

    ORPOConfig, ORPOTrainer = reference_free.orpo_classes()
    trainer = reference_free.build(config, run, ORPOConfig, ORPOTrainer, beta=0.1)

These stages score an answer by the policy's own log-likelihood, so they hold no reference model: the policy is the
starting weights with a fresh LoRA adapter (or every weight trainable), and nothing else is loaded. TRL logs
rewards/chosen and rewards/rejected as beta x the policy's log-likelihood of each answer (per token for orpo and
simpo, summed for cpo's sigmoid, hinge and ipo losses), rewards/margins, rewards/accuracies, nll_loss, logps/* and
logits/*, and orpo adds log_odds_ratio and log_odds_chosen; all of them reach metrics.jsonl unchanged.
"""

from __future__ import annotations

import importlib
import warnings

from studio.config import RunConfig
from studio.modeling import models
from studio.runs.rundir import RunDir
from studio.trainers import timeline_writer
from studio.trainers.common import StudioCallback, load_policy, policy_pairs, seed_model_init, training_arguments


# TRL 1.16 moved ORPOTrainer and CPOTrainer (CPO and SimPO) to trl.experimental, which warns on import that its
# APIs may change. The studio pins TRL and tests these stages, so the notice would only alarm users in train.log;
# it is silenced for these two imports and nowhere else. When TRL moves them back (or renames them), only these two
# functions change.
def _experimental(module: str, *names: str) -> tuple:
    """Classes of trl.experimental.<module>, imported without its warning."""
    from trl.import_utils import TRLExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TRLExperimentalWarning)
        imported = importlib.import_module(f"trl.experimental.{module}")
    return tuple(getattr(imported, name) for name in names)


def orpo_classes():
    """(ORPOConfig, ORPOTrainer) from TRL."""
    return _experimental("orpo", "ORPOConfig", "ORPOTrainer")


def cpo_classes():
    """(CPOConfig, CPOTrainer) from TRL: the cpo stage, and the simpo stage with loss_type="simpo"."""
    return _experimental("cpo", "CPOConfig", "CPOTrainer")


def build(config: RunConfig, run: RunDir, config_class, trainer_class, **loss_options):
    """A TRL preference trainer without a reference: data loaded and checked, the policy wrapped in LoRA, and
    `loss_options` (the stage's own settings) passed to its config class."""
    from datasets import Dataset

    seed_model_init(config)
    tokenizer = models.load_tokenizer(config.model)
    train_rows, eval_rows = policy_pairs(config, tokenizer, run)
    args = config_class(
        **training_arguments(config, run, has_eval=bool(eval_rows)),
        max_length=config.data.max_length,
        **loss_options,
    )
    return trainer_class(
        model=load_policy(config),
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[
            StudioCallback(run, config.train.save_total_limit),
            *timeline_writer.callbacks(config, run, tokenizer),
        ],
    )
