"""SimPO (simple preference optimisation), run by TRL's CPOTrainer with its simpo loss.

The reward of an answer is beta x its length-normalised (per-token) log-likelihood under the policy; the loss asks
the chosen answer's reward to beat the rejected one's by the target margin simpo.gamma. No reference model, and
with simpo.cpo_alpha at 0 (the SimPO paper's setting) no NLL term. TRL logs rewards/*, logps/* and nll_loss (0
unless cpo_alpha is above 0).
Run it with `rlhf-studio train presets/simpo-hh-tiny.yaml`.
"""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs.rundir import RunDir
from studio.trainers import reference_free
from studio.trainers.common import fit_and_save


def build_trainer(config: RunConfig, run: RunDir):
    """The CPOTrainer with the simpo loss for a config, with data loaded and checked and the policy in LoRA."""
    simpo = config.simpo
    config_class, trainer_class = reference_free.cpo_classes()
    return reference_free.build(
        config,
        run,
        config_class,
        trainer_class,
        loss_type="simpo",
        beta=simpo.beta,
        simpo_gamma=simpo.gamma,
        cpo_alpha=simpo.cpo_alpha,
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
