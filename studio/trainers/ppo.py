"""PPO (RLHF's reinforcement learning stage): the policy samples answers to prompts, the config's reward sources (reward
runs, built-in rules, Python functions; studio/serve/rewards.py) score them, and the policy is pushed towards higher
scores while a per-token KL penalty keeps it near its starting weights. Our own loop on torch + transformers + peft (TRL
1.x ships no PPO trainer); the arithmetic lives in studio/trainers/ppo_math.py.

    rlhf-studio train my-ppo.yaml      # stage: ppo, init.from_run: <sft run>, rewards.sources: [{run: <reward run>}]

Design choices:
- policy = the starting weights (init.from_run, usually an SFT run) + a fresh LoRA adapter; the reference is the
  same model with the adapter disabled, so there is no second copy in memory. With LoRA off, the reference is a
  frozen copy (twice the memory).
- value function: a small value head (one Linear(hidden, 1)) on the policy's last hidden state, trained with the
  LoRA weights. It is cheap and shares the policy's body, so one forward gives log-probs and values; a separate
  value model initialised from the reward model (InstructGPT) is a later option.
- dropout is off throughout (the model stays in eval mode), so the log-probs that sampled an answer and the ones
  recomputed while optimising agree, as TRL does.
- accelerate places the model and runs the backward pass, so the same loop runs on a CPU, one GPU, or several
  processes under `accelerate launch` (each samples its own prompts; gradients are averaged; the main process
  alone writes metrics, status and the adapter). Advantages are whitened per process.
- checkpoints every train.save_steps and on cancel hold the trainable weights, the optimizer, the KL
  coefficient, the prompt order and the random generators, so `rlhf-studio resume` continues the same run.
- the learning rate follows train.lr_scheduler and train.warmup_ratio over the run's optimizer steps
  (ppo_epochs x batch_size / mini_batch_size per PPO step).
- not yet: a separate value model.

Each step writes one metrics.jsonl row: reward (the combined score before the missing-EOS penalty), reward_std,
reward/<name> and scored/<name> per reward source, reward_with_eos_penalty, kl (per answer, summed over its tokens),
kl_coef, entropy (per token), policy_loss, value_loss, clip_fraction, value_clip_fraction, approx_kl, response_length,
eos_fraction, time/generation (sampling and scoring), time/optimization (seconds) and learning_rate, plus step, epoch
(0) and time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio import stages
from studio.config import RunConfig
from studio.errors import StudioError
from studio.modeling import models
from studio.modeling.generation import left_pad
from studio.runs.metrics import MetricsWriter
from studio.runs.rollouts import RolloutWriter
from studio.runs.rundir import RunDir
from studio.serve.rewards import columns_of
from studio.trainers import judge_watch, timeline_writer
from studio.trainers import ppo_math as pm
from studio.trainers.common import policy_and_reference, resume_checkpoint
from studio.trainers.rewards import StageRewards, source_means, stage_rewards
from studio.trainers.rollout_rows import add_token_detail, answer_rows, answer_stats
from studio.trainers.sampling import load_prompts, response_mask
from studio.trainers.throughput import ThroughputMeter, counted_model

log = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"


# ---------------------------------------------------------------- models


class PolicyWithValue(nn.Module):
    """The policy (a PeftModel, or a plain causal LM with LoRA off) and its value head; `forward` gives the
    logits and values over the response positions of [prompt | response] sequences in one pass."""

    def __init__(self, policy, reference=None, temperature: float = 1.0):
        super().__init__()
        self.policy = policy
        self.reference = reference  # only with LoRA off; otherwise the adapter is disabled instead
        # Answers are sampled from softmax(logits / temperature), so every log-prob (policy, old, reference) is
        # taken from the same tempered distribution: the ratio and the KL then compare what was sampled from.
        self.temperature = temperature
        hidden = policy.get_input_embeddings().embedding_dim
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)  # start predicting 0: no random value noise in the first advantages
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, prompt_width: int):
        """(logits, values) at the positions that predict each response token: shapes (B, T, V) and (B, T)."""
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=_positions(attention_mask),
            output_hidden_states=True,
            use_cache=False,
        )
        hidden = out.hidden_states[-1][:, prompt_width - 1 : -1]
        logits = out.logits[:, prompt_width - 1 : -1].float() / self.temperature
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
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=_positions(attention_mask),
                use_cache=False,
            )
        return out.logits[:, prompt_width - 1 : -1].float() / self.temperature


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on the first real token of a left-padded row, as generate() uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def build_model(config: RunConfig, device: torch.device) -> PolicyWithValue:
    policy, reference = policy_and_reference(config)
    model = PolicyWithValue(policy, reference, config.ppo.temperature)
    if config.model.quantization == "none":
        model.to(device)
    else:
        model.value_head.to(next(policy.parameters()).device)
    model.eval()  # dropout off for good, see the module docstring
    log.info("value head: %d weights", sum(p.numel() for p in model.value_head.parameters()))
    return model


# ---------------------------------------------------------------- the loop


@dataclass
class Rollout:
    """One step's sampled answers and everything the PPO update needs about them (rows = answers)."""

    sequences: torch.Tensor  # [prompt | response] token ids, prompts left-padded to one width
    attention: torch.Tensor
    width: int  # the prompt width: response tokens start here
    responses: torch.Tensor  # response token ids, padded after the first EOS
    answers: list[str]  # the responses as text
    mask: torch.Tensor  # 1 on response tokens up to and including the first EOS
    ended: torch.Tensor  # whether each answer ended with EOS
    scores: torch.Tensor  # the combined reward of each answer (config.rewards)
    per_source: dict[str, torch.Tensor]  # each reward source's scores, NaN where it gave none
    penalised: torch.Tensor  # scores minus the missing-EOS penalty
    old_logp: torch.Tensor
    old_values: torch.Tensor
    kl: torch.Tensor  # per-token KL to the reference (0 off the mask)
    ref_logp: torch.Tensor  # per-token log-probs under the reference
    entropy: float
    advantages: torch.Tensor
    returns: torch.Tensor


def rollout(
    config: RunConfig,
    model: PolicyWithValue,
    tokenizer,
    rewards: StageRewards,
    rows: list[dict],
    prompt_ids: list[list[int]],
    kl_coef: float,
    device,
) -> Rollout:
    """Sample one answer per prompt with the KV cache, score them, and compute KL-penalised advantages."""
    ppo = config.ppo
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    query, query_mask = left_pad(prompt_ids, pad_id, device)
    width = query.shape[1]
    with torch.no_grad():
        output = model.policy.generate(
            input_ids=query,
            attention_mask=query_mask,
            do_sample=True,
            temperature=ppo.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=ppo.response_length,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
            use_cache=True,
        )
    responses = output[:, width:]
    mask, ended = response_mask(responses, eos_id)
    responses = torch.where(mask.bool(), responses, torch.full_like(responses, pad_id))
    answers = tokenizer.batch_decode(responses, skip_special_tokens=True)
    scores, per_source = rewards.score([row["prompt"] for row in rows], answers, columns_of(rows))
    scores = scores.to(device)
    penalised = scores - ppo.missing_eos_penalty * (~ended).float()

    sequences = torch.cat([query, responses], dim=1)
    attention = torch.cat([query_mask, mask.long()], dim=1)
    with torch.no_grad():
        logits, old_values = model(sequences, attention, width)
        old_logp = pm.logprobs_from_logits(logits, responses)
        entropy = pm.masked_mean(pm.entropy_from_logits(logits), mask).item()
        del logits
        ref_logp = pm.logprobs_from_logits(model.reference_logits(sequences, attention, width), responses)
        kl = pm.kl_per_token(old_logp, ref_logp, ppo.kl_estimator) * mask
        rewards = pm.token_rewards(penalised, kl, mask, kl_coef)
        old_values = old_values * mask
        advantages, returns = pm.gae(rewards, old_values, mask, ppo.gamma, ppo.lam)
        if ppo.whiten_advantages:  # per process: each one whitens the answers it sampled
            advantages = pm.whiten(advantages, mask)
    return Rollout(
        sequences,
        attention,
        width,
        responses,
        answers,
        mask,
        ended,
        scores,
        per_source,
        penalised,
        old_logp,
        old_values,
        kl,
        ref_logp,
        entropy,
        advantages,
        returns,
    )


def optimize(
    config: RunConfig, accelerator, model, optimizer, scheduler, params, batch: Rollout, rng: random.Random
) -> dict:
    """ppo_epochs passes over shuffled minibatches of the rollout, each split into gradient accumulation
    micro-batches; returns the mean of each loss statistic. `model` is the accelerate-prepared model, so with
    several processes the gradients are averaged across them on the last micro-batch of each minibatch."""
    ppo, t = config.ppo, config.train
    stats: dict[str, list[float]] = {
        "policy_loss": [],
        "value_loss": [],
        "clip_fraction": [],
        "approx_kl": [],
        "value_clip_fraction": [],
    }
    size = batch.sequences.shape[0]
    micro = ppo.mini_batch_size // t.gradient_accumulation_steps
    for _ in range(ppo.ppo_epochs):
        perm = torch.randperm(size, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
        for start in range(0, size, ppo.mini_batch_size):
            mini = perm[start : start + ppo.mini_batch_size]
            for m in range(0, len(mini), micro):
                idx = mini[m : m + micro].to(batch.sequences.device)
                last = m + micro >= len(mini)
                # Gradients are exchanged between processes once per optimizer step, not per micro-batch.
                with contextlib.nullcontext() if last else accelerator.no_sync(model):
                    mask = batch.mask[idx]
                    new_logits, new_values = model(batch.sequences[idx], batch.attention[idx], batch.width)
                    new_logp = pm.logprobs_from_logits(new_logits, batch.responses[idx])
                    pg_loss, clip_frac, _ = pm.policy_loss(
                        new_logp, batch.old_logp[idx], batch.advantages[idx], mask, ppo.cliprange
                    )
                    vf_loss, vf_clip = pm.value_loss(
                        new_values, batch.old_values[idx], batch.returns[idx], mask, ppo.cliprange_value
                    )
                    accelerator.backward((pg_loss + ppo.vf_coef * vf_loss) / t.gradient_accumulation_steps)
                stats["policy_loss"].append(pg_loss.item())
                stats["value_loss"].append(vf_loss.item())
                stats["clip_fraction"].append(clip_frac.item())
                stats["value_clip_fraction"].append(vf_clip.item())
                stats["approx_kl"].append(pm.approx_kl(new_logp.detach(), batch.old_logp[idx], mask).item())
            if t.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return {key: sum(values) / len(values) for key, values in stats.items()}


def _step_metrics(
    accelerator, batch: Rollout, losses: dict, kl_coef: float, prompts: list, response_length: int
) -> dict[str, float]:
    """One metrics row over the answers of every process: rewards from the gathered scores, the rest averaged (the
    answer statistics of answer_stats over each process's own answers)."""
    scores = accelerator.gather(batch.scores)
    per_source = {name: accelerator.gather(s.to(batch.scores.device)).cpu() for name, s in batch.per_source.items()}
    local = {
        **answer_stats(prompts, batch.answers, batch.per_source, batch.mask.sum(dim=1), response_length),
        "reward_with_eos_penalty": batch.penalised.mean().item(),
        "kl": batch.kl.sum(dim=1).mean().item(),  # KL of a whole answer, the quantity target_kl aims at
        "entropy": batch.entropy,
        **losses,
        "response_length": batch.mask.sum(dim=1).mean().item(),
        "eos_fraction": batch.ended.float().mean().item(),
    }
    averaged = accelerator.reduce(torch.tensor(list(local.values()), device=batch.scores.device), "mean").tolist()
    return {
        "reward": scores.mean().item(),
        "reward_std": scores.std().item() if len(scores) > 1 else 0.0,
        **source_means(per_source),
        **dict(zip(local, averaged)),
        "kl_coef": kl_coef,
    }


def record_rollouts(accelerator, recorder, tokenizer, step: int, rows: list[dict], batch: Rollout, config) -> None:
    """This step's answers as rollout rows, gathered from every process and written by the main one; the first
    rollouts.token_samples answers (of the main process) token by token."""
    from accelerate.utils import gather_object

    local = answer_rows(
        step,
        [row["prompt"] for row in rows],
        batch.answers,
        batch.scores,
        batch.per_source,
        lengths=batch.mask.sum(dim=1),
        ended=batch.ended,
        kl=batch.kl.sum(dim=1),
        penalty=batch.scores - batch.penalised,
    )
    if accelerator.is_main_process:
        answer_ids = [ids[: int(n)] for ids, n in zip(batch.responses.tolist(), batch.mask.sum(dim=1).tolist())]
        count = config.rollouts.token_samples
        add_token_detail(local, tokenizer, answer_ids, batch.old_logp.tolist(), batch.ref_logp.tolist(), count)
    gathered = gather_object(local)
    if accelerator.is_main_process:
        recorder.write(step, gathered)


def _any_cancel(accelerator, run: RunDir, device) -> bool:
    """Whether any process saw a cancel request; every process must agree, or the others would wait forever."""
    flag = torch.tensor([float(run.cancel_requested())], device=device)
    return accelerator.reduce(flag, "sum").item() > 0


# ---------------------------------------------------------------- checkpoints

TRAINABLE_FILE = "trainable.safetensors"  # the LoRA weights (or every weight with LoRA off) and the value head
STATE_FILE = "ppo_state.pt"  # optimizer, learning rate schedule, KL coefficient, the prompt order and random generators


def save_checkpoint(
    run: RunDir,
    step: int,
    model: PolicyWithValue,
    optimizer,
    scheduler,
    kl_ctl,
    rng: random.Random,
    order: list[int],
    keep: int,
) -> None:
    """checkpoints/checkpoint-STEP with everything a resumed run needs to continue exactly; counted only once
    its COMPLETE marker is written, and older ones are pruned only after that."""
    from safetensors.torch import save_file

    folder = run.checkpoint_dir(step)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    save_file(
        {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad},
        str(folder / TRAINABLE_FILE),
    )
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "kl_coef": kl_ctl.value,
            "rng": rng.getstate(),
            "order": order,
            "torch_rng": torch.get_rng_state(),
        },
        folder / STATE_FILE,
    )
    run.checkpoint_saved(step, keep)
    log.info("saved checkpoint-%d", step)


def load_checkpoint(
    folder: Path, model: PolicyWithValue, optimizer, scheduler, kl_ctl, rng: random.Random
) -> tuple[int, list]:
    """Restore a checkpoint written by save_checkpoint; returns (its step, the remaining prompt order)."""
    from safetensors.torch import load_file

    weights = load_file(str(folder / TRAINABLE_FILE))
    missing = set(weights) - {name for name, _ in model.named_parameters()}
    if missing:
        raise StudioError(
            f"{folder}: this checkpoint holds weights the model lacks ({sorted(missing)[0]}); was "
            "the config changed since it was saved?"
        )
    model.load_state_dict(weights, strict=False)
    # weights_only: a checkpoint folder is a file on disk like any other; loading it must never run code from it.
    state = torch.load(folder / STATE_FILE, weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    kl_ctl.value = state["kl_coef"]
    rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return state["step"], state["order"]


def train(config: RunConfig, run: RunDir) -> None:
    """The PPO loop. Under `accelerate launch` each process samples its own share of every step's prompts
    (train.batch_size each), gradients are averaged across processes, and only the main process writes."""
    from accelerate import Accelerator
    from transformers import get_scheduler

    ppo, t = config.ppo, config.train
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device, rank, processes = accelerator.device, accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    log.info("%d process(es), %s, this one rank %d on %s", processes, accelerator.distributed_type, rank, device)
    rng = random.Random(t.seed)  # the same on every process: they agree on the order of prompts
    tokenizer = models.load_tokenizer(config.model)
    rewards = stage_rewards(config, tokenizer)  # a reward run that cannot score fails now, before the data loads
    rows, _ = load_prompts(config, tokenizer, run)  # the held-out ones are for comparing after training
    prompts = [row["prompt"] for row in rows]
    rewards.dry_run(rows)  # every source tried on a few answers, before the policy loads
    prompt_ids = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        for p in prompts
    ]
    # Seeded here, after the reward sources load: a reward model's score head init draws from the global generator
    # only when it is not cached yet, and the policy's LoRA init must not depend on that.
    torch.manual_seed(t.seed)
    model = build_model(config, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    prepared = accelerator.prepare_model(model, device_placement=config.model.quantization == "none")
    optimizer = accelerator.prepare_optimizer(optimizer)
    steps = stages.prompt_steps(config.train, len(prompts), processes)  # as the Train tab's summary counts them
    updates = steps * ppo.ppo_epochs * (t.batch_size // ppo.mini_batch_size)  # optimizer steps in the run
    scheduler = get_scheduler(
        t.lr_scheduler, optimizer, num_warmup_steps=math.ceil(t.warmup_ratio * updates), num_training_steps=updates
    )
    kl_ctl = (
        pm.AdaptiveKLController(ppo.kl_coef, ppo.target_kl, ppo.kl_horizon)
        if ppo.target_kl
        else pm.FixedKLController(ppo.kl_coef)
    )
    metrics = MetricsWriter(run.metrics_path) if main else None
    recorder = RolloutWriter(run.rollouts_path, config.rollouts)
    done, order = 0, []
    checkpoint = resume_checkpoint(run)
    if checkpoint:
        done, order = load_checkpoint(Path(checkpoint), model, optimizer, scheduler, kl_ctl, rng)
    if main:
        run.write_status(step=done, total_steps=steps)
    answers = timeline_writer.recorder(config, run, tokenizer) if main else None  # the policy's answers as it trains
    if answers:
        answers.record(model.policy, done)
    watch = judge_watch.start(config, run, tokenizer) if main else None  # judges of the policy's held-out answers
    if watch and done == 0:
        watch.check(model.policy, 0)

    meter = ThroughputMeter(counted_model(model.policy), processes=processes) if main else None

    def checkpoint_now(step: int) -> None:
        if main and t.save_steps > 0:
            save_checkpoint(run, step, model, optimizer, scheduler, kl_ctl, rng, order, t.save_total_limit)
            if answers:
                answers.record(model.policy, step)

    for step in range(done + 1, steps + 1):
        if _any_cancel(accelerator, run, device):
            log.info("cancelled before step %d", step)
            if step > done + 1:  # something was trained since the last checkpoint: keep it
                checkpoint_now(step - 1)
            return
        # This step's prompts for every process (reshuffled each pass over the data); this process takes its share.
        chosen = []
        while len(chosen) < t.batch_size * processes:
            if not order:
                order = list(range(len(prompts)))
                rng.shuffle(order)
            chosen.append(order.pop())
        mine = chosen[rank * t.batch_size : (rank + 1) * t.batch_size]

        started = time.monotonic()
        # Seeded per step and process: loading a reward model (its score head init) draws from the global
        # generator, so without this a run's samples would depend on whether the reward model was already cached.
        torch.manual_seed(t.seed * 100003 + step + 7919 * rank)
        kl_coef = kl_ctl.value
        batch = rollout(
            config, model, tokenizer, rewards, [rows[i] for i in mine], [prompt_ids[i] for i in mine], kl_coef, device
        )
        generation_time = time.monotonic() - started
        started = time.monotonic()
        losses = optimize(config, accelerator, prepared, optimizer, scheduler, params, batch, rng)
        optimization_time = time.monotonic() - started

        step_prompts = [rows[i]["prompt"] for i in mine]
        row = _step_metrics(accelerator, batch, losses, kl_coef, step_prompts, ppo.response_length)
        kl_ctl.update(row["kl"], t.batch_size * processes)
        if recorder.due(step):  # before the metrics row: a reader that sees step N logged finds its answers
            record_rollouts(accelerator, recorder, tokenizer, step, [rows[i] for i in mine], batch, config)
        if main:
            metrics.write(
                {
                    **row,
                    "learning_rate": scheduler.get_last_lr()[0],
                    "time/generation": generation_time,
                    "time/optimization": optimization_time,
                    **meter.since_last(),
                    "step": step,
                    "epoch": 0,
                    "time": time.time(),
                }
            )
            run.write_status(step=step, total_steps=steps)
        if watch and watch.due(step, steps):
            watch.check(model.policy, step)
        if main and (step == 1 or step % t.logging_steps == 0):
            log.info(
                "step %d/%d: reward %.3f, kl %.3f, response length %.1f",
                step,
                steps,
                row["reward"],
                row["kl"],
                row["response_length"],
            )
        if t.save_steps > 0 and step % t.save_steps == 0 and step < steps:
            checkpoint_now(step)

    accelerator.wait_for_everyone()
    if main and not run.cancel_requested():
        if answers:
            answers.record(model.policy, steps)
        save_policy(model, tokenizer, run)


def save_policy(model: PolicyWithValue, tokenizer, run: RunDir) -> None:
    """The adapter (or full model), tokenizer and value head, renamed into place in one step."""
    from safetensors.torch import save_file

    with run.publishing_adapter() as folder:
        model.policy.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        value_head = model.value_head.state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in value_head.items()}, str(folder / VALUE_HEAD_FILE))
