"""How long a live chart refresh takes on a long run: 100,000 PPO metrics rows (every key PPO logs).

    python bench/charts.py            # --rows 100000 --max-points 1000 --smoothing 0.6

Prints, in seconds: the first load (parse every row, build every PPO panel), a live refresh after 100 new rows
(parse only those, rebuild every panel), the same with smoothing switched on for the first time (the full EMA),
plotly figures for all panels, and health.check over all rows. Timings are the best of 3 (the first load: one).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

from studio.monitor import charts, health
from studio.runs.metrics import MetricsWriter


def ppo_row(step: int, rng: random.Random) -> dict:
    t = step / 1000
    return {
        "reward": 1 + math.log1p(t) + rng.gauss(0, 0.3),
        "reward_std": 1.0,
        "reward/rm": 1 + rng.random(),
        "reward_with_eos_penalty": 1.0,
        "kl": 2 + rng.random(),
        "entropy": 3 + rng.random(),
        "policy_loss": rng.gauss(0, 0.05),
        "value_loss": rng.random(),
        "clip_fraction": 0.1 * rng.random(),
        "approx_kl": 0.01 * rng.random(),
        "value_clip_fraction": 0.0,
        "response_length": 20 + rng.random(),
        "eos_fraction": 0.9,
        "kl_coef": 0.05,
        "learning_rate": 1e-5,
        "time/generation": 0.2,
        "time/optimization": 0.1,
        "step": step,
        "epoch": 0,
        "time": 1.7e9 + step,
    }


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-points", type=int, default=charts.DEFAULT_MAX_POINTS)
    parser.add_argument("--smoothing", type=float, default=0.6)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        with open(path, "w", encoding="utf-8") as f:  # one open for speed; the format is MetricsWriter's
            for step in range(1, args.rows + 1):
                f.write(json.dumps(ppo_row(step, rng)) + "\n")
        feed = charts.ChartFeed(max_points=args.max_points)
        feed.add_run("bench", path, stage="ppo")

        start = time.perf_counter()
        feed.refresh()
        panels = feed.panels()
        first = time.perf_counter() - start

        writer, step = MetricsWriter(path), [args.rows]

        def live(smoothing: float) -> None:
            for _ in range(100):
                step[0] += 1
                writer.write(ppo_row(step[0], rng))
            feed.refresh()
            feed.panels(smoothing=smoothing)

        live_plain = best_of(3, lambda: live(0.0))
        smooth_first = best_of(1, lambda: feed.panels(smoothing=args.smoothing))
        live_smooth = best_of(3, lambda: live(args.smoothing))
        figures = best_of(3, lambda: [charts.figure(p) for p in feed.panels(smoothing=args.smoothing)])
        checks = best_of(3, lambda: health.check("ppo", feed.columns("bench").series()))
        points = max(len(s.steps) for p in panels for s in p.series)
    print(f"{args.rows:,} PPO rows, {len(panels)} panels, at most {points} points per series (max {args.max_points})")
    print(f"first load (parse all, build panels): {first:.3f} s")
    print(f"live refresh, 100 new rows:           {live_plain:.3f} s")
    print(f"smoothing {args.smoothing} switched on (full EMA):  {smooth_first:.3f} s")
    print(f"live refresh with smoothing:          {live_smooth:.3f} s")
    print(f"plotly figures for every panel:       {figures:.3f} s")
    print(f"health.check over every row:          {checks:.3f} s")


if __name__ == "__main__":
    main()
