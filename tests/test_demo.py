"""`rlhf-studio demo`: the offline end-to-end demo trains SFT, a reward model, PPO and DPO on the tiny model and its
table shows the tuned policies beating the base model on held-out questions, by reward and by the format check."""

from __future__ import annotations

import json
import re

import pytest

from studio import demo
from studio.monitor import health
from studio.runs import manager
from studio.runs.metrics import read_all


def test_the_demo_data_holds_out_questions_and_teaches_the_format_in_part(tmp_path):
    paths = demo.write_data(tmp_path)
    sft = [json.loads(line) for line in paths["sft"].read_text().splitlines()]
    pairs = [json.loads(line) for line in paths["pairs"].read_text().splitlines()]
    held_out = {json.loads(line)["prompt"] for line in paths["held_out"].read_text().splitlines()}
    assert len(held_out) == demo.HELD_OUT
    assert not held_out & {row["prompt"] for row in sft + pairs}  # judged on questions no stage trained on
    taught = sum(demo.in_format(row["completion"]) for row in sft) / len(sft)
    assert 0.6 < taught < 0.7  # two thirds: SFT learns the format in part
    assert all(demo.in_format(p["chosen"]) and not demo.in_format(p["rejected"]) for p in pairs)
    assert demo.write_data(tmp_path / "again")["sft"].read_text() == paths["sft"].read_text()  # reproducible


@pytest.mark.slow
def test_the_demo_tunes_models_that_beat_the_base_on_reward_and_format(in_demo_home):
    out = in_demo_home["result"]  # `rlhf-studio demo --json`, run once per session (conftest.demo_runs)
    assert [(s["name"], s["stage"]) for s in out["stages"]] == [
        ("sft", "sft"),
        ("rm", "reward"),
        ("ppo", "ppo"),
        ("dpo", "dpo"),
    ]
    for stage in out["stages"]:
        assert manager.status(manager.find(stage["run_id"])).state == "completed"
    table = {row["model"]: row for row in out["table"]}
    assert list(table) == ["base", "sft", "ppo", "dpo"]
    base = table["base"]
    for model in ("ppo", "dpo"):
        assert table[model]["reward"] > base["reward"] + 1.0, out["table"]
        assert table[model]["check"] > base["check"] + 0.3, out["table"]


@pytest.mark.slow
def test_a_format_judge_watches_the_demos_ppo_rise_with_its_reward_and_no_hacking_alarm(in_demo_home):
    ppo = manager.find(in_demo_home["runs"]["ppo"])
    rows = read_all(ppo.metrics_path)
    judged = [(r["step"], r["judge/taught_format"]) for r in rows if "judge/taught_format" in r]
    assert [step for step, _ in judged] == [0, 10, 20, 30, 40]
    # SFT already writes the whole taught format in most greedy answers; PPO keeps it and ends at least as high
    values = [value for _, value in judged]
    assert values[0] > 0.5 and values[-1] >= values[0] and min(values) > values[0] - 0.1, judged
    assert all("judge_se/taught_format" in r for r in rows if "judge/taught_format" in r)
    checks = [w.check for w in health.check_run(ppo)]
    assert "reward_hacking" not in checks, checks


def test_the_judges_format_is_the_taught_one():
    assert re.fullmatch(demo.TAUGHT_FORMAT, demo.formatted("Grass is green."), re.DOTALL)
    assert not re.fullmatch(demo.TAUGHT_FORMAT, demo.formatted("Grass is green.") + " And more.", re.DOTALL)
    assert not re.fullmatch(demo.TAUGHT_FORMAT, "Grass is green.", re.DOTALL)
