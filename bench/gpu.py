"""SFT, reward model, DPO and PPO at real model sizes on a GPU: prints tokens/s, MFU and peak memory per stage.

    python bench/gpu.py                                  # SmolLM2-360M shapes, every stage
    python bench/gpu.py --model qwen2.5-0.5b --steps 30 --json out.json
    python bench/gpu.py --model bench-tiny --allow-cpu   # the script itself, end to end, on a CPU (no figures)

Each stage is its GPU preset (presets/<stage>-<data>-<model>.yaml, the PPO stage from the InstructGPT pipeline
preset) run through the studio's own engine in this process (manager.create + the worker's _train), so what is
measured is what `rlhf-studio train` does, fast defaults included. Only three things are swapped:
- the model: the real architecture (the hub config.json values, in ARCHITECTURES) with random weights, since the
  GPU machines here reach no hub. Speed and memory depend on shapes, not on values. The tokenizer is the built-in
  tiny model's; the embedding keeps the real vocabulary size, so the output layer costs what it really costs;
- the data: synthetic rows in Dolly's and HH-RLHF's raw schemas, lengths drawn to look like the real sets';
- the length of the run: --steps optimizer steps (PPO: --ppo-steps), no checkpoints, no evaluation.
Figures are the runs' own metrics (studio/trainers/throughput.py): tokens/s and MFU averaged over the steps after the
first --warmup ones; peak memory is torch.cuda.max_memory_allocated over the whole stage, next to the estimate
the Model tab shows (studio/presets.peak_memory).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from synthetic import write_data  # noqa: E402

# Hub config.json values of the preset models (model_type, then the shape fields that set cost).
ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "smollm2-135m": (
        "llama",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49152,
            max_position_embeddings=8192,
            rope_theta=100000.0,
            tie_word_embeddings=True,
        ),
    ),
    "smollm2-360m": (
        "llama",
        dict(
            hidden_size=960,
            intermediate_size=2560,
            num_hidden_layers=32,
            num_attention_heads=15,
            num_key_value_heads=5,
            vocab_size=49152,
            max_position_embeddings=8192,
            rope_theta=100000.0,
            tie_word_embeddings=True,
        ),
    ),
    "qwen2.5-0.5b": (
        "qwen2",
        dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
    ),
    "qwen2.5-1.5b": (
        "qwen2",
        dict(
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
    ),
    # Not a preset: small enough to run this script on a CPU, to check the script, not to measure anything.
    "bench-tiny": (
        "llama",
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=4096,
            max_position_embeddings=2048,
        ),
    ),
}
# The presets each model has (bench-tiny borrows SmolLM2-135M's).
PRESET_MODEL = {"bench-tiny": "smollm2-135m"}
PPO_PIPELINE = {"smollm2-135m": "ppo-hh-smollm2-135m", "smollm2-360m": "ppo-hh-smollm2-360m"}


def build_model(name: str, folder: Path) -> Path:
    """A random-weight model of the named architecture with the tiny model's tokenizer, saved as safetensors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from studio.modeling.models import tiny_model_path

    path = folder / name
    if (path / "config.json").is_file():
        return path
    model_type, shape = ARCHITECTURES[name]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path())
    config = AutoConfig.for_model(
        model_type,
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    del model
    return path


def stage_configs(name: str, model_dir: Path, dolly: Path, hh: Path, steps: int, ppo_steps: int) -> dict:
    """stage label -> (RunConfig, what it starts from) for the presets of `name`'s model."""
    from studio import config as cfg
    from studio.pipelines.recipe import load_pipeline

    preset = PRESET_MODEL.get(name, name)
    common = [
        f"model.name={model_dir}",
        "data.limit=",
        "data.eval_fraction=0",
        "data.subset=",
        "train.logging_steps=1",
        "train.eval_steps=0",
        "train.save_steps=0",
        "timeline.prompts=[]",
    ]
    data_of = {"sft": dolly, "reward": hh, "dpo": hh, "ppo": hh}
    found = {}
    for stage, file in (("sft", "sft-dolly"), ("reward", "rm-hh"), ("dpo", "dpo-hh")):
        if (REPO / "presets" / f"{file}-{preset}.yaml").is_file():
            found[stage] = cfg.read_yaml(REPO / "presets" / f"{file}-{preset}.yaml")
    if preset in PPO_PIPELINE:  # the InstructGPT pipeline's own stages win: they are what PPO follows
        for stage in load_pipeline(REPO / "presets" / f"{PPO_PIPELINE[preset]}.yaml").stages:
            found[stage.config.stage] = cfg.to_dict(stage.config)
    return {
        stage: cfg.from_dict(
            cfg.apply_overrides(
                raw,
                [*common, f"data.path={data_of[stage]}", f"train.max_steps={ppo_steps if stage == 'ppo' else steps}"],
            )
        )
        for stage, raw in found.items()
    }


def run_stage(config, label: str, warmup: int) -> dict:
    """Train one stage in this process; its figures from the run's metrics."""
    import torch

    from studio.pipelines.twins import peak_memory
    from studio.runs import manager, worker
    from studio.runs.metrics import read_all

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    run = manager.create(config)
    began = time.monotonic()
    code = worker._train(run)
    seconds = time.monotonic() - began
    status = run.read_status()
    if code != 0:
        raise SystemExit(f"{label}: the run failed: {status.error} (see {run.log_path})")
    rows = [r for r in read_all(run.metrics_path) if "tokens_per_second" in r]
    steady = rows[warmup:] or rows
    times = [r["time"] for r in steady]
    result = {
        "stage": label,
        "run": run.id,
        "steps": len(rows),
        "seconds": round(seconds, 1),
        "seconds_per_step": round((times[-1] - times[0]) / (len(times) - 1), 3) if len(times) > 1 else None,
        "tokens_per_second": round(statistics.mean(r["tokens_per_second"] for r in steady)),
        "mfu": round(statistics.mean(r["mfu"] for r in steady), 3) if all("mfu" in r for r in steady) else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "estimated_gib": round(peak_memory(config) / 2**30, 2),
    }
    worker.signal.signal(worker.signal.SIGTERM, worker.signal.SIG_DFL)  # _train's handler is for worker processes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-360m", choices=sorted(ARCHITECTURES))
    parser.add_argument("--stages", default="sft,reward,dpo,ppo", help="comma-separated, in this order")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per stage (PPO: --ppo-steps)")
    parser.add_argument("--ppo-steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the averages")
    parser.add_argument("--rows", type=int, default=4000, help="synthetic rows per data set")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override, every stage")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (checks the script only)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("bench/gpu.py measures a GPU and none is visible; --allow-cpu runs it anyway")
    home = Path(tempfile.mkdtemp(prefix="rlhf-studio-gpu-bench-"))
    os.environ["RLHF_STUDIO_HOME"] = str(home)

    from studio import config as cfg

    dolly, hh = write_data(home, args.rows)
    model_dir = build_model(args.model, home / "bench-models")
    configs = stage_configs(args.model, model_dir, dolly, hh, args.steps, args.ppo_steps)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"# {args.model} (random weights, real shapes) on {device}; torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d')}",
        flush=True,
    )
    results, done = [], {}
    for stage in args.stages.split(","):
        if stage not in configs:
            print(f"{stage}: no preset for {args.model}, skipped", flush=True)
            continue
        config = cfg.from_dict(cfg.apply_overrides(cfg.to_dict(configs[stage]), args.set))
        if stage in ("reward", "dpo", "ppo") and "sft" in done:
            config.init.from_run = done["sft"]  # as in the InstructGPT pipeline: later stages start from SFT
        if stage == "ppo":
            if "reward" not in done:
                print("ppo: needs the reward stage first, skipped", flush=True)
                continue
            config.reward_models.runs = [done["reward"]]
        result = run_stage(config, stage, args.warmup)
        done[stage] = result["run"]
        results.append(result)
        print(json.dumps(result), flush=True)

    print("\n| stage | tokens/s | MFU | s/step | peak GiB (estimate) |\n|---|---|---|---|---|")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        peak = f"{r['peak_memory_gib']} ({r['estimated_gib']})" if r["peak_memory_gib"] is not None else "-"
        print(f"| {r['stage']} | {r['tokens_per_second']} | {mfu} | {r['seconds_per_step']} | {peak} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "device": device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
