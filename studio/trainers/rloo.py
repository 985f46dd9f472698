"""RLOO (REINFORCE leave-one-out) with TRL's RLOOTrainer, scored by the config's reward sources.

Each step samples rloo.num_generations answers to each of its prompts; an answer's advantage is its reward minus the
mean reward of the other answers to the same prompt, and the whole answer is one action (Ahmadian et al., 2024), so
no value model is needed. The KL penalty (rloo.beta times the answer's summed log ratio to the starting weights) is
subtracted from the reward before the baseline. Rewards come from the sources of `rewards` (see
studio/trainers/online.py). TRL logs reward (before the KL penalty), reward_std, rewards/combined/mean, kl (per
token), entropy, completions/*, clip_ratio/* and loss; we add reward/<name> and scored/<name> per source. All reach
metrics.jsonl unchanged.

    rlhf-studio train my-rloo.yaml     # stage: rloo, init.from_run: <sft run>, rewards.sources: [{run: <reward run>}]
"""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs.rundir import RunDir
from studio.trainers import online
from studio.trainers.common import fit_and_save


def build_trainer(config: RunConfig, run: RunDir):
    """The RLOOTrainer for a config: prompts, policy with LoRA, our reward function, options from config.rloo."""
    from trl import RLOOConfig, RLOOTrainer

    return online.build_trainer(
        config, run, RLOOTrainer, RLOOConfig, normalize_advantages=config.rloo.normalize_advantages
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
