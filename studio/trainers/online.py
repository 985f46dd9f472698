"""What the TRL online stages (grpo, rloo) share: the prompt datasets, the policy, the reward function that scores
sampled answers with the config's reward sources, and building the trainer around them.

    reward = CombinedReward(stage_rewards(config, tokenizer), config.grpo.max_completion_length)
    reward(prompts=[[{"role": "user", "content": "Hi"}]], completions=[[{"role": "assistant", "content": "Hello!"}]])

Rewards: TRL takes a list of reward functions and adds their (weighted) scores. We hand it one function that returns
the combined score of config.rewards (studio/serve/rewards.py), because safety_gated (Llama 2: the safety score where
it is low, else the helpfulness score) is not a weighted sum. TRL logs that score as reward, reward_std and
rewards/combined/mean and /std; the function adds each source's mean as reward/<name> (and the share of answers it
scored as scored/<name>) through TRL's log_metric hook, the keys the ppo and rejection stages write too, so the
charts of every online stage read alike. The data's other columns reach the function as TRL passes them, keyword
lists, and from there the Python reward functions and the built-ins that read a column (reference_match).

Reference: the policy is the starting weights (init.from_run) plus a fresh LoRA adapter, so the adapter-disabled model
is the reference and no second copy is loaded (see drop_ref_adapter). With LoRA off, TRL loads a reference copy itself;
reset_reference makes sure that copy holds the starting weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import torch

from studio.config import RunConfig
from studio.modeling import models
from studio.runs.rollouts import RolloutWriter
from studio.runs.rundir import RunDir
from studio.serve.rewards import TRL_KEYWORDS
from studio.trainers import judge_watch, online_rollouts, timeline_writer
from studio.trainers.common import StudioCallback, drop_ref_adapter, load_policy, seed_model_init, training_arguments
from studio.trainers.rewards import StageRewards, source_means, stage_rewards
from studio.trainers.rollout_rows import answer_stats
from studio.trainers.sampling import load_prompts

log = logging.getLogger(__name__)


@dataclass
class LastScored:
    """The answers a CombinedReward scored last, with their scores."""

    prompts: list
    answers: list[str]
    combined: torch.Tensor
    per_source: dict[str, torch.Tensor]


class CombinedReward:
    """A TRL reward function backed by StageRewards: one combined score per (prompt, completion), each source's mean
    logged as reward/<name>."""

    __name__ = "combined"  # TRL names the function's metrics after it: rewards/combined/mean

    def __init__(self, rewards: StageRewards, length_limit: int):
        self.rewards = rewards
        self.length_limit = length_limit  # the stage's max_completion_length, for answers/length_share
        self.last: LastScored | None = None

    def __call__(self, prompts: list, completions: list, log_metric=None, **keywords) -> list[float]:
        """Scores for TRL: prompts are message lists, completions are [assistant message] lists (or plain text); the
        other keywords are the data columns of each answer's row, and TRL's own (completion_ids, trainer_state)."""
        answers = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        extra = {key: keywords.pop(key) for key in TRL_KEYWORDS if key in keywords}
        combined, per_source = self.rewards.score(prompts, answers, keywords, completions=completions, extra=extra)
        self.last = LastScored(prompts, answers, combined, per_source)  # what the rollouts record of this batch
        if log_metric is not None:
            lengths = [len(ids) for ids in extra["completion_ids"]] if "completion_ids" in extra else []
            stats = answer_stats(prompts, answers, per_source, lengths, self.length_limit) if lengths else {}
            for key, value in {**source_means(per_source), **stats}.items():
                log_metric(key, value)
        return combined.tolist()


def prompt_datasets(config: RunConfig, tokenizer, run: RunDir):
    """(train rows, train dataset, eval dataset or None): rows of {"prompt": messages, column: value, ...} from any
    source. TRL hands a reward function every column but the prompt as a keyword list."""
    from datasets import Dataset

    train, held_out = load_prompts(config, tokenizer, run)
    train_rows, eval_rows = uniform_columns(train), uniform_columns(held_out)
    return train, Dataset.from_list(train_rows), (Dataset.from_list(eval_rows) if eval_rows else None)


def uniform_columns(rows: list[dict]) -> list[dict]:
    """Rows that Arrow can hold as one table: every row has every column (None where missing), and a column whose
    values are of more than one kind (a number here, text there) holds them all as text."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    mixed = set()
    for name in names:
        if name != "prompt" and len({type(row.get(name)) for row in rows if row.get(name) is not None}) > 1:
            mixed.add(name)
    return [{name: _as_text(row.get(name)) if name in mixed else row.get(name) for name in names} for row in rows]


def _as_text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def reference_kind(config: RunConfig) -> str:
    if getattr(config, config.stage).beta == 0:
        return "none (beta is 0)"
    return "the policy with its adapter disabled" if config.lora.enabled else "a frozen copy"


def online_arguments(config: RunConfig, run: RunDir, has_eval: bool) -> dict:
    """GRPOConfig / RLOOConfig keywords both stages take, from config.train and the stage's own section."""
    spec = getattr(config, config.stage)
    return dict(
        training_arguments(config, run, has_eval),
        num_generations=spec.num_generations,
        max_completion_length=spec.max_completion_length,
        temperature=spec.temperature,
        beta=spec.beta,
        epsilon=spec.epsilon,
        num_iterations=spec.num_iterations,
        mask_truncated_completions=spec.mask_truncated_completions,
        # Dropout would make the log-probs that sampled an answer differ from those scored against the
        # reference for the same tokens; TRL advises it off when training against a reference.
        disable_dropout=True,
        trust_remote_code=config.model.trust_remote_code,
    )


def build_trainer(config: RunConfig, run: RunDir, trainer_class, config_class, **stage_options):
    """The TRL online trainer (trainer_class, with its config_class taking online_arguments plus stage_options) for a
    config: prompts, then the reward sources (a source that cannot score fails before the policy loads), policy and
    trainer, with the reference set up as the module docstring says."""
    tokenizer = models.load_tokenizer(config.model)
    rewards = stage_rewards(config, tokenizer)  # a reward run that cannot score fails now, before the data loads
    rows, train_set, eval_set = prompt_datasets(config, tokenizer, run)
    rewards.dry_run(rows)  # and every source is tried on a few answers before the policy loads
    reward = CombinedReward(rewards, getattr(config, config.stage).max_completion_length)
    args = config_class(**online_arguments(config, run, has_eval=eval_set is not None), **stage_options)
    seed_model_init(config)  # after the reward sources loaded, so LoRA's init never depends on whether they were cached
    policy = load_policy(config)
    log.info("reference: %s", reference_kind(config))
    trainer = online_rollouts.recording(trainer_class)(
        model=policy,
        reward_funcs=reward,
        args=args,
        processing_class=tokenizer,
        train_dataset=train_set,
        eval_dataset=eval_set,
        callbacks=[
            StudioCallback(run, config.train.save_total_limit),
            *timeline_writer.callbacks(config, run, tokenizer),
            *judge_watch.callbacks(config, run, tokenizer),
        ],
    )
    drop_ref_adapter(trainer)
    reset_reference(trainer)
    trainer.start_recording(RolloutWriter(run.rollouts_path, config.rollouts), reward, config.rollouts.token_samples)
    return trainer


def reset_reference(trainer) -> None:
    """With LoRA off (and beta > 0) TRL (1.16) loads the reference by the policy's config name, which for a run started
    from a LoRA run is the base model without that run's merged adapter. Copying the policy's weights into it before
    any step makes the reference the true starting weights whatever TRL loaded."""
    if trainer.ref_model is None:
        return
    reference = trainer.accelerator.unwrap_model(trainer.ref_model)
    reference.load_state_dict(trainer.accelerator.unwrap_model(trainer.model).state_dict())
