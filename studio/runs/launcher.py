"""How a run's training process is started: directly, or through `accelerate launch` for several processes.

    launcher.command(config, ["python", "-m", "studio.runs.worker", RUN_DIR, "--training"])
    # train.processes 1: the command as given
    # train.processes 2:
    #   python -m accelerate.commands.launch --multi_gpu --num_processes 2 ... -m studio.runs.worker ...

Several processes share a run as accelerate arranges them (RANK, WORLD_SIZE in each one's environment): every rank
trains, rank 0 writes status, metrics and weights (studio/runs/worker.py). `train.distributed` picks how:
- ddp: a whole model per process; on a machine without a GPU, CPU processes over gloo (what the test suite runs);
- deepspeed-zero2 / deepspeed-zero3 / fsdp: the accelerate configs in studio/runs/launch/, for GPU machines.
PPO and rejection sampling run their own loops and support ddp only (config validation says so).
This module imports no torch: the UI process and the worker's supervisor use it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from studio import config as cfg
from studio.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent / "launch"
NEEDS = {"deepspeed-zero2": "deepspeed", "deepspeed-zero3": "deepspeed"}


def config_file(distributed: str) -> Path | None:
    """The accelerate config of a strategy; None for ddp, which needs none."""
    return None if distributed == "ddp" else CONFIGS / f"{distributed}.yaml"


def check(config: cfg.RunConfig) -> None:
    """Refuse, in one line, a strategy whose package is missing: before a run folder exists, not in the worker."""
    package = NEEDS.get(config.train.distributed)
    if config.train.processes > 1 and package and importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"train.distributed = {config.train.distributed} needs the {package} package: "
            f"pip install {package}, or use ddp or fsdp"
        )


def command(config: cfg.RunConfig, worker: list[str]) -> list[str]:
    """The command that trains the run: `worker` itself (python, then its arguments), or accelerate launching
    train.processes copies of it."""
    processes = config.train.processes
    if processes <= 1:
        return worker
    script = worker[1:]  # "-m studio.runs.worker RUN_DIR --training", or a test stand-in's script path
    if script[0] == "-m":
        script = ["--module", *script[1:]]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--dynamo_backend",
        "no",
    ]
    extra = config_file(config.train.distributed)
    if extra is not None:
        return [*launch, "--config_file", str(extra), *script]
    # --multi_gpu on a machine without a GPU starts torch.distributed over gloo: several CPU processes.
    # Mixed precision stays with the trainer (TrainingArguments.bf16), as in a single-process run.
    return [*launch, "--multi_gpu", "--mixed_precision", "no", *script]
