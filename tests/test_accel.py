"""GPU fast paths (studio/modeling/accel.py), decided on this CPU machine with the GPU's answers stood in: the attention
kernel, Liger, and gradient checkpointing turned on when the memory estimate is over the GPU's free memory."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging

import pytest
import torch

from studio.config import DataSpec, ModelSpec, RunConfig, TrainSpec
from studio.errors import ModelError
from studio.modeling import accel, estimate
from studio.modeling.estimate import run_estimate


@pytest.fixture
def gpu(monkeypatch):
    """A GPU with `gpu.free` bytes free, and packages installed as `gpu.installed` says."""
    state = type("GPU", (), {"free": 80 * 2**30, "installed": set()})()
    importlib.import_module("peft")  # first, with the real CUDA answers: bitsandbytes probes CUDA on import
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (state.free, 80 * 2**30))
    monkeypatch.setattr(accel, "installed", lambda package: package in state.installed)
    return state


CONFIG = RunConfig(model=ModelSpec(name="tiny"), data=DataSpec(max_length=512), train=TrainSpec(batch_size=32))


def test_checkpointing_turns_on_only_when_the_gpu_asks_for_it(studio_home, gpu, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="studio.modeling.estimate")
    # 16 layers (the estimate reads only config.json), where checkpointing keeps far less than every layer's values
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "architectures": ["LlamaForCausalLM"],
                "hidden_size": 256,
                "intermediate_size": 688,
                "num_hidden_layers": 16,
                "num_attention_heads": 4,
                "vocab_size": 4096,
            }
        ),
        encoding="utf-8",
    )
    config = dataclasses.replace(CONFIG, model=ModelSpec(name=str(tmp_path)))
    without = run_estimate(config).total
    with_it = run_estimate(
        dataclasses.replace(config, train=dataclasses.replace(config.train, gradient_checkpointing=True))
    ).total
    assert with_it < without / 2

    gpu.free = without + 1
    assert estimate.fit_memory(config) is config

    gpu.free = (with_it + without) // 2
    fitted = estimate.fit_memory(config)
    assert fitted.train.gradient_checkpointing and not config.train.gradient_checkpointing
    assert dataclasses.replace(fitted, train=config.train) == config  # nothing else changed
    assert "gradient checkpointing: on, since the estimate without it" in caplog.text

    gpu.free = with_it // 2
    assert estimate.fit_memory(config) is config
    assert "lower train.batch_size or data.max_length" in caplog.text

    several = dataclasses.replace(config, train=dataclasses.replace(config.train, processes=2))
    assert estimate.fit_memory(several) is several  # ZeRO-3 or FSDP would shard what the estimate counts whole


def test_no_gpu_or_no_estimate_leaves_the_config_alone(studio_home, gpu, monkeypatch, tmp_path):
    gpu.free = 1
    offline = dataclasses.replace(CONFIG, model=ModelSpec(name=str(tmp_path / "missing")))
    assert estimate.fit_memory(offline) is offline  # the model load reports the missing folder, not the estimate
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert estimate.fit_memory(CONFIG) is CONFIG


def test_attention_and_liger_follow_what_is_installed(gpu):
    spec = ModelSpec(name="tiny")
    assert accel.attention_implementation(spec, torch.bfloat16) == "sdpa"
    gpu.installed = {"flash_attn", "liger_kernel"}
    assert accel.attention_implementation(spec, torch.bfloat16) == "flash_attention_2"
    assert accel.attention_implementation(spec, torch.float32) == "sdpa"  # FlashAttention takes 16-bit only
    assert accel.use_liger_kernel(CONFIG)
    assert not accel.use_liger_kernel(
        dataclasses.replace(CONFIG, train=dataclasses.replace(CONFIG.train, liger_kernel=False))
    )
    gpu.installed = set()
    assert not accel.use_liger_kernel(CONFIG)
    with pytest.raises(ModelError, match="flash-attn package is not installed"):
        accel.attention_implementation(dataclasses.replace(spec, attention="flash_attention_2"), torch.bfloat16)
