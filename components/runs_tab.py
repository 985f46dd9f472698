"""Runs tab: every run with its live state, and the selected run's actions, health warnings, charts and log.

    table     id, name, stage, state ("queued (2nd)"), step/total, ETA ("estimating" until a few steps are timed),
              last loss or reward, a key metric, parent; refreshed every REFRESH_SECONDS; a click on a row selects
              that run. The rows are the engine's run summaries (studio.runs.table), which `rlhf-studio runs`
              prints too; this tab formats them
    actions   Cancel, Resume (failed or cancelled runs), Delete (finished runs, after ticking the confirmation);
              each answers in one line, which stays until another run is selected
    charts    the stage's panels (studio.monitor.charts) in up to PLOT_SLOTS plots, refreshed every CHART_SECONDS from a
              per-session ChartFeed that reads only the metric rows new since the last tick; smoothing, log scale,
              other runs of the same stage overlaid; health warnings (studio.monitor.health) above them; the log tail
              below. A run without metric rows shows no charts but why (a failed run: the end of its log)
    answers   "Answers over training" (studio.monitor.timeline): a slider over the steps at which the run answered its
              timeline prompts and a table prompt | step 0 | the chosen step; the table's refresh tick redraws it
              only when the run's timeline file changed, and the slider follows new steps while it is on the latest
    rollouts  for online runs (ppo, grpo, rloo, rejection), every sampled answer by step: its table, the reward and
              length distributions per step, the group and token views, the best and worst answers
              (components/rollouts_view.py, with its own timer)
    evals     the run's saved win-rate evaluations (Compare > Judge, `rlhf-studio eval`), newest first, with a CSV
              download; read when the run is selected, the tab is opened or Refresh is pressed
              (components/eval_view.py)

Both timers tick only while the tab is shown, and the charts' only while the selected run or an overlay is queued
or running: a finished run is drawn once. The selected run sits in the page's address (?run=ID, with the tab:
components/app.py), so a refresh comes back to it.

The runs are separate processes (studio.runs.manager), so closing the browser or restarting the server leaves
them running; reopening the tab lists them again from their folders.

Endpoints for scripts and tests (gradio_client): /runs_table, /run_details(run_id), /chart_data(run_id, smoothing,
overlays, log_scale), /health(run_id), /timeline(run_id, step), /cancel_run(run_id), /resume_run(run_id),
/delete_run(run_id, confirm); of the rollouts: /rollouts(run_id, step, sort, text), /rollout_group(run_id, step,
group), /rollout_tokens(run_id, step, index), /rollout_overview(run_id); of the evaluations: /run_evaluations(run_id)
-> (note, table, CSV).
"""

from __future__ import annotations

import html
import math
import os
import re
import threading

import gradio as gr

from components import eval_view, rollouts_view
from studio import stages
from studio.errors import StudioError
from studio.monitor import charts, health, timeline
from studio.runs import manager, rollouts, trackers
from studio.runs import table as summaries
from studio.runs.rundir import RunDir
from studio.runs.status import RunStatus, State

LABEL = "Runs"  # the tab's label, which the page's tab events carry
COLUMNS = ["id", "name", "stage", "state", "step", "ETA", "last loss / reward", "key metric", "parent"]
# Fixed shares of the table's width: left to the browser, a column of short cells ("ETA", "stage") was squeezed
# until its header broke into one letter a line.
COLUMN_WIDTHS = ["15%", "11%", "8%", "10%", "8%", "12%", "12%", "12%", "12%"]
ESTIMATING = "estimating"  # a running run's ETA until a few steps were timed (manager.time_left)
FAILED_LOG_LINES = 12  # of a failed run's log, shown where its charts would be
REFRESH_SECONDS = 2
CHART_SECONDS = 1  # a new metric point shows within two seconds: one tick of waiting plus the redraw
PLOT_SLOTS = max(len(s.panels) for s in stages.all_stages())  # plots laid out once: enough for any stage
CHART_MIN_WIDTH = 420  # px: two charts side by side on a laptop, one a line on a phone
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default; the logged values stay visible, faint, behind the line
MAX_SMOOTHING = 0.99


# ---------------------------------------------------------------- the table


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)  # "nan" and "inf" are logged as text


def _cell(metric: summaries.Metric | None) -> str:
    """A metric as its cell shows it ("loss 0.412", "token acc 0.81"); empty for a number not logged yet."""
    return f"{metric.name} {_number(metric.value)}" if metric is not None and _number(metric.value) else ""


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def eta(status: RunStatus, run: RunDir, now: float | None = None) -> str:
    """Time left for a running run (manager.time_left, which the Pipelines tab shows too): "estimating" until
    it can be told, empty for a run that is not running."""
    if status.state is not State.RUNNING:
        return ""
    left = manager.time_left(status, now, run=run)
    return ESTIMATING if left is None else duration(left)


def runs_table() -> list[list]:
    """One row per run, newest first (the columns are COLUMNS), from the engine's run summaries (studio.runs.table)."""
    return [
        [
            row.id,
            row.name or row.model,
            row.stage,
            row.state_label,
            f"{row.step}/{row.total_steps or '?'}",
            ESTIMATING if row.estimating else duration(row.time_left) if row.time_left is not None else "",
            _cell(row.main),
            _cell(row.learning),
            row.parent,
        ]
        for row in reversed(summaries.run_rows())
    ]


def _initial_table() -> list[list]:
    # The table's first value, drawn as the page opens; the timer's /runs_table refreshes it.
    return runs_table()


def selected_id(evt: gr.SelectData) -> str:
    row = evt.row_value if evt.row_value else []
    return row[0] if row else ""


# ---------------------------------------------------------------- the selected run


def run_details(run_id: str) -> tuple[str, str]:
    """(status line, log tail) of one run."""
    if not run_id:
        return "Select a run in the table.", ""
    try:
        run = manager.find(run_id)
    except StudioError as err:
        return str(err), ""
    status = manager.status(run)
    place = manager.queue_places().get(run.id, {})
    label = manager.state_label({"state": status.state, **place})
    line = f"**{run.id}**: {label}, step {status.step}/{status.total_steps}"
    left = eta(status, run)
    if left == ESTIMATING:
        line += ", estimating the time left"
    elif left:
        line += f", about {left} left"
    if place.get("queued_behind"):
        line += f", waiting behind {place['queued_behind']}"
    if status.error:
        line += f"\n\n**Error:** {plain(status.error)}"
    kept = tracker_lines(run)
    if kept:
        line += "\n\n**Trackers** (train.report_to):\n" + kept
    return line, run.log_tail(40)


def tracker_lines(run: RunDir) -> str:
    """One bullet per tracker of the run: where it keeps the run (a link for a web address) and, if it stopped
    early, why."""
    lines = []
    for record in trackers.read_records(run):
        where = record.where
        if where.startswith(("http://", "https://")):
            where = f"[{where}]({where})"
        elif where:
            where = f"`{where}`"
        view = f", `{record.view}`" if record.view else ""
        state = f"stopped: {plain(record.error)}" if record.state == "failed" else record.state
        lines.append(f"- {record.name}: {where or 'not opened'}{view} ({state}, {record.rows} rows)")
    return "\n".join(lines)


def _guarded(action, *args) -> str:
    """An action's outcome as one line: a StudioError as its message, anything else named by its type."""
    try:
        return action(*args)
    except StudioError as err:
        return str(err)
    except Exception as err:  # a bug: say what it was in one line rather than show a traceback
        return f"Unexpected {type(err).__name__}: {err}"


def _cancel(run_id: str) -> str:
    run = manager.find(run_id)
    state = manager.status(run).state
    if state.final:
        return f"Run {run.id} is already {state}; nothing to cancel."
    after = manager.cancel(run)
    return f"Run {run.id} is {after.state}."


def cancel_run(run_id: str) -> str:
    """Cancel the run: a waiting run leaves the queue, a running one saves and stops."""
    if not run_id:
        return "Select a run in the table first."
    return _guarded(_cancel, run_id)


def _resume(run_id: str) -> str:
    run = manager.find(run_id)
    worker = manager.resume(run)
    step = run.read_status().resumed_from
    start = f"step {step}" if step else "the start (no complete checkpoint)"
    if worker is not None:
        return f"Run {run.id} resumed from {start}."
    place = manager.queue_places().get(run.id, {})
    behind = f" behind {place['queued_behind']}" if place.get("queued_behind") else ""
    label = manager.state_label(place) if place else "queued"
    return f"Run {run.id} is {label}{behind}; it resumes from {start} when the device is free."


def resume_run(run_id: str) -> str:
    """Queue a failed or cancelled run again from its last complete checkpoint."""
    if not run_id:
        return "Select a run in the table first."
    return _guarded(_resume, run_id)


def _delete(run_id: str, confirm: bool) -> str:
    run = manager.find(run_id)
    if not confirm:
        needed = manager.dependents(run)
        warning = (
            f" Run {', '.join(needed)} starts from it or is scored by it and will no longer load." if needed else ""
        )
        return f"Tick “Yes, delete it” to delete run {run.id}: its folder, checkpoints and adapter.{warning}"
    manager.delete(run)
    return f"Deleted run {run.id}."


def reset_on_select(run_id: str) -> tuple[bool, str]:
    """(confirmation box, action message) when the selection changes: both cleared for the newly selected run;
    a selection emptied by Delete keeps its "Deleted run X." message."""
    return False, ("" if run_id else gr.skip())


def delete_run(run_id: str, confirm: bool) -> tuple[str, str, bool]:
    """(message, the selection afterwards, the confirmation box afterwards): delete a finished run once confirmed."""
    if not run_id:
        return "Select a run in the table first.", run_id, False
    message = _guarded(_delete, run_id, bool(confirm))
    return message, ("" if message.startswith("Deleted run") else run_id), False


# ---------------------------------------------------------------- charts and health


def _smoothing(value) -> float:
    try:
        value = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return min(max(value, 0.0), MAX_SMOOTHING) if math.isfinite(value) else 0.0


def _overlay_id(run_id: str) -> str:
    # An overlay deleted (or mistyped) since it was chosen drops out of the charts rather than blanking them.
    try:
        return manager.find(run_id).id if run_id else ""
    except StudioError:
        return ""


class ChartSession:
    """One browser session's charts: a ChartFeed following the selected run and its overlays (each refresh reads
    only the rows appended since the previous one), and what each plot slot shows, so an unchanged plot is not
    sent again."""

    def __init__(self):
        self.feed = charts.ChartFeed()
        self.lock = threading.Lock()  # a tick and a settings change of one session may arrive together
        self.drawn: list[tuple | None] = [None] * PLOT_SLOTS
        self.health_drawn: str | None = None
        self.health_of: str | None = None  # the run whose warnings health_drawn shows
        self.drawn_for: tuple | None = None  # (run ids, smoothing, log scale) of what the plots show now

    def follow(self, run_ids: list[str]) -> None:
        for followed in list(self.feed.runs):
            if followed not in run_ids:
                self.feed.remove_run(followed)
        for run_id in run_ids:
            if run_id not in self.feed.runs:
                run = manager.find(run_id)
                self.feed.add_run(run.id, run.metrics_path, stage=summaries.stage_of(run), label=run.id)

    def update(
        self, run_id: str, overlays: list[str], smoothing: float, log_scale: bool
    ) -> tuple[str, str, list[charts.PanelData], int]:
        """(run id, stage, panels, rows read) for the run and its overlays; StudioError for an unknown run."""
        run = manager.find(run_id)
        ids = list(dict.fromkeys([run.id, *(_overlay_id(o) for o in overlays or ())]))
        ids = [i for i in ids if i]
        self.follow(ids)
        rows = self.feed.refresh()
        stage = self.feed.stage(run.id)
        log_y = {p.title: True for p in charts.stage_panels(stage)} if log_scale else None
        panels = charts.shown(
            self.feed.panel(p, smoothing, (log_y or {}).get(p.title), run_ids=ids) for p in charts.stage_panels(stage)
        )
        return run.id, stage, panels, rows


def _signature(data: charts.PanelData) -> tuple:
    return (
        data.panel.title,
        data.log_y,
        data.smoothing,
        tuple(data.notes),
        tuple(
            (s.label, len(s.steps), s.steps[-1] if s.steps else None, s.values[-1] if s.values else None)
            for s in data.series
        ),
    )


def plain(text: str) -> str:
    """Text shown as itself in Markdown: `<column>` is not swallowed as an HTML tag, `data.min_score` not
    italicised."""
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", html.escape(text, quote=False))


def _fenced(text: str) -> str:
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def health_markdown(
    warnings: list[health.HealthWarning],
    status: RunStatus | None = None,
    run: RunDir | None = None,
    logged: bool = True,
) -> str:
    """The box above the charts: the health warnings; "no warnings" only for a run that did not fail (the status
    line above gives a failed run's error); without metric rows (`logged` False) why there are no charts, and
    for a failed run the end of its log."""
    state = status.state if status is not None else None
    parts = []
    if warnings:
        lines = [f"- ⚠️ **{w.message}**. {w.suggestion}." for w in warnings]  # every message names its step
        parts.append("**Health warnings**\n\n" + "\n".join(lines))
    if not logged:
        tail = run.log_tail(FAILED_LOG_LINES) if run is not None and state is State.FAILED else ""
        if tail:
            parts.append(f"It failed before logging any metrics. The last lines of its log:\n\n{_fenced(tail)}")
        else:
            parts.append(
                "No metrics were logged."
                if state is not None and state.final
                else "No metrics yet: the charts appear with the first logged step."
            )
    elif not parts and state is not State.FAILED:
        parts.append("Health: no warnings.")
    return "\n\n".join(parts)


def refresh_charts(run_id: str, overlays: list[str], smoothing: float, log_scale: bool, session: ChartSession | None):
    """[session, health, *plots]; plots whose data did not change since the last refresh are skipped."""
    session = session if isinstance(session, ChartSession) else ChartSession()
    if not session.lock.acquire(blocking=False):
        return [session, gr.skip(), *[gr.skip()] * PLOT_SLOTS]  # the refresh in progress draws it
    try:
        return [session, *_draw(session, run_id, overlays, _smoothing(smoothing), bool(log_scale))]
    finally:
        session.lock.release()


def tick_charts(
    run_id: str, overlays: list[str], smoothing: float, log_scale: bool, session: ChartSession | None, shown: bool
) -> list:
    """The chart timer's tick: [session, chart timer, health, *plots]. It draws what is new, then stops its timer
    when nothing more can come: the Runs tab hidden, no run selected, or the run and its overlays all finished
    (their states are read before their rows, so the last rows are drawn before it stops)."""
    session = session if isinstance(session, ChartSession) else ChartSession()
    skipped = [gr.skip()] * (1 + PLOT_SLOTS)
    if not shown or not run_id:
        return [session, gr.Timer(active=False), *skipped]
    live = charts_live(run_id, overlays)
    if not session.lock.acquire(blocking=False):
        return [session, gr.skip(), *skipped]  # the refresh in progress draws; the next tick decides
    try:
        drawn = _draw(session, run_id, overlays, _smoothing(smoothing), bool(log_scale))
    finally:
        session.lock.release()
    return [session, gr.skip() if live else gr.Timer(active=False), *drawn]


def charts_live(run_id: str, overlays: list[str] | None) -> bool:
    """Whether the charts of the run and its overlays can still change: one of them is queued or running."""
    for one in [run_id, *(overlays or ())]:
        try:
            if one and not manager.find(one).read_status().final:
                return True
        except StudioError:
            continue
    return False


def _draw(session: ChartSession, run_id: str, overlays: list[str], smoothing: float, log_scale: bool) -> list:
    hidden = [gr.Plot(value=None, visible=False)] * PLOT_SLOTS
    if not run_id:
        session.drawn, session.health_drawn, session.health_of = [None] * PLOT_SLOTS, None, None
        session.drawn_for = None
        return ["", *hidden]
    try:
        run = manager.find(run_id)
        status = run.read_status()
        settings = (run.id, tuple(overlays or ()), smoothing, log_scale, status.state, status.error)
        if settings == session.drawn_for and not session.feed.has_new_rows():
            return [gr.skip()] * (1 + PLOT_SLOTS)  # nothing new: the tick costs a stat per followed run
        run_id, stage, panels, _rows = session.update(run_id, overlays, smoothing, log_scale)
    except StudioError as err:
        session.drawn, session.health_drawn, session.health_of = [None] * PLOT_SLOTS, None, None
        session.drawn_for = None
        return [plain(str(err)), *hidden]
    session.drawn_for = settings
    logged = not all(p.empty for p in panels)
    text = health_markdown(health.check(stage, session.feed.columns(run_id).series()), status, run, logged)
    out = [gr.skip() if text == session.health_drawn and session.health_of == run_id else text]
    session.health_drawn, session.health_of = text, run_id
    if not logged:  # empty charts say nothing: the box above says why there are none
        panels = []
    for slot in range(PLOT_SLOTS):
        if slot < len(panels):
            sig = _signature(panels[slot])
            if sig == session.drawn[slot]:
                out.append(gr.skip())
            else:
                out.append(gr.Plot(value=charts.figure(panels[slot]), label=panels[slot].panel.title, visible=True))
            session.drawn[slot] = sig
        else:
            out.append(gr.skip() if session.drawn[slot] == "hidden" else gr.Plot(value=None, visible=False))
            session.drawn[slot] = "hidden"
    return out


def _panel_json(data: charts.PanelData) -> dict:
    return {
        "title": data.panel.title,
        "log_y": data.log_y,
        "x_label": data.x_label,
        "notes": list(data.notes),
        "series": [
            {
                "label": s.label,
                "key": s.key,
                "run_id": s.run_id,
                "points": len(s.steps),
                "last_step": s.steps[-1] if s.steps else None,
                "last_value": s.values[-1] if s.values else None,
            }
            for s in data.series
        ],
    }


def chart_data(
    run_id: str, smoothing: float, overlays: list[str] | None, log_scale: bool, session: ChartSession | None
) -> tuple[ChartSession, dict]:
    """The selected run's panels as plain data (for scripts and tests): per panel its title and, per series, the
    label, the number of points and the last step; `rows_read` counts the rows this call read (only new ones)."""
    session = session if isinstance(session, ChartSession) else ChartSession()
    if not run_id:
        return session, {"error": "Select a run in the table first."}
    with session.lock:
        try:
            run_id, stage, panels, rows = session.update(run_id, overlays or [], _smoothing(smoothing), bool(log_scale))
        except StudioError as err:
            return session, {"error": str(err)}
    steps = [s.steps[-1] for p in panels for s in p.series if s.steps]
    return session, {
        "run_id": run_id,
        "stage": stage,
        "rows_read": rows,
        "last_step": max(steps) if steps else None,
        "panels": [_panel_json(p) for p in panels],
    }


def health_report(run_id: str) -> dict:
    """The run's health warnings: each with its check, metric, step, value, message and suggestion."""
    try:
        run = manager.find(run_id)
    except StudioError as err:
        return {"error": str(err)}
    warnings = health.check_run(run)
    return {
        "run_id": run.id,
        "warnings": [
            {
                "check": w.check,
                "metric": w.metric,
                "step": w.step,
                "value": _number(w.value),
                "message": w.message,
                "suggestion": w.suggestion,
            }
            for w in warnings
        ],
    }


# ---------------------------------------------------------------- answers over training


TIMELINE_FIRST = "step 0 (before training)"


def _headers(step: int | None) -> list[str]:
    return ["prompt", TIMELINE_FIRST, f"step {step}"]


def timeline_rows(run_id: str, step: float | None = None) -> dict:
    """The run's answers to its timeline prompts at the recorded step nearest `step` (the latest when empty):
    {"run_id", "steps" (recorded), "step" (shown), "headers", "rows" ([prompt, answer at step 0, answer at step]),
    "note" (why there are no rows, if there are none)}."""
    if not run_id:
        return {"error": "Select a run in the table first."}
    try:
        found = timeline.view(run_id, step)
    except StudioError as err:
        return {"error": str(err)}
    return {
        "run_id": found.run_id,
        "steps": found.steps,
        "step": found.step,
        "headers": _headers(found.step),
        "rows": found.rows,
        "note": found.note,
    }


def _timeline_stamp(run_id: str) -> tuple | None:
    try:
        st = os.stat(RunDir.of(run_id).timeline_path)
    except (OSError, ValueError):
        return None
    return st.st_size, st.st_mtime_ns


def show_timeline(run_id: str, step: float | None) -> list:
    """[what the section now shows (for the refresh tick), note, slider, table]: the run at the chosen step."""
    hidden = [gr.Slider(visible=False), gr.Dataframe(visible=False)]
    if not run_id:
        return [None, "", *hidden]
    # Stamped before reading: a step written in between is drawn on the next tick rather than missed.
    shown = {"run_id": run_id, "stamp": _timeline_stamp(run_id), "latest": None}
    try:
        found = timeline.view(run_id, step)
    except StudioError as err:
        return [shown, str(err), *hidden]
    if not found.rows:
        return [shown, found.note, *hidden]
    shown["latest"] = found.steps[-1]
    slider = gr.Slider(
        minimum=0,
        maximum=found.steps[-1],
        step=found.slider_step,
        value=found.step,
        visible=True,
        interactive=len(found.steps) > 1,
        info=timeline.STEP_ZERO_NOTE,
        label=f"Step ({len(found.steps)} recorded: {', '.join(map(str, found.steps))})",
    )
    return [shown, "", slider, gr.Dataframe(value=found.rows, headers=_headers(found.step), visible=True)]


def timeline_on_select(run_id: str) -> list:
    """A newly selected run's answers at its latest recorded step."""
    return show_timeline(run_id, None)


def refresh_timeline(run_id: str, step: float | None, shown: dict | None) -> list:
    """On the refresh tick: redraw only when the run's timeline file changed since it was drawn (a stat otherwise),
    following the newest step while the slider sits on the latest one."""
    if isinstance(shown, dict) and shown.get("run_id") == run_id and shown.get("stamp") == _timeline_stamp(run_id):
        return [gr.skip()] * 4
    latest = shown.get("latest") if isinstance(shown, dict) and shown.get("run_id") == run_id else None
    return show_timeline(run_id, step if latest is not None and step is not None and step < latest else None)


def overlay_options(run_id: str) -> list[tuple[str, str]]:
    """(label, id) of the runs to overlay on this one: the other runs of its stage, newest first."""
    if not run_id:
        return []
    try:
        run = manager.find(run_id)
    except StudioError:
        return []
    return [(f"{other} {name}".strip(), other) for other, name in summaries.same_stage(run)]


def overlay_choices(run_id: str, current: list[str] | None):
    """The dropdown of runs to overlay when the selected run changes, keeping the picks still on offer."""
    choices = overlay_options(run_id)
    ids = {c[1] for c in choices}
    return gr.Dropdown(choices=choices, value=[v for v in current or [] if v in ids])


def refresh_overlays(run_id: str):
    """The same list with no value: sent on focus, an answer that carried the picks from before would undo one made
    while it was on its way."""
    return gr.Dropdown(choices=overlay_options(run_id))


# ---------------------------------------------------------------- layout


# Writes the selected run into the page's address (?run=ID), so that a refresh comes back to it (see restore).
RUN_IN_ADDRESS_JS = """(run) => {
    const url = new URL(window.location.href);
    if (run) { url.searchParams.set('run', run); } else { url.searchParams.delete('run'); }
    history.replaceState(history.state, '', url);
}"""


def on_tab(run_id: str, evt: gr.SelectData) -> list:
    """[shown, table timer, chart timer, table, status, log] when the person picks a tab: the Runs tab refreshes at
    once and its timers tick while it is shown; leaving it stops them (a hidden tab costs nothing)."""
    if evt.value != LABEL:
        return [False, gr.Timer(active=False), gr.Timer(active=False), gr.skip(), gr.skip(), gr.skip()]
    return [True, gr.Timer(active=True), gr.Timer(active=True), runs_table(), *run_details(run_id)]


def restore(run_id: str, shown: bool) -> list:
    """[selected run, shown, table timer, chart timer] for a page opened at an address naming a run (?run=ID) and
    whether it opens on the Runs tab (?tab=runs); a run deleted since is left out. Only what the address names
    is changed: this answer may come after the person's first clicks."""
    try:
        run_id = manager.find(run_id).id if run_id else ""
    except StudioError:
        run_id = ""
    timers = [True, gr.Timer(active=True), gr.Timer(active=True)] if shown else [gr.skip()] * 3
    return [run_id or gr.skip(), *timers]


def wake_charts(shown: bool):
    """The chart timer after a change of run or overlays: its next tick draws, and stops it when nothing is live."""
    return gr.Timer(active=bool(shown))


TICK_OUTPUTS = 12  # what on_tick answers: see its docstring


def on_tick(
    run_id: str,
    overlays: list[str],
    shown: bool,
    step: float | None,
    timeline_drawn: dict | None,
    table_drawn: list | None,
    details_drawn: tuple | None,
) -> list:
    """Everything the refresh tick updates, in one event (each event costs the browser as much as a redraw):
    [table, table_drawn, status, log, details_drawn, *timeline outputs (4), table timer, chart timer, rollouts
    timer]. The table and the details are sent only when they changed; the timers stop on a hidden tab, and the
    charts' and the rollouts' start again when the selected run (or an overlay) is live again, e.g. resumed or
    started from the queue (the rollouts' for a run whose stage records them)."""
    if not shown:
        return [*[gr.skip()] * (TICK_OUTPUTS - 3), *[gr.Timer(active=False)] * 3]
    rows, details = runs_table(), run_details(run_id)
    live = charts_live(run_id, overlays)
    rollouts_live = live and charts_live(run_id, []) and _records_rollouts(run_id)
    return [
        gr.skip() if rows == table_drawn else rows,
        rows,
        *([gr.skip(), gr.skip()] if details == details_drawn else details),
        details,
        *refresh_timeline(run_id, step, timeline_drawn),
        gr.skip(),
        gr.Timer(active=True) if live else gr.skip(),
        gr.Timer(active=True) if rollouts_live else gr.skip(),
    ]


def _records_rollouts(run_id: str) -> bool:
    try:
        rollouts.online_run(run_id)
    except StudioError:
        return False
    return True


def build(tabs: gr.Tabs | None = None) -> list:
    """Lay out the tab. With the page's `tabs` (where this tab is labelled LABEL) the timers tick only while it is
    shown; alone, always. Returns the components `restore` answers for, in its order."""
    standalone = tabs is None
    table = gr.Dataframe(
        value=_initial_table,
        headers=COLUMNS,
        interactive=False,
        label="Runs (newest first)",
        wrap=True,
        column_widths=COLUMN_WIDTHS,
        elem_id="runs-table",
    )
    with gr.Row(equal_height=True):
        selected = gr.Textbox(label="Selected run", interactive=False, scale=3)
        cancel = gr.Button("Cancel", scale=1)
        resume = gr.Button("Resume", scale=1)
        confirm = gr.Checkbox(label="Yes, delete it", value=False, scale=1)
        delete = gr.Button("Delete", variant="stop", scale=1)
    action = gr.Markdown(elem_id="runs-action")
    status = gr.Markdown(elem_id="runs-status")
    health_box = gr.Markdown(elem_id="runs-health")
    with gr.Row():
        smoothing = gr.Slider(
            0.0,
            MAX_SMOOTHING,
            value=DEFAULT_SMOOTHING,
            step=0.01,
            label="Smoothing",
            info="Exponential moving average, as in TensorBoard; 0 draws the logged values",
        )
        log_scale = gr.Checkbox(label="Log scale (y)", value=False)
        # allow_custom_value: a run id may be typed or sent through /chart_data before the choices are loaded
        overlays = gr.Dropdown(
            choices=[],
            value=[],
            multiselect=True,
            allow_custom_value=True,
            label="Overlay runs",
            info="Other runs of the same stage, drawn on the same charts",
        )
    # One wrapping row, two plots a line (min_width), so that the hidden slots of a stage with fewer panels leave
    # no empty rows behind.
    with gr.Row():
        plots = [gr.Plot(visible=False, show_label=False, min_width=CHART_MIN_WIDTH) for _ in range(PLOT_SLOTS)]
    with gr.Accordion("Answers over training", open=True):
        timeline_note = gr.Markdown()
        timeline_step = gr.Slider(0, 1, value=0, step=1, label="Step", visible=False)
        timeline_table = gr.Dataframe(
            headers=_headers(None), interactive=False, wrap=True, visible=False, column_widths=["24%", "38%", "38%"]
        )
    evaluations = eval_view.build_run_section()
    sampled = rollouts_view.build()
    with gr.Accordion("Log tail", open=True):
        log = gr.Code(label="Log tail", language=None, lines=12)

    chart_session = gr.State(None)
    api_session = gr.State(None)  # /chart_data keeps its own feed, so an API call never eats the UI's new rows
    chart_json = gr.JSON(visible=False)
    endpoints = gr.Button(visible=False)  # never shown: it carries the endpoints for scripts below

    timeline_shown = gr.State(None)  # which run and file version the answers section draws, for the refresh tick
    timeline_outputs = [timeline_shown, timeline_note, timeline_step, timeline_table]

    chart_inputs = [selected, overlays, smoothing, log_scale, chart_session]
    chart_outputs = [chart_session, health_box, *plots]
    quiet = dict(show_progress="hidden")

    # Events the page alone uses are private, each with its own name so the public names below stay as written.
    private = dict(api_visibility="private", **quiet)
    table.select(selected_id, outputs=selected, api_name="select_run", api_visibility="private")
    selected.change(run_details, inputs=selected, outputs=[status, log], api_name="details_on_select", **private)
    selected.change(reset_on_select, inputs=selected, outputs=[confirm, action], api_name="reset_on_select", **private)
    selected.change(None, inputs=selected, js=RUN_IN_ADDRESS_JS)
    selected.change(
        overlay_choices, inputs=[selected, overlays], outputs=overlays, api_name="overlays_on_select", **private
    )
    selected.change(refresh_charts, inputs=chart_inputs, outputs=chart_outputs, api_name="charts_on_select", **private)
    selected.change(
        timeline_on_select, inputs=selected, outputs=timeline_outputs, api_name="timeline_on_select", **private
    )
    # input, not change: only what the person does (drag, arrow keys, typing), never the updates sent from here
    timeline_step.input(
        show_timeline,
        inputs=[selected, timeline_step],
        outputs=timeline_outputs,
        api_name="timeline_on_step",
        trigger_mode="always_last",
        **private,
    )
    overlays.focus(refresh_overlays, inputs=selected, outputs=overlays, api_name="overlays_on_focus", **private)
    for name, control in (
        ("overlays", overlays.change),
        ("log_scale", log_scale.change),
        ("smoothing", smoothing.release),
    ):
        control(refresh_charts, inputs=chart_inputs, outputs=chart_outputs, api_name=f"charts_on_{name}", **private)

    # The timers tick only while the tab is shown, and the charts' only while a followed run is live: a finished
    # run is drawn once (redrawing it every second cost a third of a core, on whichever tab was shown).
    shown = gr.State(standalone)
    rollouts_view.wire(sampled, selected, shown)
    eval_view.wire_run_section(evaluations, selected, tabs, LABEL)
    table_timer = gr.Timer(REFRESH_SECONDS, active=standalone)
    table_drawn, details_drawn = gr.State(None), gr.State(None)  # what the table and the details show
    chart_timer = gr.Timer(CHART_SECONDS, active=standalone)
    table_timer.tick(
        on_tick,
        inputs=[selected, overlays, shown, timeline_step, timeline_shown, table_drawn, details_drawn],
        outputs=[
            table,
            table_drawn,
            status,
            log,
            details_drawn,
            *timeline_outputs,
            table_timer,
            chart_timer,
            sampled.timer,
        ],
        api_name="on_tick",
        **private,
    )
    chart_timer.tick(
        tick_charts,
        inputs=[*chart_inputs, shown],
        outputs=[chart_session, chart_timer, health_box, *plots],
        api_name="charts_on_tick",
        concurrency_limit=None,
        **private,
    )
    for name, control in (("select", selected.change), ("overlays", overlays.change)):
        control(wake_charts, inputs=shown, outputs=chart_timer, api_name=f"wake_charts_on_{name}", **private)
    if tabs is not None:
        tabs.select(
            on_tab,
            inputs=selected,
            outputs=[shown, table_timer, chart_timer, table, status, log],
            api_name="runs_tab_shown",
            **private,
        )

    cancel.click(cancel_run, inputs=selected, outputs=action, api_name="cancel_run")
    resume.click(resume_run, inputs=selected, outputs=action, api_name="resume_run")
    delete.click(delete_run, inputs=[selected, confirm], outputs=[action, selected, confirm], api_name="delete_run")
    endpoints.click(
        chart_data,
        inputs=[selected, smoothing, overlays, log_scale, api_session],
        outputs=[api_session, chart_json],
        api_name="chart_data",
    )
    # The table and the details for scripts, whole on every call (the ticks above send only what changed).
    endpoints.click(runs_table, outputs=table, api_name="runs_table", **quiet)
    endpoints.click(run_details, inputs=selected, outputs=[status, log], api_name="run_details", **quiet)
    gr.api(health_report, api_name="health")
    gr.api(timeline_rows, api_name="timeline")
    return [selected, shown, table_timer, chart_timer]
