"""What the TRL online stages (grpo, rloo) share: the prompt datasets, the policy, the reward function that scores
sampled answers with our reward models, and building the trainer around them.

    reward = JudgeReward(RewardJudge(config.reward_models))
    reward(prompts=[[{"role": "user", "content": "Hi"}]], completions=[[{"role": "assistant", "content": "Hello!"}]])

Rewards: TRL takes a list of reward functions and adds their (weighted) scores. We hand it one function that returns
the score of config.reward_models as RewardJudge combines it, because safety_gated (Llama 2: the safety score where it
is low, else the helpfulness score) is not a weighted sum. TRL logs that score as reward, reward_std and
rewards/reward_models/mean and /std; the function adds each reward run's mean as reward/<run id> through TRL's
log_metric hook, the key the ppo stage writes too, so the charts of every online stage read alike.

Reference: the policy is the starting weights (init.from_run) plus a fresh LoRA adapter, so the adapter-disabled model
is the reference and no second copy is loaded (see drop_ref_adapter). With LoRA off, TRL loads a reference copy itself;
reset_reference makes sure that copy holds the starting weights.
"""

from __future__ import annotations

import logging

from studio.config import RunConfig
from studio.modeling import models
from studio.runs.rundir import RunDir
from studio.trainers import timeline_writer
from studio.trainers.common import StudioCallback, drop_ref_adapter, load_policy, seed_model_init, training_arguments
from studio.trainers.rewards import RewardJudge
from studio.trainers.sampling import load_prompts

log = logging.getLogger(__name__)


class JudgeReward:
    """A TRL reward function backed by a RewardJudge: one combined score per (prompt, completion)."""

    __name__ = "reward_models"  # TRL names the function's metrics after it: rewards/reward_models/mean

    def __init__(self, judge: RewardJudge):
        self.judge = judge
        # Scoring nothing loads and caches every reward model now (and checks a safety_gated pair's kinds): loading
        # draws random numbers for a fresh score head before the trained one replaces it, which must happen before
        # TRL seeds the run, not in the middle of its sampling.
        judge.score([], [])

    def __call__(self, prompts: list, completions: list, log_metric=None, **_) -> list[float]:
        """Scores for TRL: prompts are message lists, completions are [assistant message] lists (or plain text)."""
        answers = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        combined, per_run = self.judge.score(prompts, answers)
        if log_metric is not None:
            for run_id, scores in per_run.items():
                log_metric(f"reward/{run_id}", scores.mean().item())
        return combined.tolist()


def prompt_datasets(config: RunConfig, tokenizer, run: RunDir):
    """(train, eval or None) datasets of {"prompt": messages} rows from any source: only the prompt is used."""
    from datasets import Dataset

    train, held_out = load_prompts(config, tokenizer, run)
    train_rows, eval_rows = [{"prompt": p} for p in train], [{"prompt": p} for p in held_out]
    return Dataset.from_list(train_rows), (Dataset.from_list(eval_rows) if eval_rows else None)


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
    config: the judge first (a reward run that cannot score fails before the policy loads), then prompts, policy and
    trainer, with the reference set up as the module docstring says."""
    reward = JudgeReward(RewardJudge(config.reward_models))
    tokenizer = models.load_tokenizer(config.model)
    train_set, eval_set = prompt_datasets(config, tokenizer, run)
    args = config_class(**online_arguments(config, run, has_eval=eval_set is not None), **stage_options)
    seed_model_init(config)  # after the reward models loaded, so LoRA's init never depends on whether they were cached
    policy = load_policy(config)
    log.info("reference: %s", reference_kind(config))
    trainer = trainer_class(
        model=policy,
        reward_funcs=reward,
        args=args,
        processing_class=tokenizer,
        train_dataset=train_set,
        eval_dataset=eval_set,
        callbacks=[
            StudioCallback(run, config.train.save_total_limit),
            *timeline_writer.callbacks(config, run, tokenizer),
        ],
    )
    drop_ref_adapter(trainer)
    reset_reference(trainer)
    return trainer


def reset_reference(trainer) -> None:
    """With LoRA off (and beta > 0) TRL (1.16) loads the reference by the policy's config name, which for a run started
    from a LoRA run is the base model without that run's merged adapter. Copying the policy's weights into it before
    any step makes the reference the true starting weights whatever TRL loaded."""
    if trainer.ref_model is None:
        return
    reference = trainer.accelerator.unwrap_model(trainer.ref_model)
    reference.load_state_dict(trainer.accelerator.unwrap_model(trainer.model).state_dict())
