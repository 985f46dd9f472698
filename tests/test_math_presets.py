"""The presets whose online stage is scored by built-in rules: presets/grpo-math-tiny.yaml (SFT on the arithmetic
sample -> GRPO scored by reference_match and format) and presets/ppo-format-tiny.yaml (SFT -> reward model -> PPO
scored by the reward model and a format rule). Each trains end to end through the CLI, every reward source has its
reward/<name> series at every step, and the combined reward rises from the first quarter of steps to the last. Both
are trained once per session by conftest.rule_preset_runs, which the rollout tests read too.

    python -m pytest tests/test_math_presets.py -q             # the quick checks
    python -m pytest tests/test_math_presets.py -q -m slow     # both presets trained: about 3 minutes on 2 idle cores
"""

from __future__ import annotations

import json
import statistics

import pytest

from studio import config as cfg
from studio.pipelines import recipe
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import REPO

GRPO_MATH = REPO / "presets" / "grpo-math-tiny.yaml"
PPO_FORMAT = REPO / "presets" / "ppo-format-tiny.yaml"


def test_the_presets_name_their_reward_sources():
    grpo = recipe.load_pipeline(GRPO_MATH).stages[-1].config
    assert [(s.label, s.builtin, s.args) for s in grpo.rewards.sources] == [
        ("reference_match", "reference_match", {"column": "answer", "mode": "last_number"}),
        (
            "format",
            "format",
            {"pattern": r"The answer is -?\d+\.$", "match": "search", "dotall": True, "ignore_case": False},
        ),
    ]
    assert grpo.data.source == "arithmetic" and grpo.data.eval_fraction > 0
    sft = recipe.load_pipeline(GRPO_MATH).stages[0].config
    # The same data, split and seed: the SFT run holds out the questions GRPO holds out, so neither trains on them.
    assert (sft.data, sft.train.seed) == (grpo.data, grpo.train.seed)

    stages = recipe.load_pipeline(PPO_FORMAT).stages
    assert [s.config.stage for s in stages] == ["sft", "reward", "ppo"] and stages[-1].reward_stages == ["rm"]
    ppo = stages[-1].config
    labels = [(s.label, s.kind, s.weight) for s in ppo.rewards.sources]
    assert labels == [("rm", "run", 1.0), ("three_words", "builtin", 3.0)]


def trained(runs: dict, preset: str) -> dict[str, RunDir]:
    """The runs of a preset the session trained (conftest.rule_preset_runs), by stage name."""
    return {name: RunDir.of(run_id) for name, run_id in runs[preset].items()}


def rise(run: RunDir) -> tuple[float, float, float]:
    """(first quarter's mean reward, last quarter's, the noise of their difference: twice its standard error)."""
    rows = [row for row in read_all(run.metrics_path) if "reward" in row]
    quarter = len(rows) // 4
    first = [row["reward"] for row in rows[:quarter]]
    last = [row["reward"] for row in rows[-quarter:]]
    noise = 2 * ((statistics.variance(first) + statistics.variance(last)) / quarter) ** 0.5
    return statistics.mean(first), statistics.mean(last), noise


def check_sources_logged(run: RunDir) -> list[dict]:
    config = cfg.load_config(run.config_path)
    rows = [row for row in read_all(run.metrics_path) if "reward" in row]
    assert [row["step"] for row in rows] == list(range(1, config.train.max_steps + 1))
    for source in config.rewards.sources:
        for key in (f"reward/{source.label}", f"reward_std/{source.label}", f"scored/{source.label}"):
            assert all(key in row for row in rows), key
    return rows


@pytest.mark.slow
def test_grpo_math_raises_the_reward_on_arithmetic(in_rule_preset_home):
    """Measured on 2 idle CPU cores: about 35 s of SFT and 75 s of GRPO. The first quarter of GRPO's 80 steps averages
    1.42 and the last 1.64 (reference_match 0.42 -> 0.64, format 1.00 -> 1.00); steps vary by about 0.2, so twice the
    standard error of the difference is 0.11: the rise is learning, not noise."""
    runs = trained(in_rule_preset_home, "grpo-math-tiny")
    assert list(runs) == ["sft", "grpo"]
    rows = check_sources_logged(runs["grpo"])
    assert {"reward/reference_match", "reward/format"} <= set(rows[0])
    first, last, noise = rise(runs["grpo"])
    print(f"grpo-math-tiny: reward first quarter {first:.3f}, last quarter {last:.3f}, noise {noise:.3f}")
    assert last > first + max(noise, 0.1), (first, last, noise)
    reports = [json.loads((runs[name].path / "data_report.json").read_text()) for name in ("sft", "grpo")]
    assert reports[0]["held_out"] == reports[1]["held_out"] and len(reports[1]["held_out"]) == 20


@pytest.mark.slow
def test_ppo_format_raises_the_combined_reward(in_rule_preset_home):
    """Measured on 2 idle CPU cores: about 35 s for all three stages. The first quarter of PPO's 40 steps averages 4.26
    and the last 5.85 (the reward model 1.79 -> 3.32, three_words 0.83 -> 0.84); twice the standard error of the
    difference is 0.56."""
    runs = trained(in_rule_preset_home, "ppo-format-tiny")
    assert list(runs) == ["sft", "rm", "ppo"]
    rows = check_sources_logged(runs["ppo"])
    assert {f"reward/{runs['rm'].id}", "reward/three_words"} <= set(rows[0])
    first, last, noise = rise(runs["ppo"])
    print(f"ppo-format-tiny: reward first quarter {first:.3f}, last quarter {last:.3f}, noise {noise:.3f}")
    assert last > first + max(noise, 0.5), (first, last, noise)
