"""SFT tokens per second with packing against plain padding, on data of mixed lengths.

    python bench/packing.py [--steps 30] [--rows 2000] [--max-length 512]

Writes synthetic Dolly-schema rows with Dolly-like lengths (bench/synthetic.py: instructions about 15 words,
responses about 70, a long tail), then trains the sft-dolly-tiny preset on them twice through
`rlhf-studio train`, with sft.packing false and true, --steps steps each, a metrics row per step. Prints each run's
trained tokens per second (padding not counted: the studio's own metric, studio/trainers/throughput.py) averaged after
the first 5 steps, and their ratio (packed / padded; target at least 1.5). Padding wastes the compute spent on pad
tokens, which grows with the spread of lengths in a batch; packing fills every sequence to max_length instead,
and each packed example still attends only to itself (studio/trainers/packing.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from synthetic import write_data  # noqa: E402

WARMUP = 5


def run_dirs() -> set[Path]:
    from studio.runs.store import all_run_dirs

    return {run.path for run in all_run_dirs()}


def tokens_per_second(dolly: Path, packing: bool, steps: int, max_length: int, env: dict) -> tuple[float, int]:
    """(mean trained tokens/s after the warm-up, rows logged) of one run."""
    from studio.runs.metrics import read_all

    before = run_dirs()
    sets = [
        f"data.path={dolly}",
        f"data.max_length={max_length}",
        f"sft.packing={str(packing).lower()}",
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        "train.eval_steps=0",
        "train.save_steps=0",
        "data.eval_fraction=0",
        "timeline.prompts=[]",
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "train",
            "presets/sft-dolly-tiny.yaml",
            *[arg for s in sets for arg in ("--set", s)],
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    (run_dir,) = run_dirs() - before
    rows = [row for row in read_all(run_dir / "metrics.jsonl") if "tokens_per_second" in row]
    return statistics.mean(row["tokens_per_second"] for row in rows[WARMUP:]), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rlhf-studio-packing-"))
    os.environ["RLHF_STUDIO_HOME"] = str(folder / "home")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    dolly, _ = write_data(folder, args.rows)
    padded, n = tokens_per_second(dolly, False, args.steps, args.max_length, env)
    packed, m = tokens_per_second(dolly, True, args.steps, args.max_length, env)
    print(f"SFT, tiny model, batch 8, max_length {args.max_length}, {args.steps} steps each ({n} and {m} rows logged)")
    print(
        f"padded: {padded:,.0f} tokens/s; packed: {packed:,.0f} tokens/s; ratio packed/padded {packed / padded:.2f}"
        " (target at least 1.5)"
    )


if __name__ == "__main__":
    main()
