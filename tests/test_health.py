"""studio/health.py: each warning fires on a bad hand-made series with its exact message, and none fires on the
metrics of real tiny runs or on healthy hand-made series.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_health.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio import health
from studio.runs.metrics import MetricsWriter, read_all
from studio.runs.rundir import RunDir

FIXTURES = Path(__file__).parent / "data" / "metrics"
TINY_RUNS = {"sft": "sft-dolly-tiny", "reward": "rm-hh-tiny", "dpo": "dpo-hh-tiny", "kto": "kto-hh-tiny",
             "ppo": "ppo-tiny", "rejection": "rejection-tiny", "grpo": "grpo-tiny", "rloo": "rloo-tiny"}


def rows_of(key: str, values: list, start: int = 1, every: int = 1) -> list[dict]:
    return [{key: v, "step": start + i * every} for i, v in enumerate(values)]


def only(stage: str, rows: list[dict]) -> health.HealthWarning:
    (warning,) = health.check_rows(stage, rows)
    return warning


@pytest.mark.parametrize("stage", sorted(TINY_RUNS))
def test_silent_on_real_tiny_runs(stage):
    assert health.check_rows(stage, read_all(FIXTURES / f"{TINY_RUNS[stage]}.jsonl")) == []


def test_not_finite_loss_in_any_stage():
    for stage in ("sft", "reward", "dpo", "ppo", "grpo"):
        w = only(stage, rows_of("loss", [1.0, 0.9, "nan", "nan"]) + rows_of("eval_loss", ["inf"], start=4))
        assert (w.check, w.metric, w.step) == ("not_finite", "loss", 3)
        assert w.message == "loss is nan at step 3"
        assert w.suggestion.startswith("Training diverged: lower train.learning_rate")
    w = only("ppo", rows_of("value_loss", [1.0, "-inf"]))
    assert w.message == "value_loss is -inf at step 2"
    assert health.check_rows("sft", rows_of("grad_norm", ["inf"])) == []  # fp16 skips such steps itself


def test_kl_negative():
    w = only("ppo", rows_of("kl", [0.0, -0.1, -0.3, -0.5, -0.6, -0.7]))
    assert (w.check, w.metric, w.step, w.value) == ("kl_negative", "kl", 4, pytest.approx(-0.225))
    assert w.message == "kl went negative: -0.225 (mean of 4 rows) at step 4"
    assert "ppo.kl_estimator=k3" in w.suggestion
    assert "kl_estimator" not in only("grpo", rows_of("kl", [-1.0] * 3)).suggestion
    assert health.check_rows("ppo", rows_of("kl", [0.0, -0.3, 0.2, -0.1, 0.1, 0.0])) == []  # noise around 0


def test_kl_exploding_per_answer_in_ppo_and_per_token_in_grpo_and_rloo():
    w = only("ppo", rows_of("kl", [10.0] * 5 + [40.0] * 5))
    assert (w.check, w.step, w.value) == ("kl_exploding", 8, 28.0)
    assert w.message == "kl is exploding: 28 nats per answer (mean of 5 rows, limit 25) at step 8"
    assert "raise ppo.kl_coef (or set ppo.target_kl)" in w.suggestion
    for stage in ("grpo", "rloo"):
        w = only(stage, rows_of("kl", [0.5] * 5 + [3.0] * 5))
        assert w.message == "kl is exploding: 2.5 nats per token (mean of 5 rows, limit 2) at step 9"
        assert f"raise {stage}.beta" in w.suggestion
    assert health.check_rows("ppo", rows_of("kl", [2.0] * 5 + [3.0] * 5)) == []  # per-token limit, per-answer kl


def test_length_runaway_from_eos_fraction_and_clipped_ratio():
    w = only("ppo", rows_of("eos_fraction", [0.8] * 5 + [0.0] * 5))
    assert (w.check, w.metric, w.step) == ("length_runaway", "eos_fraction", 10)
    assert w.message == "answers run to the length limit: 100% cut off (mean of 5 rows, 20% at the start) at step 10"
    assert "ppo.missing_eos_penalty" in w.suggestion
    w = only("grpo", rows_of("completions/clipped_ratio", [0.1] * 5 + [1.0] * 5))
    assert w.message == "answers run to the length limit: 100% cut off (mean of 5 rows, 10% at the start) at step 10"
    assert "grpo.mask_truncated_completions" in w.suggestion
    # Cut off from the start is not a runaway; rising to 80% is not yet one.
    assert health.check_rows("ppo", rows_of("eos_fraction", [0.0] * 10)) == []
    assert health.check_rows("rloo", rows_of("completions/clipped_ratio", [0.3] * 5 + [0.8] * 5)) == []


def test_length_collapse():
    w = only("grpo", rows_of("completions/mean_length", [20.0] * 5 + [1.0] * 5))
    assert (w.check, w.metric, w.step) == ("length_collapse", "completions/mean_length", 10)
    assert w.message == "answers are collapsing: 1 tokens (mean of 5 rows, 20 at the start) at step 10"
    w = only("rejection", rows_of("response_length", [30.0] * 5 + [2.0] * 5))
    assert w.message == "answers are collapsing: 2 tokens (mean of 5 rows, 30 at the start) at step 10"
    assert health.check_rows("ppo", rows_of("response_length", [14.0] * 5 + [3.0] * 5)) == []  # shorter, not empty


def test_entropy_collapse():
    w = only("ppo", rows_of("entropy", [3.0] * 5 + [0.1] * 5))
    assert (w.check, w.step) == ("entropy_collapse", 10)
    assert w.message == "entropy is collapsing: 0.1 (mean of 5 rows, 3 at the start) at step 10"
    assert health.check_rows("ppo", rows_of("entropy", [3.0] * 5 + [1.0] * 5)) == []


def test_clip_fraction_high():
    w = only("ppo", rows_of("clip_fraction", [0.1] * 5 + [0.9] * 5))
    assert (w.check, w.metric, w.step) == ("clip_fraction_high", "clip_fraction", 7)
    assert w.message == "clip_fraction is high: 0.42 (mean of 5 rows, limit 0.3) at step 7"
    assert "ppo.ppo_epochs" in w.suggestion
    w = only("grpo", rows_of("clip_ratio/region_mean", [0.5] * 5))
    assert w.message == "clip_ratio/region_mean is high: 0.5 (mean of 1 rows, limit 0.3) at step 1"
    assert health.check_rows("ppo", rows_of("clip_fraction", [0.1, 0.25, 0.2, 0.15, 0.1])) == []


def test_reward_rises_then_falls():
    w = only("ppo", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.0] * 5))
    assert (w.check, w.step, w.value) == ("reward_falling", 13, pytest.approx(0.4))
    assert w.message == "reward rose then fell: 0.4 (mean of 5 rows) from a peak of 1, 0 at the start, at step 13"
    assert only("rejection", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.0] * 5)).check == "reward_falling"
    assert health.check_rows("ppo", rows_of("reward", [1.0, 1.2] * 20)) == []  # flat and noisy
    assert health.check_rows("ppo", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.7] * 5)) == []  # kept most


def test_dpo_chosen_reward_falling():
    chosen = [0.0, 0.2, 0.4, 0.2, 0.0, -0.5, -1.0, -1.5, -2.0]
    w = only("dpo", rows_of("rewards/chosen", chosen))
    assert (w.check, w.metric, w.step, w.value) == ("chosen_reward_falling", "rewards/chosen", 8,
                                                      pytest.approx(-0.56))
    assert w.message == ("rewards/chosen is falling: -0.56 (mean of 5 rows) at step 8; the chosen answers are now "
                         "less likely than under the reference")
    assert "raise dpo.beta" in w.suggestion
    assert "raise kto.beta" in only("kto", rows_of("rewards/chosen", chosen)).suggestion
    assert health.check_rows("dpo", rows_of("rewards/chosen", [0.0, 0.5, 1.0, 0.7, 0.6, 0.5, 0.4])) == []


def test_reward_model_accuracy_stuck_at_chance():
    w = only("reward", rows_of("accuracy", [0.5] * 10, start=10, every=10))
    assert (w.check, w.metric, w.step) == ("rm_at_chance", "accuracy", 50)
    assert w.message == "accuracy is stuck at chance: 0.5 (mean of 5 rows) at step 50"
    w = only("reward", rows_of("eval_accuracy", [0.52, 0.5], start=50, every=50))
    assert w.message == "eval_accuracy is stuck at chance: 0.52 (mean of 1 rows) at step 50"
    # At chance early on is normal; so is a slow climb away from it.
    climb = [0.5, 0.5, 0.55, 0.6, 0.65, 0.7, 0.7, 0.75]
    assert health.check_rows("reward", rows_of("accuracy", climb, start=10, every=10)) == []


def test_eval_loss_rising():
    w = only("sft", rows_of("eval_loss", [2.0, 1.5, 1.6, 1.7], start=10, every=10))
    assert (w.check, w.step, w.value) == ("eval_loss_rising", 40, 1.7)
    assert w.message == "eval_loss is rising: 1.7 against its best 1.5 at step 20, seen at step 40"
    assert health.check_rows("reward", rows_of("eval_loss", [0.03, 0.002, 0.004])) == []  # tiny absolute rise


def test_warnings_come_ordered_by_step_and_check_run_reads_the_stage(tmp_path):
    rows = [{"kl": 30.0, "entropy": 3.0, "step": s} for s in range(1, 6)] + [{"loss": "nan", "step": 2}]
    assert [(w.step, w.check) for w in health.check_rows("ppo", rows)] == [(1, "kl_exploding"), (2, "not_finite")]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text("stage: grpo\n", encoding="utf-8")
    writer = MetricsWriter(run.metrics_path)
    for row in rows_of("kl", [3.0] * 3):
        writer.write(row)
    assert [w.message for w in health.check_run(run)] == [
        "kl is exploding: 3 nats per token (mean of 1 rows, limit 2) at step 1"]
