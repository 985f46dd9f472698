"""Our PPO (studio.trainers.ppo) against TRL 0.29.1's trl.experimental.ppo.PPOTrainer on the same settings:
seconds per episode (one episode = one prompt answered and learned from) for both, their ratio, and the reward
each gained over the same number of episodes.

    . .venv/bin/activate
    python bench/ppo_vs_trl.py                  # about a minute; the first run also builds bench/.venv-trl029
    python bench/ppo_vs_trl.py --skip-setup --repeats 3 --response-length 53 --lora

What runs, in a throwaway $RLHF_STUDIO_HOME (deleted at the end, so the user's runs are never touched):
1. the built-in tiny model; a LoRA reward model trained by the studio on generated polite-vs-rude pairs, then
   exported (LoRA merged, trained score head kept) as a plain sequence-classification folder for TRL; the
   export is checked to give studio.serve.scoring's scores;
2. bench/.venv-trl029: torch installed as scripts/setup.sh does, then trl==0.29.1 and the main venv's versions of
   transformers, accelerate, peft and datasets (skipped when its stamp matches, or with --skip-setup);
3. each trainer in its own process with --threads torch threads: ours through studio.trainers.ppo.train in the
   main venv, TRL's PPOTrainer in bench/.venv-trl029; with --repeats they alternate; then each final policy is
   sampled afresh and judged by one yardstick.

Same for both: the tiny model as the policy; the reference = the starting weights (a frozen copy with full
fine-tuning, the default; the policy with its adapter off with --lora, LoRA r 8 on every linear layer); the same
prompt token ids; batch size; response length (sampling at temperature 1 with no top-k/top-p, stopping at the
end-of-turn token); PPO epochs; minibatch size (one optimizer step per minibatch, no accumulation); AdamW at a
constant learning rate, no weight decay, no gradient clipping (TRL's PPO loop never clips); k1 KL penalty with a
fixed coefficient; missing-EOS penalty; gamma 1, lambda 0.95, both clip ranges 0.2, vf_coef 0.1; whitened
advantages; dropout off; float32; seed.
Value function: ours is a head on the policy's body (one forward gives log-probs and values); TRL takes a separate
value model, here a copy of the tiny model with a zero-initialised score head (ours starts at zero too), trained
in full (TRL's design). --trl-value shared gives TRL the policy's own body plus a zero head instead: the same
function as ours, so only the trainers' code differs.
Reward: by default TRL's reward model reads an answer exactly as ours does (decoded, rendered with the chat
template as the reward model was trained, scored at the last token; see rendered_reward). --trl-reward ids keeps
TRL's own way, the sampled ids read at the end-of-turn token or at the last token of an unfinished answer,
positions this reward model never trained on: in a spot check it scored unfinished answers 1.2 to 2.3 higher
than the rendered text, which cancels the missing-EOS penalty, and TRL then learns little.

Timing: each worker stamps the wall and CPU clocks at the end of every step (ours: when ppo.train writes the
step's metrics row; TRL: a callback's on_step_end). Seconds per episode = (last stamp - first stamp) /
((steps - 1) * batch size): steps 2..N, so no model loading is counted (TRL loads before train(); ours loads
before its first step and its reward model lazily inside step 1) and neither side's warm-up step is.
generate and scoring are the seconds per step inside generate() (the same transformers method for both) and in
reward scoring (ours: StageRewards.score; TRL: get_reward on the reward model); rest is everything else in the
loop. Reward gained = mean logged score in the last quarter of steps minus the first quarter, the score after
the missing-EOS penalty (ours: reward_with_eos_penalty; TRL: objective/scores, the same quantity).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TRL_VENV = BENCH / ".venv-trl029"
TRL_VERSION = "0.29.1"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--episodes", type=int, default=1280, help="answers sampled and trained on, per trainer")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per PPO step")
    p.add_argument("--response-length", type=int, default=12, help="most tokens sampled per answer")
    p.add_argument("--mini-batch-size", type=int, default=16, help="answers per optimizer step")
    p.add_argument("--ppo-epochs", type=int, default=2)
    p.add_argument(
        "--learning-rate", type=float, default=None, help="default 3e-4 with full fine-tuning, 3e-3 with --lora"
    )
    p.add_argument("--kl-coef", type=float, default=0.2)
    p.add_argument("--missing-eos-penalty", type=float, default=1.0)
    p.add_argument(
        "--lora",
        action="store_true",
        help="train a LoRA adapter (r 8, alpha 16) in both; default: full fine-tuning in both",
    )
    p.add_argument(
        "--trl-value",
        choices=("separate", "shared"),
        default="separate",
        help="TRL's value model: a separate copy of the tiny model, or the policy's own body",
    )
    p.add_argument(
        "--trl-reward",
        choices=("rendered", "ids"),
        default="rendered",
        help="how TRL's reward model reads an answer: as ours does (decoded and rendered with the chat "
        "template), or TRL's own way (the sampled ids, read at the end-of-turn token)",
    )
    p.add_argument(
        "--trl-skip-gc",
        action="store_true",
        help="make the gc.collect() that TRL's loop calls twice a step a no-op (to measure its cost)",
    )
    p.add_argument(
        "--eval-samples",
        type=int,
        default=256,
        help="fresh answers from each final policy, scored the same way for both",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads for each trainer")
    p.add_argument("--repeats", type=int, default=1, help="run both this many times, alternating")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--skip-setup", action="store_true", help=f"use {TRL_VENV.name} as it is")
    p.add_argument("--keep", action="store_true", help="keep the throwaway studio home and print its path")
    p.add_argument("--worker", choices=("ours", "trl"), help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.learning_rate is None:
        args.learning_rate = 3e-3 if args.lora else 3e-4
    if args.batch_size % args.mini_batch_size:
        p.error("--mini-batch-size must divide --batch-size")
    if args.episodes < 2 * args.batch_size:
        p.error("--episodes must cover at least two steps (the first one is not timed)")
    return args


# ---------------------------------------------------------------- set-up (main venv)


def setup_trl_venv() -> Path:
    """bench/.venv-trl029 with torch as scripts/setup.sh installs it, trl 0.29.1 and our other versions."""
    from importlib.metadata import version

    python = TRL_VENV / "bin" / "python"
    torch_req = f"torch=={version('torch').split('+')[0]}"
    others = [f"trl=={TRL_VERSION}"] + [
        f"{name}=={version(name)}" for name in ("transformers", "accelerate", "peft", "datasets")
    ]
    wanted = " ".join([torch_req, *others])
    stamp = TRL_VENV / ".bench-setup"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python
    print(f"setting up {TRL_VENV.relative_to(REPO)}: {wanted} (about a minute)", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TRL_VENV)], check=True)
    index = ["--index-url", os.environ["TORCH_INDEX_URL"]] if os.environ.get("TORCH_INDEX_URL") else []
    log = TRL_VENV / "setup.log"
    with open(log, "w") as out:
        for cmd in (
            [str(python), "-m", "pip", "install", "-q", *index, torch_req],  # CPU build first, as setup.sh
            [str(python), "-m", "pip", "install", "-q", *others],
        ):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode:
                sys.exit(f"installing into {TRL_VENV} failed; see {log}")
    stamp.write_text(wanted + "\n")
    return python


QUESTIONS = [
    "How do I boil an egg?",
    "What is a good name for a cat?",
    "How can I sleep better?",
    "What should I pack for a picnic?",
    "How do I water a cactus?",
    "What is a quick breakfast?",
    "How do I start a journal?",
    "What game can two people play?",
]
ANSWERS = [
    "Put it in boiling water for nine minutes.",
    "Luna or Pepper are lovely names.",
    "Keep a regular bedtime and dim the lights.",
    "Bring sandwiches, fruit, water and a blanket.",
    "Water it lightly once every two weeks.",
    "Oats with fruit are ready in five minutes.",
    "Write three lines every evening about your day.",
    "Chess or a simple card game works well.",
]
RUDE = ["Figure it out yourself.", "That is a stupid question.", "Why would I tell you?", "Go away, I am busy."]


def polite_rude_pairs(n: int, seed: int) -> list[dict]:
    """HH-RLHF raw rows: the chosen answer is polite and helpful, the rejected one rude."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        i = rng.randrange(len(QUESTIONS))
        prompt = f"\n\nHuman: {QUESTIONS[i]}\n\nAssistant:"
        rows.append(
            {
                "chosen": f"{prompt} Of course! {ANSWERS[i]} I hope that helps.",
                "rejected": f"{prompt} {rng.choice(RUDE)}",
            }
        )
    return rows


def prepare(home: Path, seed: int) -> dict:
    """Tiny model, pairs file, a completed reward run and its plain export; returns the paths the workers need."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from studio import data
    from studio.config import DataSpec, LoraSpec, RunConfig, TrainSpec
    from studio.modeling import models
    from studio.runs import manager
    from studio.serve import scoring
    from studio.trainers import reward

    pairs = home / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in polite_rude_pairs(160, seed=1)))
    config = RunConfig(
        stage="reward",
        data=DataSpec(source="hh-rlhf", path=str(pairs), eval_fraction=0.2, max_length=128),
        lora=LoraSpec(dropout=0.0),
        train=TrainSpec(
            max_steps=16,
            learning_rate=3e-3,
            batch_size=8,
            eval_steps=0,
            save_steps=0,
            warmup_ratio=0.0,
            logging_steps=4,
            seed=seed,
        ),
    )
    torch.manual_seed(0)
    run = manager.create(config)
    reward.train(config, run)
    run.write_status(state="completed")

    fresh = [data.source_module("hh-rlhf").convert(r) for r in polite_rude_pairs(48, seed=99)]
    prompts = [r["prompt"] for r in fresh]
    good = scoring.score_batch(run.id, prompts, [r["chosen"][0]["content"] for r in fresh])
    bad = scoring.score_batch(run.id, prompts, [r["rejected"][0]["content"] for r in fresh])
    accuracy = sum(g > b for g, b in zip(good, bad)) / len(fresh)

    # The export TRL loads: the body with the LoRA merged in and the trained score head, as one plain model.
    tokenizer = models.load_tokenizer(config.model)
    body = models.load_reward_model(config.model, pad_token_id=tokenizer.pad_token_id)
    exported = home / "reward-model"
    PeftModel.from_pretrained(body, str(run.adapter_dir)).merge_and_unload().save_pretrained(exported)
    tokenizer.save_pretrained(exported)
    plain = AutoModelForSequenceClassification.from_pretrained(exported).eval()
    with torch.no_grad():
        for prompt, row, score in zip(prompts[:8], fresh, good):
            ids = torch.tensor([scoring.render(tokenizer, prompt, row["chosen"][0]["content"])])
            assert abs(plain(input_ids=ids).logits[0, 0].item() - score) < 1e-4, "export changed the scores"

    loaded = data.load(DataSpec(source="hh-rlhf", path=str(pairs), eval_fraction=0.0, max_length=128), "preference")
    prompt_ids = [
        tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        for r in loaded.rows
    ]
    distinct = list({json.dumps(r["prompt"]): r["prompt"] for r in loaded.rows}.values())
    return {
        "home": str(home),
        "pairs": str(pairs),
        "reward_run": run.id,
        "reward_dir": str(exported),
        "policy_dir": models.resolve("tiny"),
        "prompt_ids": prompt_ids,
        "distinct_prompts": distinct,
        "prompt_messages": [r["prompt"] for r in loaded.rows],
        "reward_accuracy": accuracy,
    }


def evaluate(policy_dir: str, s: dict, samples: int) -> float:
    """Mean score, after the missing-EOS penalty, of fresh answers from a saved policy to the distinct prompts,
    sampled as both trainers sample and judged as our PPO judges (decoded, rendered with the chat template, scored
    by studio.serve.scoring), so the two final policies are compared by one yardstick."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.serve import scoring

    if (Path(policy_dir) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(policy_dir).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(s["policy_dir"])
    tokenizer.padding_side = "left"
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = [s["distinct_prompts"][i % len(s["distinct_prompts"])] for i in range(samples)]
    torch.manual_seed(s["seed"])
    total = 0.0
    for start in range(0, samples, 64):
        chunk = prompts[start : start + 64]
        query = tokenizer.apply_chat_template(
            chunk, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            out = model.generate(
                **query,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=s["response_length"],
                eos_token_id=eos,
                pad_token_id=pad,
            )
        responses = out[:, query["input_ids"].shape[1] :]
        is_eos = responses == eos
        after = (is_eos.long().cumsum(1) - is_eos.long()) > 0  # tokens after the first EOS
        texts = tokenizer.batch_decode(responses.masked_fill(after, pad), skip_special_tokens=True)
        scores = torch.tensor(scoring.score_batch(s["reward_run"], chunk, texts))
        total += (scores - s["missing_eos_penalty"] * (~is_eos.any(1)).float()).sum().item()
    return total / samples


# ---------------------------------------------------------------- workers (one process each)


def timed(owner, name: str, calls: list, only=None):
    """Wrap owner.name so each call's (start, seconds, tokens sampled) is appended to calls (when only(args))."""
    original = getattr(owner, name)

    def wrapper(*a, **k):
        started = time.time()
        result = original(*a, **k)
        if only is None or only(a):
            ids = getattr(result, "sequences", result)
            prompt = k["input_ids"] if "input_ids" in k else a[1]
            sampled = ids.shape[1] - prompt.shape[1] if name == "generate" else 0
            calls.append((started, time.time() - started, sampled))
        return result

    setattr(owner, name, wrapper)


def worker_ours(s: dict) -> dict:
    from transformers import GenerationMixin

    from studio.config import DataSpec, LoraSpec, PPOSpec, RewardSource, RewardsSpec, RunConfig, TrainSpec
    from studio.runs import manager
    from studio.runs.metrics import MetricsWriter, read_all
    from studio.trainers import ppo
    from studio.trainers.rewards import StageRewards

    config = RunConfig(
        stage="ppo",
        data=DataSpec(source="hh-rlhf", path=s["pairs"], eval_fraction=0.0, max_length=128),
        lora=LoraSpec(enabled=s["lora"], r=8, alpha=16, dropout=0.0),
        train=TrainSpec(
            max_steps=s["steps"],
            learning_rate=s["learning_rate"],
            batch_size=s["batch_size"],
            gradient_accumulation_steps=1,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            weight_decay=0.0,
            max_grad_norm=0.0,
            logging_steps=10,
            save_steps=0,
            seed=s["seed"],
        ),  # TRL: no saves
        rewards=RewardsSpec(sources=[RewardSource(run=s["reward_run"])]),
        ppo=PPOSpec(
            response_length=s["response_length"],
            kl_coef=s["kl_coef"],
            target_kl=None,
            kl_estimator="k1",
            missing_eos_penalty=s["missing_eos_penalty"],
            gamma=1.0,
            lam=0.95,
            cliprange=0.2,
            cliprange_value=0.2,
            vf_coef=0.1,
            ppo_epochs=s["ppo_epochs"],
            mini_batch_size=s["mini_batch_size"],
            whiten_advantages=True,
        ),
    )
    generate, scoring, step_end = [], [], []
    timed(GenerationMixin, "generate", generate)
    timed(StageRewards, "score", scoring)  # the training steps' scoring (the dry run before them is not timed)
    write = MetricsWriter.write

    def stamped_write(self, row):  # ppo.train writes one row at the end of each step
        step_end.append((time.time(), time.process_time()))
        return write(self, row)

    MetricsWriter.write = stamped_write
    run = manager.create(config)
    ppo.train(config, run)
    rows = read_all(run.metrics_path)
    return {
        "step_end": step_end,
        "scores": [r["reward_with_eos_penalty"] for r in rows],
        "generate": generate,
        "scoring": scoring,
        "kl": [r["kl"] for r in rows],
        "final_policy": str(run.adapter_dir),
    }


def rendered_reward(get_reward, reward_model, tokenizer, s: dict):
    """TRL's get_reward, except that the reward model reads each answer as studio.serve.scoring does: the prompt's
    messages plus the decoded answer (cut at its first end-of-turn token) rendered with the chat template, padded
    on the right, scored at the last token. TRL's own way feeds the sampled ids and reads the score at the
    end-of-turn token, or at the last token of an unfinished answer, positions the reward model never trained on."""
    import torch

    messages = {tuple(ids): m for ids, m in zip(s["prompt_ids"], s["prompt_messages"])}

    def studio_get_reward(model, query_responses, pad_token_id, context_length):
        if model is not reward_model:  # the value model goes TRL's way
            return get_reward(model, query_responses, pad_token_id, context_length)
        rendered = []
        for query, response in zip(query_responses[:, :context_length], query_responses[:, context_length:]):
            prompt = messages[tuple(query[query != pad_token_id].tolist())]
            answer = tokenizer.decode(response, skip_special_tokens=True)
            rendered.append(
                tokenizer.apply_chat_template(
                    prompt + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=True
                )["input_ids"]
            )
        width = max(len(x) for x in rendered)
        ids = torch.full((len(rendered), width), pad_token_id)
        mask = torch.zeros_like(ids)
        for row, x in enumerate(rendered):
            ids[row, : len(x)], mask[row, : len(x)] = torch.tensor(x), 1
        scores = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, 0]
        return None, scores, None

    return studio_get_reward


def worker_trl(s: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        GenerationMixin,
        TrainerCallback,
        set_seed,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    tokenizer = AutoTokenizer.from_pretrained(s["policy_dir"])
    tokenizer.padding_side = "left"  # TRL's rollout expects prompts padded on the left
    set_seed(s["seed"])  # TRL's PPO loop shuffles minibatches with numpy's global generator, which it never seeds
    policy = AutoModelForCausalLM.from_pretrained(s["policy_dir"], dtype=torch.float32)
    reference = None if s["lora"] else AutoModelForCausalLM.from_pretrained(s["policy_dir"], dtype=torch.float32)
    if s["trl_value"] == "shared":
        value = torch.nn.Module()
        value.base_model_prefix = "model"
        value.model = policy.model  # the policy's body: LoRA layers TRL injects later are shared too
        value.score = torch.nn.Linear(policy.config.hidden_size, 1, bias=False)
    else:
        value = AutoModelForSequenceClassification.from_pretrained(s["policy_dir"], num_labels=1, dtype=torch.float32)
    torch.nn.init.zeros_(value.score.weight)  # like our value head: predict 0 at first
    reward_model = AutoModelForSequenceClassification.from_pretrained(s["reward_dir"], dtype=torch.float32).eval()
    peft_config = None
    if s["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    prompts = Dataset.from_dict({"input_ids": s["prompt_ids"]})
    args = PPOConfig(
        output_dir=str(Path(s["home"]) / "trl-out"),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        seed=s["seed"],
        total_episodes=s["steps"] * s["batch_size"],
        per_device_train_batch_size=s["batch_size"],
        gradient_accumulation_steps=1,
        num_mini_batches=s["batch_size"] // s["mini_batch_size"],
        local_rollout_forward_batch_size=s["batch_size"],
        num_ppo_epochs=s["ppo_epochs"],
        learning_rate=s["learning_rate"],
        lr_scheduler_type="constant",
        weight_decay=0.0,
        response_length=s["response_length"],
        temperature=1.0,
        stop_token="eos",
        missing_eos_penalty=s["missing_eos_penalty"],
        kl_coef=s["kl_coef"],
        kl_estimator="k1",
        whiten_rewards=False,
        gamma=1.0,
        lam=0.95,
        cliprange=0.2,
        cliprange_value=0.2,
        vf_coef=0.1,
        num_sample_generations=0,
    )

    step_end, scores, kl = [], [], []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "objective/scores" in logs:
                scores.append(logs["objective/scores"])
                kl.append(logs["objective/kl"])

        def on_step_end(self, args, state, control, **kwargs):
            step_end.append((time.time(), time.process_time()))

    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward_model,
        train_dataset=prompts,
        value_model=value,
        eval_dataset=prompts.select(range(s["batch_size"])),
        peft_config=peft_config,
        callbacks=[Clock()],
    )
    if s["trl_reward"] == "rendered":
        trl_ppo.get_reward = rendered_reward(trl_ppo.get_reward, reward_model, tokenizer, s)
    generate, scoring = [], []
    timed(GenerationMixin, "generate", generate)
    timed(trl_ppo, "get_reward", scoring, only=lambda a: a[0] is trainer.reward_model)
    if s["trl_skip_gc"]:  # TRL's loop calls gc.collect() twice a step; see how fast it is without that
        trl_ppo.gc = types.SimpleNamespace(collect=lambda *a: 0)
    trainer.train()
    final = Path(s["home"]) / "trl-final-policy"
    trainer.accelerator.unwrap_model(trainer.model).policy.save_pretrained(final)
    return {
        "step_end": step_end,
        "scores": scores,
        "generate": generate,
        "scoring": scoring,
        "kl": kl,
        "final_policy": str(final),
    }


def run_worker(kind: str, python: Path, settings: dict, threads: int) -> dict:
    """One trainer in its own process; returns what the worker measured."""
    folder = Path(settings["home"])
    path = folder / f"settings-{kind}.json"
    path.write_text(json.dumps(settings))
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRL_EXPERIMENTAL_SILENCE="1",
    )
    log = folder / f"{kind}.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [str(python), __file__, "--worker", kind, "--settings", str(path)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        sys.exit(f"the {kind} trainer failed:\n" + "\n".join(log.read_text().splitlines()[-30:]))
    return json.loads((folder / f"result-{kind}.json").read_text())


def summarise(result: dict, batch_size: int) -> dict:
    """Per-step figures over steps 2..N (between the first and the last end-of-step stamp) and reward quarters."""
    (wall0, cpu0), (wall1, cpu1) = result["step_end"][0], result["step_end"][-1]
    scores, timed_steps = result["scores"], len(result["step_end"]) - 1
    per_step = (wall1 - wall0) / timed_steps

    def after_first(calls, i):  # seconds (i=1) or sampled tokens (i=2) per timed step
        return sum(c[i] for c in calls if c[0] >= wall0) / timed_steps

    quarter = max(1, len(scores) // 4)
    first, last = sum(scores[:quarter]) / quarter, sum(scores[-quarter:]) / quarter
    generate, scoring = after_first(result["generate"], 1), after_first(result["scoring"], 1)
    return {
        "s_per_episode": per_step / batch_size,
        "cpu_per_episode": (cpu1 - cpu0) / timed_steps / batch_size,
        "s_per_step": per_step,
        "tokens": after_first(result["generate"], 2),
        "generate": generate,
        "scoring": scoring,
        "rest": per_step - generate - scoring,
        "first": first,
        "last": last,
        "gained": last - first,
        "late_kl": sum(result["kl"][-quarter:]) / quarter,
    }


def print_table(rows: list[tuple[str, dict]]) -> None:
    print(
        f"{'':14} {'s/episode':>9} {'cpu s/ep':>8} {'s/step':>6} {'tokens':>6} {'generate':>8} {'scoring':>7} "
        f"{'rest':>6} {'reward q1':>9} {'q4':>6} {'gained':>6} {'kl q4':>5} {'judged':>6} {'gain':>5}"
    )
    for name, r in rows:
        print(
            f"{name:14} {r['s_per_episode']:9.5f} {r['cpu_per_episode']:8.5f} {r['s_per_step']:6.3f} "
            f"{r['tokens']:6.1f} {r['generate']:8.3f} {r['scoring']:7.3f} {r['rest']:6.3f} {r['first']:9.3f} "
            f"{r['last']:6.3f} {r['gained']:6.3f} {r['late_kl']:5.2f} {r['judged']:6.3f} {r['judged_gain']:5.2f}"
        )


LEGEND = """s/episode: wall seconds per episode over steps 2..N; cpu s/ep: the trainer process's CPU seconds per
episode (less sensitive to other work on the machine); s/step, generate, scoring, rest: wall seconds per step;
tokens: decode steps per step (generate() stops once every answer has ended); reward q1, q4: mean logged score
(after the missing-EOS penalty) in the first and last quarter of steps; gained = q4 - q1; kl q4: KL per answer
in the last quarter; judged: mean score (after the penalty) of {n} fresh answers from the final policy, judged
by studio.serve.scoring for both; gain: judged minus the starting policy's {start:.3f}."""


def main() -> None:
    args = parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        settings = json.loads(Path(args.settings).read_text())
        result = (worker_ours if args.worker == "ours" else worker_trl)(settings)
        (Path(settings["home"]) / f"result-{args.worker}.json").write_text(json.dumps(result))
        return

    if args.skip_setup:
        trl_python = TRL_VENV / "bin" / "python"
        if not trl_python.exists():
            sys.exit(f"--skip-setup: {TRL_VENV} does not exist; run once without --skip-setup")
    else:
        trl_python = setup_trl_venv()

    home = Path(tempfile.mkdtemp(prefix="ppo-bench-home-"))
    os.environ["RLHF_STUDIO_HOME"] = str(home)  # before studio is imported: nothing lands in the user's home
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(args.threads)  # the final-policy evaluation runs here
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        print("preparing: tiny model, reward model on polite-vs-rude pairs, plain export for TRL", flush=True)
        with open(home / "prepare.log", "w") as log, contextlib.redirect_stdout(log):
            prepared = prepare(home, args.seed)
        steps = -(-args.episodes // args.batch_size)
        settings = {
            **prepared,
            "steps": steps,
            "batch_size": args.batch_size,
            "response_length": args.response_length,
            "mini_batch_size": args.mini_batch_size,
            "ppo_epochs": args.ppo_epochs,
            "learning_rate": args.learning_rate,
            "kl_coef": args.kl_coef,
            "missing_eos_penalty": args.missing_eos_penalty,
            "lora": args.lora,
            "trl_value": args.trl_value,
            "trl_skip_gc": args.trl_skip_gc,
            "trl_reward": args.trl_reward,
            "seed": args.seed,
        }
        print(f"reward model: held-out polite-over-rude accuracy {prepared['reward_accuracy']:.2f}")
        print(
            f"PPO: {steps * args.batch_size} episodes = {steps} steps of {args.batch_size}, response length "
            f"{args.response_length}, {args.ppo_epochs} PPO epochs of minibatches of {args.mini_batch_size}, "
            f"lr {args.learning_rate:g}, kl_coef {args.kl_coef:g}, missing-EOS penalty "
            f"{args.missing_eos_penalty:g}, {'LoRA r 8' if args.lora else 'full fine-tuning'}, {args.threads} "
            f"torch thread(s); TRL: value model {args.trl_value}, reward read {args.trl_reward}"
            f"{', gc.collect() skipped' if args.trl_skip_gc else ''}\n",
            flush=True,
        )
        start = evaluate(settings["policy_dir"], settings, args.eval_samples)
        ratios = []
        for repeat in range(1, args.repeats + 1):
            rows = []
            for name, kind, python in (
                ("ours (studio)", "ours", Path(sys.executable)),
                (f"TRL {TRL_VERSION}", "trl", trl_python),
            ):
                result = run_worker(kind, python, settings, args.threads)
                row = summarise(result, args.batch_size)
                row["judged"] = evaluate(result["final_policy"], settings, args.eval_samples)
                row["judged_gain"] = row["judged"] - start
                rows.append((name, row))
            ratio = rows[0][1]["s_per_episode"] / rows[1][1]["s_per_episode"]
            cpu_ratio = rows[0][1]["cpu_per_episode"] / rows[1][1]["cpu_per_episode"]
            ratios.append((ratio, cpu_ratio))
            if args.repeats > 1:
                print(f"repeat {repeat}/{args.repeats}")
            print_table(rows)
            print(
                f"ratio ours/TRL seconds per episode: {ratio:.3f} wall, {cpu_ratio:.3f} CPU "
                f"(ours is {1 / ratio:.2f}x as fast by the wall clock)\n",
                flush=True,
            )
        print(LEGEND.format(n=args.eval_samples, start=start))
        if args.repeats > 1:
            for i, what in enumerate(("wall", "CPU")):
                values = sorted(r[i] for r in ratios)
                print(
                    f"ratio ours/TRL ({what}) over {args.repeats} repeats: median {values[len(values) // 2]:.3f}, "
                    f"min {values[0]:.3f}, max {values[-1]:.3f}"
                )
    finally:
        if args.keep:
            print(f"studio home kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
