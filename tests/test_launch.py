"""Several training processes (studio/runs/launcher.py): the accelerate command, the shipped DeepSpeed/FSDP configs, the
refusals, and a real 2-process DDP SFT run on CPU (gloo) started the way the UI and CLI start every run."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest

from studio import config as cfg
from studio.errors import ConfigError
from studio.runs import launcher, manager
from studio.runs.metrics import read_all

WORKER = [sys.executable, "-m", "studio.runs.worker", "/runs/r1", "--training"]


def test_one_process_runs_the_worker_itself():
    assert launcher.command(cfg.RunConfig(), WORKER) == WORKER


def test_two_processes_go_through_accelerate_launch_with_ddp():
    config = cfg.from_dict({"train": {"processes": 2}})
    command = launcher.command(config, WORKER)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "2" and "--multi_gpu" in command
    assert command[-4:] == ["--module", "studio.runs.worker", "/runs/r1", "--training"]


@pytest.mark.parametrize(
    "strategy, kind, zero_stage",
    [("deepspeed-zero2", "DEEPSPEED", 2), ("deepspeed-zero3", "DEEPSPEED", 3), ("fsdp", "FSDP", None)],
)
def test_the_shipped_configs_are_valid_accelerate_configs(strategy, kind, zero_stage):
    from accelerate.commands.config.config_args import load_config_from_file

    config = cfg.from_dict({"train": {"processes": 4, "distributed": strategy}})
    command = launcher.command(config, WORKER)
    path = command[command.index("--config_file") + 1]
    loaded = load_config_from_file(path)  # accelerate's own reader: unknown keys or values fail here
    assert str(loaded.distributed_type).endswith(kind)
    assert "--multi_gpu" not in command and command[command.index("--num_processes") + 1] == "4"
    if zero_stage:
        assert loaded.deepspeed_config["zero_stage"] == zero_stage
    else:
        assert loaded.fsdp_config["fsdp_use_orig_params"] is True  # LoRA's frozen and trained weights side by side


def test_deepspeed_without_its_package_is_refused_before_a_run_exists(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    config = cfg.from_dict({"train": {"processes": 2, "distributed": "deepspeed-zero3"}})
    with pytest.raises(ConfigError, match=r"^train.distributed = deepspeed-zero3 needs the deepspeed package"):
        launcher.check(config)
    launcher.check(cfg.from_dict({"train": {"processes": 1, "distributed": "deepspeed-zero3"}}))  # one process: unused


@pytest.mark.parametrize("stage", ["ppo", "rejection"])
def test_the_own_loop_stages_take_ddp_only(stage):
    raw = {
        "stage": stage,
        "train": {"processes": 2, "distributed": "fsdp"},
        "rewards": {"sources": [{"run": "some-reward-run"}]},
        "data": {"source": "hh-rlhf"},
    }
    if stage == "rejection":
        raw["train"]["max_steps"] = -1
    with pytest.raises(ConfigError, match=f"^train.distributed = fsdp: the {stage} stage runs its own loop"):
        cfg.from_dict(raw)


@pytest.mark.slow
def test_two_cpu_processes_train_one_sft_run_and_only_rank_0_writes(studio_home, monkeypatch):
    """manager.start -> the worker's supervisor -> accelerate launch -> 2 ranks (gloo); about a minute."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = cfg.load_config(
        "presets/sft-dolly-tiny.yaml",
        [
            "train.processes=2",
            "train.max_steps=4",
            "train.logging_steps=1",
            "train.eval_steps=0",
            "train.save_steps=0",
            "timeline.prompts=[]",
        ],
    )
    run, _ = manager.start(config)
    deadline = time.monotonic() + 400
    while manager.status(run).state not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, run.log_path.read_text()[-3000:]
        time.sleep(0.5)
    log = run.log_path.read_text()
    assert run.read_status().state == "completed", log[-3000:]
    assert "training process rank 0 of 2" in log and "training process rank 1 of 2" in log
    assert log.count("run completed") == 2  # both ranks trained to the end
    rows = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert [row["step"] for row in rows] == [1, 2, 3, 4]  # one row a step: rank 1 wrote none
    assert all(row["tokens_per_second"] > 0 for row in rows)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
