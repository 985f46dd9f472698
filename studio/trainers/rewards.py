"""The reward sources of a config as the stages that sample answers use them (ppo, grpo, rloo, rejection): built and
tried before the policy loads, then scores as tensors.

    rewards = stage_rewards(config, tokenizer)     # every source loaded: a run that cannot score fails now
    rewards.dry_run(train_rows)                    # and tried on a few answers to the first data rows
    combined, per_source = rewards.score(prompts, answers, columns)   # tensors; NaN where a source gave None

Sources and how they combine: studio/serve/rewards.py.
"""

from __future__ import annotations

import logging

import torch

from studio.config import RunConfig
from studio.serve.rewards import RewardSet, columns_of

log = logging.getLogger(__name__)

DRY_RUN_ROWS = 3  # data rows whose prompts and columns the dry run uses


def stage_rewards(config: RunConfig, tokenizer) -> StageRewards:
    """The run's reward sources, loaded (reward models cached, functions imported): a source that cannot be loaded
    fails now, before the data and the policy load, in one line."""

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    reward_set = RewardSet(config.rewards, count_tokens)
    log.info("rewards: %s, combined by %s", ", ".join(reward_set.names), config.rewards.combine)
    return StageRewards(reward_set)


class StageRewards:
    """A RewardSet scoring as float tensors on the CPU."""

    def __init__(self, reward_set: RewardSet):
        self.set = reward_set

    @property
    def names(self) -> list[str]:
        return self.set.names

    def dry_run(self, rows: list[dict]) -> None:
        """Every source tried on a few answers to the first rows ({"prompt": messages, **columns}), before the
        policy loads: a source that fails on them fails the run now, with the line it would give mid-run."""
        head = rows[:DRY_RUN_ROWS]
        self.set.dry_run([row["prompt"] for row in head], columns_of(head))

    def score(
        self, prompts: list[list[dict]], answers: list[str], columns: dict[str, list] | None = None, **kwargs
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(combined score per answer, {source name: its scores, NaN for None}), float tensors on the CPU."""
        scored = self.set.score(prompts, answers, columns, **kwargs)
        per_source = {
            name: torch.tensor([float("nan") if s is None else s for s in scores], dtype=torch.float32)
            for name, scores in scored.per_source.items()
        }
        return torch.tensor(scored.combined, dtype=torch.float32), per_source


def source_means(per_source: dict[str, torch.Tensor]) -> dict[str, float]:
    """The metrics of each source for a metrics row: reward/<name> (its mean over the answers it scored),
    reward_std/<name> (their spread: 0 when every answer got the same score) and scored/<name> (the share of answers
    it scored). A source that scored none logs scored/<name> = 0 only."""
    row = {}
    for name, scores in per_source.items():
        scored = ~torch.isnan(scores)
        row[f"scored/{name}"] = scored.float().mean().item() if scores.numel() else 0.0
        if scored.any():
            given = scores[scored]
            row[f"reward/{name}"] = given.mean().item()
            row[f"reward_std/{name}"] = given.std(unbiased=False).item()
    return row
