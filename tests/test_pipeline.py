"""Pipelines: stages validated together, run in order as linked runs, stopped by a failed stage; resume."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from studio import config as cfg
from studio.errors import ConfigError
from studio.pipelines import recipe
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import REPO, run_cli

PRESETS = sorted((REPO / "presets").glob("*.yaml"))
PIPELINES = [p for p in PRESETS if "stages" in yaml.safe_load(p.read_text())]


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_every_pipeline_preset_validates(path):
    loaded = recipe.load_pipeline(path)
    assert len(loaded.stages) >= 2
    assert all(
        stage.parent in [s.name for s in loaded.stages[:i]] or stage.parent is None
        for i, stage in enumerate(loaded.stages)
    )


def _raw():
    return {
        "pipeline": "p",
        "defaults": {"model": {"name": "tiny"}, "train": {"max_steps": 5}},
        "stages": [
            {"name": "sft", "stage": "sft", "data": {"path": "sample"}},
            {"name": "dpo", "stage": "dpo", "from": "sft", "data": {"source": "hh-rlhf", "path": "sample"}},
        ],
    }


def test_defaults_and_overrides_reach_the_right_stages():
    loaded = recipe.from_dict(_raw(), ["train.learning_rate=0.01", "stages.dpo.dpo.beta=0.3"])
    sft, dpo = loaded.stages
    assert (sft.name, sft.parent, dpo.parent) == ("sft", None, "sft")
    assert sft.config.train.max_steps == dpo.config.train.max_steps == 5
    assert sft.config.train.learning_rate == dpo.config.train.learning_rate == 0.01
    assert (sft.config.dpo.beta, dpo.config.dpo.beta) == (0.1, 0.3)
    assert sft.config.name == "sft" and dpo.config.data.source == "hh-rlhf"


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda r: r["stages"][1].update({"from": "nope"}),
            "stages.dpo.from = 'nope': not an earlier stage (earlier: sft)",
        ),
        (lambda r: r["stages"][1].update({"name": "sft"}), "stages[2]: the name 'sft' is used twice"),
        (
            lambda r: r["stages"][1].update({"data": {"source": "dolly"}}),
            "stages.dpo: data.source = 'dolly' gives sft rows, but the dpo stage trains on preference rows",
        ),
        (
            lambda r: r["stages"][0].update({"train": {"learning_rate": -1}}),
            "stages.sft: train.learning_rate = -1.0: must be greater than 0",
        ),
        (lambda r: r.update({"stage": "sft"}), "unknown pipeline key 'stage'"),
        (lambda r: r["stages"][0].pop("name"), "stages[1]: every stage needs a name"),
    ],
)
def test_pipeline_mistakes_are_named(change, message):
    raw = _raw()
    change(raw)
    with pytest.raises(ConfigError) as err:
        recipe.from_dict(raw)
    assert str(err.value).startswith(message)


def _instructgpt_raw():
    raw = _raw()
    raw["stages"][1:] = [
        {"name": "rm", "stage": "reward", "from": "sft", "data": {"source": "hh-rlhf", "path": "sample"}},
        {
            "name": "ppo",
            "stage": "ppo",
            "from": "sft",
            "rewards_from": "rm",
            "data": {"source": "hh-rlhf", "path": "sample"},
        },
    ]
    return raw


def _with_safety_stage(raw: dict) -> dict:
    raw["stages"].insert(
        2,
        {
            "name": "safety",
            "stage": "reward",
            "reward": {"kind": "safety"},
            "data": {"source": "hh-rlhf", "path": "sample"},
        },
    )
    return raw


def test_rewards_from_names_the_reward_stages_whose_runs_score_ppo():
    loaded = recipe.from_dict(_instructgpt_raw())
    ppo = loaded.stages[2]
    assert (ppo.parent, ppo.reward_stages, ppo.config.rewards.runs) == ("sft", ["rm"], ["rm"])
    two = _with_safety_stage(_instructgpt_raw())
    two["stages"][3].update({"rewards_from": ["rm", "safety"], "rewards": {"combine": "safety_gated"}})
    gated = recipe.from_dict(two).stages[3].config.rewards
    assert (gated.runs, gated.combine) == (["rm", "safety"], "safety_gated")


def test_rewards_from_stages_come_first_before_rule_and_function_sources():
    raw = _instructgpt_raw()
    rule = {"builtin": "length", "args": {"target": 20}, "weight": 0.5}
    raw["stages"][2]["rewards"] = {"sources": [rule]}
    sources = recipe.from_dict(raw).stages[2].config.rewards.sources
    assert [(s.kind, s.label, s.weight) for s in sources] == [("run", "rm", 1.0), ("builtin", "length", 0.5)]
    assert sources[1].args == {"target": 20, "unit": "words", "tolerance": 0, "falloff": 20}


def test_a_legacy_reward_models_section_beside_rewards_from():
    """A pipeline written before `rewards`: its reward_models.combine still gates the rewards_from runs, and its
    reward_models.runs beside rewards_from is refused as two ways of naming the reward runs."""
    gated = _with_safety_stage(_instructgpt_raw())
    gated["stages"][3].update({"rewards_from": ["rm", "safety"], "reward_models": {"combine": "safety_gated"}})
    spec = recipe.from_dict(gated).stages[3].config.rewards
    assert (spec.runs, spec.combine) == (["rm", "safety"], "safety_gated")
    both = _instructgpt_raw()
    both["stages"][2]["reward_models"] = {"runs": ["x"]}
    with pytest.raises(ConfigError) as err:
        recipe.from_dict(both)
    assert str(err.value) == (
        "stages.ppo: give the reward runs either as rewards_from (earlier reward stages) or as rewards.sources run "
        "entries, not both"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda r: r["stages"][2].update({"rewards_from": "sft"}),
            "stages.ppo.rewards_from = 'sft': that stage trains sft, not a reward model",
        ),
        (
            lambda r: r["stages"][2].update({"rewards_from": "later"}),
            "stages.ppo.rewards_from = 'later': not an earlier stage (earlier: sft, rm)",
        ),
        (
            lambda r: r["stages"][2].update({"rewards_from": 3}),
            "stages.ppo.rewards_from: expected the name of an earlier reward stage, or a list",
        ),
        (
            lambda r: r["stages"][2].update({"rewards": {"sources": [{"builtin": "format"}, {"run": "x"}]}}),
            "stages.ppo: give the reward runs either as rewards_from (earlier reward stages) or as rewards.sources "
            "run entries, not both",
        ),
        (
            lambda r: r["stages"][1].update({"rewards_from": "sft"}),
            "stages.rm.rewards_from = 'sft': that stage trains sft, not a reward model",
        ),
        (lambda r: r["stages"][2].pop("rewards_from"), "stages.ppo: rewards.sources is empty"),
    ],
)
def test_rewards_from_mistakes_are_named(change, message):
    raw = _instructgpt_raw()
    change(raw)
    with pytest.raises(ConfigError) as err:
        recipe.from_dict(raw)
    assert str(err.value).startswith(message)


@pytest.mark.slow
def test_the_ppo_tiny_preset_runs_sft_then_a_reward_model_then_ppo(studio_home):
    """The InstructGPT pipeline end to end through the CLI (about a minute on 2 CPU cores, alone)."""
    result = run_cli("train", "presets/ppo-tiny.yaml", timeout=900)
    assert result.returncode == 0, result.stderr
    runs = json.loads(run_cli("runs", "--json").stdout)
    assert [(r["stage"], r["state"]) for r in runs] == [
        ("sft", "completed"),
        ("reward", "completed"),
        ("ppo", "completed"),
    ]
    sft, rm, ppo = (RunDir.of(r["id"]) for r in runs)
    ppo_config = cfg.load_config(ppo.config_path)
    assert ppo_config.init.from_run == sft.id and ppo_config.rewards.runs == [rm.id]
    rows = read_all(ppo.metrics_path)
    assert [r["step"] for r in rows] == list(range(1, ppo_config.train.max_steps + 1))
    for row in rows:
        assert {"reward", "kl", "entropy", "value_loss", "clip_fraction"} <= set(row), row
    quarter = len(rows) // 4
    # The reward model separates the sample's polite and rude answers; PPO finds what it likes within 40 steps
    # (about -0.4 to 2.3 from the first to the last quarter when measured).
    assert sum(r["reward"] for r in rows[-quarter:]) / quarter > sum(r["reward"] for r in rows[:quarter]) / quarter


def test_a_bad_stage_override_is_refused():
    with pytest.raises(ConfigError, match="no stage named 'rm'"):
        recipe.from_dict(_raw(), ["stages.rm.train.max_steps=3"])


@pytest.mark.slow
def test_pipeline_runs_stages_as_linked_runs(studio_home):
    result = run_cli("train", "presets/sft-dpo-tiny.yaml", "--set", "train.max_steps=4", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "pipeline sft-dpo-tiny completed" in result.stdout
    runs = json.loads(run_cli("runs", "--json").stdout)
    assert [(r["stage"], r["state"]) for r in runs] == [("sft", "completed"), ("dpo", "completed")]
    assert runs[1]["parent"] == runs[0]["id"]
    dpo_config = yaml.safe_load(RunDir.of(runs[1]["id"]).config_path.read_text())
    assert dpo_config["init"]["from_run"] == runs[0]["id"] and dpo_config["model"]["name"] == "tiny"
    assert RunDir.of(runs[0]["id"]).read_status().pipeline == RunDir.of(runs[1]["id"]).read_status().pipeline
    listing = run_cli("runs").stdout.splitlines()
    assert listing[2].rstrip().endswith(runs[0]["id"])  # the DPO row names its parent


@pytest.mark.slow
def test_a_failed_stage_stops_the_pipeline(studio_home):
    # Rows too long for data.max_length are found by the stage's worker (a broken file is refused before any stage).
    result = run_cli(
        "train",
        "presets/sft-dpo-tiny.yaml",
        "--set",
        "train.max_steps=2",
        "--set",
        "stages.dpo.data.max_length=16",
        "--set",
        "stages.dpo.data.on_bad_rows=fail",
        timeout=600,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: pipeline sft-dpo-tiny stopped at stage dpo"
    assert "over data.max_length = 16" in result.stderr
    assert [r["state"] for r in json.loads(run_cli("runs", "--json").stdout)] == ["completed", "failed"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_complete_checkpoint(studio_home):
    config = cfg.load_config(
        "presets/sft-dolly-tiny.yaml",
        ["train.max_steps=150", "train.save_steps=20", "train.logging_steps=1", "train.eval_steps=0"],
    )
    run, proc = manager.start(config)
    deadline = time.monotonic() + 120
    while (run.read_status().step or 0) < 47:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(run.read_status().pid, signal.SIGKILL)  # the training process; its supervisor records the end
    proc.wait(timeout=60)
    status = manager.status(run)
    assert status.state == "failed" and "SIGKILL" in status.error
    last_complete = run.complete_checkpoints()[-1].name
    assert last_complete in ("checkpoint-40", "checkpoint-60")
    logged_before = max(row["step"] for row in read_all(run.metrics_path))
    assert logged_before > int(last_complete.split("-")[1])  # steps after the checkpoint were logged, then lost

    result = run_cli("resume", run.id, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resumed from step {last_complete.split('-')[1]}" in result.stdout
    status = run.read_status()
    assert status.state == "completed" and status.step == 150
    steps = [row["step"] for row in read_all(run.metrics_path) if "loss" in row]
    assert steps == list(range(1, 151)), "the step sequence has a gap or a restart"
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert f"resuming from {last_complete}" in Path(run.log_path).read_text()


def test_only_failed_or_cancelled_runs_resume(studio_home):
    run = manager.create(cfg.RunConfig())
    result = run_cli("resume", run.id)
    assert result.returncode != 0 and "is queued; only failed or cancelled runs can be resumed" in result.stderr
