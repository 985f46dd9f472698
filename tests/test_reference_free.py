"""The reference-free preference stages, orpo, simpo and cpo: each tiny preset trains in this process as the worker
trains it, and the chosen-vs-rejected margin (or accuracy) rises; their settings reach TRL; bad values are refused
in one line.

    python -m pytest tests/test_reference_free.py -q
"""

from __future__ import annotations

import subprocess
import sys
from statistics import mean

import pytest

from studio import stages
from studio.config import from_dict, load_config
from studio.errors import ConfigError
from studio.monitor import health
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from studio.runs.worker import run_stage
from tests.conftest import REPO, one_error_line, run_cli

EDGE = 3  # rows averaged at each end: the presets log steps 1, 5, 10, ... 40, nine rows


def train_preset(name: str, home) -> RunDir:
    """presets/<name>.yaml trained as shipped (40 steps, held-out pairs, checkpoints), in a home of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(home))
        run = manager.create(load_config(REPO / "presets" / f"{name}.yaml"))
        run_stage(run)
    return run


def logged(run: RunDir) -> list[dict]:
    """The training rows (the end-of-training summary row has train_loss and no loss)."""
    return [row for row in read_all(run.metrics_path) if "loss" in row and "rewards/margins" in row]


def ends(rows: list[dict], key: str) -> tuple[float, float]:
    """(mean of the first EDGE rows, mean of the last EDGE): one noisy batch never decides."""
    return mean(row[key] for row in rows[:EDGE]), mean(row[key] for row in rows[-EDGE:])


@pytest.fixture(scope="module")
def orpo_run(module_home) -> RunDir:
    return train_preset("orpo-hh-tiny", module_home)


@pytest.fixture(scope="module")
def simpo_run(module_home) -> RunDir:
    return train_preset("simpo-hh-tiny", module_home)


@pytest.fixture(scope="module")
def cpo_run(module_home) -> RunDir:
    return train_preset("cpo-hh-tiny", module_home)


def check_trained(run: RunDir, stage: str, beta: float) -> list[dict]:
    """What every reference-free run shows: 40 steps, every panel drawing logged keys, rewards that are beta x the
    policy's own log-likelihood (no reference: nothing is subtracted), and the adapter saved."""
    assert run.read_status().step == 40
    rows = logged(run)
    assert [row["step"] for row in rows] == [1, *range(5, 41, 5)]
    every_key = set().union(*read_all(run.metrics_path))
    for panel in stages.get(stage).panels:
        assert panel.when_logged or panel.keys_in(every_key), (stage, panel.title)
    for row in rows:
        assert row["rewards/chosen"] == pytest.approx(beta * row["logps/chosen"], rel=1e-4)
        assert row["rewards/rejected"] == pytest.approx(beta * row["logps/rejected"], rel=1e-4)
    assert any("eval_rewards/margins" in row for row in read_all(run.metrics_path))
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    return rows


# ---------------------------------------------------------------- the tiny presets learn


@pytest.mark.slow
def test_orpo_preset_widens_the_margin_while_learning_the_chosen_answers(orpo_run):
    # Measured (TRL 1.16, CPU): margin 1.63 -> 2.41 and log odds 1.79 -> 2.60 (means of three rows), NLL 3.3 -> 1.7.
    # The tiny model already ranks every pair right per token (accuracy 1.0 at step 1), so accuracy cannot rise; a
    # run that learned nothing keeps its margin within 0.1 of where it started.
    rows = check_trained(orpo_run, "orpo", beta=1.0)
    first, last = ends(rows, "rewards/margins")
    assert last > first + 0.4, (first, last)
    first, last = ends(rows, "log_odds_chosen")  # TRL's name for the log odds ratio itself
    assert last > first + 0.4, (first, last)
    first, last = ends(rows, "nll_loss")
    assert last < first - 0.5, (first, last)
    assert health.check_rows("orpo", read_all(orpo_run.metrics_path)) == []


@pytest.mark.slow
def test_simpo_preset_clears_its_target_margin_with_no_nll_term(simpo_run):
    # Measured: margin 3.45 -> 6.15 (means of three rows), loss 0.17 -> 0.01; cpo_alpha 0 leaves nll_loss at 0.
    rows = check_trained(simpo_run, "simpo", beta=2.0)
    first, last = ends(rows, "rewards/margins")
    assert last > first + 1.5, (first, last)
    assert last > 0.5  # beyond simpo.gamma, the margin the loss asks for
    assert all(row["nll_loss"] == 0 for row in rows)
    # At this learning rate the chosen answers keep their likelihood (at 1e-3 they lose it and the check fires).
    assert health.check_rows("simpo", read_all(simpo_run.metrics_path)) == []


@pytest.mark.slow
def test_cpo_preset_turns_the_margin_and_accuracy_round(cpo_run):
    # Measured: summed log-likelihood first favours the short rude answers (accuracy 0.13, margin -2.1 at step 1);
    # by the end accuracy is 0.7-0.85 and margin 1.6 (means of three rows: -1.14 -> 1.62, accuracy 0.33 -> 0.80).
    rows = check_trained(cpo_run, "cpo", beta=0.1)
    first, last = ends(rows, "rewards/margins")
    assert last > first + 1.5 and last > 0, (first, last)
    first, last = ends(rows, "rewards/accuracies")
    assert last > first + 0.25 and last >= 0.6, (first, last)
    first, last = ends(rows, "nll_loss")
    assert last < first, (first, last)


# ---------------------------------------------------------------- the health check without a reference


def test_chosen_reward_falling_counts_from_the_first_row_without_a_reference():
    # beta x log-likelihood is below -0.5 from the start; only a fall of 0.5 from there is a warning.
    steady = [{"step": i, "rewards/chosen": -5.7 + 0.1 * (i % 2)} for i in range(1, 16)]
    assert health.check_rows("simpo", steady) == []
    falling = [{"step": i, "rewards/chosen": -5.7 - 0.1 * i} for i in range(1, 16)]
    (warning,) = health.check_rows("simpo", falling)
    assert warning.check == "chosen_reward_falling"
    assert warning.suggestion.startswith("The chosen answers are now less likely than at the start")
    assert warning.suggestion.endswith("set simpo.cpo_alpha above 0, an NLL term on the chosen answers")


# ---------------------------------------------------------------- settings and bad input


def test_trls_experimental_notice_is_silenced_where_the_trainers_are_imported():
    code = (
        "import warnings\n"
        "from trl.import_utils import TRLExperimentalWarning\n"
        "warnings.simplefilter('error', TRLExperimentalWarning)\n"
        "from studio.trainers import reference_free\n"
        "print(reference_free.orpo_classes()[1].__name__, reference_free.cpo_classes()[1].__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ORPOTrainer", "CPOTrainer"]


@pytest.mark.parametrize(
    "section, message",
    [
        ({"cpo": {"loss_type": "simpo"}}, "cpo.loss_type = 'simpo': allowed values are sigmoid, hinge, ipo"),
        (
            {"cpo": {"loss_type": "hinge", "label_smoothing": 0.1}},
            "cpo.label_smoothing = 0.1: the hinge loss does not use label smoothing; set it to 0 or pick a loss that "
            "does: sigmoid",
        ),
        ({"simpo": {"gamma": -1}}, "simpo.gamma = -1.0: must be at least 0.0"),
        ({"orpo": {"beta": 0}}, "orpo.beta = 0.0: must be greater than 0.0"),
    ],
)
def test_bad_values_are_refused_naming_the_field(section, message):
    stage = next(iter(section))
    with pytest.raises(ConfigError) as err:
        from_dict({"stage": stage, "data": {"source": "hh-rlhf"}, **section})
    assert str(err.value) == message


def test_a_bad_value_on_the_command_line_is_one_line(studio_home):
    done = run_cli("train", "presets/simpo-hh-tiny.yaml", "--set", "simpo.beta=-2")
    assert one_error_line(done) == "error: simpo.beta = -2.0: must be greater than 0.0"
