"""`rlhf-studio demo`: the offline end-to-end demo trains SFT, a reward model, PPO and DPO on the tiny model and its
table shows the tuned policies beating the base model on held-out questions, by reward and by the format check."""

from __future__ import annotations

import json

import pytest

from studio import demo
from studio.runs import manager
from tests.conftest import run_cli


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
def test_the_demo_tunes_models_that_beat_the_base_on_reward_and_format(studio_home):
    result = run_cli("demo", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)  # stdout is the JSON alone; progress went to stderr
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
