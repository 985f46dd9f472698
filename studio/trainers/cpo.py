"""CPO (contrastive preference optimisation) with TRL's CPOTrainer on prompt -> chosen/rejected rows.

DPO's loss with the reference left out (the policy's summed log-likelihoods compared directly), plus cpo.cpo_alpha
times the NLL of the chosen answer. No reference model. TRL logs rewards/* (beta x the summed log-likelihood) and
nll_loss. SimPO runs on the same trainer: see simpo.py.
Run it with `rlhf-studio train presets/cpo-hh-tiny.yaml`.
"""

from __future__ import annotations

from studio.config import RunConfig, label_smoothing_option
from studio.runs.rundir import RunDir
from studio.trainers import reference_free
from studio.trainers.common import fit_and_save


def build_trainer(config: RunConfig, run: RunDir):
    """The CPOTrainer for a config, with data loaded and checked and the policy wrapped in LoRA."""
    cpo = config.cpo
    config_class, trainer_class = reference_free.cpo_classes()
    return reference_free.build(
        config,
        run,
        config_class,
        trainer_class,
        beta=cpo.beta,
        loss_type=cpo.loss_type,
        cpo_alpha=cpo.cpo_alpha,
        **label_smoothing_option(config),
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
