"""The statistics of a pairwise evaluation: win rate with a bootstrap interval, and the win rate at equal length.

    outcomes = [1.0, 0.5, 0.0, 1.0]            # per prompt: the run won, tied, lost (None: the judge gave no verdict)
    summary = summarise(outcomes, run_lengths=[40, 12, 30, 35], baseline_lengths=[20, 12, 31, 30])
    summary.win_rate, summary.ci_low, summary.ci_high, summary.length_controlled_win_rate

Plain Python and NumPy: the CLI, the UI and the tests call it without loading a model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class WinRate:
    """One run against its baseline over the prompts the judge gave a verdict on."""

    prompts: int  # every prompt asked, judged or not
    wins: int
    ties: int
    losses: int
    no_verdict: int
    win_rate: float | None  # (wins + ties / 2) / judged; None when nothing was judged
    ci_low: float | None  # the 95% percentile bootstrap interval over prompts
    ci_high: float | None
    length_controlled_win_rate: float | None  # the logistic fit of the outcome on the length difference, at 0
    length_slope: float | None  # the fit's log-odds per standard deviation of length difference
    mean_length: float  # the run's answers, in words
    baseline_mean_length: float

    def to_dict(self) -> dict:
        return asdict(self)


def win_rate(outcomes: list[float]) -> float:
    """Wins count 1, ties one half, losses 0; the mean over the judged prompts."""
    return float(np.mean(outcomes))


def bootstrap_interval(outcomes: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the win rate, resampling prompts with replacement (seeded, so the same
    outcomes always give the same interval)."""
    values = np.asarray(outcomes, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    # A percentile interval of a lopsided sample can leave out its own mean by a hair; the interval reports the
    # uncertainty around the estimate, so it always holds it.
    centre = values.mean()
    return float(min(low, centre)), float(max(high, centre))


def length_controlled(outcomes: list[float], length_differences: list[float]) -> tuple[float, float]:
    """(the win rate at equal length, the slope): a logistic regression of the outcome (ties as one half) on the
    standardised length difference (run minus baseline), read where the difference is 0. A judge that favours
    longer answers gives a positive slope, and the controlled rate then discounts a run that won by writing more.
    A light ridge keeps the fit finite when every outcome is the same."""
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(length_differences, dtype=float)
    spread = d.std()
    x = d / spread if spread > 0 else np.zeros_like(d)
    design = np.column_stack([np.ones_like(x), x])
    weights = np.zeros(2)
    ridge = 1e-2
    for _ in range(100):  # Newton's method on the penalised log-likelihood: concave, so it settles in a few steps
        p = 1 / (1 + np.exp(-(design @ weights)))
        gradient = design.T @ (y - p) - ridge * weights
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights += step
        if np.abs(step).max() < 1e-10:
            break
    return float(1 / (1 + math.exp(-weights[0]))), float(weights[1])


def words(text: str) -> int:
    return len(text.split())


def summarise(outcomes: list[float | None], run_answers: list[str], baseline_answers: list[str]) -> WinRate:
    """Everything reported for one run: counts, win rate, its interval and the length-controlled figure, over the
    prompts with a verdict (a prompt with none is counted, never guessed)."""
    judged = [i for i, o in enumerate(outcomes) if o is not None]
    values = [float(outcomes[i]) for i in judged]
    run_words = [words(a) for a in run_answers]
    base_words = [words(a) for a in baseline_answers]
    result = WinRate(
        prompts=len(outcomes),
        wins=sum(v == 1.0 for v in values),
        ties=sum(v == 0.5 for v in values),
        losses=sum(v == 0.0 for v in values),
        no_verdict=len(outcomes) - len(judged),
        win_rate=None,
        ci_low=None,
        ci_high=None,
        length_controlled_win_rate=None,
        length_slope=None,
        mean_length=float(np.mean(run_words)) if run_words else 0.0,
        baseline_mean_length=float(np.mean(base_words)) if base_words else 0.0,
    )
    if values:
        result.win_rate = win_rate(values)
        result.ci_low, result.ci_high = bootstrap_interval(values)
        differences = [run_words[i] - base_words[i] for i in judged]
        result.length_controlled_win_rate, result.length_slope = length_controlled(values, differences)
    return result
