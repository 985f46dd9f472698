"""Tokens/s and MFU (studio/trainers/throughput.py): exact token and FLOP counts on a hand-sized model, the GPU peak
table, and a PEFT model's generate() counted as forward-only work."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from studio.trainers import throughput
from studio.trainers.throughput import ThroughputMeter, counted_model, peak_flops


class Toy(nn.Module):
    """Two linear layers (8x8 frozen, 8x2 trained) and a config saying 2 layers of attention 8 wide."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(num_hidden_layers=2, num_attention_heads=2, hidden_size=8)
        self.frozen = nn.Linear(8, 8).requires_grad_(False)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return self.head(self.frozen(torch.ones(*input_ids.shape, 8)))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(throughput.time, "monotonic", fake)
    return fake


def test_training_and_forward_only_tokens_and_flops_are_counted_exactly(clock, monkeypatch):
    monkeypatch.setenv("RLHF_STUDIO_PEAK_TFLOPS", "1e-9")  # 1000 FLOP/s, so MFU is checkable by hand
    model = Toy()
    meter = ThroughputMeter(model)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # 8 real tokens, 2 of padding
    model(torch.zeros(2, 5, dtype=torch.long), attention_mask=mask)
    # weights 64 + 16 = 80, trained 16; attention: 2 layers x 5 positions x width 8
    forward = 2 * 80 + 4 * 2 * 5 * 8
    backward = 2 * 80 + 2 * 16 + 8 * 2 * 5 * 8
    assert meter.tokens == 8 and meter.flops == 8 * (forward + backward)

    with torch.no_grad():  # a reference pass: work done, nothing trained
        model(torch.zeros(2, 5, dtype=torch.long), attention_mask=mask)
    assert meter.tokens == 8 and meter.flops == 8 * (forward + backward) + 8 * forward

    # a cached decoding step: one new token per row, attending over 6 positions; row 0's new token is padding
    with torch.no_grad():
        model(torch.zeros(2, 1, dtype=torch.long), attention_mask=torch.tensor([[1] * 5 + [0], [1] * 6]))
    total = 8 * (forward + backward) + 8 * forward + 1 * (2 * 80 + 4 * 2 * 6 * 8)
    assert meter.flops == total

    clock.now += 2.0
    rates = meter.since_last()
    assert rates == {"tokens_per_second": 4.0, "mfu": pytest.approx(total / 2.0 / 1000.0)}
    clock.now += 1.0
    assert meter.since_last() == {}  # nothing trained since: no row of zeros
    meter.close()
    model(torch.zeros(1, 3, dtype=torch.long))
    assert meter.tokens == 8  # the hook is gone


def test_packed_rows_count_their_examples_not_their_padding(clock):
    model = Toy()
    meter = ThroughputMeter(model)
    # row 0: examples of 3 and 2 tokens, then 2 pads; row 1: one example of 4 tokens, then 3 pads
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 0], [0, 1, 2, 3, 0, 0, 0]])
    model(torch.zeros(2, 7, dtype=torch.long), position_ids=positions)
    # each token attends over its own example: 3x3 + 2x2 + 4x4 = 29 positions over 9 tokens
    context = 29 / 9
    forward = 2 * 80 + 4 * 2 * context * 8
    backward = 2 * 80 + 2 * 16 + 8 * 2 * context * 8
    assert meter.tokens == 9
    assert meter.flops == pytest.approx(9 * (forward + backward))


def test_processes_scale_the_rate_and_cpu_has_no_mfu(clock, monkeypatch):
    monkeypatch.delenv("RLHF_STUDIO_PEAK_TFLOPS", raising=False)
    model = Toy()
    meter = ThroughputMeter(model, processes=2)
    model(torch.zeros(3, 4, dtype=torch.long))  # no mask: every token counts
    clock.now += 4.0
    assert meter.since_last() == {"tokens_per_second": 12 * 2 / 4.0}


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA A10G", 70.0),
        ("Tesla T4", 65.0),
        ("Some Future GPU", None),
    ],
)
def test_peak_flops_by_device_name(monkeypatch, name, tflops):
    monkeypatch.delenv("RLHF_STUDIO_PEAK_TFLOPS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops() == (tflops * 1e12 if tflops else None)


def test_a_peft_models_generate_is_counted_as_forward_only(studio_home):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.modeling.models import tiny_model_path

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_path()), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    meter = ThroughputMeter(counted_model(model))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, min_new_tokens=3, do_sample=False
        )
    assert out.shape[1] == 7
    assert meter.tokens == 0 and meter.flops > 0  # 4 prompt tokens, then 2 cached steps of one token each
    forward_only = meter.flops
    model.train()
    model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.sum().backward()
    assert meter.tokens == 4 and meter.flops > forward_only
