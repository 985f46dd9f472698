"""The generation helpers that training and serving share: a conversation's prompt ids, left-padded batches, and
plain batched generation with the model as it is.

    out = generate_batch(model, tokenizer, [[{"role": "user", "content": "Name a fruit."}]], GenerationSpec())
    out.texts, out.tokens, out.tokens_per_second

Used by Compare and Chat (studio/serve/generate.py), by the timeline while a run trains
(studio/trainers/timeline_writer.py) and by the stages that sample their own answers (PPO, rejection sampling).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from studio.config import GenerationSpec
from studio.errors import ModelError


def left_pad(sequences: list[list[int]], pad_id: int, device):
    """(ids, attention mask) tensors of token sequences padded on the left, as generate() wants its prompts."""
    import torch  # here, not above: Compare and Chat import this module in the UI process, which starts without torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, width - len(s) :] = torch.tensor(s)
        mask[row, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


@dataclass
class Generated:
    """Answers to a list of prompts, in order, with how long generating them took."""

    texts: list[str]
    tokens: list[int]  # new tokens per answer, its end-of-turn token included
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return sum(self.tokens) / self.seconds if self.seconds > 0 else 0.0


def sampling_kwargs(settings: GenerationSpec) -> dict:
    """generate() keyword arguments for the settings. Every sampling knob is set, so a model's own
    generation_config (a top_k of 20, say) cannot make one side of a comparison sample differently."""
    if settings.temperature == 0:
        return dict(
            do_sample=False, temperature=None, top_p=None, top_k=None, repetition_penalty=settings.repetition_penalty
        )
    return dict(
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=0,
        repetition_penalty=settings.repetition_penalty,
    )


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a conversation rendered with the chat template, ready for the assistant's turn."""
    if not tokenizer.chat_template:
        raise ModelError(
            "the model's tokenizer has no chat template, so a conversation cannot be turned into a "
            "prompt; use an instruct or chat model (or the tiny model)"
        )
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]


def stop_token_ids(tokenizer, generation_config) -> list[int]:
    """Tokens that end an answer: the tokenizer's end-of-turn token and the model's own eos token(s), from its
    generation config (model.generation_config; None when it has none)."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return sorted(i for i in ids if i is not None)


def answer_length(new_ids: list[int], stop_ids: list[int]) -> tuple[int, int]:
    """(tokens of the answer text, tokens generated including the stop token)."""
    for i, token in enumerate(new_ids):
        if token in stop_ids:
            return i, i + 1
    return len(new_ids), len(new_ids)


def generate_batch(model, tokenizer, prompts: list[list[dict]], settings: GenerationSpec) -> Generated:
    """Answer each prompt (role/content messages) with the model as it is: batches of settings.batch_size,
    left-padded, the KV cache on, every batch starting from settings.seed."""
    import torch
    from transformers import set_seed

    device = next(model.parameters()).device
    stop_ids = stop_token_ids(tokenizer, model.generation_config)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    texts, counts = [], []
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), settings.batch_size):
            chunk = [prompt_ids(tokenizer, p) for p in prompts[start : start + settings.batch_size]]
            ids, mask = left_pad(chunk, pad_id, device)
            set_seed(settings.seed)  # the same random state for every model at every batch: a fair comparison
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=settings.max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=stop_ids,
                    use_cache=True,
                    **sampling_kwargs(settings),
                )
            for row in out[:, ids.shape[1] :].tolist():
                text_len, generated = answer_length(row, stop_ids)
                texts.append(tokenizer.decode(row[:text_len], skip_special_tokens=True).strip())
                counts.append(generated)
    finally:
        model.train(was_training)
    return Generated(texts=texts, tokens=counts, seconds=time.perf_counter() - started)
