"""PPO's arithmetic on hand-worked numbers: GAE and returns, the clipped objectives, KL, whitening, token rewards
and the adaptive KL controller.

    python -m pytest tests/test_ppo_math.py -q
"""

from __future__ import annotations

import pytest
import torch

from studio.trainers import ppo_math as pm


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------- GAE


def test_gae_matches_hand_computed_values_on_a_masked_response():
    # Row 0: three real tokens, then padding (whose reward and value must be ignored).
    # Row 1: four real tokens with gamma = lam = 1, where A_t is the sum of rewards from t on, minus V_t.
    rewards = t([0.5, -0.2, 1.0, 7.0], [0.0, 0.0, 0.0, 2.0])
    values = t([0.3, 0.4, 0.1, 9.0], [0.5, 1.0, 1.5, 1.0])
    mask = t([1, 1, 1, 0], [1, 1, 1, 1])

    adv, ret = pm.gae(rewards[:1], values[:1], mask[:1], gamma=0.9, lam=0.8)
    # gamma * lam = 0.72
    # t=2: delta = 1.0 + 0.9 * 0 - 0.1 = 0.9;            A2 = 0.9
    # t=1: delta = -0.2 + 0.9 * 0.1 - 0.4 = -0.51;       A1 = -0.51 + 0.72 * 0.9 = 0.138
    # t=0: delta = 0.5 + 0.9 * 0.4 - 0.3 = 0.56;         A0 = 0.56 + 0.72 * 0.138 = 0.65936
    # returns R_t = A_t + V_t: 0.95936, 0.538, 1.0; padding: 0
    assert adv[0].tolist() == pytest.approx([0.65936, 0.138, 0.9, 0.0], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([0.95936, 0.538, 1.0, 0.0], abs=1e-6)

    adv, ret = pm.gae(rewards[1:], values[1:], mask[1:], gamma=1.0, lam=1.0)
    # A_t = (sum of r from t) - V_t = 2 - V_t: 1.5, 1.0, 0.5, 1.0; R_t = 2 everywhere
    assert adv[0].tolist() == pytest.approx([1.5, 1.0, 0.5, 1.0], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([2.0, 2.0, 2.0, 2.0], abs=1e-6)


def test_gae_rows_are_independent():
    rewards = t([0.5, -0.2, 1.0, 7.0], [0.0, 0.0, 0.0, 2.0])
    values = t([0.3, 0.4, 0.1, 9.0], [0.5, 1.0, 1.5, 1.0])
    mask = t([1, 1, 1, 0], [1, 1, 1, 1])
    both, _ = pm.gae(rewards, values, mask, 0.9, 0.8)
    for row in range(2):
        alone, _ = pm.gae(rewards[row : row + 1], values[row : row + 1], mask[row : row + 1], 0.9, 0.8)
        assert torch.allclose(both[row], alone[0])


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = t([0.1, 0.2, 0.3, 0.4], [0.5, -0.5, 0.0, 1.0])
    mask = t([1, 1, 0, 0], [1, 1, 1, 1])
    rewards = pm.token_rewards(torch.tensor([2.0, -1.0]), kl, mask, kl_coef=0.5)
    # row 0: -0.5 * [0.1, 0.2] then + 2 on token 1; padding 0
    assert rewards[0].tolist() == pytest.approx([-0.05, -0.1 + 2.0, 0.0, 0.0])
    # row 1: -0.5 * [0.5, -0.5, 0, 1] then - 1 on token 3
    assert rewards[1].tolist() == pytest.approx([-0.25, 0.25, 0.0, -0.5 - 1.0])


# ---------------------------------------------------------------- clipped objectives


@pytest.mark.parametrize("advantage", [2.0, -2.0])
@pytest.mark.parametrize("ratio", [0.5, 0.9, 1.0, 1.1, 1.5])
def test_clipped_surrogate_equals_the_formula(ratio, advantage):
    eps = 0.2
    logp_old = torch.tensor([[-1.0]])
    logp_new = logp_old + torch.log(torch.tensor(ratio))
    adv, mask = torch.tensor([[advantage]]), torch.ones(1, 1)
    loss, clip_fraction, _ = pm.policy_loss(logp_new, logp_old, adv, mask, eps)

    clipped_ratio = min(max(ratio, 1 - eps), 1 + eps)
    expected = max(-advantage * ratio, -advantage * clipped_ratio)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # The clip binds (zero gradient) only where it makes the objective more pessimistic:
    # A > 0 and ratio > 1 + eps, or A < 0 and ratio < 1 - eps.
    binds = (advantage > 0 and ratio > 1 + eps) or (advantage < 0 and ratio < 1 - eps)
    assert clip_fraction.item() == float(binds)


def test_clipped_surrogate_gradient_vanishes_only_where_the_clip_binds():
    logp_old = torch.zeros(1, 4)
    ratios = torch.tensor([[1.5, 1.5, 0.5, 0.5]])
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    logp_new = torch.log(ratios).requires_grad_(True)
    loss, clip_fraction, _ = pm.policy_loss(logp_new, logp_old, adv, torch.ones(1, 4), 0.2)
    loss.backward()
    # d/dlogp of -A * ratio = -A * ratio / 4 (mean over 4 tokens), unless clipped
    assert logp_new.grad.tolist()[0] == pytest.approx([0.0, 1.5 / 4, -0.5 / 4, 0.0])
    assert clip_fraction.item() == 0.5


def test_clipped_value_loss_equals_the_formula():
    old, ret, mask = t([1.0, 1.0]), t([3.0, 3.0]), t([1, 1])
    new = t([1.1, 2.0])  # inside the clip (0.2), and outside it
    loss, clip_fraction = pm.value_loss(new, old, ret, mask, cliprange_value=0.2)
    # token 0: max((1.1-3)^2, (1.1-3)^2) = 3.61; token 1: max((2-3)^2, (1.2-3)^2) = max(1, 3.24) = 3.24
    assert loss.item() == pytest.approx(0.5 * (3.61 + 3.24) / 2, rel=1e-5)
    assert clip_fraction.item() == 0.5


# ---------------------------------------------------------------- KL, entropy, whitening


def test_kl_is_zero_when_policy_equals_reference():
    logp = torch.log_softmax(torch.randn(3, 5, 11), -1).amax(-1)
    for estimator in ("k1", "k3"):
        assert torch.equal(pm.kl_per_token(logp, logp.clone(), estimator), torch.zeros_like(logp))
    assert pm.approx_kl(logp, logp, torch.ones_like(logp)).item() == 0.0


def test_k3_is_non_negative_and_k1_is_the_log_ratio():
    a, b = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-1.5, -1.0, -0.5])
    assert pm.kl_per_token(a, b, "k1").tolist() == pytest.approx([0.5, -1.0, 0.0])
    assert (pm.kl_per_token(a, b, "k3") >= 0).all()
    with pytest.raises(ValueError):
        pm.kl_per_token(a, b, "k9")


def test_entropy_of_uniform_and_one_hot_logits():
    uniform = torch.zeros(2, 8)
    assert pm.entropy_from_logits(uniform).tolist() == pytest.approx([torch.log(torch.tensor(8.0)).item()] * 2)
    peaked = torch.tensor([[100.0, 0.0, 0.0]])
    assert pm.entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)


def test_logprobs_from_logits_pick_the_token():
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    logp = pm.logprobs_from_logits(logits, torch.tensor([[1, 0]]))
    assert logp.tolist()[0] == pytest.approx(
        [torch.log(torch.tensor(0.5)).item(), -torch.log1p(torch.exp(torch.tensor(-2.0))).item()]
    )


def test_whitening_gives_mean_zero_and_std_one_over_the_mask():
    torch.manual_seed(0)
    values = torch.randn(4, 6) * 5 + 3
    mask = torch.ones(4, 6)
    mask[0, 4:] = 0
    mask[2, 1:] = 0
    values[mask == 0] = 1000.0  # padding must not leak into the statistics
    out = pm.whiten(values, mask)
    assert pm.masked_mean(out, mask).item() == pytest.approx(0.0, abs=1e-5)
    assert pm.masked_var(out, mask).sqrt().item() == pytest.approx(1.0, abs=1e-4)
    assert (out[mask == 0] == 0).all()
    kept = pm.whiten(values, mask, shift_mean=False)
    assert pm.masked_mean(kept, mask).item() == pytest.approx(pm.masked_mean(values, mask).item(), rel=1e-5)


# ---------------------------------------------------------------- KL controllers


def test_adaptive_kl_controller_moves_the_right_way():
    above = pm.AdaptiveKLController(value=0.1, target=6.0, horizon=100)
    above.update(current_kl=12.0, n_steps=10)  # KL over target: error clipped to +0.2
    assert above.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))

    below = pm.AdaptiveKLController(value=0.1, target=6.0, horizon=100)
    below.update(current_kl=5.4, n_steps=10)  # error = 5.4 / 6 - 1 = -0.1
    assert below.value == pytest.approx(0.1 * (1 - 0.1 * 10 / 100))

    on_target = pm.AdaptiveKLController(value=0.1, target=6.0, horizon=100)
    on_target.update(current_kl=6.0, n_steps=10)
    assert on_target.value == pytest.approx(0.1)

    fixed = pm.FixedKLController(0.05)
    fixed.update(100.0, 10)
    assert fixed.value == 0.05
