"""What pre-generation saves a person voting: the wait from a vote to the next pair on screen, with the next pair
made while the current one is read (studio/serve/vote_queue.py, as the Vote view does) and without (made only when
asked for).

    python bench/votes.py [--items 12] [--read 2.0] [--max-new-tokens 64]

A fresh studio home gets a tiny SFT run (a few steps), a vote set with typed prompts, and a queue between the base
model and that run. Each item is asked for, "read" for --read seconds (a sleep: the person reading), then voted on.
Prints the median and the total wait per item in both modes, and their ratio. The first item of each mode is left
out (nothing can be made ahead of it). Absolute times depend on the machine and its load; the ratio is the figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPTS = [f"Question {i}: what is a good way to spend a rainy afternoon?" for i in range(40)]


def _tiny_run(home: Path) -> str:
    command = [sys.executable, "-m", "studio", "train", "presets/sft-dolly-tiny.yaml", "--set", "train.max_steps=2"]
    env = {**os.environ, "RLHF_STUDIO_HOME": str(home)}
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    from studio.runs import manager

    return manager.list_runs()[-1]["id"]


def _waits(queue, plan, items: int, read: float, ahead: bool) -> list[float]:
    from studio.errors import StudioError
    from studio.serve import voting

    waits = []
    for _ in range(items):
        started = time.perf_counter()
        item = queue.next(plan, ahead=ahead)
        waits.append(time.perf_counter() - started)
        time.sleep(read)  # the person reads both answers
        try:
            voting.record_vote(plan.set_name, item.shown, "a", grade="better", annotator="bench")
        except StudioError:  # two equal answers: a person skips such a pair
            pass
    return waits[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--read", type=float, default=2.0, help="seconds a person reads each pair")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-votes-"))
    os.environ["RLHF_STUDIO_HOME"] = str(home)
    run_id = _tiny_run(home)

    from studio.config import GenerationSpec
    from studio.data.votes import sets
    from studio.serve import vote_queue

    settings = GenerationSpec(max_new_tokens=args.max_new_tokens, temperature=0.9)
    results = {}
    for ahead in (False, True):
        name = f"bench-{'ahead' if ahead else 'on-demand'}"
        sets.create(sets.VoteSet(name, prompts=PROMPTS))
        plan = vote_queue.Plan(name, ("base (tiny)", run_id), vote_queue.PAIR, settings=settings)
        queue = vote_queue.VoteQueue()
        results[ahead] = _waits(queue, plan, args.items, args.read, ahead)
        queue.cancel()

    print(f"tiny model, {args.max_new_tokens} new tokens per answer, {args.read:.1f} s reading per pair")
    print(f"{'mode':<28}{'median wait':>14}{'total wait':>14}")
    for ahead, label in ((False, "made when asked for"), (True, "made while the last is read")):
        waits = results[ahead]
        print(f"{label:<28}{statistics.median(waits):>12.3f} s{sum(waits):>12.2f} s")
    ratio = statistics.median(results[False]) / max(statistics.median(results[True]), 1e-6)
    print(f"median wait, on demand / made ahead: {ratio:.0f}x")


if __name__ == "__main__":
    main()
