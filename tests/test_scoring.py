"""A finished reward model scored on the pairs it held out of training (studio.serve.scoring.held_out_scores), and the
histogram of those scores (studio.monitor.charts.score_histogram). Uses the session's tuned runs, read only."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from studio.config import load_config
from studio.errors import StudioError
from studio.monitor import charts
from studio.runs import manager
from studio.serve import scoring

pytestmark = pytest.mark.usefixtures("in_tuned_home")


@pytest.fixture(scope="module")
def held_out(tuned_runs):
    """held_out_scores of the tuned reward run over every held-out pair (one scoring for the module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(tuned_runs["home"]))
        return scoring.held_out_scores(tuned_runs["reward"], limit=None)


def test_the_held_out_pairs_are_the_ones_the_trainer_evaluated_on(tuned_runs, held_out):
    run = manager.find(tuned_runs["reward"])
    logged = re.search(r"data: (\d+) train pairs, (\d+) eval pairs", run.log_path.read_text())
    assert logged and held_out.held_out == int(logged[2]) == len(held_out.chosen) == len(held_out.rejected)

    # The trainer's last evaluation ran on the final weights: its mean chosen and rejected rewards (TRL averages
    # the means of eval batches of train.batch_size, in order) are the same numbers from the same pairs.
    config = load_config(run.config_path)
    last_eval = [json.loads(line) for line in run.metrics_path.read_text().splitlines() if "eval_loss" in line][-1]
    assert last_eval["step"] == config.train.max_steps
    size = config.train.batch_size

    def batch_means(scores):
        means = [sum(scores[i : i + size]) / len(scores[i : i + size]) for i in range(0, len(scores), size)]
        return sum(means) / len(means)

    assert batch_means(held_out.chosen) == pytest.approx(last_eval["eval_chosen_reward"], abs=1e-5)
    assert batch_means(held_out.rejected) == pytest.approx(last_eval["eval_rejected_reward"], abs=1e-5)


def test_accuracy_is_the_share_of_pairs_whose_chosen_answer_scores_higher(tuned_runs, held_out):
    pairs = scoring.held_out_pairs(tuned_runs["reward"])
    prompts = [p["prompt"] for p in pairs]
    chosen = scoring.score_batch(tuned_runs["reward"], prompts, [p["chosen"][0]["content"] for p in pairs])
    rejected = scoring.score_batch(tuned_runs["reward"], prompts, [p["rejected"][0]["content"] for p in pairs])
    assert held_out.chosen == chosen and held_out.rejected == rejected
    assert held_out.accuracy == sum(c > r for c, r in zip(chosen, rejected)) / len(pairs)
    assert held_out.accuracy > 0.5  # the tuned model learned to prefer polite answers


def test_a_limit_scores_the_first_pairs(tuned_runs, held_out):
    first = scoring.held_out_scores(tuned_runs["reward"], limit=4)
    assert first.chosen == held_out.chosen[:4] and first.rejected == held_out.rejected[:4]
    assert first.held_out == held_out.held_out


@pytest.mark.parametrize(
    "run, limit, message",
    [
        ("sft", 10, "is not a reward model (its stage is sft)"),
        ("reward", 0, "limit = 0: score at least 1 pair"),
    ],
)
def test_held_out_scores_refuse_with_one_line(tuned_runs, run, limit, message):
    with pytest.raises(StudioError, match=re.escape(message)):
        scoring.held_out_scores(tuned_runs[run], limit)


def test_a_reward_run_without_a_record_of_its_held_out_pairs_is_told_so(tuned_runs, tmp_path, monkeypatch):
    """A reward run trained before runs recorded their held-out rows (a copy of the tuned one, its record taken out):
    one line, never a split made again."""
    run_id, home = tuned_runs["reward"], tmp_path / "older-home"
    shutil.copytree(tuned_runs["home"] / "runs" / run_id, home / "runs" / run_id)
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    report = home / "runs" / run_id / "data_report.json"
    report.write_text(json.dumps({"source": "hh-rlhf", "format": "preference", "rows": 150}), encoding="utf-8")
    with pytest.raises(StudioError) as err:
        scoring.held_out_scores(run_id)
    assert str(err.value) == (
        f"run '{run_id}' has no record of the pairs it held out of training (it was trained before runs kept one); "
        "score pairs by hand instead"
    )


def test_reward_runs_lists_completed_reward_runs_only(tuned_runs):
    assert scoring.reward_runs() == [{"id": tuned_runs["reward"], "name": "tuned-rm", "model": "tiny"}]


def test_score_histogram_overlays_chosen_and_rejected_on_shared_bins():
    chosen, rejected = [1.0, 2.0, 2.5, 3.0], [-1.0, 0.0, 1.5]
    fig = charts.score_histogram(chosen, rejected, "Held-out scores")
    assert [t.type for t in fig.data] == ["histogram", "histogram"]
    assert [t.name for t in fig.data] == ["chosen (4)", "rejected (3)"]
    assert list(fig.data[0].x) == chosen and list(fig.data[1].x) == rejected
    assert fig.data[0].xbins == fig.data[1].xbins and fig.data[0].xbins.start == -1.0
    assert fig.data[0].xbins.end > 3.0  # the highest score falls in a bin
    assert fig.layout.barmode == "overlay" and fig.layout.title.text == "Held-out scores"


def test_score_histogram_of_equal_scores_still_has_a_bin():
    fig = charts.score_histogram([0.5, 0.5], [0.5])
    assert fig.data[0].xbins.size > 0
