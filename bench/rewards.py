"""The share of an online step spent scoring answers with the built-in reward sources.

    python bench/rewards.py [--presets grpo-math-tiny,ppo-format-tiny] [--steps 12]

For each preset (a pipeline), its stage that samples answers is trained here for --steps steps in a temporary studio
home, started from the base tiny model rather than the preset's earlier stages, and scored by the stage's built-in and
Python function sources only (its reward runs need those earlier stages; they are a forward pass of a model, not
what this measures). The time inside the reward sources is summed over every call of the training loop (the dry run
before the policy loads left out) and set against the loop's time: from the start of its first scoring call (the
first step's answers are sampled by then) to the last metrics row. Printed per preset: scoring calls, the seconds in
the sources and in the loop, and the share (the issue's target: under 5% for the built-ins). Quote the share, not
the seconds: absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def online_stage(preset: str, steps: int):
    """The preset's stage that samples answers, cut to `steps` steps, from the base model, without reward runs."""
    from studio import config as cfg
    from studio.pipelines import presets, recipe

    pipeline = recipe.from_dict(cfg.read_yaml(presets.resolve(preset)), default_name=preset)
    stage = next(s for s in pipeline.stages if s.config.stage in cfg.ONLINE_STAGES)
    config = stage.config
    config.init.from_run = None
    config.rewards.sources = [source for source in config.rewards.sources if not source.run]
    config.rewards.combine = "sum"
    if config.stage == "rejection":
        config.rejection.rounds = steps
    else:
        config.train.max_steps = steps
    config.train.save_steps = 0
    config.train.eval_steps = 0
    config.data.eval_fraction = 0.0
    config.timeline.prompts = []
    return config


def measure(preset: str, steps: int) -> tuple[int, float, float]:
    """(scoring calls, seconds in the reward sources, seconds of the training loop) of one short run of the preset's
    stage, the dry run left out."""
    import importlib

    from studio import stages
    from studio.runs import manager
    from studio.runs.metrics import read_all
    from studio.serve.rewards import RewardSet

    config = online_stage(preset, steps)
    calls: list[tuple[float, float]] = []  # (wall-clock start, seconds) of each call
    score = RewardSet.score

    def timed_score(self, *args, **kwargs):
        began, wall = time.perf_counter(), time.time()
        try:
            return score(self, *args, **kwargs)
        finally:
            calls.append((wall, time.perf_counter() - began))

    RewardSet.score = timed_score
    try:
        run = manager.create(config)
        importlib.import_module(stages.get(config.stage).trainer).train(config, run)
    finally:
        RewardSet.score = score
    loop = calls[1:]  # the first call is the dry run, before the policy loads
    end = max(row["time"] for row in read_all(run.metrics_path))
    return len(loop), sum(seconds for _, seconds in loop), end - loop[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="grpo-math-tiny,ppo-format-tiny")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    os.environ["RLHF_STUDIO_HOME"] = tempfile.mkdtemp(prefix="rlhf-studio-rewards-")
    print(f"# {args.steps} steps per preset, its built-in and function sources only; {time.strftime('%Y-%m-%d')}")
    print("| preset | stage | sources | scoring calls | s in sources | s in the training loop | share |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets.split(","):
        config = online_stage(preset, args.steps)
        names = ", ".join(source.label for source in config.rewards.sources)
        calls, in_sources, total = measure(preset, args.steps)
        print(
            f"| {preset} | {config.stage} | {names} | {calls} | {in_sources:.3f} | {total:.1f} | "
            f"{in_sources / total:.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
