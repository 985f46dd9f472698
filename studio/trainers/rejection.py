"""Rejection sampling fine-tuning (Llama 2, section 3.2.3): each round the policy samples K answers to each prompt, the
sources of `rewards:` (reward runs, built-in rules, Python functions) score them, and the policy is fine-tuned on the
best answer to each prompt. The next round samples from the fine-tuned policy, so the answers it learns from improve as
it does.

    rlhf-studio train my-rejection.yaml   # stage: rejection, init.from_run: <sft run>, rewards.sources: [{run: <rm>}]

Each round's answers are recorded in the run's rollouts.jsonl (studio/runs/rollouts.py), one row per answer: its
prompt, combined score and each reward source's (None where it gave none), whether it ended with its end-of-turn
token, its prompt's index in the round (group), whether it was its prompt's best and whether it was kept for
fine-tuning; the first rollouts.token_samples answers token by token, under the policy and the starting weights.

Design choices:
- policy = the starting weights (init.from_run, usually an SFT run) + one fresh LoRA adapter that keeps training from
  round to round, as Llama 2 fine-tunes its latest model; with LoRA off, every weight trains.
- the fine-tuning is a short plain loop, not TRL's SFTTrainer: the kept answers already are the token ids the policy
  sampled (with its end-of-turn token when it stopped), so there is nothing to render or re-tokenise, and one loop
  keeps one optimizer (AdamW, constant learning rate, as PPO) and one step count for the whole run, where a new
  SFTTrainer each round would restart its step count, schedule and status.json every round. The loss counts the
  answer tokens only (as sft.completion_only_loss does), averaged over the tokens of each batch.
- one metrics.jsonl row per round, with step = the round number: the round is what changes the policy's answers,
  so every chart reads "per round", and status.json counts rounds (step / total_steps) for the progress bar.
- best of K is taken on the combined score (rewards.combine); ties go to the earlier answer. With
  rejection.min_score, a prompt whose best answer still scores below it is left out rather than taught. An answer
  cut off at response_length competes like any other (the reward model judged what is there); if it wins, the
  policy learns its tokens but no end-of-turn token, and eos_fraction in the metrics shows where that leads.
- sampling runs with dropout off (eval mode) and the KV cache; fine-tuning uses lora.dropout.
- not yet: checkpoints and resume (a cancel request is honoured between rounds and between a round's sampling and
  its fine-tuning; a cancelled run stops there and keeps no adapter), several processes (one device, GPU if there
  is one), a learning rate schedule.

Each round's metrics row: reward (the mean combined score of all K answers to every prompt), reward_std, reward/<name>
(each reward source's mean over the answers it scored), reward_best (the mean of each prompt's best score), reward_gain
(reward_best - reward: what picking the best of K adds), kept (prompts fine-tuned on), loss (the mean fine-tuning loss
of the round's optimizer steps, named loss so the progress bar and `rlhf-studio runs` show it; absent when nothing was
kept), response_length (tokens per answer, all answers), best_response_length (kept answers), eos_fraction,
time/generation (sampling and scoring, seconds), time/training, plus step (the round), epoch (passes over the prompts so
far) and time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from studio.config import RejectionSpec, RunConfig
from studio.modeling import models
from studio.modeling.generation import left_pad
from studio.runs.metrics import MetricsWriter
from studio.runs.rollouts import RolloutWriter
from studio.runs.rundir import RunDir
from studio.serve.rewards import columns_of
from studio.trainers import judge_watch, timeline_writer
from studio.trainers.common import load_policy, seed_model_init
from studio.trainers.rewards import source_means, stage_rewards
from studio.trainers.rollout_rows import add_token_detail, answer_rows, answer_stats
from studio.trainers.sampling import load_prompts, response_mask
from studio.trainers.throughput import ThroughputMeter, counted_model

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label transformers leaves out of the loss: prompt tokens and padding


@dataclass
class Samples:
    """K answers to each of a round's prompts, prompt-major: answer j to prompt i is at index i * K + j."""

    tokens: list[list[int]]  # token ids up to and including the first end-of-turn token
    texts: list[str]
    ended: list[bool]  # stopped with the end-of-turn token, not cut off at response_length


def best_of_k(scores: torch.Tensor, min_score: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index of each prompt's best answer, its score, whether it is kept) from scores of shape (prompts, K).
    Ties go to the earlier answer; with min_score, a best answer scoring below it is not kept."""
    best_scores, best = scores.max(dim=1)  # torch returns the first index of a tied maximum
    kept = torch.ones_like(best_scores, dtype=torch.bool) if min_score is None else best_scores >= min_score
    return best, best_scores, kept


def prompt_slices(n_prompts: int, per_round: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless slices of per_round prompt indices, walking a shuffled order that is reshuffled after each pass."""
    order: list[int] = []
    while True:
        batch = []
        while len(batch) < per_round:
            if not order:
                order = list(range(n_prompts))
                rng.shuffle(order)
            batch.append(order.pop())
        yield batch


# ---------------------------------------------------------------- sampling


@torch.no_grad()
def sample(policy, tokenizer, prompt_ids: list[list[int]], spec: RejectionSpec, device) -> Samples:
    """spec.samples_per_prompt answers to each prompt, generation_batch_size answers per generate call."""
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    repeated = [ids for ids in prompt_ids for _ in range(spec.samples_per_prompt)]
    tokens: list[list[int]] = []
    ended: list[bool] = []
    for start in range(0, len(repeated), spec.generation_batch_size):
        query, query_mask = left_pad(repeated[start : start + spec.generation_batch_size], pad_id, device)
        output = policy.generate(
            input_ids=query,
            attention_mask=query_mask,
            do_sample=True,
            temperature=spec.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=spec.response_length,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
            use_cache=True,
        )
        responses = output[:, query.shape[1] :]
        mask, stopped = response_mask(responses, eos_id)
        for row, length in zip(responses.tolist(), mask.sum(dim=1).long().tolist()):
            tokens.append(row[:length])
        ended.extend(stopped.tolist())
    return Samples(tokens, tokenizer.batch_decode(tokens, skip_special_tokens=True), ended)


# ---------------------------------------------------------------- fine-tuning


def _sft_batch(examples: list[tuple[list[int], list[int]]], pad_id: int, device):
    """(input_ids, attention_mask, labels) of [prompt | answer] rows, right-padded, labels only on the answer."""
    width = max(len(p) + len(a) for p, a in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, answer) in enumerate(examples):
        end = len(prompt) + len(answer)
        ids[row, :end] = torch.tensor(prompt + answer)
        mask[row, :end] = 1
        labels[row, len(prompt) : end] = torch.tensor(answer)
    return ids.to(device), mask.to(device), labels.to(device)


def fine_tune(
    policy,
    optimizer,
    params: list,
    examples: list[tuple[list[int], list[int]]],
    config: RunConfig,
    pad_id: int,
    rng: random.Random,
    device,
) -> float:
    """rejection.sft_epochs shuffled passes over (prompt ids, answer ids); returns the mean loss per optimizer step.
    An optimizer step takes train.batch_size x gradient_accumulation_steps examples, batch_size per forward pass."""
    t = config.train
    per_step = t.batch_size * t.gradient_accumulation_steps
    losses = []
    policy.train()
    try:
        for _ in range(config.rejection.sft_epochs):
            order = list(range(len(examples)))
            rng.shuffle(order)
            for start in range(0, len(order), per_step):
                rows = order[start : start + per_step]
                chunks = [rows[i : i + t.batch_size] for i in range(0, len(rows), t.batch_size)]
                step_loss = 0.0
                for chunk in chunks:
                    ids, mask, labels = _sft_batch([examples[i] for i in chunk], pad_id, device)
                    loss = policy(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
                    # Each forward pass weighs the same in the step, also in a last, smaller step of the pass.
                    (loss / len(chunks)).backward()
                    step_loss += loss.item() / len(chunks)
                if t.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(step_loss)
    finally:
        policy.eval()  # back to sampling mode (dropout off), also if a step failed
    return sum(losses) / len(losses)


# ---------------------------------------------------------------- the loop


def build_policy(config: RunConfig, device: torch.device):
    """The starting weights with a fresh LoRA adapter (or every weight trainable), in eval mode for sampling."""
    policy = load_policy(config)
    if config.train.gradient_checkpointing:
        # Non-reentrant checkpointing needs no gradient on the inputs; it only acts in train mode, so sampling
        # (eval mode, KV cache) runs as usual. transformers 5.2x renamed gradient_checkpointing_enable to
        # activation_checkpointing_enable and warns on the old name; earlier 5.x releases only know the old one.
        if hasattr(policy, "activation_checkpointing_enable"):
            policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.model.quantization == "none":
        policy.to(device)
    return policy.eval()


def round_rollouts(
    round_no: int,
    prompts: list[list[dict]],
    samples: Samples,
    scores: torch.Tensor,
    per_source: dict[str, torch.Tensor],
    best: torch.Tensor,
    kept: torch.Tensor,
) -> list[dict]:
    """The round's rollout rows (studio/runs/rollouts.py), one per answer, prompt-major: its prompt's index in the
    round as its group, whether it was its prompt's best, and whether it was kept to fine-tune on."""
    k = scores.shape[1]
    chosen = [bool(kept[i]) and j == int(best[i]) for i in range(len(prompts)) for j in range(k)]
    return answer_rows(
        round_no,
        [prompt for prompt in prompts for _ in range(k)],
        samples.texts,
        scores.reshape(-1),
        per_source,
        lengths=[len(tokens) for tokens in samples.tokens],
        ended=samples.ended,
        round=[round_no] * len(chosen),
        group=[i for i in range(len(prompts)) for _ in range(k)],
        best=[j == int(best[i]) for i in range(len(prompts)) for j in range(k)],
        kept=chosen,
    )


@torch.no_grad()
def token_logprobs(policy, prompt_ids: list[int], answer_ids: list[int], temperature: float, device) -> list[float]:
    """Each answer token's log-probability under `policy` after the prompt, from logits divided by the temperature
    the answer was sampled at."""
    ids = torch.tensor([prompt_ids + answer_ids], device=device)
    logits = policy(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(prompt_ids) :, None]).squeeze(1).tolist()


def add_round_token_detail(rows, policy, tokenizer, prompt_ids, samples: Samples, spec, count: int, device) -> None:
    """Token detail for the round's first `count` answers: the policy's log-probs and, with LoRA, the reference's
    (the adapter disabled: the starting weights)."""
    k = spec.samples_per_prompt
    chosen = range(min(count, len(rows)))
    policy_rows = [
        token_logprobs(policy, prompt_ids[i // k], samples.tokens[i], spec.temperature, device) for i in chosen
    ]
    ref_rows = None
    if hasattr(policy, "disable_adapter"):
        with policy.disable_adapter():
            ref_rows = [
                token_logprobs(policy, prompt_ids[i // k], samples.tokens[i], spec.temperature, device) for i in chosen
            ]
    add_token_detail(rows, tokenizer, [samples.tokens[i] for i in chosen], policy_rows, ref_rows, count)


def train(config: RunConfig, run: RunDir) -> None:
    spec, t = config.rejection, config.train
    k = spec.samples_per_prompt
    tokenizer = models.load_tokenizer(config.model)
    # Every source is loaded now, before the data and the policy; loading a reward model draws random numbers (a
    # fresh score head before the trained one replaces it), which must happen before the seed, not in round 1.
    rewards = stage_rewards(config, tokenizer)
    rows, _ = load_prompts(config, tokenizer, run)  # the held-out ones are for comparing after training
    prompts = [row["prompt"] for row in rows]
    rewards.dry_run(rows)  # every source tried on a few answers, before the policy loads
    seed_model_init(config)
    rng = random.Random(t.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    prompt_ids = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        for p in prompts
    ]
    per_round = min(spec.prompts_per_round, len(prompts))
    if per_round < spec.prompts_per_round:
        log.info(
            "rejection.prompts_per_round = %d but the data has %d prompts: each round uses all of them",
            spec.prompts_per_round,
            len(prompts),
        )
    policy = build_policy(config, device)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    metrics = MetricsWriter(run.metrics_path)
    recorder = RolloutWriter(run.rollouts_path, config.rollouts)
    slices = prompt_slices(len(prompts), per_round, rng)
    run.write_status(step=0, total_steps=spec.rounds)
    answers = timeline_writer.recorder(
        config, run, tokenizer
    )  # the policy's answers before round 1 and after each round
    if answers:
        answers.record(policy, 0)
    watch = judge_watch.start(config, run, tokenizer)  # judges of the policy's held-out answers, round by round
    if watch:
        watch.check(policy, 0)

    meter = ThroughputMeter(counted_model(policy))
    for round_no in range(1, spec.rounds + 1):
        if run.cancel_requested():
            log.info("cancelled before round %d", round_no)
            return
        batch = next(slices)
        batch_prompts = [prompts[i] for i in batch]

        # ---- sample K answers per prompt from the current policy, score them all, pick each prompt's best
        started = time.monotonic()
        # Seeded per round, so a round's samples depend on the seed, the round and the policy only.
        torch.manual_seed(t.seed * 100003 + round_no)
        samples = sample(policy, tokenizer, [prompt_ids[i] for i in batch], spec, device)
        repeated = [rows[i] for i in batch for _ in range(k)]
        scores, per_source = rewards.score([row["prompt"] for row in repeated], samples.texts, columns_of(repeated))
        generation_time = time.monotonic() - started
        grid = scores.view(len(batch), k)
        best, best_scores, kept = best_of_k(grid, spec.min_score)
        if recorder.due(round_no):
            recorded = round_rollouts(round_no, batch_prompts, samples, grid, per_source, best, kept)
            batch_ids = [prompt_ids[i] for i in batch]
            add_round_token_detail(
                recorded, policy, tokenizer, batch_ids, samples, spec, config.rollouts.token_samples, device
            )
            recorder.write(round_no, recorded)
        if run.cancel_requested():
            log.info("cancelled in round %d, before fine-tuning", round_no)
            return

        # ---- fine-tune on the kept best answers
        started = time.monotonic()
        chosen = [i * k + int(best[i]) for i in range(len(batch)) if kept[i]]
        examples = [(prompt_ids[batch[c // k]], samples.tokens[c]) for c in chosen]
        loss = (
            fine_tune(policy, optimizer, params, examples, config, tokenizer.pad_token_id, rng, device)
            if examples
            else None
        )
        training_time = time.monotonic() - started
        if answers:
            answers.record(policy, round_no)

        lengths = torch.tensor([len(x) for x in samples.tokens], dtype=torch.float32)
        row = {
            "reward": scores.mean().item(),
            "reward_std": scores.std().item(),
            **source_means(per_source),
            **answer_stats(
                [row["prompt"] for row in repeated], samples.texts, per_source, lengths, spec.response_length
            ),
            "reward_best": best_scores.mean().item(),
            "reward_gain": best_scores.mean().item() - scores.mean().item(),
            "kept": len(examples),
            **({"loss": loss} if loss is not None else {}),
            "response_length": lengths.mean().item(),
            **({"best_response_length": lengths[chosen].mean().item()} if chosen else {}),
            "eos_fraction": sum(samples.ended) / len(samples.ended),
            "time/generation": generation_time,
            "time/training": training_time,
            **meter.since_last(),
            "step": round_no,
            "epoch": round_no * per_round / len(prompts),
            "time": time.time(),
        }
        metrics.write(row)
        if watch and watch.due(round_no, spec.rounds):
            watch.check(policy, round_no)
        run.write_status(step=round_no, total_steps=spec.rounds)
        log.info(
            "round %d/%d: reward %.3f, best of %d %.3f, kept %d, loss %s, %.1f s sampling, %.1f s training",
            round_no,
            spec.rounds,
            row["reward"],
            k,
            row["reward_best"],
            len(examples),
            "-" if loss is None else f"{loss:.3f}",
            generation_time,
            training_time,
        )

    if not run.cancel_requested():
        save_policy(policy, tokenizer, run)


def save_policy(policy, tokenizer, run: RunDir) -> None:
    """The adapter (or full model) and tokenizer, renamed into place in one step, where later stages look."""
    with run.publishing_adapter() as folder:
        policy.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
