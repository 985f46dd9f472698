"""The arithmetic of PPO for language models, as pure torch functions (no model, no I/O).

Shapes: `B` responses of `T` tokens; `mask` is 1.0 on real response tokens and 0.0 on padding after the
answer ended. Every function documents its formula; tests/test_ppo_math.py checks them on hand-worked numbers.

    python -m pytest tests/test_ppo_math.py -q

References: Schulman et al. 2017 (PPO), Schulman et al. 2016 (GAE), Ziegler et al. 2019 (KL penalty and its
adaptive controller), Huang et al. 2024 "The N+ implementation details of RLHF with PPO".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """sum(values * mask) / sum(mask), over `dim` or everything."""
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked entries: mean((x - mean)^2), times n / (n - 1) when unbiased."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n > 1:
            var = var * n / (n - 1)
    return var


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over the masked entries; masked-out entries come back as 0.

    With shift_mean=False the mean is added back (used for rewards, whose sign carries meaning)."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_per_token(logp_policy: torch.Tensor, logp_ref: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) at the sampled tokens.

    k1: logp_policy - logp_ref (unbiased, can be negative per token; what Ziegler et al. and TRL use)
    k3: (r - 1) - log r with r = p_ref / p_policy = exp(logp_ref - logp_policy) (unbiased, always >= 0,
        lower variance; Schulman's "Approximating KL divergence")."""
    if estimator == "k1":
        return logp_policy - logp_ref
    if estimator == "k3":
        log_ratio = logp_ref - logp_policy
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (k1 or k3)")


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """r_t = -kl_coef * KL_t on every response token, plus the sequence's scalar score on its last real token.

    scores: (B,), kl and mask: (B, T). Padding positions get 0."""
    rewards = -kl_coef * kl * mask
    lengths = mask.sum(dim=1).long()
    last = (lengths - 1).clamp(min=0)
    has_tokens = (lengths > 0).to(rewards.dtype)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype) * has_tokens
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over each response, right to left (Schulman et al. 2016).

        delta_t = r_t + gamma * V_{t+1} - V_t          (V_{t+1} = 0 past the last real token)
        A_t     = delta_t + gamma * lam * A_{t+1}       (A_{t+1} = 0 past the last real token)
        R_t     = A_t + V_t                             (the value target, "returns")

    Returns (advantages, returns), both (B, T) and 0 on padding. The mask must be a prefix of ones per row
    (responses are left-aligned), which is how the PPO trainer builds it."""
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = (delta + gamma * lam * next_advantage) * m
        advantages[:, t] = advantage
        # Past the end of a row the "next" value and advantage stay 0.
        next_value = values[:, t] * m
        next_advantage = advantage
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(
    logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float
):
    """PPO's clipped surrogate, to minimise, with the share of tokens where the clip was active.

        ratio_t = exp(logp_new_t - logp_old_t)
        L       = mean_t max(-A_t * ratio_t, -A_t * clip(ratio_t, 1 - eps, 1 + eps))
        clip_fraction = mean_t [ -A_t * clip(ratio_t) > -A_t * ratio_t ]

    Returns (loss, clip_fraction, ratio)."""
    ratio = torch.exp(logp_new - logp_old)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction, ratio


def value_loss(
    values_new: torch.Tensor,
    values_old: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
):
    """Clipped value loss (as in OpenAI's baselines and TRL), with the share of tokens where the clip bit.

        V_clip = V_old + clip(V_new - V_old, -c, c)
        L_V    = 0.5 * mean_t max((V_new - R_t)^2, (V_clip - R_t)^2)

    Returns (loss, clip_fraction)."""
    clipped_values = values_old + torch.clamp(values_new - values_old, -cliprange_value, cliprange_value)
    loss_unclipped = (values_new - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(loss_unclipped, loss_clipped), mask)
    clip_fraction = masked_mean((loss_clipped > loss_unclipped).float(), mask)
    return loss, clip_fraction


def approx_kl(logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How far an optimisation epoch moved the policy from the one that sampled: 0.5 * mean (logp_new - logp_old)^2
    (the k2 estimator, as TRL logs it)."""
    return 0.5 * masked_mean((logp_new - logp_old) ** 2, mask)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy of the softmax: H = logsumexp(z) - sum_i softmax(z)_i * z_i, shape logits.shape[:-1]."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] at each position; logits (B, T, V), tokens (B, T) -> (B, T)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@dataclass
class FixedKLController:
    """A constant KL coefficient."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


@dataclass
class AdaptiveKLController:
    """Ziegler et al. 2019: steer the measured KL towards a target.

        error = clip(KL / target - 1, -0.2, 0.2)
        coef  = coef * (1 + error * n_steps / horizon)

    KL above target raises the coefficient (a stronger pull back to the reference); below it, lowers it."""

    value: float
    target: float
    horizon: float = 10000.0

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
