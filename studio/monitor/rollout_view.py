"""What the Runs tab's Rollouts view shows of an online run's recorded answers (studio/runs/rollouts.py), as plain
records the UI only lays out and formats, and that scripts read through the tab's endpoints.

    from studio.monitor import rollout_view as rv
    rows = rollouts.read(run)
    rv.step_table(rows, step=3, sort="reward", text="paris")   # that step's answers, best first, filtered
    rv.distribution(rows, "reward")                            # per-step quantiles, for bands on a chart
    rv.group_view(rows, step=3, group=0)                       # grpo/rloo/rejection: one prompt's answers
    rv.token_view(rows, step=3, index=1)                       # HTML of answer #1's tokens, coloured
    rv.best_and_worst(rows, k=5)                               # the run's highest and lowest scored answers

`RolloutFeed` keeps the same answers for a live page: each refresh reads only the lines appended since the last
(rollouts.reader) and updates the per-step quantiles and the best and worst answers from the new rows alone.
`band_figure` draws a distribution with plotly, imported when a figure is asked for.

Answers are numbered within their step from 1 in the order written ("#"), the number the token view is asked by;
the answers with token detail are the first `rollouts.token_samples` of a step.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from studio.errors import StudioError
from studio.monitor.charts import as_number, house_layout
from studio.monitor.timeline import nearest
from studio.runs import rollouts

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
QUANTILE_NAMES = ("min", "10%", "25%", "median", "75%", "90%", "max")
# Keyed by the rollout row's field (a dict call: "reward" here is that field, not the reward stage).
DISTRIBUTIONS = dict(reward="Reward per step", length="Answer length per step (tokens)")
BEST_K = 5  # answers in each of the best and worst lists
INDEX = "#"  # the header of an answer's number within its step
# Diverging colours of the token view: the policy finds a token likelier than the reference did (blue) or less
# likely (red); white where they agree, grey where there is no reference to compare with.
MORE_LIKELY, LESS_LIKELY, NO_REFERENCE = (33, 102, 172), (178, 24, 43), "#e0e0e0"
TOKENS_STYLE = "white-space:pre-wrap;line-height:2;font-family:monospace;font-size:15px"  # spaces and breaks kept
MIN_COLOUR_SCALE = 0.1  # nats: the full colour of a row that barely moved stands for at least this difference


def number(value) -> float | None:
    """A finite score as a float; None for a missing, non-numeric or non-finite one (written as "nan")."""
    if isinstance(value, bool):
        return None
    value = as_number(value)
    return value if value is not None and math.isfinite(value) else None


def _step_rows(rows: Iterable[dict], step: int) -> list[dict]:
    return [row for row in rows if row.get("step") == step]


def _numbered(rows: list[dict]) -> dict[int, int]:
    """id(row) -> its number within the step, from 1 in the order written."""
    return {id(row): i for i, row in enumerate(rows, 1)}


def source_names(rows: Iterable[dict]) -> list[str]:
    """The reward sources that scored these rows, in the order first met."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.get("scores") or {}))
    return list(names)


def _source_header(name: str, taken: set[str]) -> str:
    # A source named like a fixed column ("reward", "length") would make two columns of one name.
    return f"score: {name}" if name in taken else name


# ---------------------------------------------------------------- one step's answers


@dataclass
class StepTable:
    """One step's answers as table rows: the cells follow `headers` (numbers as floats, None where missing, kept as
    a bool); `total` answers at the step before the text filter, `note` says why no rows are shown."""

    step: int | None
    headers: list[str]
    rows: list[list]
    total: int = 0
    note: str = ""


def table_columns(rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """(headers, row keys): #, prompt, answer, one per reward source, reward, KL, length, then group, advantage and
    kept where the rows carry them (grpo and rloo: group and advantage; rejection: group and kept)."""
    fixed = {INDEX, "prompt", "answer", "reward", "KL", "length", "group", "advantage", "kept"}
    sources = source_names(rows)
    headers = [INDEX, "prompt", "answer", *(_source_header(s, fixed) for s in sources), "reward", "KL", "length"]
    keys = [INDEX, "prompt", "answer", *(f"scores.{s}" for s in sources), "reward", "kl", "length"]
    for key in ("group", "advantage", "kept"):
        if any(key in row for row in rows):
            headers.append(key)
            keys.append(key)
    return headers, keys


def _cell(row: dict, key: str, numbers: dict[int, int]):
    if key == INDEX:
        return numbers.get(id(row))
    if key in ("prompt", "answer"):
        return str(row.get(key, ""))
    if key == "kept":
        return bool(row.get("kept")) if "kept" in row else None
    if key == "group":
        group = row.get("group")
        return int(group) if isinstance(group, (int, float)) and not isinstance(group, bool) else None
    if key.startswith("scores."):
        return number((row.get("scores") or {}).get(key[len("scores.") :]))
    return number(row.get(key))


def step_table(rows: Sequence[dict], step: float | None = None, sort: str | None = None, text: str = "") -> StepTable:
    """The answers of the recorded step nearest `step` (the latest when None), sorted by a rollouts.SORT_KEYS field
    from high to low (None: in the order written) and kept where the prompt or answer holds `text` (any case)."""
    if sort is not None and sort not in rollouts.SORT_KEYS:
        raise StudioError(f"sort by {sort!r}: answers sort by {', '.join(rollouts.SORT_KEYS)}")
    recorded = rollouts.steps(rows)
    if not recorded:
        return StepTable(None, table_columns([])[0], [], note="No answers recorded yet.")
    shown = nearest(recorded, step)
    at_step = _step_rows(rows, shown)
    headers, keys = table_columns(at_step)
    numbers = _numbered(at_step)
    picked = rollouts.select(at_step, sort=sort, text=(text or "").strip())
    cells = [[_cell(row, key, numbers) for key in keys] for row in picked]
    note = "" if cells else f"No answer of step {shown} holds “{text.strip()}”."
    return StepTable(shown, headers, cells, total=len(at_step), note=note)


# ---------------------------------------------------------------- distributions over the run


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly between the two nearest ranks (numpy's default)."""
    if not ordered:
        raise ValueError("the quantile of no values")
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Band:
    """One step's quantiles (at QUANTILES) of a field, over its answers with a finite value; `missing` counts the
    answers without one."""

    step: int
    values: tuple[float, ...]
    count: int
    missing: int


def step_band(step: int, rows: Iterable[dict], key: str) -> Band | None:
    """The quantiles of `key` over one step's rows; None when none of them has a finite value."""
    values = [number(row.get(key)) for row in rows]
    finite = sorted(v for v in values if v is not None)
    if not finite:
        return None
    return Band(step, tuple(quantile(finite, q) for q in QUANTILES), len(finite), len(values) - len(finite))


@dataclass
class Distribution:
    """A field's per-step quantiles over the run: `bands[name]` holds, for each of `steps`, the quantile named in
    QUANTILE_NAMES. `selected` is the step the view shows, marked on the chart; `missing` counts the answers left
    out for having no finite value."""

    key: str
    title: str
    x_label: str
    steps: list[int] = field(default_factory=list)
    bands: dict[str, list[float]] = field(default_factory=dict)
    counts: list[int] = field(default_factory=list)
    missing: int = 0
    selected: int | None = None


def distribution_of(
    bands: Iterable[Band], key: str, selected: int | None = None, x_label: str = "step"
) -> Distribution:
    """A Distribution from per-step Bands (the order of their steps)."""
    ordered = sorted(bands, key=lambda b: b.step)
    return Distribution(
        key=key,
        title=DISTRIBUTIONS.get(key, key),
        x_label=x_label,
        steps=[b.step for b in ordered],
        bands={name: [b.values[i] for b in ordered] for i, name in enumerate(QUANTILE_NAMES)},
        counts=[b.count for b in ordered],
        missing=sum(b.missing for b in ordered),
        selected=selected,
    )


def distribution(rows: Sequence[dict], key: str, selected: int | None = None, x_label: str = "step") -> Distribution:
    """The per-step quantiles of `key` ("reward" or "length") over all rows."""
    by_step: dict[int, list[dict]] = {}
    for row in rows:
        if isinstance(row.get("step"), int):
            by_step.setdefault(row["step"], []).append(row)
    bands = [step_band(step, step_rows, key) for step, step_rows in by_step.items()]
    return distribution_of([b for b in bands if b is not None], key, selected, x_label)


# The bands drawn, widest first, each filled between two quantiles; the median is a line over them.
BAND_PAIRS = (("min", "max", "min to max", 0.15), ("10%", "90%", "10% to 90%", 0.25), ("25%", "75%", "25% to 75%", 0.4))
BAND_COLOUR = "31, 119, 180"


def band_figure(data: Distribution):
    """A plotly Figure of a Distribution: nested quantile bands, the median as a line, the selected step as a
    dashed vertical line."""
    import plotly.graph_objects as go  # here, so that reading rollouts never pays for plotly

    few = len(data.steps) < 2  # a band of one step has no width: draw its quantiles as markers
    mode = "lines+markers" if few else "lines"
    traces = []
    for low, high, label, alpha in BAND_PAIRS:
        colour = f"rgba({BAND_COLOUR}, {alpha})"
        traces.append(
            go.Scatter(
                x=data.steps,
                y=data.bands.get(high, []),
                mode=mode,
                line=dict(width=0, color=colour),
                marker=dict(color=colour),
                name=high,
                legendgroup=label,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        traces.append(
            go.Scatter(
                x=data.steps,
                y=data.bands.get(low, []),
                mode=mode,
                line=dict(width=0, color=colour),
                marker=dict(color=colour),
                fill="tonexty",
                fillcolor=colour,
                name=label,
                legendgroup=label,
                customdata=data.bands.get(high, []),
                hovertemplate=f"{label}: %{{y:.4g}} to %{{customdata:.4g}}",
            )
        )
    traces.append(
        go.Scatter(
            x=data.steps,
            y=data.bands.get("median", []),
            mode="lines+markers" if few else "lines",
            line=dict(width=2, color=f"rgb({BAND_COLOUR})"),
            name="median",
            hovertemplate="median: %{y:.4g}",
        )
    )
    title = dict(text=data.title, x=0.05)
    if data.missing:
        title["subtitle"] = dict(
            text=f"{data.missing} answer{'s' if data.missing > 1 else ''} without a score left out",
            font=dict(size=11, color="#666"),
        )
    layout = house_layout(
        title,
        data.x_label,
        height=360,
        margin=dict(l=50, r=20, t=50, b=90),
        hovermode="x unified",
        # Below the plot: above it, the legend ran into the selected step's label.
        legend=dict(orientation="h", yanchor="top", y=-0.3, x=0.5, xanchor="center"),
        uirevision=data.key,  # a live refresh keeps the person's zoom
    )
    if data.selected is not None:
        layout["shapes"] = [
            dict(
                type="line",
                x0=data.selected,
                x1=data.selected,
                yref="paper",
                y0=0,
                y1=1,
                line=dict(color="#d62728", width=1.5, dash="dash"),
            )
        ]
        layout["annotations"] = [
            dict(
                x=data.selected,
                y=1,
                yref="paper",
                text=f"{data.x_label} {data.selected}",
                showarrow=False,
                yanchor="bottom",
                font=dict(size=11, color="#d62728"),
            )
        ]
    elif not data.steps:
        layout["annotations"] = [
            dict(text="no answers yet", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=13))
        ]
    return go.Figure(data=traces, layout=layout)


# ---------------------------------------------------------------- groups (grpo, rloo, rejection)


@dataclass(frozen=True)
class GroupChoice:
    """One group of a step: its index, its prompt and how many answers it has."""

    group: int
    prompt: str
    answers: int


def group_choices(rows: Sequence[dict], step: int | None) -> list[GroupChoice]:
    """The groups of a step in index order; [] for a stage without groups (ppo)."""
    found: dict[int, list[dict]] = {}
    for row in _step_rows(rows, step):
        group = row.get("group")
        if isinstance(group, int) and not isinstance(group, bool):
            found.setdefault(group, []).append(row)
    return [GroupChoice(g, str(found[g][0].get("prompt", "")), len(found[g])) for g in sorted(found)]


@dataclass
class GroupView:
    """One prompt's answers side by side, best first: cells follow `headers` as in StepTable; `winner_margin` is
    how far the best combined score is above the second best (None with fewer than two scored answers)."""

    step: int | None
    group: int | None
    prompt: str
    headers: list[str]
    rows: list[list]
    winner_margin: float | None = None
    note: str = ""


def group_columns(rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """(headers, row keys) of a group's answers: #, answer, the sources, reward, then advantage (grpo, rloo) or best
    and kept (rejection), then length."""
    fixed = {INDEX, "answer", "reward", "advantage", "best", "kept", "length"}
    sources = source_names(rows)
    headers = [INDEX, "answer", *(_source_header(s, fixed) for s in sources), "reward"]
    keys = [INDEX, "answer", *(f"scores.{s}" for s in sources), "reward"]
    for key in ("advantage", "best", "kept"):
        if any(key in row for row in rows):
            headers.append(key)
            keys.append(key)
    return [*headers, "length"], [*keys, "length"]


def group_view(rows: Sequence[dict], step: int | None, group: int | None) -> GroupView:
    """The answers of one group of one step, by combined score from high to low."""
    at_step = _step_rows(rows, step)
    members = [row for row in at_step if row.get("group") == group and group is not None]
    if not members:
        note = f"Step {step} has no group {group}." if at_step else "No answers recorded yet."
        return GroupView(step, group, "", [], [], note=note)
    headers, keys = group_columns(members)
    numbers = _numbered(at_step)
    ordered = rollouts.select(members, sort="reward")
    cells = [[_group_cell(row, key, numbers) for key in keys] for row in ordered]
    scored = [v for v in (number(row.get("reward")) for row in ordered) if v is not None]
    margin = scored[0] - scored[1] if len(scored) > 1 else None
    return GroupView(step, group, str(members[0].get("prompt", "")), headers, cells, margin)


def _group_cell(row: dict, key: str, numbers: dict[int, int]):
    if key == "best":
        return bool(row.get("best")) if "best" in row else None
    return _cell(row, key, numbers)


# ---------------------------------------------------------------- the token view


@dataclass(frozen=True)
class TokenChoice:
    """An answer of a step with token detail: its number (#) in the step, its text and combined score."""

    index: int
    answer: str
    reward: float | None


def token_choices(rows: Sequence[dict], step: int | None) -> list[TokenChoice]:
    """The answers of a step that carry per-token log-probabilities, in the order written."""
    return [
        TokenChoice(i, str(row.get("answer", "")), number(row.get("reward")))
        for i, row in enumerate(_step_rows(rows, step), 1)
        if row.get("tokens")
    ]


@dataclass(frozen=True)
class Token:
    """One answer token: its text, its log-probability under the policy and the reference (None without one), and
    policy minus reference."""

    text: str
    logprob: float | None
    ref_logprob: float | None

    @property
    def delta(self) -> float | None:
        if self.logprob is None or self.ref_logprob is None:
            return None
        return self.logprob - self.ref_logprob


@dataclass
class TokenView:
    """An answer token by token: `html` shows each token coloured by policy minus reference log-probability with the
    values on hover; `scale` is the difference (in nats) that gets the full colour."""

    step: int | None
    index: int | None
    prompt: str = ""
    tokens: list[Token] = field(default_factory=list)
    html: str = ""
    scale: float = MIN_COLOUR_SCALE
    has_reference: bool = False
    note: str = ""


def _values(values, count: int) -> list[float | None]:
    values = list(values) if isinstance(values, list) else []
    return [number(v) for v in values[:count]] + [None] * (count - len(values))


def tokens_of(row: dict) -> list[Token]:
    """A row's tokens with their log-probabilities ([] for a row without token detail)."""
    texts = [str(t) for t in row.get("tokens") or []]
    policy, reference = _values(row.get("logprobs"), len(texts)), _values(row.get("ref_logprobs"), len(texts))
    return [Token(t, p, r) for t, p, r in zip(texts, policy, reference)]


def colour(delta: float | None, scale: float) -> str:
    """The background of a token: white for no difference, towards blue as the policy finds the token likelier than
    the reference, towards red as it finds it less likely (full at +-scale), grey without a reference."""
    if delta is None:
        return NO_REFERENCE
    share = min(abs(delta) / scale, 1.0) if scale > 0 else 0.0
    target = MORE_LIKELY if delta > 0 else LESS_LIKELY
    r, g, b = (round(255 + (c - 255) * share) for c in target)
    return f"#{r:02x}{g:02x}{b:02x}"


def _hover(token: Token) -> str:
    policy = "?" if token.logprob is None else f"{token.logprob:.4f}"
    if token.delta is None:
        return f"policy {policy} · no reference"
    return f"policy {policy} · reference {token.ref_logprob:.4f} · difference {token.delta:+.4f}"


def token_text(text: str) -> str:
    """A token as the view shows it (before escaping): every token keeps a box to hover over, so a line break is
    marked ↵ before it breaks the line, and an empty token (a special token decoded to nothing) is shown as ∅."""
    return text.replace("\n", "↵\n") if text else "∅"


def token_html(tokens: Sequence[Token], scale: float) -> str:
    """The tokens as HTML spans, every text escaped, each coloured (colour) and titled with its values."""
    spans = "".join(
        f'<span class="rollout-token" style="background:{colour(t.delta, scale)}" '
        f'title="{html.escape(_hover(t), quote=True)}">{html.escape(token_text(t.text), quote=True)}</span>'
        for t in tokens
    )
    return f'<div class="rollout-tokens" style="{TOKENS_STYLE}">{spans}</div>'


def token_view(rows: Sequence[dict], step: int | None, index: int | None) -> TokenView:
    """The token view of answer number `index` (#) of a step."""
    at_step = _step_rows(rows, step)
    if index is None or not 1 <= index <= len(at_step):
        return TokenView(step, index, note=f"Step {step} has no answer #{index}." if at_step else "No answers yet.")
    row = at_step[index - 1]
    tokens = tokens_of(row)
    if not tokens:
        return TokenView(step, index, str(row.get("prompt", "")), note=f"Answer #{index} has no token detail.")
    deltas = [abs(t.delta) for t in tokens if t.delta is not None]
    scale = max([MIN_COLOUR_SCALE, *deltas])
    return TokenView(
        step,
        index,
        str(row.get("prompt", "")),
        tokens,
        token_html(tokens, scale),
        scale,
        has_reference=bool(deltas),
        note="" if deltas else "This run has no reference model: tokens are grey, with the policy's values on hover.",
    )


# ---------------------------------------------------------------- best and worst


EXTREME_HEADERS = ["step", "reward", "prompt", "answer"]


@dataclass
class Extremes:
    """The highest and the lowest scored answers so far (rows as EXTREME_HEADERS), best and worst first."""

    best: list[list] = field(default_factory=list)
    worst: list[list] = field(default_factory=list)
    headers: list[str] = field(default_factory=lambda: list(EXTREME_HEADERS))


def _scored(rows: Iterable[dict]) -> list[dict]:
    return [row for row in rows if number(row.get("reward")) is not None]


def _extreme_cells(rows: Iterable[dict]) -> list[list]:
    return [
        [row.get("step"), number(row.get("reward")), str(row.get("prompt", "")), str(row.get("answer", ""))]
        for row in rows
    ]


def top_rows(rows: Iterable[dict], k: int) -> tuple[list[dict], list[dict]]:
    """(the k best, the k worst) scored rows; equal scores keep the earlier answer first among the best and the
    later first among the worst (rollouts.select's order)."""
    scored = _scored(rows)
    return rollouts.select(scored, top=k), rollouts.select(scored, bottom=k)


def best_and_worst(rows: Sequence[dict], k: int = BEST_K) -> Extremes:
    """The k highest and k lowest combined scores of the run, each with its step; answers without a score are left
    out."""
    best, worst = top_rows(rows, k)
    return Extremes(_extreme_cells(best), _extreme_cells(worst))


# ---------------------------------------------------------------- a live run


class RolloutFeed:
    """One run's rollouts for a page that follows it: refresh() reads the new lines only (rollouts.reader), and the
    per-step quantiles and the best and worst answers are updated from them (a resumed run's rewritten file is read
    again from its start)."""

    def __init__(self, run, k: int = BEST_K):
        self.reader = rollouts.reader(run)
        self.k = k
        self.by_step: dict[int, list[dict]] = {}
        self._bands: dict[str, dict[int, Band]] = {key: {} for key in DISTRIBUTIONS}
        self._best: list[dict] = []
        self._worst: list[dict] = []
        self._candidates: list[dict] = []  # the best and the worst rows together, in the order written

    def has_new(self) -> bool:
        """Whether the file grew or was replaced since the last refresh (one stat)."""
        return self.reader.has_new()

    def refresh(self) -> int:
        """Read what was appended since the last call; the number of new rows (after a restart: all of them)."""
        new = self.reader.read_new()
        if self.reader.restarted:
            self.by_step.clear()
            self._bands = {key: {} for key in DISTRIBUTIONS}
            self._best, self._worst, self._candidates = [], [], []
        touched: set[int] = set()
        for row in new:
            step = row.get("step")
            if isinstance(step, int) and not isinstance(step, bool):
                self.by_step.setdefault(step, []).append(row)
                touched.add(step)
        for step in touched:
            for key, bands in self._bands.items():
                band = step_band(step, self.by_step[step], key)
                if band is None:
                    bands.pop(step, None)
                else:
                    bands[step] = band
        if new:
            # The best k of the run are among the best k so far and the new rows (the worst likewise): only those
            # are sorted. Kept in the order written, so equal scores rank as they would in the whole run.
            candidates = [*self._candidates, *new]
            self._best, self._worst = top_rows(candidates, self.k)
            kept = {id(row) for row in (*self._best, *self._worst)}
            self._candidates = [row for row in candidates if id(row) in kept]
        return len(new) if not self.reader.restarted else sum(map(len, self.by_step.values()))

    @property
    def steps(self) -> list[int]:
        return sorted(self.by_step)

    def nearest(self, step: float | None) -> int | None:
        """The recorded step closest to `step` (the latest when None); None before any is recorded."""
        steps = self.steps
        return nearest(steps, step) if steps else None

    def rows(self, step: int | None) -> list[dict]:
        """The rows of one step, in the order written."""
        return list(self.by_step.get(step, [])) if step is not None else []

    def distribution(self, key: str, selected: int | None = None, x_label: str = "step") -> Distribution:
        return distribution_of(self._bands[key].values(), key, selected, x_label)

    def extremes(self) -> Extremes:
        return Extremes(_extreme_cells(self._best), _extreme_cells(self._worst))
