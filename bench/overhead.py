"""The studio's overhead over a plain TRL script, for SFT, DPO and the reward model.

    python bench/overhead.py [--steps 60] [--warmup 5] [--stages sft,dpo,reward] [--repeats 3]

Each stage's tiny preset (presets/{sft-dolly,dpo-hh,rm-hh}-tiny.yaml, cut to --steps optimizer steps with a
metrics row per step, no evaluation and no checkpoints) is trained in two ways, --repeats times each, alternated,
each time as a fresh process started from here:
1. `rlhf-studio train PRESET --set ...`: the CLI, the worker's supervisor and the training process, everything
   a user's run goes through (status, metrics, throughput hook, cancel checks);
2. bench/plain_trl.py: the hand-written TRL script, on the very rows the studio's data preparation produced
   (written to a file first), the same model, LoRA and hyperparameters.
Printed per stage: steady-state seconds per step (the mean gap between the log times of steps --warmup+1 onwards)
of each and their ratio (studio / plain; target at most 1.03), and seconds from starting the command to the first
optimizer step and their ratio (target at most 1.2): the medians of the repeats, since on a small shared machine
one run of a 40 ms step varies by 20% from the next. Quote the ratios, not the absolute times.
Also printed: CPU seconds per step of the process that trains (the studio's training process, the plain script),
read from outside every 20 ms the same way for both and interpolated at the steps' log times, over the same steady
steps: a figure less moved than wall-clock time by what else the machine is doing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRESETS = {"sft": "sft-dolly-tiny", "dpo": "dpo-hh-tiny", "reward": "rm-hh-tiny"}


def overrides(steps: int) -> list[str]:
    return [
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        "train.eval_steps=0",
        "train.save_steps=0",
        "data.eval_fraction=0",
        "timeline.prompts=[]",
    ]


def plain_settings(stage: str, steps: int, folder: Path) -> Path:
    """The rows and settings for bench/plain_trl.py, from the studio's own data preparation of the preset."""
    from studio import config as cfg
    from studio import data
    from studio.modeling import models

    config = cfg.load_config(REPO / "presets" / f"{PRESETS[stage]}.yaml", overrides(steps))
    tokenizer = models.load_tokenizer(config.model)
    train, _ = data.prepare(config, "sft" if stage == "sft" else "preference", tokenizer)  # eval_fraction 0: all
    rows = train.rows
    if stage != "sft":  # as the studio's DPO and reward trainers do without reward.use_margin
        rows = [{k: v for k, v in row.items() if k != "margin"} for row in rows]
    (folder / f"{stage}-rows.json").write_text(json.dumps(rows))
    lora, t = config.lora, config.train
    settings = {
        "stage": stage,
        "model": models.resolve(config.model.name),
        "rows": str(folder / f"{stage}-rows.json"),
        "output_dir": str(folder / f"{stage}-plain"),
        "max_steps": steps,
        "learning_rate": t.learning_rate,
        "batch_size": t.batch_size,
        "seed": t.seed,
        "lr_scheduler": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "max_length": config.data.max_length,
        "lora_r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": "all-linear" if lora.target_modules == ["all-linear"] else lora.target_modules,
        "gradient_checkpointing": t.gradient_checkpointing,
        "packing": config.sft.packing,
        "completion_only_loss": config.sft.completion_only_loss,
        "beta": config.dpo.beta,
    }
    path = folder / f"{stage}-settings.json"
    path.write_text(json.dumps(settings))
    return path


def timed(command: list[str], env: dict, trainer_marker: str | None = None) -> tuple[float, list[tuple[float, float]]]:
    """Run a command to its end: (the wall-clock time it was started at, CPU samples of the process that trains).
    That process is the command itself, or (trainer_marker) its descendant whose command line has that argument.
    Samples are (wall time, user + system CPU seconds), every 20 ms while it runs."""
    import psutil

    began = time.time()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    trainer = None if trainer_marker else psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            if trainer is None:
                found = [c for c in psutil.Process(proc.pid).children(recursive=True) if trainer_marker in c.cmdline()]
                trainer = found[0] if found else None
            if trainer is not None:
                cpu = trainer.cpu_times()
                samples.append((time.time(), cpu.user + cpu.system))
        except psutil.Error:  # it ended between two looks
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return began, samples


def run_dirs() -> set[Path]:
    from studio.runs.store import all_run_dirs

    return {run.path for run in all_run_dirs()}


def studio_times(stage: str, steps: int, env: dict) -> tuple[float, list[float], list]:
    from studio.runs.metrics import read_all

    before = run_dirs()
    began, cpu = timed(
        [
            sys.executable,
            "-m",
            "studio",
            "train",
            f"presets/{PRESETS[stage]}.yaml",
            *[arg for o in overrides(steps) for arg in ("--set", o)],
        ],
        env,
        trainer_marker="--training",  # studio/runs/worker.py: the supervisor starts the training process with it
    )
    (run_dir,) = run_dirs() - before
    rows = [row for row in read_all(run_dir / "metrics.jsonl") if "loss" in row]
    return began, [row["time"] for row in rows], cpu


def plain_times(settings: Path, env: dict, folder: Path) -> tuple[float, list[float], list]:
    out = folder / "plain-times.json"
    began, cpu = timed([sys.executable, str(REPO / "bench" / "plain_trl.py"), str(settings), str(out)], env)
    return began, json.loads(out.read_text())["times"], cpu


def cpu_per_step(times: list[float], warmup: int, samples: list[tuple[float, float]]) -> float:
    """CPU seconds per step over the steady steps: the trainer's CPU time interpolated at the first and the last
    steady step's log time."""

    def cpu_at(when: float) -> float:
        for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
            if t0 <= when <= t1:
                return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1
        raise SystemExit(f"no CPU sample around {when:.2f}: the training process was not found while it ran")

    steady = times[warmup:]
    return (cpu_at(steady[-1]) - cpu_at(steady[0])) / (len(steady) - 1)


def per_step(times: list[float], warmup: int) -> float:
    steady = times[warmup:]
    return (steady[-1] - steady[0]) / (len(steady) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the steady state")
    parser.add_argument("--stages", default="sft,dpo,reward")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternated; medians are printed")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rlhf-studio-overhead-"))
    os.environ["RLHF_STUDIO_HOME"] = str(folder / "home")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    print(
        f"# {args.steps} steps per run, steady state from step {args.warmup + 1}, median of {args.repeats} runs "
        f"each; {time.strftime('%Y-%m-%d')}"
    )
    print(
        "| stage | s/step studio | s/step plain TRL | ratio | CPU s/step studio | plain | ratio "
        "| to first step studio | plain | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for stage in args.stages.split(","):
        settings = plain_settings(stage, args.steps, folder)  # also builds the tiny model before anything is timed
        studio, plain = [], []  # (s/step, s to the first step, CPU s/step) of each repeat
        for _ in range(args.repeats):  # alternated, so a slow spell of the machine hits both alike
            for times_of, results in (
                (functools.partial(studio_times, stage, args.steps, env), studio),
                (functools.partial(plain_times, settings, env, folder), plain),
            ):
                began, times, cpu = times_of()
                assert len(times) == args.steps, (stage, len(times))
                results.append((per_step(times, args.warmup), times[0] - began, cpu_per_step(times, args.warmup, cpu)))
        s_step, s_first, s_cpu = (statistics.median(r[i] for r in studio) for i in (0, 1, 2))
        p_step, p_first, p_cpu = (statistics.median(r[i] for r in plain) for i in (0, 1, 2))
        print(
            f"| {stage} | {s_step:.4f} | {p_step:.4f} | {s_step / p_step:.3f} | {s_cpu:.4f} | {p_cpu:.4f} "
            f"| {s_cpu / p_cpu:.3f} | {s_first:.1f} s | {p_first:.1f} s | {s_first / p_first:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
