"""Training throughput: tokens per second and, on a GPU, model FLOPs utilisation (MFU), for every stage.

    meter = ThroughputMeter(model, full_finetune=False, processes=1)   # hooks the model's forward
    ...train...
    row.update(meter.since_last())   # {'tokens_per_second': 5123.4, 'mfu': 0.41, 'gpu_memory_gib': 9.7} on a GPU

Tokens are counted where they are computed: a forward pre-hook on the model reads each call's input ids and
attention mask, so the count is the same for every trainer (TRL's SFT, DPO, reward, KTO, GRPO, RLOO; our PPO)
without knowing their batch layouts. Padding is not counted. A forward with gradients on is a training forward;
one without (a reference model pass, generation, scoring) is forward-only work.

FLOPs, in the usual convention (PaLM appendix B, non-causal attention counted in full):
- matrix work per token: 2 FLOPs per weight of every linear layer (lm_head included; the embedding lookup is
  free) forward; training adds 2 more for the input gradients, and 2 more for the weight gradients of the
  weights that train. With LoRA that is about 4N (frozen weights need no weight gradient), a full fine-tune 6N;
- attention per sequence of length T: 4 * layers * T^2 * width forward, three times that to train.
MFU is the FLOPs done per second over the device's peak dense bf16/fp16 rate (`PEAK_TFLOPS`, or the
RLHF_STUDIO_PEAK_TFLOPS environment variable for a device not in the table). On a CPU, or an unknown GPU, only
tokens per second is reported.
"""

from __future__ import annotations

import logging
import os
import time

import torch

log = logging.getLogger(__name__)

# Peak dense tensor-core TFLOP/s at bf16 (fp16 on cards without bf16), from the makers' data sheets, by a piece of
# the name torch reports. Longer names first: "H100 PCIe" must win over "H100".
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A6000", 155.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("V100", 125.0),
    ("T4", 65.0),
)


def peak_flops(device: torch.device | None = None) -> float | None:
    """The device's peak FLOP/s, or None on a CPU or a GPU this table does not know."""
    override = os.environ.get("RLHF_STUDIO_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12
    if not torch.cuda.is_available() or (device is not None and device.type != "cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    for piece, tflops in PEAK_TFLOPS:
        if piece in name:
            return tflops * 1e12
    return None


def _linear_weights(model: torch.nn.Module) -> tuple[int, int]:
    """(weights of every linear layer, those of them that train). in*out rather than numel: a 4-bit layer packs
    two weights per byte."""
    total = trainable = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            size = module.in_features * module.out_features
            total += size
            if module.weight.requires_grad:
                trainable += size
    return total, trainable


def _attention_shape(model: torch.nn.Module) -> tuple[int, int]:
    """(layers, attention width) from the model's config; (0, 0) when it does not say."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", 0) or 0
    heads = getattr(config, "num_attention_heads", 0) or 0
    head_dim = getattr(config, "head_dim", None) or ((getattr(config, "hidden_size", 0) or 0) // max(heads, 1))
    return layers, heads * head_dim


class ThroughputMeter:
    """Counts the tokens and FLOPs a model computes (see the module docstring); `since_last` turns them into rates.

    `processes`: how many processes train the same way (DDP); each counts its own, so the rate is scaled by it.
    """

    def __init__(self, model: torch.nn.Module, processes: int = 1):
        self.processes = max(1, processes)
        self._weights, self._trained_weights = _linear_weights(model)
        self._layers, self._width = _attention_shape(model)
        self._device = next(model.parameters()).device
        self._peak = peak_flops(self._device)
        # Running sums kept as tensors on the model's device: reading a count would wait for the GPU, so it is
        # read only when a rate is asked for, not at every forward.
        self._tokens = torch.zeros((), dtype=torch.int64, device=self._device)  # training tokens
        self._flops = torch.zeros((), dtype=torch.float64, device=self._device)  # training and forward-only work
        self._last = (time.monotonic(), 0, 0.0)
        self._hook = model.register_forward_pre_hook(self._count, with_kwargs=True)

    @property
    def tokens(self) -> int:
        return int(self._tokens)

    @property
    def flops(self) -> float:
        return float(self._flops)

    def close(self) -> None:
        self._hook.remove()

    def _count(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            return
        mask, positions = kwargs.get("attention_mask"), kwargs.get("position_ids")
        new = ids.shape[1]  # with a KV cache only the last columns are new tokens
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            tokens = mask[:, -new:].sum().to(self._device)
            context = mask.shape[1]
        elif isinstance(positions, torch.Tensor) and positions.shape == ids.shape and new > 1:
            tokens, context = _packed_tokens(positions.to(self._device))
        else:
            tokens, context = ids.numel(), new
        # Gradients on means a training forward. Not module.training: PPO trains with dropout off (eval mode).
        training = torch.is_grad_enabled()
        # per token: matrix work, plus attention over the `context` positions it attends to
        forward = 2 * self._weights + 4 * self._layers * context * self._width
        if training:
            backward = 2 * self._weights + 2 * self._trained_weights + 8 * self._layers * context * self._width
            self._tokens += tokens
            self._flops += tokens * (forward + backward)
        else:
            self._flops += tokens * forward

    def since_last(self) -> dict[str, float]:
        """Rates over the time since the previous call: `tokens_per_second` (training tokens); on a GPU also
        `gpu_memory_gib` (the peak allocated so far) and, with a known peak, `mfu` (a fraction of 1)."""
        now, total_tokens, total_flops = time.monotonic(), self.tokens, self.flops
        then, tokens, flops = self._last
        self._last = (now, total_tokens, total_flops)
        elapsed = now - then
        if elapsed <= 0 or total_tokens == tokens:
            return {}
        rates = {"tokens_per_second": (total_tokens - tokens) * self.processes / elapsed}
        if self._peak:
            rates["mfu"] = (total_flops - flops) / elapsed / self._peak
        if self._device.type == "cuda":
            rates["gpu_memory_gib"] = torch.cuda.max_memory_allocated(self._device) / 2**30
        return rates


def _packed_tokens(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, mean context) of packed rows without an attention mask, where each example's positions restart
    at 0 and padding sits at position 0 (studio/trainers/packing.py, TRL's padding-free batches). A token at 0
    is an example's first when the next is at 1. An example of n tokens attends over n positions for each of its
    tokens, n squared in all, which is also the sum of 2 x position + 1 over its tokens."""
    follows = torch.zeros_like(positions, dtype=torch.bool)
    follows[:, :-1] = positions[:, 1:] == 1
    real = (positions > 0) | follows
    tokens = real.sum()
    return tokens, ((2 * positions + 1) * real).sum() / tokens.clamp(min=1)


def counted_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose forward every computation goes through: a PEFT model's inner transformers model, since
    PEFT's generate() calls that one directly and would pass a hook on the wrapper by."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
