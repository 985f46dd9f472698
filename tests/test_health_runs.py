"""studio/monitor/health.py on a real run: the tiny SFT preset trained at learning rate 1.0 diverges (its loss goes
from 3.4 to 8 and above within a few steps), and the loss divergence warning says so, naming the steps.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_health_runs.py
"""

from __future__ import annotations

import pytest

from studio.monitor import health
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import run_cli


@pytest.mark.slow
def test_sft_at_learning_rate_1_gets_the_loss_divergence_warning(studio_home):
    # 8 steps logged each step (about 15 s on 2 cores): the loss jumps at step 3 and stays up.
    result = run_cli(
        "train",
        "presets/sft-dolly-tiny.yaml",
        "--set",
        "train.learning_rate=1.0",
        "--set",
        "train.max_steps=8",
        "--set",
        "train.logging_steps=1",
        "--set",
        "train.eval_steps=0",
        "--set",
        "train.save_steps=0",
        "--set",
        "timeline.prompts=[]",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    run = RunDir.of(result.stdout.split()[1])
    losses = [row["loss"] for row in read_all(run.metrics_path) if "loss" in row]
    assert len(losses) == 8 and max(losses[-5:]) > 2 * losses[0], losses  # it did diverge

    (warning,) = health.check_run(run)
    assert (warning.check, warning.metric, warning.last_step) == ("loss_diverging", "loss", 8)
    assert 3 <= warning.step <= 6 and warning.last_value >= 1.5 * min(losses)
    assert (
        warning.message.startswith("loss is diverging: ")
        and " at step 8 (median of the last 5 rows, " in warning.message
        and f"; first at step {int(warning.step)} (" in warning.message
    )
    assert "lower train.learning_rate" in warning.suggestion
