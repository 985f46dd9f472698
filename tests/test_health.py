"""studio/monitor/health.py: each warning fires on a bad hand-made series with its exact message, which names the step
it first fired at and the latest value; none fires on healthy hand-made series or on the metrics of real tiny runs,
except ppo-tiny's answers shrinking from 14 to 3 tokens, which is what the length drop check is for.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_health.py
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.monitor import health
from studio.runs.metrics import MetricsWriter, read_all
from studio.runs.rundir import RunDir

FIXTURES = Path(__file__).parent / "data" / "metrics"
TINY_RUNS = {
    "sft": "sft-dolly-tiny",
    "reward": "rm-hh-tiny",
    "dpo": "dpo-hh-tiny",
    "kto": "kto-hh-tiny",
    "orpo": "orpo-hh-tiny",
    "simpo": "simpo-hh-tiny",
    "cpo": "cpo-hh-tiny",
    "ppo": "ppo-tiny",
    "rejection": "rejection-tiny",
    "grpo": "grpo-tiny",
    "rloo": "rloo-tiny",
}


def rows_of(key: str, values: list, start: int = 1, every: int = 1) -> list[dict]:
    return [{key: v, "step": start + i * every} for i, v in enumerate(values)]


def only(stage: str, rows: list[dict]) -> health.HealthWarning:
    (warning,) = health.check_rows(stage, rows)
    return warning


@pytest.mark.parametrize("stage", sorted(set(TINY_RUNS) - {"ppo"}))
def test_silent_on_real_tiny_runs(stage):
    assert health.check_rows(stage, read_all(FIXTURES / f"{TINY_RUNS[stage]}.jsonl")) == []


def test_ppo_tiny_answers_shrinking_while_the_reward_rises_get_one_warning_naming_the_steps():
    rows = read_all(FIXTURES / "ppo-tiny.jsonl")
    w = only("ppo", rows)
    assert (w.check, w.metric, w.step, w.last_step) == ("length_drop", "response_length", 30, 40)
    assert w.message == (
        "answers are shrinking: 14 -> 3.19 tokens from step 5 to step 40 (means of 5 rows); first "
        "under a third of the start at step 30 (4.54 tokens)"
    )
    assert "lower train.learning_rate" in w.suggestion
    # Read while the run went on, the same warning said where it stood then.
    assert only("ppo", rows[:33]).message == (
        "answers are shrinking: 14 -> 4.05 tokens from step 5 to step 33 "
        "(means of 5 rows); first under a third of the start at step 30 "
        "(4.54 tokens)"
    )
    assert health.check_rows("ppo", rows[:29]) == []


def test_not_finite_loss_in_any_stage():
    for stage in ("sft", "reward", "dpo", "ppo", "grpo"):
        w = only(stage, rows_of("loss", [1.0, 0.9, "nan", "nan"]) + rows_of("eval_loss", ["inf"], start=4))
        assert (w.check, w.metric, w.step, w.last_step) == ("not_finite", "loss", 3, 4)
        assert w.message == "loss is nan at step 4; first at step 3"
        assert w.suggestion.startswith("Training diverged: lower train.learning_rate")
    w = only("ppo", rows_of("value_loss", [1.0, "-inf"]))
    assert w.message == "value_loss is -inf at step 2"
    w = only("ppo", rows_of("value_loss", [1.0, "nan", 0.8]))  # came back: the nan is the news, 0.8 is in last_value
    assert (w.message, w.last_step, w.last_value) == ("value_loss is nan at step 2", 3, 0.8)
    assert health.check_rows("sft", rows_of("grad_norm", ["inf"])) == []  # fp16 skips such steps itself


def test_kl_negative():
    w = only("ppo", rows_of("kl", [0.0, -0.1, -0.3, -0.5, -0.6, -0.7]))
    assert (w.check, w.metric, w.step, w.value) == ("kl_negative", "kl", 4, pytest.approx(-0.225))
    assert (w.last_step, w.last_value) == (6, pytest.approx(-0.44))
    assert w.message == "kl went negative: -0.44 at step 6 (mean of the last 5 rows); first at step 4 (-0.225)"
    assert "ppo.kl_estimator=k3" in w.suggestion
    assert "kl_estimator" not in only("grpo", rows_of("kl", [-1.0] * 3)).suggestion
    assert health.check_rows("ppo", rows_of("kl", [0.0, -0.3, 0.2, -0.1, 0.1, 0.0])) == []  # noise around 0


def test_kl_exploding_per_answer_in_ppo_and_per_token_in_grpo_and_rloo():
    w = only("ppo", rows_of("kl", [10.0] * 5 + [40.0] * 5))
    assert (w.check, w.step, w.value, w.last_step, w.last_value) == ("kl_exploding", 8, 28.0, 10, 40.0)
    assert w.message == (
        "kl is exploding: 40 nats per answer at step 10 (mean of the last 5 rows, limit 25); first "
        "at step 8 (28 nats per answer)"
    )
    assert "raise ppo.kl_coef (or set ppo.target_kl)" in w.suggestion
    for stage in ("grpo", "rloo"):
        w = only(stage, rows_of("kl", [0.5] * 5 + [3.0] * 5))
        assert w.message == (
            "kl is exploding: 3 nats per token at step 10 (mean of the last 5 rows, limit 2); "
            "first at step 9 (2.5 nats per token)"
        )
        assert f"raise {stage}.beta" in w.suggestion
    assert health.check_rows("ppo", rows_of("kl", [2.0] * 5 + [3.0] * 5)) == []  # per-token limit, per-answer kl


def test_a_warning_follows_the_run_after_it_first_fires():
    # KL climbing for 13 steps: read at step 5 and again at step 13, the warning keeps its first crossing and says
    # where KL stands now (it used to stay frozen at the first crossing).
    rows = rows_of("kl", [20.0 * i for i in range(13)])
    early, late = only("ppo", rows[:5]), only("ppo", rows)
    assert (early.step, early.value, early.last_step, early.last_value) == (4, 30.0, 5, 40.0)
    assert early.message == (
        "kl is exploding: 40 nats per answer at step 5 (mean of the last 5 rows, limit 25); "
        "first at step 4 (30 nats per answer)"
    )
    assert (late.step, late.value, late.last_step, late.last_value) == (4, 30.0, 13, 200.0)
    assert late.message == (
        "kl is exploding: 200 nats per answer at step 13 (mean of the last 5 rows, limit 25); "
        "first at step 4 (30 nats per answer)"
    )


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo", "kto"])
def test_loss_diverging_in_every_stage_that_logs_a_training_loss(stage):
    # sft-dolly-tiny at learning rate 1.0, logging every step: 3.4 -> 2.6, then 8.5 and above.
    w = only(stage, rows_of("loss", [3.36, 2.61, 8.52, 9.87, 12.08, 8.4, 6.74]))
    assert (w.check, w.metric, w.step, w.last_step) == ("loss_diverging", "loss", 4, 7)
    assert w.value == pytest.approx((3.36 + 8.52) / 2) and w.last_value == 8.52
    assert w.message == (
        "loss is diverging: 8.52 at step 7 (median of the last 5 rows, lowest 2.98 at step 2, 3.36 "
        "at the start); first at step 4 (5.94)"
    )
    assert w.suggestion.startswith("The learning rate is too high for this model: lower train.learning_rate")


def test_loss_diverging_after_it_had_learned_and_as_logged_every_5_steps():
    w = only("sft", rows_of("loss", [3.0, 2.0, 1.5, 1.2, 1.0, 1.0, 1.0, 2.5, 3.0, 3.2, 3.5], start=5, every=5))
    assert (w.step, w.last_step) == (50, 55)
    assert w.message == (
        "loss is diverging: 3 at step 55 (median of the last 5 rows, lowest 1 at step 35, 3 at the "
        "start); first at step 50 (2.5)"
    )
    # The run at the preset's logging_steps 5: 3.4 at step 1, then 9.9 and around 8.
    w = only("sft", [{"loss": 3.4, "step": 1}] + rows_of("loss", [9.9, 8.1, 7.6, 7.2], start=5, every=5))
    assert (w.step, w.last_step) == (10, 20)


def test_loss_diverging_stays_quiet_on_healthy_noisy_and_near_zero_losses():
    quiet = {
        "falling": [3.4, 2.9, 2.6, 2.5, 2.3, 2.1, 2.2, 2.2, 2.0, 1.9, 2.1, 1.9, 1.8],
        "one bad batch": [2.0, 1.8, 1.7, 9.0, 1.6, 1.5, 1.5, 1.4],
        "flat and noisy": [2.0, 2.2, 1.8, 2.1, 1.9, 2.2, 1.8, 2.0] * 3,
        "near zero, doubled": [0.69, 0.3, 0.05, 0.01, 0.008, 0.01, 0.02, 0.03, 0.025, 0.03],
        "two rows": [3.4, 9.9],
    }
    for name, losses in quiet.items():
        for stage in ("sft", "reward", "dpo", "kto"):
            assert health.check_rows(stage, rows_of("loss", losses)) == [], name
    # Online stages log a policy-gradient objective, whose level says nothing about divergence.
    for stage in ("ppo", "grpo", "rloo", "rejection"):
        assert health.check_rows(stage, rows_of("loss", [0.1, 0.05, 2.0, 3.0, 4.0, 5.0])) == []


def test_length_runaway_from_eos_fraction_and_clipped_ratio():
    w = only("ppo", rows_of("eos_fraction", [0.8] * 5 + [0.0] * 5))
    assert (w.check, w.metric, w.step) == ("length_runaway", "eos_fraction", 10)
    assert w.message == (
        "answers run to the length limit: 100% cut off at step 10 (mean of the last 5 rows, 20% at the start)"
    )
    assert "ppo.missing_eos_penalty" in w.suggestion
    w = only("grpo", rows_of("completions/clipped_ratio", [0.1] * 5 + [1.0] * 5))
    assert w.message == (
        "answers run to the length limit: 100% cut off at step 10 (mean of the last 5 rows, 10% at the start)"
    )
    assert "grpo.mask_truncated_completions" in w.suggestion
    # Cut off from the start is not a runaway; rising to 80% is not yet one.
    assert health.check_rows("ppo", rows_of("eos_fraction", [0.0] * 10)) == []
    assert health.check_rows("rloo", rows_of("completions/clipped_ratio", [0.3] * 5 + [0.8] * 5)) == []


def test_length_drop_names_its_steps_and_says_collapsing_below_a_tenth():
    w = only("grpo", rows_of("completions/mean_length", [20.0] * 5 + [1.0] * 5))
    assert (w.check, w.metric, w.step, w.last_step) == ("length_drop", "completions/mean_length", 9, 10)
    assert w.message == (
        "answers are collapsing: 20 -> 1 token from step 5 to step 10 (means of 5 rows); first under "
        "a third of the start at step 9 (4.8 tokens)"
    )
    w = only("rejection", rows_of("response_length", [30.0] * 5 + [2.0] * 5, every=10))
    assert w.message == (
        "answers are collapsing: 30 -> 2 tokens from step 41 to step 91 (means of 5 rows); first "
        "under a third of the start at step 81 (7.6 tokens)"
    )
    w = only("ppo", rows_of("response_length", [14.0] * 5 + [3.0] * 5))
    assert w.message == "answers are shrinking: 14 -> 3 tokens from step 5 to step 10 (means of 5 rows)"
    # Shorter by half is not flagged, nor a few short answers among long ones.
    assert health.check_rows("ppo", rows_of("response_length", [14.0] * 5 + [7.0] * 20)) == []
    assert health.check_rows("ppo", rows_of("response_length", [14.0] * 5 + [1.0, 1.0, 14.0, 14.0] * 5)) == []


def test_entropy_collapse():
    w = only("ppo", rows_of("entropy", [3.0] * 5 + [0.1] * 5))
    assert (w.check, w.step) == ("entropy_collapse", 10)
    assert w.message == "entropy is collapsing: 0.1 at step 10 (mean of the last 5 rows, 3 at the start)"
    assert health.check_rows("ppo", rows_of("entropy", [3.0] * 5 + [1.0] * 5)) == []


def test_clip_fraction_high():
    w = only("ppo", rows_of("clip_fraction", [0.1] * 5 + [0.9] * 5))
    assert (w.check, w.metric, w.step) == ("clip_fraction_high", "clip_fraction", 7)
    assert w.message == (
        "clip_fraction is high: 0.9 at step 10 (mean of the last 5 rows, limit 0.3); first at step 7 (0.42)"
    )
    assert "ppo.ppo_epochs" in w.suggestion
    # One or two rows are one or two batches: a mean is compared once it averages 3 rows.
    assert health.check_rows("grpo", rows_of("clip_ratio/region_mean", [0.5] * 2)) == []
    w = only("grpo", rows_of("clip_ratio/region_mean", [0.5] * 3))
    assert w.message == "clip_ratio/region_mean is high: 0.5 at step 3 (mean of the last 3 rows, limit 0.3)"
    assert health.check_rows("ppo", rows_of("clip_fraction", [0.1, 0.25, 0.2, 0.15, 0.1])) == []


def test_reward_rises_then_falls():
    w = only("ppo", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.0] * 5))
    assert (w.check, w.step, w.value, w.last_step, w.last_value) == ("reward_falling", 13, pytest.approx(0.4), 15, 0)
    assert w.message == (
        "reward rose then fell: 0 at step 15 (mean of the last 5 rows, peak 1, 0 at the start); first at step 13 (0.4)"
    )
    assert only("rejection", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.0] * 5)).check == "reward_falling"
    assert health.check_rows("ppo", rows_of("reward", [1.0, 1.2] * 20)) == []  # flat and noisy
    assert health.check_rows("ppo", rows_of("reward", [0.0] * 5 + [1.0] * 5 + [0.7] * 5)) == []  # kept most


def test_dpo_chosen_reward_falling():
    chosen = [0.0, 0.2, 0.4, 0.2, 0.0, -0.5, -1.0, -1.5, -2.0]
    w = only("dpo", rows_of("rewards/chosen", chosen))
    assert (w.check, w.metric, w.step, w.value) == ("chosen_reward_falling", "rewards/chosen", 8, pytest.approx(-0.56))
    assert w.message == "rewards/chosen is falling: -1 at step 9 (mean of the last 5 rows); first at step 8 (-0.56)"
    assert w.suggestion.startswith("The chosen answers are now less likely than under the reference")
    assert "raise dpo.beta" in w.suggestion
    assert "raise kto.beta" in only("kto", rows_of("rewards/chosen", chosen)).suggestion
    assert health.check_rows("dpo", rows_of("rewards/chosen", [0.0, 0.5, 1.0, 0.7, 0.6, 0.5, 0.4])) == []


def test_reward_model_accuracy_stuck_at_chance():
    w = only("reward", rows_of("accuracy", [0.5] * 10, start=10, every=10))
    assert (w.check, w.metric, w.step) == ("rm_at_chance", "accuracy", 50)
    assert w.message == "accuracy is stuck at chance: 0.5 at step 100 (mean of the last 5 rows); first at step 50 (0.5)"
    # An eval row already averages the whole held-out set: one is enough, and it reads as that row's value.
    w = only("reward", rows_of("eval_accuracy", [0.52], start=50))
    assert w.message == "eval_accuracy is stuck at chance: 0.52 at step 50"
    w = only("reward", rows_of("eval_accuracy", [0.52, 0.5], start=50, every=50))
    assert w.message == (
        "eval_accuracy is stuck at chance: 0.51 at step 100 (mean of the last 2 rows); first at step 50 (0.52)"
    )
    # At chance early on is normal; so is a slow climb away from it.
    climb = [0.5, 0.5, 0.55, 0.6, 0.65, 0.7, 0.7, 0.75]
    assert health.check_rows("reward", rows_of("accuracy", climb, start=10, every=10)) == []


def test_eval_loss_rising():
    w = only("sft", rows_of("eval_loss", [2.0, 1.5, 1.6, 1.7], start=10, every=10))
    assert (w.check, w.step, w.value) == ("eval_loss_rising", 40, 1.7)
    assert w.message == "eval_loss is rising: 1.7 at step 40 (best 1.5 at step 20)"
    w = only("sft", rows_of("eval_loss", [2.0, 1.5, 1.7, 1.9], start=10, every=10))
    assert (w.step, w.value, w.last_step, w.last_value) == (30, 1.7, 40, 1.9)
    assert w.message == "eval_loss is rising: 1.9 at step 40 (best 1.5 at step 20); first at step 30 (1.7)"
    assert health.check_rows("reward", rows_of("eval_loss", [0.03, 0.002, 0.004])) == []  # tiny absolute rise


def test_warnings_come_ordered_by_step_and_check_run_reads_the_stage(tmp_path):
    rows = [{"kl": 30.0, "entropy": 3.0, "step": s} for s in range(1, 6)] + [{"loss": "nan", "step": 4}]
    assert [(w.step, w.check) for w in health.check_rows("ppo", rows)] == [(3, "kl_exploding"), (4, "not_finite")]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text("stage: grpo\n", encoding="utf-8")
    writer = MetricsWriter(run.metrics_path)
    for row in rows_of("kl", [3.0] * 3):
        writer.write(row)
    assert [w.message for w in health.check_run(run)] == [
        "kl is exploding: 3 nats per token at step 3 (mean of the last 3 rows, limit 2)"
    ]
