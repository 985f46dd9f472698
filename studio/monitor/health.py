"""Health warnings: signs in a run's metrics that training is going wrong, each with a one-line suggestion.

    warnings = health.check_rows("ppo", read_all(run.metrics_path))
    warnings = health.check("ppo", feed.columns(run_id).series())   # live, from the chart feed's columns
    warnings = health.check_run(run)                                   # a run directory, stage from its config
    for w in warnings:
        print(f"step {w.step}: {w.message}. {w.suggestion}")

Each warning names its check and metric, the step it first fired at with the value there, and the latest step with
the value there, so a warning read while the run goes on says where things stand now ("kl is exploding: 260 ... at
step 13 ...; first at step 2 (125)"). Checks read the mean of the last WINDOW rows (fewer at the start, but never
fewer than MIN_ROWS), so one noisy batch does not trip them; comparisons "against the start" use the mean of the
first WINDOW rows. The thresholds below are named with the reason for each. On the tiny presets' runs
(sft-dolly-tiny, rm-hh-tiny, dpo-hh-tiny, kto-hh-tiny, ppo-tiny, grpo-tiny, rloo-tiny, rejection-tiny) one check
fires, by design: ppo-tiny's answers shrink from about 14 to 3 tokens while its reward rises, the drift the length
drop check is there to show. The tests check all of them against recorded excerpts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from studio import stages
from studio.monitor.charts import columns
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir

Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]  # key -> (steps, values), as Columns.series() gives

# Rows averaged before any threshold is compared: trainers log every 1 to 10 steps, and 5 rows smooth one batch's
# noise while a real trend still shows within a few log events.
WINDOW = 5

# A mean of fewer rows is never compared with a threshold: at the very start one batch would decide alone. Eval
# metrics are exempt, since each eval row already averages the whole held-out set.
MIN_ROWS = 3

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

# Answers shrinking to under a third of their starting length (5-row means, so a sustained drop, not a few short
# answers): the policy is learning to say less, usually because the reward model scores short answers well or
# because saying little dodges the KL penalty. ppo-tiny shows it on purpose (about 14 -> 3 tokens while its reward
# rises: its tiny reward model prefers short answers), and the warning there is the point of it: it is the drift a
# person should look at before trusting the rising reward. At a tenth the answers are collapsing towards empty.
LENGTH_DROP_FRACTION = 1 / 3
LENGTH_COLLAPSE_FRACTION = 0.1

# Training loss (sft, reward, dpo, kto) diverging: the median of the last WINDOW rows (so at least half of them are
# high: one bad batch never counts) at least 1.5 times the lowest such median so far, and having given back at least
# half of what it had gained since the first row. The factor keeps slow noise on a flat loss out (healthy tiny runs
# wiggle by under 10%); the share keeps a loss near zero (a reward model at 0.01) from counting a rise to 0.02. A
# learning rate far too high (sft-dolly-tiny at 1.0: 3.4 -> 6 to 12 within 5 steps) passes both at once.
LOSS_DIVERGE_FACTOR = 1.5
LOSS_DIVERGE_GIVEN_BACK = 0.5

# DPO/KTO implicit reward of the chosen answers (beta x log-ratio to the reference). Below -0.5 (5 nats at the
# default beta 0.1) and still falling, the policy makes the preferred answers clearly less likely than the
# reference does: the "chosen reward negative and falling" users ask about (LLaMA-Factory #6153, #7643).
# The reference-free stages (beta x the policy's own log-likelihood) count the 0.5 from their first row.
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


# A reward source whose scores do not vary (every answer of a step scored alike, reward_std/<name> under this) for
# this many logged rows in a row gives the policy nothing to learn from: GRPO and RLOO compare answers within a
# group, and PPO's advantage of a constant is zero after whitening. 10 rows, so a few steps of a hard task where
# no answer is right yet do not count; a built-in scores 0 or 1, so "alike" is exact there.
SOURCE_FLAT_ROWS = 10
SOURCE_FLAT_STD = 1e-6
# A source that scores none of the answers (a function returning None, reference_match without references) for
# this many rows in a row adds nothing to the combined reward.
SOURCE_UNSCORED_ROWS = WINDOW


# Read from the answers themselves (answers/* in the metrics, studio/trainers/rollout_rows.answer_stats):
# - half of a step's distinct prompts answered with the same text (5-row mean) is mode collapse: different questions
#   deserve different answers, so the policy has found one answer the reward pays for whatever was asked. Only when
#   the run started below it (a task whose right answers coincide does not count).
REPEATED_ANSWERS = 0.5
# - answers grown to 80% of the length limit on average from at most half of it, while the combined reward is above
#   its start: the reward pays for length (length hacking), before the answers are cut off (length_runaway).
LENGTH_HACK_SHARE = 0.8
LENGTH_HACK_START_MAX = 0.5
# - 5% of answers that no reward source scored (a 5-row mean): they carry no signal and count 0 in the combined
#   reward, so the reward curve mixes in answers that were never judged.
UNSCORED_ANSWERS = 0.05

# The reward-hacking check (eval.judges): a judge's fall and the reward's rise count only beyond this many standard
# errors (2: about a 5% chance of noise alone), and only after the judge stayed below its peak for this many checks.
HACKING_NOISE = 2.0
HACKING_CHECKS_AFTER = 2


@dataclass(frozen=True)
class HealthWarning:
    check: str  # which check fired, e.g. "kl_negative"
    metric: str  # the metric key it read
    step: float  # the step at which it first fired
    value: float  # the value the threshold was compared with at that step (a 5-row mean for most checks)
    last_step: float  # the latest step of that metric, so a warning read during a run says where it stands now
    last_value: float  # the same measure at last_step (it may have recovered since: the message says both)
    message: str
    suggestion: str


def check(stage: str, series: Series) -> list[HealthWarning]:
    """Every warning for a run of `stage` over its metrics (key -> (steps, values)), ordered by first step."""
    found: list[HealthWarning | None] = [_not_finite(series)]
    record = stages.find(stage)  # an unknown stage (a config that does not read) gets the finite-values check only
    for name in record.health.checks if record else ():
        result = CHECKS[name](record, series)
        found.extend(result if isinstance(result, list) else [result])  # the source checks warn once per source
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


def _tokens(value: float) -> str:
    return f"{_fmt(value)} token" + ("" if _fmt(value) == "1" else "s")


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


def _trailing_medians(values: Sequence[float]) -> list[float]:
    """Median of the last WINDOW values at each position (fewer at the start)."""
    out = []
    for i in range(len(values)):
        last = sorted(values[max(0, i + 1 - WINDOW) : i + 1])
        mid = len(last) // 2
        out.append(last[mid] if len(last) % 2 else (last[mid - 1] + last[mid]) / 2)
    return out


def _rows(i: int) -> int:
    """How many rows the trailing mean at position i averages."""
    return min(i + 1, WINDOW)


def _start(values: Sequence[float]) -> float:
    head = values[:WINDOW]
    return sum(head) / len(head)


def _first(steps: Sequence[float], means: Sequence[float], condition, min_rows: int = MIN_ROWS) -> int | None:
    """The first position whose trailing mean (or median) covers at least `min_rows` rows and meets `condition`."""
    return next((i for i, m in enumerate(means) if _rows(i) >= min_rows and condition(i, m)), None)


def _over(rows: int, kind: str = "mean") -> str:
    """What a compared value is: one row's own value needs no words."""
    return "" if rows == 1 else f"{kind} of the last {rows} rows"


def _warning(
    check: str,
    metric: str,
    steps: Sequence[float],
    values: Sequence[float],
    first: int,
    headline: str,
    suggestion: str,
    show=_fmt,
    notes: Sequence[str] = (),
    rows: int = 1,
    kind: str = "mean",
) -> HealthWarning:
    """A warning that fired at position `first`, worded at the latest position: "<headline>: <value> at step N
    (<kind> of the last <rows> rows, <notes>); first at step M (<value there>)". `values` are what the check
    compared (trailing means, medians or raw rows); `rows` and `notes` describe the latest one."""
    last = len(values) - 1
    detail = ", ".join(part for part in (_over(rows, kind), *notes) if part)
    message = f"{headline}: {show(values[last])} at step {_step(steps[last])}" + (f" ({detail})" if detail else "")
    if last != first:
        message += f"; first at step {_step(steps[first])} ({show(values[first])})"
    return HealthWarning(check, metric, steps[first], values[first], steps[last], values[last], message, suggestion)


# ---------------------------------------------------------------- checks


def _not_finite(series: Series) -> HealthWarning | None:
    """Any stage: a loss, reward or KL that is nan or infinite, at the earliest step it was; the latest row of that
    metric is reported too (nan again, or the value it came back to)."""
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
    steps, values = series[key]
    last_step, last_value = steps[-1], values[-1]
    message = f"{key} is {value} at step {_step(step)}"
    if last_step != step and not math.isfinite(last_value):
        message = f"{key} is {last_value} at step {_step(last_step)}; first at step {_step(step)}"
    return HealthWarning(
        "not_finite",
        key,
        step,
        value,
        last_step,
        last_value,
        message,
        "Training diverged: lower train.learning_rate, keep train.max_grad_norm at 1.0, and with "
        "model.dtype float16 try bfloat16 or float32",
    )


def _loss_diverging(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "loss")
    medians = _trailing_medians(values)
    lowest = _running_min(medians)

    def diverging(i: int, m: float) -> bool:
        gained = values[0] - lowest[i]
        return m >= LOSS_DIVERGE_FACTOR * lowest[i] and m - lowest[i] >= LOSS_DIVERGE_GIVEN_BACK * gained

    i = _first(steps, medians, diverging)
    if i is None:
        return None
    best = medians.index(lowest[-1])
    notes = [f"lowest {_fmt(lowest[-1])} at step {_step(steps[best])}", f"{_fmt(values[0])} at the start"]
    return _warning(
        "loss_diverging",
        "loss",
        steps,
        medians,
        i,
        "loss is diverging",
        "The learning rate is too high for this model: lower train.learning_rate (a tenth of it is a "
        "good first try) and keep train.max_grad_norm at 1.0",
        notes=notes,
        rows=_rows(len(values) - 1),
        kind="median",
    )


def _kl_negative(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "kl")
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m < KL_NEGATIVE)
    if i is None:
        return None
    return _warning(
        "kl_negative",
        "kl",
        steps,
        means,
        i,
        "kl went negative",
        "The answers were not sampled from the policy being scored: sample at temperature 1 without "
        f"top-k, top-p or repetition penalty, and start from the reference's weights{stage.health.kl_note}",
        rows=_rows(len(means) - 1),
    )


def _kl_exploding(stage: stages.Stage, series: Series) -> HealthWarning | None:
    per_answer = stage.health.kl_per_answer
    limit, unit = (KL_EXPLODE_PER_ANSWER, "per answer") if per_answer else (KL_EXPLODE_PER_TOKEN, "per token")
    steps, values = _finite(series, "kl")
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m > limit)
    if i is None:
        return None
    return _warning(
        "kl_exploding",
        "kl",
        steps,
        means,
        i,
        "kl is exploding",
        f"The policy is far from its starting model: raise {stage.health.kl_weight} or lower "
        "train.learning_rate, and read some answers for reward hacking",
        show=lambda v: f"{_fmt(v)} nats {unit}",
        notes=[f"limit {_fmt(limit)}"],
        rows=_rows(len(means) - 1),
    )


def _length_runaway(stage: stages.Stage, series: Series) -> HealthWarning | None:
    if stage.own_loop:  # the studio's loops log the share that ended; TRL's the share cut off
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
    return _warning(
        "length_runaway",
        key,
        steps,
        means,
        i,
        "answers run to the length limit",
        f"The reward model may pay for length: {stage.health.cutoff_fix}, and score a few long answers by hand",
        show=lambda v: f"{v:.0%} cut off",
        notes=[f"{start:.0%} at the start"],
        rows=_rows(len(means) - 1),
    )


def _length_drop(stage: stages.Stage, series: Series) -> HealthWarning | None:
    key = "response_length" if stage.own_loop else "completions/mean_length"
    steps, values = _finite(series, key)
    if not values:
        return None
    start = _start(values)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: start > 0 and m <= LENGTH_DROP_FRACTION * start)
    if i is None:
        return None
    # Both ends are means of the same number of rows: the start is the mean at the WINDOW-th row.
    start_step, last = steps[min(WINDOW, len(steps)) - 1], len(means) - 1
    collapsing = means[last] <= LENGTH_COLLAPSE_FRACTION * start
    message = (
        f"answers are {'collapsing' if collapsing else 'shrinking'}: {_fmt(start)} -> {_tokens(means[last])} "
        f"from step {_step(start_step)} to step {_step(steps[last])} (means of {WINDOW} rows)"
    )
    if last != i:
        message += f"; first under a third of the start at step {_step(steps[i])} ({_tokens(means[i])})"
    return HealthWarning(
        "length_drop",
        key,
        steps[i],
        means[i],
        steps[last],
        means[last],
        message,
        "The policy is learning to say less, which a reward model that scores short answers well "
        "or the KL penalty can teach it: read a few answers (the Runs tab's Answers over "
        "training), and if they got worse, lower train.learning_rate or score some short answers "
        "by hand",
    )


def _chosen_falling(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "rewards/chosen")
    means = _trailing_means(values)
    peak = _running_max(means)
    # Without a reference (orpo, simpo, cpo) the reward is beta x the policy's own log-likelihood, below 0 from the
    # start, so the floor counts from the first row rather than from 0.
    floor = CHOSEN_REWARD_FLOOR + (values[0] if values and not stage.reference else 0.0)
    i = _first(steps, means, lambda i, m: m < floor and m < peak[i])
    if i is None:
        return None
    than = "under the reference" if stage.reference else "at the start"
    fix = stage.health.chosen_fix or f"raise {stage.section}.beta"
    return _warning(
        "chosen_reward_falling",
        "rewards/chosen",
        steps,
        means,
        i,
        "rewards/chosen is falling",
        f"The chosen answers are now less likely than {than}. That is common while both "
        f"answers lose likelihood and the margin grows; if answers get worse, lower train.learning_rate or {fix}",
        rows=_rows(len(means) - 1),
    )


def _running_max(values: Sequence[float]) -> list[float]:
    out, best = [], -math.inf
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def _running_min(values: Sequence[float]) -> list[float]:
    return [-v for v in _running_max([-v for v in values])]


def _rm_at_chance(stage: stages.Stage, series: Series) -> HealthWarning | None:
    for key in ("accuracy", "eval_accuracy"):
        steps, values = _finite(series, key)
        means = _trailing_means(values)
        min_rows = 1 if key.startswith("eval_") else MIN_ROWS
        i = _first(
            steps,
            means,
            lambda i, m, steps=steps: steps[i] >= RM_CHANCE_AFTER_STEPS and m <= RM_CHANCE_ACCURACY,
            min_rows,
        )
        if i is not None:
            return _warning(
                "rm_at_chance",
                key,
                steps,
                means,
                i,
                f"{key} is stuck at chance",
                "The model does not tell chosen from rejected: raise train.learning_rate, check that the "
                "pairs differ (rlhf-studio data), or give it more pairs",
                rows=_rows(len(means) - 1),
            )
    return None


def _clip_high(stage: stages.Stage, series: Series) -> HealthWarning | None:
    key = stage.health.clip_key
    steps, values = _finite(series, key)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m > CLIP_FRACTION_HIGH)
    if i is None:
        return None
    return _warning(
        "clip_fraction_high",
        key,
        steps,
        means,
        i,
        f"{key} is high",
        f"Each update moves the policy too far: lower train.learning_rate or {stage.health.passes}",
        notes=[f"limit {_fmt(CLIP_FRACTION_HIGH)}"],
        rows=_rows(len(means) - 1),
    )


def _entropy_collapse(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "entropy")
    if not values:
        return None
    start = _start(values)
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: start > 0 and m <= ENTROPY_COLLAPSE_FRACTION * start)
    if i is None:
        return None
    return _warning(
        "entropy_collapse",
        "entropy",
        steps,
        means,
        i,
        "entropy is collapsing",
        f"The policy is turning deterministic: lower train.learning_rate, raise "
        f"{stage.health.kl_weight or 'the KL weight'}, and look for one answer repeated",
        notes=[f"{_fmt(start)} at the start"],
        rows=_rows(len(means) - 1),
    )


def _reward_falling(stage: stages.Stage, series: Series) -> HealthWarning | None:
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
            peak_now = max(means[WINDOW - 1 :])
            return _warning(
                "reward_falling",
                "reward",
                steps,
                means,
                i,
                "reward rose then fell",
                "Training turned unstable: lower train.learning_rate, and keep the checkpoint from the peak",
                notes=[f"peak {_fmt(peak_now)}", f"{_fmt(start)} at the start"],
                rows=WINDOW,
            )
    return None


def _eval_loss_rising(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "eval_loss")
    for i in range(1, len(values)):
        best = min(values[:i])
        if values[i] >= best * (1 + EVAL_RISE) and values[i] - best >= EVAL_RISE_MIN:
            # Worded at the latest eval, against the best before it (each eval is one row over the held-out set).
            best_now = min(values[:-1])
            return _warning(
                "eval_loss_rising",
                "eval_loss",
                steps,
                values,
                i,
                "eval_loss is rising",
                "The model is overfitting: stop here, or train fewer steps or epochs with a lower "
                "train.learning_rate or more lora.dropout",
                notes=[f"best {_fmt(best_now)} at step {_step(steps[values.index(best_now)])}"],
            )
    return None


def _sources(series: Series) -> list[str]:
    """The reward sources a run logs (reward/<name>, scored/<name>), in name order."""
    return sorted({key.split("/", 1)[1] for key in series if key.startswith(("reward/", "scored/"))})


def _flat_run(steps: Sequence[float], stds: Sequence[float]) -> int | None:
    """The position where the first run of SOURCE_FLAT_ROWS rows in a row of zero spread ends, or None."""
    streak = 0
    for i, std in enumerate(stds):
        streak = streak + 1 if std <= SOURCE_FLAT_STD else 0
        if streak >= SOURCE_FLAT_ROWS:
            return i
    return None


def _flat_sources(series: Series, saturated: bool) -> list[HealthWarning]:
    """Sources whose scores stopped varying: at the top of everything they scored in the run after being lower
    (saturated), or anywhere else (no signal). Worded at the latest row."""
    found = []
    for name in _sources(series):
        std_steps, stds = _finite(series, f"reward_std/{name}")
        steps, means = _finite(series, f"reward/{name}")
        end = _flat_run(std_steps, stds)
        if end is None or len(means) != len(stds):
            continue
        value = means[end]
        at_top = value >= max(means) - SOURCE_FLAT_STD and min(means[: end + 1]) < value - SOURCE_FLAT_STD
        if at_top != saturated:
            continue
        rows = SOURCE_FLAT_ROWS
        if saturated:
            found.append(
                _warning(
                    "source_saturated",
                    f"reward/{name}",
                    steps,
                    means,
                    end,
                    f"reward source '{name}' is saturated",
                    f"Every answer now gets its best score, so '{name}' has nothing left to teach: lower its "
                    "weight, make it stricter, or stop here",
                    notes=[f"every answer alike for {rows} rows in a row"],
                )
            )
        else:
            found.append(
                _warning(
                    "source_no_signal",
                    f"reward/{name}",
                    steps,
                    means,
                    end,
                    f"reward source '{name}' gives every answer the same score",
                    f"'{name}' cannot tell the answers apart, so it teaches nothing: try it in the Rewards tab "
                    "(or `rlhf-studio rewards try`) on real answers and loosen its parameters",
                    notes=[f"no spread for {rows} rows in a row"],
                )
            )
    return found


def _source_no_signal(stage: stages.Stage, series: Series) -> list[HealthWarning]:
    return _flat_sources(series, saturated=False)


def _source_saturated(stage: stages.Stage, series: Series) -> list[HealthWarning]:
    return _flat_sources(series, saturated=True)


def _source_unscored(stage: stages.Stage, series: Series) -> list[HealthWarning]:
    """Sources that gave no answer a score (scored/<name> = 0) for SOURCE_UNSCORED_ROWS rows in a row."""
    found = []
    for name in _sources(series):
        steps, shares = _finite(series, f"scored/{name}")
        streak = 0
        for i, share in enumerate(shares):
            streak = streak + 1 if share == 0 else 0
            if streak >= SOURCE_UNSCORED_ROWS:
                found.append(
                    _warning(
                        "source_unscored",
                        f"scored/{name}",
                        steps,
                        shares,
                        i,
                        f"reward source '{name}' scores no answer",
                        f"'{name}' returns None for every answer, so it adds nothing: check the data column it "
                        "reads (reference_match) or what the function returns",
                        notes=[f"for {streak} rows in a row"],
                    )
                )
                break
    return found


def _repeated_answers(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "answers/repeated")
    if not values:
        return None
    start, means = _start(values), _trailing_means(values)
    i = _first(steps, means, lambda i, m: start < REPEATED_ANSWERS <= m)
    if i is None:
        return None
    hold = f", and strengthen the KL penalty ({stage.health.kl_weight})" if stage.health.kl_weight else ""
    return _warning(
        "repeated_answers",
        "answers/repeated",
        steps,
        means,
        i,
        "the policy gives different prompts the same answer",
        "Mode collapse: one answer scores well whatever is asked. Read that answer (Rollouts, or `rlhf-studio "
        f"rollouts RUN --last`) and score it by hand{hold}",
        show=lambda v: f"{v:.0%} of a step's prompts",
        notes=[f"{start:.0%} at the start"],
        rows=_rows(len(means) - 1),
    )


def _length_hacking(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "answers/length_share")
    reward_steps, rewards = _finite(series, "reward")
    if not values or not rewards:
        return None
    start, means = _start(values), _trailing_means(values)
    reward_at = dict(zip(reward_steps, _trailing_means(rewards)))
    reward_start = _start(rewards)
    i = _first(
        steps,
        means,
        lambda i, m: (
            start <= LENGTH_HACK_START_MAX
            and m >= LENGTH_HACK_SHARE
            and reward_at.get(steps[i], -math.inf) > reward_start
        ),
    )
    if i is None:
        return None
    return _warning(
        "length_hacking",
        "answers/length_share",
        steps,
        means,
        i,
        "answers grow towards the length limit while the reward rises",
        "The reward may pay for length rather than quality: compare a long and a short answer of the same step "
        "(Rollouts, sorted by length), and add a length rule to the rewards or lower the length limit",
        show=lambda v: f"{v:.0%} of the limit",
        notes=[f"{start:.0%} at the start"],
        rows=_rows(len(means) - 1),
    )


def _unscored_answers(stage: stages.Stage, series: Series) -> HealthWarning | None:
    steps, values = _finite(series, "answers/unscored")
    if not values:
        return None
    means = _trailing_means(values)
    i = _first(steps, means, lambda i, m: m >= UNSCORED_ANSWERS)
    if i is None:
        return None
    return _warning(
        "unscored_answers",
        "answers/unscored",
        steps,
        means,
        i,
        "answers that no reward source scored",
        "They count 0 in the combined reward and teach nothing: see which answers get None (Rollouts) and make "
        "the sources score them, e.g. a data column reference_match reads, or a function that returns a number",
        show=lambda v: f"{v:.0%} of answers",
        rows=_rows(len(means) - 1),
    )


def _judges(series: Series) -> list[str]:
    return sorted(key.split("/", 1)[1] for key in series if key.startswith("judge/"))


def _reward_hacking(stage: stages.Stage, series: Series) -> list[HealthWarning]:
    """Per judge watching the run (eval.judges): the training reward rose while the judge's rating fell, both by
    more than their noise. The judge's peak before the fall is where they parted; the warning fires at the first
    check that is at least HACKING_CHECKS_AFTER checks past a peak, each of them below it, the last by more than
    HACKING_NOISE standard errors, while the reward's trailing mean is above its mean at the peak by as much."""
    reward_steps, rewards = _finite(series, "reward")
    if len(rewards) < MIN_ROWS:
        return []
    found = []
    for name in _judges(series):
        steps, values = _finite(series, f"judge/{name}")
        se = dict(zip(*_finite(series, f"judge_se/{name}")))
        for i in range(HACKING_CHECKS_AFTER, len(values)):
            peak = max(range(i - HACKING_CHECKS_AFTER + 1), key=lambda k: (values[k], -k))
            if any(values[k] >= values[peak] for k in range(peak + 1, i + 1)):
                continue
            fall = values[peak] - values[i]
            judge_noise = math.hypot(se.get(steps[peak], 0.0), se.get(steps[i], 0.0))
            reward_then, noise_then = _reward_near(reward_steps, rewards, steps[peak])
            reward_now, noise_now = _reward_near(reward_steps, rewards, steps[i])
            rise = reward_now - reward_then
            if (
                fall > HACKING_NOISE * judge_noise
                and fall > 0
                and rise > HACKING_NOISE * math.hypot(noise_then, noise_now)
            ):
                found.append(
                    HealthWarning(
                        "reward_hacking",
                        f"judge/{name}",
                        steps[i],
                        values[i],
                        steps[-1],
                        values[-1],
                        f"the training reward rises while judge {name} falls: they parted at step "
                        f"{_step(steps[peak])}, where {name} was {_fmt(values[peak])}; by step {_step(steps[i])} it "
                        f"was {_fmt(values[i])} and the reward {_fmt(reward_then)} -> {_fmt(reward_now)}"
                        + (f"; {_fmt(values[-1])} at step {_step(steps[-1])}" if i != len(values) - 1 else ""),
                        "The policy may be gaming its reward: read its answers after that step (Rollouts), and keep "
                        "the checkpoint from before it, add a rule against what it exploits, or raise the KL penalty",
                    )
                )
                break
    return found


def _reward_near(steps: Sequence[float], rewards: Sequence[float], step: float) -> tuple[float, float]:
    """(mean, standard error) of the WINDOW reward rows up to `step` (the first WINDOW rows for a step before any)."""
    upto = [r for s, r in zip(steps, rewards) if s <= step][-WINDOW:] or list(rewards[:WINDOW])
    mean = sum(upto) / len(upto)
    if len(upto) < 2:
        return mean, 0.0
    variance = sum((r - mean) ** 2 for r in upto) / (len(upto) - 1)
    return mean, math.sqrt(variance / len(upto))


# Each check by the name a stage's record lists it under (studio/stages.py, Health.checks), which is also the name
# its warnings carry.
CHECKS = {
    "loss_diverging": _loss_diverging,
    "eval_loss_rising": _eval_loss_rising,
    "rm_at_chance": _rm_at_chance,
    "chosen_reward_falling": _chosen_falling,
    "kl_negative": _kl_negative,
    "kl_exploding": _kl_exploding,
    "length_runaway": _length_runaway,
    "length_drop": _length_drop,
    "entropy_collapse": _entropy_collapse,
    "reward_falling": _reward_falling,
    "clip_fraction_high": _clip_high,
    "source_no_signal": _source_no_signal,
    "source_saturated": _source_saturated,
    "source_unscored": _source_unscored,
    "repeated_answers": _repeated_answers,
    "length_hacking": _length_hacking,
    "unscored_answers": _unscored_answers,
    "reward_hacking": _reward_hacking,
}
