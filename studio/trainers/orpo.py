"""ORPO (odds-ratio preference optimisation) with TRL's ORPOTrainer on prompt -> chosen/rejected rows.

One loss does SFT and preference learning at once: the NLL of the chosen answer, minus orpo.beta (the paper's
lambda) times log sigmoid of the log odds ratio between chosen and rejected. No reference model. TRL logs
rewards/* (beta x the per-token log-likelihood), nll_loss, log_odds_ratio and log_odds_chosen.
Run it with `rlhf-studio train presets/orpo-hh-tiny.yaml`.
"""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs.rundir import RunDir
from studio.trainers import reference_free
from studio.trainers.common import fit_and_save


def build_trainer(config: RunConfig, run: RunDir):
    """The ORPOTrainer for a config, with data loaded and checked and the policy wrapped in LoRA."""
    config_class, trainer_class = reference_free.orpo_classes()
    return reference_free.build(config, run, config_class, trainer_class, beta=config.orpo.beta)


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
