"""Health warnings for each reward source of an online run: no signal (every answer scored alike for many rows),
saturated (alike, at the top of what it gave, after being lower) and unscored (None for every answer).

    python -m pytest tests/test_health_sources.py -q
"""

from __future__ import annotations

from studio.monitor import health


def rows(n: int, **series) -> list[dict]:
    """n metric rows, step 1..n, each key's value at row i given by its function of i."""
    return [{"step": i + 1, "reward": 0.0, **{k.replace("__", "/"): f(i) for k, f in series.items()}} for i in range(n)]


def by_check(stage: str, metric_rows: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for w in health.check_rows(stage, metric_rows):
        found.setdefault(w.check, []).append(w.message)
    return found


def test_a_source_with_no_spread_warns_no_signal_once_it_lasts():
    flat = rows(
        12,
        reward__format=lambda i: 0.0,
        reward_std__format=lambda i: 0.0,
        scored__format=lambda i: 1.0,
        reward__length=lambda i: 0.2 + 0.05 * i,
        reward_std__length=lambda i: 0.1,
        scored__length=lambda i: 1.0,
    )
    assert by_check("grpo", flat[:9]) == {}  # 9 rows in a row: not yet
    assert by_check("grpo", flat) == {
        "source_no_signal": [
            "reward source 'format' gives every answer the same score: 0 at step 12 (no spread for 10 rows in a row); "
            "first at step 10 (0)"
        ]
    }


def test_a_source_that_rose_to_a_ceiling_is_saturated_not_silent():
    climbing = rows(
        16,
        reward__format=lambda i: min(1.0, i / 5),
        reward_std__format=lambda i: 0.0 if i >= 5 else 0.4,
        scored__format=lambda i: 1.0,
    )
    warnings = [w for w in health.check_rows("ppo", climbing) if w.check.startswith("source_")]
    assert [(w.check, w.metric, w.step, w.value, w.last_step) for w in warnings] == [
        ("source_saturated", "reward/format", 15, 1.0, 16)
    ]
    assert warnings[0].message == (
        "reward source 'format' is saturated: 1 at step 16 (every answer alike for 10 rows in a row); "
        "first at step 15 (1)"
    )


def test_a_source_that_scores_nothing_warns_unscored():
    unscored = rows(6, scored__answer_check=lambda i: 0.0 if i >= 1 else 0.5)
    assert by_check("rejection", unscored) == {
        "source_unscored": ["reward source 'answer_check' scores no answer: 0 at step 6 (for 5 rows in a row)"]
    }
    assert by_check("rejection", unscored[:5]) == {}


def test_sources_are_not_watched_in_stages_without_them():
    flat = rows(12, reward__format=lambda i: 0.0, reward_std__format=lambda i: 0.0, scored__format=lambda i: 0.0)
    assert by_check("sft", flat) == {}
