"""GRPO (group relative policy optimisation) with TRL's GRPOTrainer, scored by the config's reward sources.

Each step samples grpo.num_generations answers to each of its prompts; an answer's advantage is its reward minus the
mean reward of its group (divided by the group's spread, see grpo.scale_rewards), so no value model is needed. A
per-token KL penalty (grpo.beta) keeps the policy near its starting weights. Rewards come from the completed reward
runs, built-in rules and Python functions of `rewards` (see studio/trainers/online.py for how they reach TRL). TRL
logs reward, reward_std, rewards/combined/mean, kl, entropy, completions/mean_length, completions/clipped_ratio,
clip_ratio/*, loss and more; we add reward/<name> and scored/<name> per source. All reach metrics.jsonl unchanged.

    rlhf-studio train my-grpo.yaml     # stage: grpo, init.from_run: <sft run>, rewards.sources: [{run: <reward run>}]
"""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs.rundir import RunDir
from studio.trainers import online
from studio.trainers.common import fit_and_save


def build_trainer(config: RunConfig, run: RunDir):
    """The GRPOTrainer for a config: prompts, policy with LoRA, our reward function, options from config.grpo."""
    from trl import GRPOConfig, GRPOTrainer

    grpo = config.grpo
    return online.build_trainer(
        config,
        run,
        GRPOTrainer,
        GRPOConfig,
        loss_type=grpo.loss_type,
        epsilon_high=grpo.epsilon_high,
        scale_rewards=grpo.scale_rewards,
        # The LUSPO paper's loss is defined on per-answer (sequence-level) probability ratios.
        importance_sampling_level="sequence" if grpo.loss_type == "luspo" else "token",
    )


def train(config: RunConfig, run: RunDir) -> None:
    fit_and_save(build_trainer(config, run), config, run)
