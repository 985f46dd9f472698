"""Rollout rows from a trainer's tensors, as studio/runs/rollouts.py defines them: what ppo, grpo, rloo and rejection
share to record the answers they sampled.

    rows = answer_rows(step, prompts, answers, combined, per_source, lengths=..., ended=..., kl=...)
    add_token_detail(rows, tokenizer, answer_ids, policy_logprobs, reference_logprobs, count=2)
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from studio.runs.rollouts import prompt_text


def answer_rows(
    step: int,
    prompts: list,
    answers: list[str],
    combined: torch.Tensor,
    per_source: dict[str, torch.Tensor],
    *,
    lengths: torch.Tensor,
    ended: torch.Tensor,
    kl: torch.Tensor | None = None,
    **per_answer: list | torch.Tensor,
) -> list[dict]:
    """One row per answer. Scores that are NaN (a source that gave none) become None; `per_answer` adds a field
    per answer (group, advantage, penalty, kept, round)."""
    extra = {key: _values(values) for key, values in per_answer.items()}
    combined_values, kl_values = _values(combined), _values(kl) if kl is not None else None
    source_values = {name: _values(scores) for name, scores in per_source.items()}
    lengths_values, ended_values = _values(lengths), _values(ended)
    rows = []
    for i, answer in enumerate(answers):
        rows.append(
            {
                "step": step,
                "prompt": prompt_text(prompts[i]),
                "answer": answer,
                "reward": _score(combined_values[i]),
                "scores": {name: _score(values[i]) for name, values in source_values.items()},
                "kl": None if kl_values is None else _score(kl_values[i]),
                "length": int(lengths_values[i]),
                "ended": bool(ended_values[i]),
                **{key: values[i] for key, values in extra.items()},
            }
        )
    return rows


def add_token_detail(
    rows: list[dict],
    tokenizer,
    answer_ids: list[list[int]],
    logprobs: list[list[float]] | torch.Tensor,
    ref_logprobs: list[list[float]] | torch.Tensor | None,
    count: int,
) -> None:
    """Give the first `count` rows their tokens (as text pieces) with each token's log-probability under the policy
    and the reference (None without one). `answer_ids[i]` holds answer i's tokens only (no padding); the log-prob
    rows line up with them from their start."""
    for i in range(min(count, len(rows))):
        ids = answer_ids[i]
        rows[i]["tokens"] = [tokenizer.decode([token]) for token in ids]
        rows[i]["logprobs"] = [float(v) for v in logprobs[i][: len(ids)]]
        rows[i]["ref_logprobs"] = None if ref_logprobs is None else [float(v) for v in ref_logprobs[i][: len(ids)]]


def _values(values) -> list:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().tolist() if values.dtype != torch.bool else values.cpu().tolist()
    return list(values)


def _score(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


# The repeated-answer share is judged only over at least this many distinct prompts: with fewer, "most prompts got
# the same answer" is two prompts agreeing, which says nothing about collapse.
MIN_PROMPTS_FOR_REPEATS = 4


def answer_stats(
    prompts: list, answers: list[str], per_source: dict[str, torch.Tensor], lengths, length_limit: int
) -> dict[str, float]:
    """What the health checks read from a step's answers (studio/monitor/health.py), logged with its metrics:
    answers/repeated (the share of the step's distinct prompts whose answers include the step's most common answer
    text: mode collapse near 1; 0 when the step has fewer than MIN_PROMPTS_FOR_REPEATS distinct prompts, too few to
    tell), answers/length_share (mean answer length over the stage's length limit: length
    hacking near 1) and answers/unscored (the share of answers no reward source scored)."""
    lengths = _values(lengths)
    stats = {"answers/length_share": sum(lengths) / len(lengths) / length_limit if lengths else 0.0}
    scored = [any(not math.isnan(v) for v in values) for values in zip(*(_values(s) for s in per_source.values()))]
    stats["answers/unscored"] = (len(scored) - sum(scored)) / len(scored) if scored else 0.0
    keys = [prompt_text(p) for p in prompts]
    stats["answers/repeated"] = 0.0  # always logged (every process logs the same keys), 0 when too few prompts
    if len(set(keys)) >= MIN_PROMPTS_FOR_REPEATS:
        texts = [" ".join(a.split()) for a in answers]
        common = Counter(texts).most_common(1)[0][0]  # ties: the answer met first, so the figure is reproducible
        stats["answers/repeated"] = len({k for k, t in zip(keys, texts) if t == common}) / len(set(keys))
    return stats
