"""What recording rollouts costs: the share of an online step spent building and writing its rollout rows, and the
size of rollouts.jsonl per 1,000 answers.

    python bench/rollouts.py [--presets grpo-math-tiny,ppo-format-tiny,rejection-tiny] [--steps 12]

For each preset (a pipeline), its stage that samples answers is trained here for --steps steps in a temporary studio
home, from the base tiny model and scored by its built-in sources (bench/rewards.py's `online_stage`; a stage scored
only by reward runs gets the built-in `length` rule instead, since those runs need the preset's earlier stages). The
time inside the recording code is summed over the loop: PPO's `record_rollouts` and the answer statistics, GRPO and
RLOO's hooks on TRL (rows built after sampling, written at the step's end), rejection's round rows and their token
detail, and every write. It is set against the training loop's time (its steps times the mean time between metrics
rows). Printed per preset: recorded answers, seconds recording, seconds of the loop, the share (the issue's
target: under 3%), the file's bytes per 1,000 answers, and what a 1,000-step run of 64 answers a step would write
with the default keep rules (every step; the cap is 100 MB) at that size per answer. Quote the shares and sizes, not
the seconds: absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from rewards import online_stage  # noqa: E402  (bench/rewards.py: a preset's online stage, cut short)

PROJECTED_STEPS, PROJECTED_ANSWERS = 1000, 64  # the sizing case: a 1,000-step run of batch 64


class Stopwatch:
    """Sums the time inside wrapped functions, counting only the outermost of nested calls."""

    def __init__(self):
        self.seconds = 0.0
        self.depth = 0

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            self.depth += 1
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds += time.perf_counter() - began

        setattr(owner, name, timed)


def recording_code(watch: Stopwatch) -> None:
    """Wrap every function that builds or writes rollout rows (and the answer statistics logged beside them)."""
    from studio.runs import rollouts
    from studio.trainers import online, online_rollouts, ppo, rejection

    watch.wrap(rollouts.RolloutWriter, "write")
    watch.wrap(ppo, "record_rollouts")
    watch.wrap(ppo, "answer_stats")
    watch.wrap(online, "answer_stats")
    watch.wrap(online_rollouts.RecordsRollouts, "_pending_rows")
    watch.wrap(online_rollouts.RecordsRollouts, "_write_pending")
    watch.wrap(rejection, "round_rollouts")
    watch.wrap(rejection, "add_round_token_detail")
    watch.wrap(rejection, "answer_stats")


def bench_config(preset: str, steps: int):
    from studio.config import RewardSource

    config = online_stage(preset, steps)
    if not config.rewards.sources:
        config.rewards.sources = [RewardSource(builtin="length", args={"target": 12})]
    return config


def measure(preset: str, steps: int, watch: Stopwatch) -> dict:
    from studio import stages
    from studio.runs import manager, rollouts
    from studio.runs.metrics import read_all

    config = bench_config(preset, steps)
    run = manager.create(config)
    watch.seconds = 0.0
    importlib.import_module(stages.get(config.stage).trainer).train(config, run)
    times = [row["time"] for row in read_all(run.metrics_path) if "time" in row]
    # The loop's time: its steps times the mean step between the first and the last metrics row (the first step's
    # own start is not logged, and the loading before it is not the loop).
    loop = (times[-1] - times[0]) / (len(times) - 1) * len(times)
    answers = len(rollouts.read(run))
    size = os.path.getsize(run.rollouts_path)
    return {"stage": config.stage, "answers": answers, "recording": watch.seconds, "loop": loop, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="grpo-math-tiny,ppo-format-tiny,rejection-tiny")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    os.environ["RLHF_STUDIO_HOME"] = tempfile.mkdtemp(prefix="rlhf-studio-rollouts-")
    watch = Stopwatch()
    recording_code(watch)
    print(f"# {args.steps} steps per preset, from the base tiny model; {time.strftime('%Y-%m-%d')}")
    print(
        "| preset | stage | answers recorded | s recording | s in the loop | share | bytes per 1,000 answers "
        f"| a {PROJECTED_STEPS}-step run of {PROJECTED_ANSWERS} answers |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        found = measure(preset, args.steps, watch)
        per_answer = found["bytes"] / found["answers"]
        projected = per_answer * PROJECTED_STEPS * PROJECTED_ANSWERS / 1e6
        print(
            f"| {preset} | {found['stage']} | {found['answers']} | {found['recording']:.3f} | {found['loop']:.1f} | "
            f"{found['recording'] / found['loop']:.2%} | {per_answer * 1000 / 1e3:.0f} KB | {projected:.0f} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
