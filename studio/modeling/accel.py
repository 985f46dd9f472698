"""GPU fast paths, picked automatically, each with a line in the run's log saying what was used and why not more.

- Attention (`model.attention: auto`): FlashAttention 2 on a GPU when the flash-attn package is installed and the
  weights are 16-bit, else PyTorch's fused SDPA attention. On a CPU transformers' own default is kept.
- Liger kernels for SFT (`train.liger_kernel: true`): fused RMSNorm, RoPE, SwiGLU and a cross-entropy that never
  holds the full logits, on a GPU when liger-kernel is installed (through TrainingArguments.use_liger_kernel).
- Gradient checkpointing when memory asks for it: decided from the memory estimate (estimate.fit_memory).

bench/gpu.py measures them on a GPU; nothing here changes what a CPU run does.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from studio.config import ModelSpec, RunConfig
from studio.errors import ModelError

log = logging.getLogger(__name__)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def attention_implementation(spec: ModelSpec, dtype: torch.dtype) -> str | None:
    """The attn_implementation to load the model with; None keeps transformers' default."""
    if spec.attention == "flash_attention_2" and not installed("flash_attn"):
        raise ModelError(
            "model.attention = flash_attention_2, but the flash-attn package is not installed; "
            "pip install flash-attn, or set model.attention: auto"
        )
    if spec.attention != "auto":
        return spec.attention
    if not torch.cuda.is_available():
        return None
    if installed("flash_attn") and dtype in (torch.bfloat16, torch.float16):
        log.info("attention: FlashAttention 2")
        return "flash_attention_2"
    why = "the flash-attn package is not installed" if not installed("flash_attn") else f"the weights are {dtype}"
    log.info("attention: PyTorch SDPA (FlashAttention 2 not used: %s)", why)
    return "sdpa"


def use_liger_kernel(config: RunConfig) -> bool:
    """Whether SFT runs with Liger's kernels."""
    if not config.train.liger_kernel or not torch.cuda.is_available():
        return False
    if not installed("liger_kernel"):
        log.info("Liger kernels: not used (pip install liger-kernel for faster, leaner SFT on a GPU)")
        return False
    log.info("Liger kernels: on")
    return True
