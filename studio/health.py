"""Health warnings: signs in a run's metrics that training is going wrong, each with a one-line suggestion.

    warnings = health.check_rows("ppo", read_all(run.metrics_path))
    warnings = health.check("ppo", feed.columns(run_id).series())   # live, from the chart feed's columns
    warnings = health.check_run(run)                                   # a run directory, stage from its config
    for w in warnings:
        print(f"step {w.step}: {w.message}. {w.suggestion}")

Each warning names its check, the metric, the step it was first seen at and the value there. Checks read the mean
of the last WINDOW rows (fewer at the start), so one noisy batch does not trip them; comparisons "against the
start" use the mean of the first WINDOW rows. The thresholds below are named with the reason for each; none of
them fires on the tiny presets' runs (sft-dolly-tiny, rm-hh-tiny, dpo-hh-tiny, kto-hh-tiny, ppo-tiny, grpo-tiny,
rloo-tiny, rejection-tiny), which the tests check against recorded excerpts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from studio.charts import columns
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]  # key -> (steps, values), as Columns.series() gives

# Rows averaged before any threshold is compared: trainers log every 1 to 10 steps, and 5 rows smooth one batch's
# noise while a real trend still shows within a few log events.
WINDOW = 5

# The true KL divergence is never negative; a 5-row mean this far below zero is more than estimator noise. It means
# the answers were sampled from something other than the policy being scored (sampling settings, dropout, a
# different reference), which is the silent PPO failure users report (LLaMA-Factory #664, #1833, #3902).
KL_NEGATIVE = -0.2

# PPO logs KL per answer (summed over its tokens). ppo-tiny (lr 3e-3, a deliberately fast drift) peaks near 14 in
# a 5-row mean; at 25 nats an answer is e^25 times likelier under the policy than under the starting model, far
# enough that the reward model is usually being exploited rather than the answers improved.
KL_EXPLODE_PER_ANSWER = 25.0

# GRPO and RLOO log KL per token. grpo-tiny and rloo-tiny settle at 0.8 to 1.2; at 2 nats per token every sampled
# token is on average about 7 times likelier under the policy than under the starting model.
KL_EXPLODE_PER_TOKEN = 2.0

# Share of answers cut off at the length limit (no end-of-turn token). Runaway = from at most half at the start to
# nine in ten: the policy has stopped ending its answers, usually because the reward model pays for length.
TRUNCATED_RUNAWAY = 0.9
TRUNCATED_START_MAX = 0.5

# Answers shrinking to a tenth of their starting length are collapsing towards empty answers (a reward model that
# scores short answers well, or a KL penalty avoided by saying nothing). ppo-tiny shrinks to about a fifth: its
# tiny reward model prefers short answers, which is a drift to look at, not yet a collapse.
LENGTH_COLLAPSE_FRACTION = 0.1

# DPO/KTO implicit reward of the chosen answers (beta x log-ratio to the reference). Below -0.5 (5 nats at the
# default beta 0.1) and still falling, the policy makes the preferred answers clearly less likely than the
# reference does: the "chosen reward negative and falling" users ask about (LLaMA-Factory #6153, #7643).
CHOSEN_REWARD_FLOOR = -0.5

# A reward model that still ranks pairs no better than a coin flip after 50 steps is not learning: the tiny
# preset is past 0.75 after 5 steps, and 0.55 is within the noise of a coin on batches of 8 to 32 pairs.
RM_CHANCE_ACCURACY = 0.55
RM_CHANCE_AFTER_STEPS = 50

# PPO's clipped objective expects a small share of clipped ratios (ppo-tiny stays under 0.22 in a 5-row mean);
# beyond 0.3 each batch moves the policy well outside the trust region the clip is meant to keep.
CLIP_FRACTION_HIGH = 0.3

# Entropy per token falling to a tenth of its start: the policy is turning deterministic (mode collapse), so it
# stops exploring and tends to repeat one answer.
ENTROPY_COLLAPSE_FRACTION = 0.1

# Reward that rose and then gave back half of what it gained (LLaMA-Factory #1694). The rise must exceed 3 times
# the noise of a 5-row mean (estimated from row-to-row differences) so a flat, noisy curve never counts as a rise.
REWARD_LOSS_SHARE = 0.5
REWARD_GAIN_NOISE = 3.0

# eval_loss 10% (and at least 0.01) above its best so far: the model fits the training rows at the expense of
# held-out ones (overfitting), the point users want to see to stop early (LLaMA-Factory #4637).
EVAL_RISE = 0.10
EVAL_RISE_MIN = 0.01


@dataclass(frozen=True)
class HealthWarning:
    check: str       # which check fired, e.g. "kl_negative"
    metric: str      # the metric key it read
    step: float      # the step at which it was first seen
    value: float     # the value the threshold was compared with at that step (a 5-row mean for most checks)
    message: str
    suggestion: str


def check(stage: str, series: Series) -> list[HealthWarning]:
    """Every warning for a run of `stage` over its metrics (key -> (steps, values)), ordered by step."""
    found: list[HealthWarning | None] = [_not_finite(series)]
    for check_fn in STAGE_CHECKS.get(stage, ()):
        found.append(check_fn(stage, series))
    return sorted((w for w in found if w), key=lambda w: (w.step, w.check))


def check_rows(stage: str, rows: Iterable[Mapping]) -> list[HealthWarning]:
    return check(stage, columns(rows).series())


def check_run(run: RunDir) -> list[HealthWarning]:
    """Warnings for a run directory: the stage comes from its config.yaml, the rows from metrics.jsonl."""
    try:
        stage = (yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}).get("stage", "")
    except (OSError, yaml.YAMLError):
        stage = ""
    return check_rows(stage, read_all(run.metrics_path))


# ---------------------------------------------------------------- helpers


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _step(step: float) -> str:
    return str(int(step)) if step == int(step) else str(step)


def _finite(series: Series, key: str) -> tuple[list[float], list[float]]:
    steps, values = series.get(key, ((), ()))
    if math.isfinite(sum(values)):  # nan and inf survive a sum, so this is the common case in one C pass
        return list(steps), list(values)
    pairs = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _trailing_means(values: Sequence[float], window: int = WINDOW) -> list[float]:
    """Mean of the last `window` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _rows(i: int) -> int:
    """How many rows the trailing mean at position i averages."""
    return min(i + 1, WINDOW)


def _start(values: Sequence[float]) -> float:
    head = values[:WINDOW]
    return sum(head) / len(head)


def _first(steps: Sequence[float], means: Sequence[float], condition) -> int | None:
    return next((i for i, m in enumerate(means) if condition(i, m)), None)


# ---------------------------------------------------------------- checks


def _not_finite(series: Series) -> HealthWarning | None:
    """Any stage: a loss, reward or KL that is nan or infinite. Reported once, at the earliest step."""
    first = None
    for key in sorted(series):
        if not (key == "loss" or key.endswith("_loss") or key in ("reward", "kl")):
            continue
        steps, values = series[key]
        for s, v in zip(steps, values):
            if not math.isfinite(v):
                if first is None or s < first[0]:
                    first = (s, key, v)
                break
    if first is None:
        return None
    step, key, value = first
    return HealthWarning("not_finite", key, step, value, f"{key} is {value} at step {_step(step)}",
                         "Training diverged: lower train.learning_rate, keep train.max_grad_norm at 1.0, and with "
                         "model.dtype float16 try bfloat16 or float32")


_KL_WEIGHT = {"ppo": "ppo.kl_coef (or set ppo.target_kl)", "grpo": "grpo.beta", "rloo": "rloo.beta"}


def _kl_negative(stage: str, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "kl")
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m < KL_NEGATIVE)
    if i is None:
        return None
    extra = "; ppo.kl_estimator=k3 is never negative" if stage == "ppo" else ""
    return HealthWarning("kl_negative", "kl", steps[i], means[i],
                         f"kl went negative: {_fmt(means[i])} (mean of {_rows(i)} rows) at step {_step(steps[i])}",
                         "The answers were not sampled from the policy being scored: sample at temperature 1 without "
                         f"top-k, top-p or repetition penalty, and start from the reference's weights{extra}")


def _kl_exploding(stage: str, series: Series) -> HealthWarning | None:
    limit, unit = (KL_EXPLODE_PER_ANSWER, "per answer") if stage == "ppo" else (KL_EXPLODE_PER_TOKEN, "per token")
    steps, values = _finite(series, "kl")
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m > limit)
    if i is None:
        return None
    return HealthWarning("kl_exploding", "kl", steps[i], means[i],
                         f"kl is exploding: {_fmt(means[i])} nats {unit} (mean of {_rows(i)} rows, "
                         f"limit {_fmt(limit)}) at step {_step(steps[i])}",
                         f"The policy is far from its starting model: raise {_KL_WEIGHT[stage]} or lower "
                         "train.learning_rate, and read some answers for reward hacking")


_TRUNCATED_SUGGESTION = {
    "ppo": "raise ppo.missing_eos_penalty or ppo.kl_coef",
    "rejection": "set rejection.min_score or lower rejection.temperature",
    "grpo": "set grpo.mask_truncated_completions or raise grpo.beta",
    "rloo": "set rloo.mask_truncated_completions or raise rloo.beta",
}


def _length_runaway(stage: str, series: Series) -> HealthWarning | None:
    if stage in ("ppo", "rejection"):
        key = "eos_fraction"
        steps, ended = _finite(series, key)
        values = [1.0 - v for v in ended]
    else:
        key = "completions/clipped_ratio"
        steps, values = _finite(series, key)
    if not values:
        return None
    start = _start(values)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: start <= TRUNCATED_START_MAX and m >= TRUNCATED_RUNAWAY)
    if i is None:
        return None
    return HealthWarning("length_runaway", key, steps[i], means[i],
                         f"answers run to the length limit: {means[i]:.0%} cut off (mean of {_rows(i)} rows, "
                         f"{start:.0%} at the start) at step {_step(steps[i])}",
                         f"The reward model may pay for length: {_TRUNCATED_SUGGESTION[stage]}, and score a few "
                         "long answers by hand")


def _length_collapse(stage: str, series: Series) -> HealthWarning | None:
    key = "response_length" if stage in ("ppo", "rejection") else "completions/mean_length"
    steps, values = _finite(series, key)
    if not values:
        return None
    start = _start(values)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: start > 0 and m <= LENGTH_COLLAPSE_FRACTION * start)
    if i is None:
        return None
    return HealthWarning("length_collapse", key, steps[i], means[i],
                         f"answers are collapsing: {_fmt(means[i])} tokens (mean of {_rows(i)} rows, {_fmt(start)} at "
                         f"the start) at step {_step(steps[i])}",
                         "The policy found that short answers score well or dodge the KL penalty: score a few short "
                         "answers by hand, and lower train.learning_rate")


def _chosen_falling(stage: str, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "rewards/chosen")
    means = _trailing_means(values)
    peak = _running_max(means)
    i = _first(steps, means, lambda i, m: m < CHOSEN_REWARD_FLOOR and m < peak[i])
    if i is None:
        return None
    return HealthWarning("chosen_reward_falling", "rewards/chosen", steps[i], means[i],
                         f"rewards/chosen is falling: {_fmt(means[i])} (mean of {_rows(i)} rows) at step "
                         f"{_step(steps[i])}; the chosen answers are now less likely than under the reference",
                         "Common while both answers lose likelihood and the margin grows; if answers get worse, lower "
                         f"train.learning_rate or raise {stage}.beta")


def _running_max(values: Sequence[float]) -> list[float]:
    out, best = [], -math.inf
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def _rm_at_chance(stage: str, series: Series) -> HealthWarning | None:
    for key in ("accuracy", "eval_accuracy"):
        steps, values = _finite(series, key)
        means = _trailing_means(values)
        i = _first(steps, means, lambda i, m: steps[i] >= RM_CHANCE_AFTER_STEPS and m <= RM_CHANCE_ACCURACY)
        if i is not None:
            return HealthWarning("rm_at_chance", key, steps[i], means[i],
                                 f"{key} is stuck at chance: {_fmt(means[i])} (mean of {_rows(i)} rows) "
                                 f"at step {_step(steps[i])}",
                                 "The model does not tell chosen from rejected: raise train.learning_rate, check "
                                 "that the pairs differ (rlhf-studio data), or give it more pairs")
    return None


_CLIP_KEY = {"ppo": "clip_fraction", "grpo": "clip_ratio/region_mean", "rloo": "clip_ratio/region_mean"}
_PASSES = {"ppo": "ppo.ppo_epochs", "grpo": "grpo.num_iterations", "rloo": "rloo.num_iterations"}


def _clip_high(stage: str, series: Series) -> HealthWarning | None:
    key = _CLIP_KEY[stage]
    steps, values = _finite(series, key)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m > CLIP_FRACTION_HIGH)
    if i is None:
        return None
    return HealthWarning("clip_fraction_high", key, steps[i], means[i],
                         f"{key} is high: {_fmt(means[i])} (mean of {_rows(i)} rows, limit {_fmt(CLIP_FRACTION_HIGH)}) "
                         f"at step {_step(steps[i])}",
                         f"Each update moves the policy too far: lower train.learning_rate or {_PASSES[stage]}")


def _entropy_collapse(stage: str, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "entropy")
    if not values:
        return None
    start = _start(values)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: start > 0 and m <= ENTROPY_COLLAPSE_FRACTION * start)
    if i is None:
        return None
    return HealthWarning("entropy_collapse", "entropy", steps[i], means[i],
                         f"entropy is collapsing: {_fmt(means[i])} (mean of {_rows(i)} rows, {_fmt(start)} at the "
                         f"start) at step {_step(steps[i])}",
                         f"The policy is turning deterministic: lower train.learning_rate, raise "
                         f"{_KL_WEIGHT.get(stage, 'the KL weight')}, and look for one answer repeated")


def _reward_falling(stage: str, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "reward")
    if len(values) < 2 * WINDOW:
        return None
    means = _trailing_means(values)
    start = means[WINDOW - 1]
    peak = start
    diff_sq = sum((values[j] - values[j - 1]) ** 2 for j in range(1, WINDOW))
    for i in range(WINDOW, len(values)):
        diff_sq += (values[i] - values[i - 1]) ** 2
        # Row-to-row differences cancel a slow trend; their spread / sqrt(2) is one row's noise.
        noise = math.sqrt(diff_sq / i / 2) / math.sqrt(WINDOW)
        peak = max(peak, means[i])
        gain = peak - start
        if gain > REWARD_GAIN_NOISE * noise and means[i] <= peak - REWARD_LOSS_SHARE * gain:
            return HealthWarning("reward_falling", "reward", steps[i], means[i],
                                 f"reward rose then fell: {_fmt(means[i])} (mean of {_rows(i)} rows) from a peak of "
                                 f"{_fmt(peak)}, {_fmt(start)} at the start, at step {_step(steps[i])}",
                                 "Training turned unstable: lower train.learning_rate, and keep the checkpoint from "
                                 "the peak")
    return None


def _eval_loss_rising(stage: str, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "eval_loss")
    for i in range(1, len(values)):
        best = min(values[:i])
        if values[i] >= best * (1 + EVAL_RISE) and values[i] - best >= EVAL_RISE_MIN:
            return HealthWarning("eval_loss_rising", "eval_loss", steps[i], values[i],
                                 f"eval_loss is rising: {_fmt(values[i])} against its best {_fmt(best)} at step "
                                 f"{_step(steps[values.index(best)])}, seen at step {_step(steps[i])}",
                                 "The model is overfitting: stop here, or train fewer steps or epochs with a lower "
                                 "train.learning_rate or more lora.dropout")
    return None


_RL = (_kl_negative, _kl_exploding, _length_runaway, _length_collapse, _entropy_collapse, _reward_falling)

STAGE_CHECKS = {
    "sft": (_eval_loss_rising,),
    "reward": (_eval_loss_rising, _rm_at_chance),
    "dpo": (_eval_loss_rising, _chosen_falling),
    "kto": (_eval_loss_rising, _chosen_falling),
    "ppo": (*_RL, _clip_high),
    "grpo": (*_RL, _clip_high),
    "rloo": (*_RL, _clip_high),
    "rejection": (_length_runaway, _length_collapse, _reward_falling),
}
