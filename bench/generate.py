"""What Compare and Chat gain from holding one base model and switching adapters, and from batching prompts.

    python bench/generate.py [--model tiny] [--prompts 32] [--max-new-tokens 48]

Trains two short SFT runs of the model (the second started from the first) in a temporary studio home, then prints:
  - the time to switch the held model between base, run 1 and run 2 (adapters already loaded) against the time to
    load a run's model from scratch, as the studio would without the shared generator;
  - answers per second with settings.batch_size 1 and 8, on the same prompts, greedy.
Ratios from one run of this script are what to quote; absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def train(env: dict, *overrides: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "studio", "train", "presets/sft-dolly-tiny.yaml", *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=True,
    )
    return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    os.environ["RLHF_STUDIO_HOME"] = str(home)
    env = {**os.environ}
    common = ("--set", f"model.name={args.model}", "--set", "train.max_steps=10", "--set", "timeline.prompts=[]")
    first = train(env, *common)
    second = train(env, *common, "--set", f"init.from_run={first}")

    from studio.config import GenerationSpec
    from studio.serve import generate
    from studio.serve.compare import held_out_prompts

    prompts = (held_out_prompts(first, args.prompts) * args.prompts)[: args.prompts]
    one = [prompts[0]]
    settings = GenerationSpec(temperature=0, max_new_tokens=1)
    targets = [generate.base_target(first), generate.run_target(first), generate.run_target(second)]

    generator = generate.Generator()
    for target in targets:  # load the base and both adapters once
        generator.generate(target, one, settings)
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        for target in targets:
            generator.generate(target, one, settings)
    switch = (time.perf_counter() - started) / (rounds * len(targets))

    started = time.perf_counter()
    for target in targets[1:]:
        generate.Generator().generate(target, one, settings)
    fresh = (time.perf_counter() - started) / 2

    speeds = {}
    for batch_size in (1, 8):
        settings = GenerationSpec(temperature=0, max_new_tokens=args.max_new_tokens, batch_size=batch_size)
        generator.generate(targets[1], prompts[:batch_size], settings)  # warm up
        out = generator.generate(targets[1], prompts, settings)
        speeds[batch_size] = (len(prompts) / out.seconds, out.tokens_per_second)

    print(f"model {args.model}, {len(prompts)} prompts, max_new_tokens {args.max_new_tokens}")
    print(f"switch between held base/run/chained run and answer 1 token: {switch * 1000:.1f} ms")
    print(
        f"load a run's model from scratch and answer 1 token:          {fresh * 1000:.1f} ms "
        f"({fresh / switch:.1f}x the switch)"
    )
    for batch_size, (answers, tokens) in speeds.items():
        print(f"batch_size {batch_size}: {answers:.1f} answers/s, {tokens:.0f} tokens/s")
    print(f"batching 8 prompts: {speeds[8][0] / speeds[1][0]:.1f}x the answers per second of one at a time")


if __name__ == "__main__":
    main()
