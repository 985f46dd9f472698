"""Score sampled answers with the reward models of a config's `reward_models:` section (one or two completed
reward runs), as the online stages (PPO and the others that sample their own answers) need.

    judge = RewardJudge(config.reward_models)      # checks every run can score, before any policy loads
    combined, per_run = judge.score(prompts, answers)

Two reward models combine as Llama 2 does: a weighted sum, or safety-gated (the safety model's score where it
is below a threshold, else the helpfulness model's).
"""

from __future__ import annotations

import torch

from studio import config as cfg
from studio.errors import ConfigError
from studio.serve import scoring


def reward_kinds(run_ids: list[str]) -> dict[str, str]:
    """Each reward run's reward.kind (helpfulness, safety, general), from its saved config."""
    from studio.runs import manager

    return {run_id: cfg.load_config(manager.find(run_id).config_path).reward.kind for run_id in run_ids}


def combine_scores(spec: cfg.RewardModelsSpec, scores: dict[str, torch.Tensor], kinds: dict[str, str]) -> torch.Tensor:
    """One score per answer from one or two reward models.

    sum:          sum_i w_i * s_i   (weights from reward_models.weights, default 1 each)
    safety_gated: s_safety where s_safety < safety_threshold, else s_helpfulness (Llama 2, section 3.2.2)"""
    runs = spec.runs
    if len(runs) == 1:
        return scores[runs[0]]
    if spec.combine == "sum":
        weights = spec.weights or [1.0] * len(runs)
        return sum(w * scores[r] for w, r in zip(weights, runs))
    safety = [r for r in runs if kinds[r] == "safety"]
    helpful = [r for r in runs if kinds[r] != "safety"]
    if len(safety) != 1 or len(helpful) != 1:
        raise ConfigError(
            f"reward_models.combine = 'safety_gated': needs one reward run trained with reward.kind "
            f"safety and one other; these are {', '.join(f'{r}: {kinds[r]}' for r in runs)}"
        )
    s, h = scores[safety[0]], scores[helpful[0]]
    return torch.where(s < spec.safety_threshold, s, h)


class RewardJudge:
    """The reward models of one run, loaded once (scoring caches them) and combined per reward_models."""

    def __init__(self, spec: cfg.RewardModelsSpec):
        # A run that cannot score fails now, in one line; checked once, not on every step.
        self.runs = {run_id: scoring.check_reward_run(run_id) for run_id in spec.runs}
        self.spec = spec
        self.kinds = reward_kinds(spec.runs)

    def score(self, prompts: list[list[dict]], answers: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(combined score per answer, {run id: that model's scores}), as float tensors on the CPU."""
        per_run = {
            run_id: torch.tensor(scoring.score_checked(run, prompts, answers), dtype=torch.float32)
            for run_id, run in self.runs.items()
        }
        return combine_scores(self.spec, per_run, self.kinds), per_run
