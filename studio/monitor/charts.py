"""Live charts: which panels each stage shows (its record in studio/stages.py), metric rows -> plot-ready series,
and plotly figures of them.

    feed = ChartFeed(max_points=1000)
    feed.add_run(run.id, run.metrics_path, stage="ppo", label="my run")  # several runs overlay on one chart
    feed.refresh()                                  # reads only the lines appended since the last refresh
    for data in feed.panels("ppo", smoothing=0.6):  # one PanelData per panel of stage_panels("ppo")
        fig = figure(data)                          # a plotly Figure (the UI puts it in a gr.Plot)

Everything here is plain data (dataclasses, lists, dicts), so the CLI, tests and the UI share it; only `figure`
and `score_histogram` import plotly. A panel names the metric keys it plots, train and eval alike; a key ending in
"*" matches every logged key that starts with the rest of it (PPO logs one `reward/<run id>` per reward model).

Series are built in this order: values that are not finite numbers are left out (and counted in the panel's
notes; health.py is what reports them), then on a log-scale panel values <= 0 are left out (noted too), then
the EMA smoothing of TensorBoard is applied, then each series is cut to at most `max_points` points by keeping
the first and last point and the minimum and maximum of each bucket between, so a spike survives.

Smoothing is for noisy training signals only: schedules and counters (UNSMOOTHED: the learning rate, PPO's KL
coefficient, prompts kept) are drawn as logged, since an average of a schedule misreports it (a warm-up to 0.003
seemed to peak at 0.0025). A short series is smoothed less (smoothing_for): the average spans at most a fifth of
its points. With one reward model, `reward/<run id>` repeats `reward`: a prefix-matched series equal to one
already on the panel is drawn once.

Tokens/s and MFU: every stage logs `tokens_per_second` (and `mfu` on a GPU) itself (studio/trainers/throughput.py), and
they are plotted as logged. Runs written before that carry only TRL's cumulative `num_tokens` (SFT); for them
tokens/s is derived as its rise between two consecutive train rows divided by the rise of their `time`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studio import stages
from studio.runs.metrics import MetricsReader
from studio.stages import Panel

DEFAULT_MAX_POINTS = 1000  # per series: more than a chart's width in pixels, so nothing visible is lost
TOKENS_PER_SECOND = "tokens_per_second"
# Schedules and counters: set by the run, not measured with noise, so an average only distorts them.
UNSMOOTHED = frozenset({"learning_rate", "kl_coef", "kept", "gpu_memory_gib", "epoch", "num_tokens"})
POINTS_PER_SPAN = 5  # the EMA averages over about 1 / (1 - weight) points: at most a fifth of a series' points


# ---------------------------------------------------------------- which panels each stage shows

DEFAULT_PANELS = (Panel("Loss", ("loss", "eval_loss")),)  # for a stage the registry does not know


def stage_panels(stage: str) -> tuple[Panel, ...]:
    """The panels of a stage (its record in studio/stages.py); an unknown stage gets a single loss panel."""
    record = stages.find(stage)
    return record.panels if record and record.panels else DEFAULT_PANELS


def x_label(stage: str) -> str:
    record = stages.find(stage)
    return record.x_label if record else "step"


# ---------------------------------------------------------------- rows -> columns


def as_number(value) -> float | None:
    """A logged value as a float (nan and inf included; the writer stores them as strings), else None."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


class Track:
    """One metric of one run: steps and values as compact arrays, in the order logged (nan/inf included)."""

    __slots__ = ("steps", "values", "nonfinite", "nonpositive", "_ema")

    def __init__(self):
        self.steps = array("d")
        self.values = array("d")
        self.nonfinite = 0  # counts let a refresh skip the filtering pass when there is nothing to filter
        self.nonpositive = 0
        self._ema: tuple[float, float, float, array] | None = None  # weight, EMA, debias weight, smoothed

    def append(self, step: float, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        if not math.isfinite(value):
            self.nonfinite += 1
        elif value <= 0:
            self.nonpositive += 1

    def __len__(self) -> int:
        return len(self.values)


class Columns:
    """Metric rows turned into one Track per key, fed row by row; derives tokens_per_second (see module doc)."""

    def __init__(self):
        self.tracks: dict[str, Track] = {}
        self.rows = 0
        self._last_tokens: tuple[float, float] | None = None  # (num_tokens, time) of the last train row

    def add(self, row: Mapping) -> None:
        step = as_number(row.get("step"))
        if step is None or not math.isfinite(step):
            return  # the worker writes a step on every row; a row without one cannot be placed on the x axis
        self.rows += 1
        for key, raw in row.items():
            if key in ("step", "epoch", "time"):
                continue
            value = as_number(raw)
            if value is not None:
                self.track(key).append(step, value)
        if TOKENS_PER_SECOND not in row:
            self._derive_tokens_per_second(step, row)

    def _derive_tokens_per_second(self, step: float, row: Mapping) -> None:
        tokens, now = as_number(row.get("num_tokens")), as_number(row.get("time"))
        if tokens is None or now is None:
            return
        last, self._last_tokens = self._last_tokens, (tokens, now)
        # A resumed run's token count goes back to its checkpoint's, and the clock jumps: no rate across that seam.
        if last and tokens > last[0] and now > last[1]:
            self.track(TOKENS_PER_SECOND).append(step, (tokens - last[0]) / (now - last[1]))

    def track(self, key: str) -> Track:
        if key not in self.tracks:
            self.tracks[key] = Track()
        return self.tracks[key]

    def series(self) -> dict[str, tuple[array, array]]:
        """key -> (steps, values): the input health.check reads."""
        return {key: (t.steps, t.values) for key, t in self.tracks.items()}


def columns(rows: Iterable[Mapping]) -> Columns:
    cols = Columns()
    for row in rows:
        cols.add(row)
    return cols


# ---------------------------------------------------------------- smoothing and downsampling


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average started at 0 and divided by the weight given so far
    (debiased), so the first point equals the first value and early points are not pulled towards 0.
    weight 0 returns the values; weight close to 1 smooths hardest."""
    _check_weight(weight)
    smoothed, _, _ = _ema_extend(values, weight, 0.0, 0.0)
    return smoothed


def smoothing_for(key: str, weight: float, points: int) -> float:
    """The EMA weight a series of `points` values of `key` gets when the user asks for `weight`: 0 for a schedule
    or counter (UNSMOOTHED), and on a short series at most the weight whose span is a fifth of its points
    (weight 0.6 spans 2.5 points, so it applies in full from 13 points on; 0.9 from 50, 0.99 from 500)."""
    if key in UNSMOOTHED or points <= POINTS_PER_SPAN:
        return 0.0
    return min(weight, 1.0 - POINTS_PER_SPAN / points)


def _check_weight(weight: float) -> None:
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing = {weight}: choose from 0 (none) up to, but not including, 1")


def _ema_extend(values: Iterable[float], weight: float, last: float, debias: float) -> tuple[list[float], float, float]:
    out = []
    for v in values:
        last = last * weight + (1.0 - weight) * v
        debias = debias * weight + (1.0 - weight)
        out.append(last / debias)
    return out, last, debias


def downsample(values: Sequence[float], max_points: int) -> list[int]:
    """Indices of at most max_points values that keep the shape: the first and last point, and the smallest and
    largest value of each of (max_points - 2) // 2 equal buckets between them, so no spike is dropped."""
    if max_points < 4:
        raise ValueError(f"max_points = {max_points}: at least 4 (first, last, and one bucket's min and max)")
    n = len(values)
    if n <= max_points:
        return list(range(n))
    buckets = (max_points - 2) // 2
    inner = n - 2
    picked = [0]
    for b in range(buckets):
        lo = 1 + b * inner // buckets
        hi = 1 + (b + 1) * inner // buckets
        chunk = values[lo:hi]  # slices, min, max and index run in C: 100,000 points take milliseconds
        i_min, i_max = lo + chunk.index(min(chunk)), lo + chunk.index(max(chunk))
        picked.extend(sorted({i_min, i_max}))
    picked.append(n - 1)
    return picked


# ---------------------------------------------------------------- plot-ready series


@dataclass
class Series:
    """One line on a chart. `values` is what to draw (smoothed when smoothing > 0); `raw` the logged values at the
    same steps, drawn faintly behind a smoothed line."""

    run_id: str
    key: str
    label: str
    steps: list[float]
    values: list[float]
    raw: list[float]
    eval: bool  # an eval_ or judge/ key: few points, drawn with markers
    smoothing: float = 0.0  # the EMA weight applied (smoothing_for): 0 draws the logged values alone


@dataclass
class PanelData:
    panel: Panel
    x_label: str
    log_y: bool
    smoothing: float
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why points are missing: non-finite, or <= 0 on a log scale

    @property
    def empty(self) -> bool:
        return not any(s.steps for s in self.series)


def build_series(
    run_id: str,
    key: str,
    track: Track,
    label: str,
    smoothing: float = 0.0,
    log_y: bool = False,
    max_points: int = DEFAULT_MAX_POINTS,
    notes: list[str] | None = None,
) -> Series:
    """One plot-ready series from a Track: filter, smooth, downsample (see the module docstring for the order).
    `smoothing` is what the user asked for; the series gets smoothing_for(key, smoothing, its points). Reasons
    for left-out points are appended to `notes`."""
    _check_weight(smoothing)
    steps, values = track.steps, track.values
    keep = None
    if track.nonfinite or (log_y and track.nonpositive):
        keep = [i for i, v in enumerate(values) if math.isfinite(v) and (v > 0 or not log_y)]
        _note_dropped(notes, label, steps, values, log_y)
        steps, values = array("d", (steps[i] for i in keep)), array("d", (values[i] for i in keep))
    smoothing = smoothing_for(key, smoothing, len(values))
    if smoothing == 0.0:
        smoothed: Sequence[float] = values
    elif keep is None:
        smoothed = _cached_ema(track, smoothing)
    else:
        smoothed = ema(values, smoothing)
    idx = downsample(values, max_points)
    if len(idx) == len(values):
        out_steps, out_raw, out_values = list(steps), list(values), list(smoothed)
    else:
        out_steps = [steps[i] for i in idx]
        out_raw = [values[i] for i in idx]
        out_values = [smoothed[i] for i in idx]
    return Series(
        run_id=run_id,
        key=key,
        label=label,
        steps=out_steps,
        values=out_values,
        raw=out_raw,
        eval=key.startswith(("eval_", "judge/")),
        smoothing=smoothing,
    )


def _cached_ema(track: Track, weight: float) -> array:
    # A live chart refreshes every few seconds with the same weight: smooth only the points new since last time.
    cached = track._ema
    if cached is None or cached[0] != weight or len(cached[3]) > len(track.values):
        cached = (weight, 0.0, 0.0, array("d"))
    _, last, debias, smoothed = cached
    new, last, debias = _ema_extend(track.values[len(smoothed) :], weight, last, debias)
    smoothed.extend(new)
    track._ema = (weight, last, debias, smoothed)
    return smoothed


def _note_dropped(
    notes: list[str] | None, label: str, steps: Sequence[float], values: Sequence[float], log_y: bool
) -> None:
    if notes is None:
        return
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        notes.append(
            f"{label}: {len(bad)} value{'s' if len(bad) > 1 else ''} not a finite number left out "
            f"(first at step {_fmt_step(steps[bad[0]])})"
        )
    if log_y:
        low = [i for i, v in enumerate(values) if math.isfinite(v) and v <= 0]
        if low:
            notes.append(
                f"{label}: {len(low)} value{'s' if len(low) > 1 else ''} <= 0 left out on the log scale "
                f"(first at step {_fmt_step(steps[low[0]])})"
            )


def _fmt_step(step: float) -> str:
    return str(int(step)) if step == int(step) else str(step)


def panel_data(
    panel: Panel,
    runs: Mapping[str, Columns],
    labels: Mapping[str, str] | None = None,
    stage: str = "",
    smoothing: float = 0.0,
    log_y: bool | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> PanelData:
    """The series of one panel for one or more runs (run id -> Columns). With one run a series is labelled by
    its key; with several, by "<run label>: <key>" (the label defaults to the run id)."""
    log_y = panel.log_y if log_y is None else log_y
    data = PanelData(panel=panel, x_label=x_label(stage), log_y=log_y, smoothing=smoothing)
    labels = labels or {}
    for run_id, cols in runs.items():
        drawn: list[Track] = []
        for key in panel.keys_in(cols.tracks):
            track = cols.tracks[key]
            if key not in panel.keys and any(_same_line(track, other) for other in drawn):
                continue  # one reward model: its reward/<run id> is the reward already drawn
            drawn.append(track)
            label = key if len(runs) == 1 else f"{labels.get(run_id) or run_id}: {key}"
            data.series.append(
                build_series(run_id, key, cols.tracks[key], label, smoothing, log_y, max_points, data.notes)
            )
    return data


def _same_line(a: Track, b: Track) -> bool:
    return len(a) == len(b) and a.values == b.values and a.steps == b.steps  # array compares run in C


def panels_from_rows(
    stage: str,
    rows: Iterable[Mapping],
    smoothing: float = 0.0,
    max_points: int = DEFAULT_MAX_POINTS,
    run_id: str = "run",
) -> list[PanelData]:
    """Every panel of a stage from one run's rows, read in one go (for a finished run or a test)."""
    runs = {run_id: columns(rows)}
    return shown(
        [panel_data(p, runs, stage=stage, smoothing=smoothing, max_points=max_points) for p in stage_panels(stage)]
    )


def shown(panels: Iterable[PanelData]) -> list[PanelData]:
    """The panels to draw: all but a `when_logged` panel none of whose keys was logged yet."""
    return [data for data in panels if data.series or not data.panel.when_logged]


# ---------------------------------------------------------------- the live feed


@dataclass
class _FeedRun:
    path: Path
    stage: str
    label: str
    reader: MetricsReader
    columns: Columns


class ChartFeed:
    """Chart data for several runs, kept between refreshes: each refresh parses only the lines appended to each
    run's metrics.jsonl since the last one (MetricsReader keeps the byte offset). A metrics file replaced by
    a resume (which rewrites it without the rows after its checkpoint) is read again from the start."""

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS):
        downsample([], max_points)  # fail now, not at the first refresh, on a max_points below 4
        self.max_points = max_points
        self.runs: dict[str, _FeedRun] = {}

    def add_run(self, run_id: str, metrics_path: Path, stage: str = "", label: str = "") -> None:
        """Follow a run (a no-op when it is followed already). The UI has stage and name from manager.list_runs."""
        if run_id not in self.runs:
            path = Path(metrics_path)
            self.runs[run_id] = _FeedRun(path, stage, label, MetricsReader(path), Columns())

    def remove_run(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def refresh(self) -> int:
        """Read what is new in every followed run; returns the number of rows read."""
        total = 0
        for run in self.runs.values():
            rows = run.reader.read_new()
            if run.reader.restarted:
                run.columns = Columns()
            for row in rows:
                run.columns.add(row)
            total += len(rows)
        return total

    def has_new_rows(self) -> bool:
        """Whether a refresh would read anything: one stat per followed run, so an idle tick costs next to nothing."""
        return any(run.reader.has_new() for run in self.runs.values())

    def columns(self, run_id: str) -> Columns:
        """The run's metrics so far (its .series() is what health.check takes)."""
        return self.runs[run_id].columns

    def stage(self, run_id: str) -> str:
        return self.runs[run_id].stage

    def panel(
        self, panel: Panel, smoothing: float = 0.0, log_y: bool | None = None, run_ids: Sequence[str] | None = None
    ) -> PanelData:
        ids = list(run_ids) if run_ids is not None else list(self.runs)
        stage = self.runs[ids[0]].stage if ids else ""
        return panel_data(
            panel,
            {i: self.runs[i].columns for i in ids},
            {i: self.runs[i].label for i in ids},
            stage,
            smoothing,
            log_y,
            self.max_points,
        )

    def panels(
        self, stage: str | None = None, smoothing: float = 0.0, log_y: Mapping[str, bool] | None = None
    ) -> list[PanelData]:
        """Every panel of `stage` (default: the first run's stage) over all followed runs. log_y maps a panel
        title to the scale the user chose for it."""
        if stage is None:
            stage = next(iter(self.runs.values())).stage if self.runs else ""
        log_y = log_y or {}
        return shown(self.panel(p, smoothing, log_y.get(p.title)) for p in stage_panels(stage))


# ---------------------------------------------------------------- plotly


def _flat_range(values: list[float]) -> list[float] | None:
    """A y range of +-10% around a series that is flat but for rounding (e.g. a constant learning rate after the
    EMA), which plotly would otherwise zoom into until float noise looks like a jagged curve; None otherwise."""
    if not values:
        return None
    low, high = min(values), max(values)
    middle = (low + high) / 2
    if high - low > 1e-6 * max(abs(middle), 1e-12):
        return None
    pad = abs(middle) * 0.1 or 1.0
    return [middle - pad, middle + pad]


# The look of plotly's "plotly_white", set directly: naming a template makes plotly deep-copy it into every figure,
# which took two thirds of a chart refresh (bench/ui.py).
_AXIS = dict(gridcolor="#ebf0f8", zerolinecolor="#ebf0f8", linecolor="#ebf0f8", automargin=True)


def house_layout(title: dict, x_label: str, **rest) -> dict:
    """A plotly layout in the studio's look (white, light grid lines) with a title and the x axis label; `rest`
    adds keys or replaces them (a yaxis of its own, the height, the legend)."""
    base = dict(
        template="none",
        plot_bgcolor="white",
        paper_bgcolor="white",
        font=dict(color="#2a3f5f"),
        title=title,
        xaxis=dict(title=dict(text=x_label), **_AXIS),
        yaxis=dict(_AXIS),
    )
    return {**base, **rest}


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def figure(data: PanelData):
    """A plotly Figure of one panel: one colour per series; behind a smoothed line the logged values are drawn
    faintly, as TensorBoard does; eval series get markers; notes appear under the title."""
    import plotly.graph_objects as go  # imported here so the CLI and the runs manager never pay for plotly

    traces = []
    for i, s in enumerate(data.series):
        color = _COLORS[i % len(_COLORS)]
        mode = "lines+markers" if s.eval else "lines"
        if s.smoothing > 0:
            traces.append(
                go.Scatter(
                    x=s.steps,
                    y=s.raw,
                    mode=mode,
                    line=dict(color=color, width=1),
                    opacity=0.25,
                    name=s.label,
                    legendgroup=s.label,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        traces.append(
            go.Scatter(
                x=s.steps, y=s.values, mode=mode, line=dict(color=color, width=2), name=s.label, legendgroup=s.label
            )
        )
    title = dict(text=data.panel.title, x=0.05)
    if data.notes:
        title["subtitle"] = dict(text="<br>".join(data.notes), font=dict(size=11, color="#666"))
    yaxis = dict(type="log" if data.log_y else "linear", **_AXIS)
    flat = _flat_range([v for s in data.series for v in (*s.values, *s.raw)])
    if flat and not data.log_y:
        yaxis["range"] = flat
    layout = house_layout(
        title,
        data.x_label,
        yaxis=yaxis,
        height=300 + 16 * len(data.notes),
        margin=dict(l=50, r=20, t=50 + 16 * len(data.notes), b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        uirevision=data.panel.title,  # keeps the user's zoom and hidden series across live refreshes
    )
    if data.empty:
        layout["annotations"] = [
            dict(
                text="no data yet",
                xref="paper",
                yref="paper",
                x=0.5,
                y=0.5,
                showarrow=False,
                font=dict(size=13, color="#666"),
            )
        ]
    return go.Figure(data=traces, layout=layout)


def score_histogram(chosen: Sequence[float], rejected: Sequence[float], title: str = "Reward scores"):
    """A plotly Figure of a reward model's scores for the chosen and the rejected answers of preference pairs:
    two histograms overlaid on the same bins, so the gap between the two humps is the model's margin."""
    import plotly.graph_objects as go

    values = [*chosen, *rejected]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    # Shared bins (about 30 across the whole range) make the two humps comparable bar for bar.
    bins = dict(start=low, end=high + (high - low) / 30 + 1e-9, size=(high - low) / 30 or 1.0)
    fig = go.Figure()
    for name, scores, color in (("chosen", chosen, "#2ca02c"), ("rejected", rejected, "#d62728")):
        fig.add_trace(
            go.Histogram(x=list(scores), name=f"{name} ({len(scores)})", xbins=bins, opacity=0.6, marker_color=color)
        )
    fig.update_layout(
        title=dict(text=title),
        barmode="overlay",
        xaxis_title="score",
        yaxis_title="pairs",
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
        template="plotly_white",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
    )
    return fig
