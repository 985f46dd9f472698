"""studio/monitor/charts.py: panels per stage, series from metric rows (smoothing, log scale, downsampling, overlays),
the incremental ChartFeed, and plotly figures.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_charts.py

tests/data/metrics/*.jsonl are the metrics.jsonl files of real runs of the tiny presets (2026-11-24).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import STAGES
from studio.monitor import charts
from studio.runs.metrics import MetricsWriter, read_all, truncate_after

FIXTURES = Path(__file__).parent / "data" / "metrics"
TINY_RUNS = {
    "sft": "sft-dolly-tiny",
    "reward": "rm-hh-tiny",
    "dpo": "dpo-hh-tiny",
    "kto": "kto-hh-tiny",
    "orpo": "orpo-hh-tiny",
    "simpo": "simpo-hh-tiny",
    "cpo": "cpo-hh-tiny",
    "ppo": "ppo-tiny",
    "rejection": "rejection-tiny",
    "grpo": "grpo-tiny",
    "rloo": "rloo-tiny",
}


def rows_of(key: str, values: list, start: int = 1) -> list[dict]:
    return [{key: v, "step": start + i} for i, v in enumerate(values)]


def one_panel(stage: str, title: str, rows: list[dict], **kwargs) -> charts.PanelData:
    return next(p for p in charts.panels_from_rows(stage, rows, **kwargs) if p.panel.title == title)


# ---------------------------------------------------------------- panels


def test_every_stage_has_panels_and_every_panel_has_data_in_its_tiny_run():
    assert set(TINY_RUNS) == set(STAGES)
    assert all(charts.stage_panels(stage) != charts.DEFAULT_PANELS for stage in STAGES)
    for stage, name in TINY_RUNS.items():
        rows = read_all(FIXTURES / f"{name}.jsonl")
        empty = [p.panel.title for p in charts.panels_from_rows(stage, rows) if p.empty]
        assert empty == [], f"{stage}: panels with no data in a real run: {empty}"


def test_train_and_eval_series_share_a_panel_in_the_panels_order():
    data = one_panel("sft", "Loss", read_all(FIXTURES / "sft-dolly-tiny.jsonl"))
    assert [s.key for s in data.series] == ["loss", "eval_loss"]
    assert [s.eval for s in data.series] == [False, True]
    assert data.series[1].steps == [20.0, 40.0, 60.0]
    assert data.x_label == "step"
    assert charts.x_label("rejection") == "round"


def test_prefix_keys_match_every_reward_model():
    rows = [{"reward": 1.0, "reward/rm-a": 0.5, "reward/rm-b": 1.5, "reward_std": 0.2, "step": 1}]
    data = one_panel("ppo", "Reward", rows)
    assert [s.key for s in data.series] == ["reward", "reward/rm-a", "reward/rm-b"]
    assert charts.Panel("x", ("reward/*",)).keys_in(["rewards/chosen", "reward", "reward/z"]) == ["reward/z"]


def test_one_reward_model_draws_one_reward_line():
    # ppo-tiny has one reward model: its reward/<run id> is the reward, drawn once.
    data = one_panel("ppo", "Reward", read_all(FIXTURES / "ppo-tiny.jsonl"))
    assert [s.key for s in data.series] == ["reward", "reward_with_eos_penalty"]
    same = [{"reward": 1.0 + i, "reward/rm-a": 1.0 + i, "step": i + 1} for i in range(3)]
    assert [s.key for s in one_panel("grpo", "Reward", same).series] == ["reward"]
    # One model weighted 2: the combined reward differs from the model's own score, and both are drawn.
    weighted = [{"reward": 2.0 + i, "reward/rm-a": 1.0 + i / 2, "step": i + 1} for i in range(3)]
    assert [s.key for s in one_panel("grpo", "Reward", weighted).series] == ["reward", "reward/rm-a"]
    # Two runs overlaid keep each run's own line.
    runs = {"a": charts.columns(same), "b": charts.columns(same)}
    overlaid = charts.panel_data(charts.Panel("Reward", ("reward", "reward/*")), runs)
    assert [s.label for s in overlaid.series] == ["a: reward", "b: reward"]


# ---------------------------------------------------------------- smoothing, log scale, non-finite


def test_ema_is_tensorboards_debiased_average():
    # weight 0.5 on [1, 2, 3]: EMA 0.5, 1.25, 2.125 over debias weights 0.5, 0.75, 0.875
    assert charts.ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 5 / 3, 17 / 7])
    assert charts.ema([4.0, 4.0, 4.0], 0.9) == pytest.approx([4.0, 4.0, 4.0])
    assert charts.ema([1.0, 2.0], 0.0) == [1.0, 2.0]
    with pytest.raises(ValueError, match="smoothing = 1.0"):
        charts.ema([1.0], 1.0)


def test_smoothed_series_keeps_the_raw_values_alongside():
    values = [1.0 + (i % 3) for i in range(20)]
    data = one_panel("sft", "Gradient norm", rows_of("grad_norm", values), smoothing=0.5)
    (series,) = data.series
    assert series.steps == [float(i) for i in range(1, 21)]
    assert series.raw == values
    assert series.values == pytest.approx(charts.ema(values, 0.5)) and series.smoothing == 0.5


def test_schedules_and_counters_are_drawn_as_logged():
    # A warm-up to 0.003 over 10 steps, then a linear decay: smoothed, its peak read 0.0025.
    schedule = [0.003 * min(s / 10, 1.0) * (1 - max(s - 10, 0) / 60) for s in range(1, 61)]
    rows = [{"loss": 2.0 / s + (s % 2) * 0.1, "learning_rate": lr, "step": s} for s, lr in enumerate(schedule, 1)]
    (lr,) = one_panel("sft", "Learning rate", rows, smoothing=0.6).series
    assert lr.values == lr.raw == schedule and max(lr.values) == 0.003 and lr.smoothing == 0.0
    (loss,) = one_panel("sft", "Loss", rows, smoothing=0.6).series
    assert loss.smoothing == 0.6 and loss.values != loss.raw  # the noisy signal is still smoothed
    # ppo-tiny's schedule peaks at 0.003 at step 2, as the issue saw it; an adaptive KL coefficient and the
    # prompts kept per round are set or counted, not measured
    (ppo_lr,) = one_panel("ppo", "Learning rate", read_all(FIXTURES / "ppo-tiny.jsonl"), smoothing=0.6).series
    assert max(ppo_lr.values) == pytest.approx(0.003, rel=1e-3) and ppo_lr.values == ppo_lr.raw
    kl_coef = [{"kl_coef": 0.1 * 1.05**s, "step": s} for s in range(1, 31)]
    (coef,) = one_panel("ppo", "KL coefficient", kl_coef, smoothing=0.9).series
    assert coef.values == coef.raw == [r["kl_coef"] for r in kl_coef]
    kept = [{"kept": float(10 + s % 7), "step": s} for s in range(1, 31)]
    (counted,) = one_panel("rejection", "Prompts kept", kept, smoothing=0.9).series
    assert counted.values == counted.raw
    # Drawn as logged, a schedule gets no faint copy of itself behind it.
    fig = charts.figure(one_panel("sft", "Learning rate", rows, smoothing=0.6))
    assert [(t.name, t.opacity) for t in fig.data] == [("learning_rate", None)]


def test_short_series_are_smoothed_less():
    # The EMA spans about 1 / (1 - weight) points: at most a fifth of the series.
    assert charts.smoothing_for("loss", 0.6, 5) == 0.0
    assert charts.smoothing_for("loss", 0.6, 10) == pytest.approx(0.5)
    assert charts.smoothing_for("loss", 0.6, 13) == 0.6 == charts.smoothing_for("loss", 0.6, 10_000)
    assert charts.smoothing_for("loss", 0.99, 100) == pytest.approx(0.95)
    assert charts.smoothing_for("loss", 0.0, 100) == 0.0
    assert charts.smoothing_for("learning_rate", 0.9, 10_000) == 0.0
    (short,) = one_panel("sft", "Loss", rows_of("loss", [3.0, 1.0, 2.0, 0.5]), smoothing=0.9).series
    assert short.values == short.raw == [3.0, 1.0, 2.0, 0.5]
    values = [3.0, 1.0, 2.0, 0.5, 1.5, 0.7, 1.2, 0.4, 0.9, 0.3]
    (ten,) = one_panel("sft", "Loss", rows_of("loss", values), smoothing=0.9).series
    assert ten.smoothing == pytest.approx(0.5) and ten.values == pytest.approx(charts.ema(values, 0.5))


def test_log_scale_leaves_out_values_at_or_below_zero_with_a_note():
    rows = rows_of("learning_rate", [0.0, 1e-3, 2e-3, -1.0])
    data = charts.panel_data(charts.Panel("Learning rate", ("learning_rate",)), {"r": charts.columns(rows)}, log_y=True)
    assert data.series[0].steps == [2.0, 3.0]
    assert data.series[0].values == [1e-3, 2e-3]
    assert data.notes == ["learning_rate: 2 values <= 0 left out on the log scale (first at step 1)"]
    linear = charts.panel_data(charts.Panel("Learning rate", ("learning_rate",)), {"r": charts.columns(rows)})
    assert linear.series[0].values == [0.0, 1e-3, 2e-3, -1.0] and linear.notes == []


def test_nan_and_inf_are_left_out_with_a_note():
    finite = [2.0, 1.0] + [1.0 + i / 10 for i in range(10)]
    data = one_panel("sft", "Loss", rows_of("loss", [2.0, "nan", 1.0, "inf", *finite[2:]]), smoothing=0.5)
    assert data.series[0].steps == [1.0, 3.0, *range(5, 15)]
    assert data.series[0].values == pytest.approx(charts.ema(finite, 0.5))  # smoothed over the finite values only
    assert data.notes == ["loss: 2 values not a finite number left out (first at step 2)"]


# ---------------------------------------------------------------- downsampling


def test_downsample_keeps_first_last_and_each_buckets_extremes():
    values = [0.0] * 100
    values[10], values[50], values[99] = -3.0, 9.0, 5.0
    # 4 buckets between the first and last point: [1, 25), [25, 50), [50, 74), [74, 99)
    assert charts.downsample(values, 10) == [0, 1, 10, 25, 50, 51, 74, 99]
    assert charts.downsample(values[:10], 10) == list(range(10))
    with pytest.raises(ValueError, match="max_points = 3"):
        charts.downsample(values, 3)


def test_100000_rows_chart_as_at_most_max_points_keeping_the_spike_and_the_last_point():
    values = [1.0 + (i % 7) * 0.01 for i in range(100_000)]
    values[61_234] = 50.0
    rows = [{"loss": v, "step": i + 1} for i, v in enumerate(values)]
    data = one_panel("sft", "Loss", rows, smoothing=0.9, max_points=500)
    (series,) = data.series
    assert len(series.steps) <= 500
    assert 61_235.0 in series.steps and max(series.raw) == 50.0
    assert series.steps[-1] == 100_000.0 and series.raw[-1] == values[-1]
    assert series.steps == sorted(series.steps)
    full = charts.ema(values, 0.9)
    assert series.values[-1] == pytest.approx(full[-1])  # smoothed before downsampling, not after


# ---------------------------------------------------------------- tokens/s


def test_tokens_per_second_is_derived_from_num_tokens_and_time():
    rows = [
        {"loss": 2.0, "num_tokens": 100.0, "time": 10.0, "step": 1},
        {"loss": 1.9, "num_tokens": 300.0, "time": 12.0, "step": 5},
        {"eval_loss": 1.8, "eval_num_tokens": 300.0, "time": 13.0, "step": 5},  # eval rows do not count
        {"loss": 1.8, "num_tokens": 600.0, "time": 15.0, "step": 10},
        {"loss": 1.8, "num_tokens": 400.0, "time": 100.0, "step": 8},  # a resumed run: no rate across the seam
        {"loss": 1.7, "num_tokens": 500.0, "time": 101.0, "step": 9},
    ]
    track = charts.columns(rows).tracks[charts.TOKENS_PER_SECOND]
    assert list(track.steps) == [5.0, 10.0, 9.0]
    assert list(track.values) == [100.0, 100.0, 100.0]
    logged = charts.columns(
        [
            {"tokens_per_second": 7.0, "num_tokens": 1.0, "time": 1.0, "step": 1},
            {"tokens_per_second": 8.0, "num_tokens": 9.0, "time": 2.0, "step": 2},
        ]
    )
    assert list(logged.tracks[charts.TOKENS_PER_SECOND].values) == [7.0, 8.0]


# ---------------------------------------------------------------- several runs


def test_overlaid_runs_are_labelled_by_name_or_id():
    feed_rows = {"run-a": rows_of("loss", [2.0, 1.0]), "run-b": rows_of("loss", [3.0])}
    runs = {run_id: charts.columns(rows) for run_id, rows in feed_rows.items()}
    data = charts.panel_data(charts.Panel("Loss", ("loss", "eval_loss")), runs, {"run-a": "baseline"}, stage="sft")
    assert [(s.run_id, s.label, s.values) for s in data.series] == [
        ("run-a", "baseline: loss", [2.0, 1.0]),
        ("run-b", "run-b: loss", [3.0]),
    ]
    single = charts.panel_data(charts.Panel("Loss", ("loss",)), {"run-a": runs["run-a"]}, {"run-a": "baseline"})
    assert [s.label for s in single.series] == ["loss"]


# ---------------------------------------------------------------- the live feed


def test_feed_parses_only_the_rows_appended_since_the_last_refresh(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    parsed = []
    add = charts.Columns.add
    monkeypatch.setattr(charts.Columns, "add", lambda self, row: (parsed.append(row["step"]), add(self, row)))
    feed = charts.ChartFeed(max_points=100)
    feed.add_run("r", path, stage="sft")
    assert feed.refresh() == 0  # no file yet
    for step in (1, 2, 3):
        writer.write({"loss": 1.0 / step, "step": step})
    assert feed.refresh() == 3 and parsed == [1, 2, 3]
    assert feed.refresh() == 0 and parsed == [1, 2, 3]
    writer.write({"loss": 0.2, "step": 4})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"loss": 0.1, "st')  # half-written: waits for the rest
    assert feed.refresh() == 1 and parsed == [1, 2, 3, 4]
    with open(path, "a", encoding="utf-8") as f:
        f.write('ep": 5}\n')
    assert feed.refresh() == 1 and parsed == [1, 2, 3, 4, 5]
    (series,) = feed.panel(charts.Panel("Loss", ("loss",))).series
    assert series.steps == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert series.values == pytest.approx([1.0, 0.5, 1 / 3, 0.2, 0.1])


def test_feed_smoothing_across_refreshes_equals_smoothing_everything(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0] * 4
    feed = charts.ChartFeed()
    feed.add_run("r", path, stage="sft")
    for i, v in enumerate(values):  # the weight grows with the series (smoothing_for) until 0.6 applies in full
        writer.write({"loss": v, "step": i + 1})
        feed.refresh()
        smoothed = feed.panel(charts.Panel("Loss", ("loss",)), smoothing=0.6).series[0].values
        assert smoothed == pytest.approx(charts.ema(values[: i + 1], charts.smoothing_for("loss", 0.6, i + 1)))
    assert smoothed == pytest.approx(charts.ema(values, 0.6))
    assert feed.panel(charts.Panel("Loss", ("loss",)), smoothing=0.3).series[0].values == pytest.approx(
        charts.ema(values, 0.3)
    )


def test_feed_rereads_a_metrics_file_rewritten_by_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    for step in range(1, 11):
        writer.write({"loss": float(step), "step": step})
    feed = charts.ChartFeed()
    feed.add_run("r", path, stage="sft")
    feed.refresh()
    truncate_after(path, 4)  # what manager.resume does before the run logs steps 5.. again
    for step in range(5, 13):
        writer.write({"loss": step + 0.5, "step": step})
    feed.refresh()
    (series,) = feed.panel(charts.Panel("Loss", ("loss",))).series
    assert series.steps == [float(s) for s in range(1, 13)]
    assert series.values[3:5] == [4.0, 5.5]


def test_feed_overlays_its_runs_and_uses_the_first_runs_stage(tmp_path):
    feed = charts.ChartFeed()
    for run_id, label in (("a", "first"), ("b", "")):
        path = tmp_path / f"{run_id}.jsonl"
        path.write_text(json.dumps({"reward": 1.0, "kl": 0.5, "step": 1}) + "\n", encoding="utf-8")
        feed.add_run(run_id, path, stage="ppo", label=label)
    feed.refresh()
    panels = feed.panels(smoothing=0.0, log_y={"KL to the starting model (per answer)": True})
    # the throughput panels wait for their first value (tokens/s, and MFU on a GPU)
    assert [p.panel.title for p in panels] == [p.title for p in charts.stage_panels("ppo") if not p.when_logged]
    assert [s.label for s in panels[0].series] == ["first: reward", "b: reward"]
    assert panels[1].log_y and not panels[0].log_y
    feed.remove_run("b")
    assert [s.label for s in feed.panels()[0].series] == ["reward"]


# ---------------------------------------------------------------- plotly


def test_figure_draws_raw_faintly_behind_smoothed_lines_and_shows_notes():
    rows = rows_of("loss", [2.0, "nan", *(1.0 + i / 10 for i in range(12))]) + [{"eval_loss": 1.5, "step": 3}]
    fig = charts.figure(one_panel("sft", "Loss", rows, smoothing=0.5))
    # the single eval point is too short a series to smooth: drawn once, as logged
    assert [(t.name, t.mode, t.opacity) for t in fig.data] == [
        ("loss", "lines", 0.25),
        ("loss", "lines", None),
        ("eval_loss", "lines+markers", None),
    ]
    assert fig.layout.title.text == "Loss"
    assert "loss: 1 value not a finite number left out (first at step 2)" in fig.layout.title.subtitle.text
    assert fig.layout.uirevision == "Loss"


def test_figure_of_an_empty_panel_says_so_and_log_scale_is_set():
    data = charts.panel_data(charts.Panel("KL", ("kl",)), {"r": charts.Columns()}, log_y=True)
    fig = charts.figure(data)
    assert fig.data == () and fig.layout.yaxis.type == "log"
    assert [a.text for a in fig.layout.annotations] == ["no data yet"]


def test_a_flat_series_is_drawn_flat_not_zoomed_into_float_noise():
    rows = rows_of("learning_rate", [1e-4, 1e-4 * (1 + 1e-12), 1e-4])
    fig = charts.figure(one_panel("sft", "Learning rate", rows, smoothing=0.6))
    assert list(fig.layout.yaxis.range) == pytest.approx([0.9e-4, 1.1e-4])
    moving = charts.figure(one_panel("sft", "Learning rate", rows_of("learning_rate", [1e-4, 2e-4, 3e-4])))
    assert moving.layout.yaxis.range is None  # a real change keeps plotly's own range


def test_throughput_panels_appear_once_logged(tmp_path):
    rows = [{"loss": 1.0, "step": 1}]
    assert "Tokens/s (trained)" not in [p.panel.title for p in charts.panels_from_rows("dpo", rows)]
    rows.append({"loss": 0.9, "tokens_per_second": 950.0, "step": 2})
    titles = [p.panel.title for p in charts.panels_from_rows("dpo", rows)]
    assert "Tokens/s (trained)" in titles and "MFU (fraction of the GPU's peak)" not in titles
    rows.append({"loss": 0.8, "tokens_per_second": 990.0, "mfu": 0.31, "step": 3})
    assert "MFU (fraction of the GPU's peak)" in [p.panel.title for p in charts.panels_from_rows("dpo", rows)]
