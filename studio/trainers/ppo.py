"""PPO (RLHF's reinforcement learning stage): the policy samples answers to prompts, completed reward runs score
them, and the policy is pushed towards higher scores while a per-token KL penalty keeps it near its starting
weights. Our own loop on torch + transformers + peft (TRL 1.x ships no PPO trainer); the arithmetic lives in
studio/trainers/ppo_math.py.

    rlhf-studio train my-ppo.yaml      # stage: ppo, init.from_run: <sft run>, reward_models.runs: [<reward run>]

Design choices:
- policy = the starting weights (init.from_run, usually an SFT run) + a fresh LoRA adapter; the reference is the
  same model with the adapter disabled, so there is no second copy in memory. With LoRA off, the reference is a
  frozen copy (twice the memory).
- value function: a small value head (one Linear(hidden, 1)) on the policy's last hidden state, trained with the
  LoRA weights. It is cheap and shares the policy's body, so one forward gives log-probs and values; a separate
  value model initialised from the reward model (InstructGPT) is a later option.
- dropout is off throughout (the model stays in eval mode), so the log-probs that sampled an answer and the ones
  recomputed while optimising agree, as TRL does.
- one process on one device (GPU if there is one); no accelerate / multi-GPU yet, no checkpoints and resume yet
  (a cancelled run stops between steps and keeps nothing), and a constant learning rate.

Each step writes one metrics.jsonl row: reward (the combined score before the missing-EOS penalty), reward_std,
reward/<run id>, reward_with_eos_penalty, kl (per answer, summed over its tokens), kl_coef, entropy (per token),
policy_loss, value_loss, clip_fraction, value_clip_fraction, approx_kl, response_length, eos_fraction,
time/generation (sampling and scoring) and time/optimization (seconds), plus step, epoch (0) and time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time

import torch
from torch import nn

from studio import data, models
from studio.config import SOURCE_FORMATS, RunConfig
from studio.rewards import RewardJudge
from studio.runs.metrics import MetricsWriter
from studio.runs.rundir import RunDir
from studio.trainers import ppo_math as pm
from studio.trainers.common import start_weights

log = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"


# ---------------------------------------------------------------- models


class PolicyWithValue(nn.Module):
    """The policy (a PeftModel, or a plain causal LM with LoRA off) and its value head; `forward` gives the
    logits and values over the response positions of [prompt | response] sequences in one pass."""

    def __init__(self, policy, reference=None):
        super().__init__()
        self.policy = policy
        self.reference = reference  # only with LoRA off; otherwise the adapter is disabled instead
        hidden = policy.get_input_embeddings().embedding_dim
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)  # start predicting 0: no random value noise in the first advantages
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, prompt_width: int):
        """(logits, values) at the positions that predict each response token: shapes (B, T, V) and (B, T)."""
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=_positions(attention_mask), output_hidden_states=True, use_cache=False)
        hidden = out.hidden_states[-1][:, prompt_width - 1:-1]
        logits = out.logits[:, prompt_width - 1:-1].float()
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1).float()
        return logits, values

    @torch.no_grad()
    def reference_logits(self, input_ids, attention_mask, prompt_width: int):
        """Logits of the starting weights over the response positions."""
        if self.reference is not None:
            model, context = self.reference, contextlib.nullcontext()
        else:
            model, context = self.policy, self.policy.disable_adapter()
        with context:
            out = model(input_ids=input_ids, attention_mask=attention_mask,
                        position_ids=_positions(attention_mask), use_cache=False)
        return out.logits[:, prompt_width - 1:-1].float()


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on the first real token of a left-padded row, as generate() uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def build_model(config: RunConfig, device: torch.device) -> PolicyWithValue:
    policy = models.load_causal_lm(config.model, start_weights(config))
    policy = models.add_lora(policy, config.lora, config.model, "CAUSAL_LM", config.train.gradient_checkpointing)
    reference = None
    if not config.lora.enabled:
        reference = models.load_causal_lm(config.model, start_weights(config)).eval().requires_grad_(False)
    model = PolicyWithValue(policy, reference)
    if config.model.quantization == "none":
        model.to(device)
    else:
        model.value_head.to(next(policy.parameters()).device)
    model.eval()  # dropout off for good, see the module docstring
    trainable, total = models.count_parameters(policy)
    log.info("policy: %s, %d parameters, %d trainable, plus a %d-weight value head; reference: %s",
             config.model.name, total, trainable, sum(p.numel() for p in model.value_head.parameters()),
             "the policy with its adapter disabled" if reference is None else "a frozen copy")
    return model


# ---------------------------------------------------------------- the loop


def _prompts(config: RunConfig, tokenizer, run: RunDir) -> list[list[dict]]:
    """The prompt messages of every usable row of the data source (any format: only the prompt is used)."""
    loaded = data.prepare(config.data, SOURCE_FORMATS[config.data.source][0], tokenizer, run)
    prompts = [row["prompt"] for row in loaded.rows]
    log.info("data: %d prompts", len(prompts))
    return prompts


def _left_pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, width - len(s):] = torch.tensor(s)
        mask[row, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def _response_mask(responses: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, ended): 1 on each response's tokens up to and including its first EOS; whether it had one."""
    is_eos = responses == eos_id
    ended = is_eos.any(dim=1)
    # Tokens strictly after the first EOS: the cumulative count of EOS before them is at least 1.
    after = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return (~after).float(), ended


def total_steps(config: RunConfig, n_prompts: int) -> int:
    if config.train.max_steps > 0:
        return config.train.max_steps
    return max(1, math.ceil(config.train.epochs * n_prompts / config.train.batch_size))


def train(config: RunConfig, run: RunDir) -> None:
    ppo, t = config.ppo, config.train
    torch.manual_seed(t.seed)
    rng = random.Random(t.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    judge = RewardJudge(config.reward_models)  # a reward run that cannot score fails now, before the policy loads

    tokenizer = models.load_tokenizer(config.model)
    prompts = _prompts(config, tokenizer, run)
    prompt_ids = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)
                  ["input_ids"] for p in prompts]
    model = build_model(config, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    kl_ctl = (pm.AdaptiveKLController(ppo.kl_coef, ppo.target_kl, ppo.kl_horizon) if ppo.target_kl
              else pm.FixedKLController(ppo.kl_coef))
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    metrics = MetricsWriter(run.metrics_path)
    steps = total_steps(config, len(prompts))
    run.write_status(step=0, total_steps=steps)

    order: list[int] = []
    for step in range(1, steps + 1):
        if run.cancel_requested():
            log.info("cancelled before step %d", step)
            return
        # ---- sample a batch of prompts (reshuffled each pass over the data)
        batch = []
        while len(batch) < t.batch_size:
            if not order:
                order = list(range(len(prompts)))
                rng.shuffle(order)
            batch.append(order.pop())
        batch_prompts = [prompts[i] for i in batch]
        query, query_mask = _left_pad([prompt_ids[i] for i in batch], pad_id, device)
        width = query.shape[1]

        # ---- roll out: sample answers with the KV cache, then score them
        started = time.monotonic()
        # Seeded per step: loading a reward model (its score head init) draws from the global generator, so
        # without this a run's samples would depend on whether the reward model was already cached.
        torch.manual_seed(t.seed * 100003 + step)
        with torch.no_grad():
            output = model.policy.generate(input_ids=query, attention_mask=query_mask, do_sample=True,
                                           temperature=1.0, top_k=0, top_p=1.0,
                                           max_new_tokens=ppo.response_length, eos_token_id=eos_id,
                                           pad_token_id=pad_id, use_cache=True)
        responses = output[:, width:]
        response_mask, ended = _response_mask(responses, eos_id)
        responses = torch.where(response_mask.bool(), responses, torch.full_like(responses, pad_id))
        texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
        scores, per_model = judge.score(batch_prompts, texts)
        scores = scores.to(device)
        generation_time = time.monotonic() - started

        started = time.monotonic()
        penalised = scores - ppo.missing_eos_penalty * (~ended).float()
        sequences = torch.cat([query, responses], dim=1)
        attention = torch.cat([query_mask, response_mask.long()], dim=1)
        with torch.no_grad():
            logits, old_values = model(sequences, attention, width)
            old_logp = pm.logprobs_from_logits(logits, responses)
            entropy = pm.masked_mean(pm.entropy_from_logits(logits), response_mask).item()
            del logits
            ref_logp = pm.logprobs_from_logits(model.reference_logits(sequences, attention, width), responses)
            kl = pm.kl_per_token(old_logp, ref_logp, ppo.kl_estimator) * response_mask
            kl_coef = kl_ctl.value
            rewards = pm.token_rewards(penalised, kl, response_mask, kl_coef)
            old_values = old_values * response_mask
            advantages, returns = pm.gae(rewards, old_values, response_mask, ppo.gamma, ppo.lam)
            if ppo.whiten_advantages:
                advantages = pm.whiten(advantages, response_mask)

        # ---- optimise: ppo_epochs passes over shuffled minibatches, each split into accumulation micro-batches
        stats = {"policy_loss": [], "value_loss": [], "clip_fraction": [], "approx_kl": [], "value_clip_fraction": []}
        micro = ppo.mini_batch_size // t.gradient_accumulation_steps
        for _ in range(ppo.ppo_epochs):
            perm = torch.randperm(t.batch_size, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
            for start in range(0, t.batch_size, ppo.mini_batch_size):
                mini = perm[start:start + ppo.mini_batch_size]
                for m in range(0, len(mini), micro):
                    idx = mini[m:m + micro].to(device)
                    mask = response_mask[idx]
                    new_logits, new_values = model(sequences[idx], attention[idx], width)
                    new_logp = pm.logprobs_from_logits(new_logits, responses[idx])
                    pg_loss, clip_frac, _ = pm.policy_loss(new_logp, old_logp[idx], advantages[idx], mask,
                                                           ppo.cliprange)
                    vf_loss, vf_clip = pm.value_loss(new_values, old_values[idx], returns[idx], mask,
                                                     ppo.cliprange_value)
                    loss = (pg_loss + ppo.vf_coef * vf_loss) / t.gradient_accumulation_steps
                    loss.backward()
                    stats["policy_loss"].append(pg_loss.item())
                    stats["value_loss"].append(vf_loss.item())
                    stats["clip_fraction"].append(clip_frac.item())
                    stats["value_clip_fraction"].append(vf_clip.item())
                    stats["approx_kl"].append(pm.approx_kl(new_logp.detach(), old_logp[idx], mask).item())
                if t.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        optimization_time = time.monotonic() - started

        kl_per_answer = kl.sum(dim=1).mean().item()  # KL of a whole answer, the quantity target_kl aims at
        kl_ctl.update(kl_per_answer, t.batch_size)
        row = {"reward": scores.mean().item(), "reward_std": scores.std().item() if len(scores) > 1 else 0.0,
               **{f"reward/{r}": s.mean().item() for r, s in per_model.items()},
               "reward_with_eos_penalty": penalised.mean().item(),
               "kl": kl_per_answer, "kl_coef": kl_coef, "entropy": entropy,
               **{k: sum(v) / len(v) for k, v in stats.items()},
               "response_length": response_mask.sum(dim=1).mean().item(),
               "eos_fraction": ended.float().mean().item(),
               "time/generation": generation_time, "time/optimization": optimization_time,
               "step": step, "epoch": 0, "time": time.time()}
        metrics.write(row)
        run.write_status(step=step, total_steps=steps)
        if step == 1 or step % t.logging_steps == 0:
            log.info("step %d/%d: reward %.3f, kl %.3f, response length %.1f", step, steps, row["reward"],
                     row["kl"], row["response_length"])

    if not run.cancel_requested():
        save_policy(model, tokenizer, run)


def save_policy(model: PolicyWithValue, tokenizer, run: RunDir) -> None:
    """The adapter (or full model), tokenizer and value head, renamed into place in one step."""
    from safetensors.torch import save_file

    tmp = run.path / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.policy.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.value_head.state_dict().items()},
              str(tmp / VALUE_HEAD_FILE))
    shutil.rmtree(run.adapter_dir, ignore_errors=True)
    os.replace(tmp, run.adapter_dir)
