"""What the experiment trackers cost a run: the tiny SFT preset's training time with no tracker, with TensorBoard,
MLflow (a local SQLite store) and Trackio at once, and with MLflow pointed at a server that takes connections and
never answers (a loopback socket that is listened on and never read): each call waits out MLflow's timeout in the
relay's thread (studio/runs/trackers.py) while the training goes on, and the end of the run waits for it at most
trackers.CLOSE_SECONDS.

    python bench/trackers.py [--steps 60] [--repeats 2]

Each setting trains `presets/sft-dolly-tiny.yaml` through the CLI in a fresh studio home, logging every step, and
reads the Trainer's own train_runtime (the training loop alone, model loading left out) from metrics.jsonl; the
settings take turns, --repeats times, and the median of each is printed with its ratio to no tracker. Absolute
times depend on the machine and its load; the ratios are the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def silent_server() -> socket.socket:
    """A loopback socket that accepts connections (the kernel's backlog does) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server


def settings(home: Path, silent_port: int) -> dict[str, tuple[list[str], dict]]:
    """name -> (train.report_to, extra environment)."""
    local = {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "TRACKIO_DIR": str(home / "trackio")}
    return {
        "none": ([], {}),
        "tensorboard+mlflow+trackio": (["tensorboard", "mlflow", "trackio"], local),
        "mlflow, server silent": (["mlflow"], {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{silent_port}"}),
    }


def train(home: Path, steps: int, report_to: list[str], env: dict) -> tuple[float, float]:
    """(train_runtime, the command's wall time) of one run."""
    args = [sys.executable, "-m", "studio", "train", "presets/sft-dolly-tiny.yaml"]
    for override in (
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        "train.eval_steps=0",
        "train.save_steps=0",
        "timeline.prompts=[]",
        f"train.report_to=[{','.join(report_to)}]",
    ):
        args += ["--set", override]
    started = time.perf_counter()
    done = subprocess.run(
        args, cwd=REPO, env={**os.environ, "RLHF_STUDIO_HOME": str(home), **env}, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))
    rows = [json.loads(line) for line in (home / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    return next(row["train_runtime"] for row in rows if "train_runtime" in row), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp, silent_server() as silent:
        home = Path(tmp)
        cases = settings(home, silent.getsockname()[1])
        train(home, 2, [], {})  # builds the tiny model once, outside the timings
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, (report_to, env) in cases.items():
                times[name].append(train(home, args.steps, report_to, env))
    base = statistics.median(t for t, _ in times["none"])
    print(f"tiny SFT, {args.steps} steps logged every step, median of {args.repeats} runs per setting")
    print(f"{'trackers':<28} {'train_runtime':>14} {'ratio':>7} {'command wall':>13}")
    for name, pairs in times.items():
        runtime = statistics.median(t for t, _ in pairs)
        wall = statistics.median(w for _, w in pairs)
        print(f"{name:<28} {runtime:>13.2f}s {runtime / base:>7.2f} {wall:>12.1f}s")


if __name__ == "__main__":
    main()
