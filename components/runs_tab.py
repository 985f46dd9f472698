"""Runs tab: every run with its live state, and the selected run's actions, health warnings, charts and log.

    table     id, name, stage, state ("queued (2nd)"), step/total, ETA, last loss or reward, a key metric, parent;
              refreshed every REFRESH_SECONDS; a click on a row selects that run
    actions   Cancel, Resume (failed or cancelled runs), Delete (finished runs, after ticking the confirmation);
              each answers in one line
    charts    the stage's panels (studio.charts) in up to PLOT_SLOTS plots, refreshed every CHART_SECONDS from a
              per-session ChartFeed that reads only the metric rows new since the last tick; smoothing, log scale,
              other runs of the same stage overlaid; health warnings (studio.health) above them; the log tail below
    answers   "Answers over training" (studio.timeline): a slider over the steps at which the run answered its
              timeline prompts and a table prompt | step 0 | the chosen step; the table's refresh tick redraws it
              only when the run's timeline file changed, and the slider follows new steps while it is on the latest

The runs are separate processes (studio.runs.manager), so closing the browser or restarting the server leaves
them running; reopening the tab lists them again from their folders.

Endpoints for scripts and tests (gradio_client): /runs_table, /run_details(run_id), /chart_data(run_id, smoothing,
overlays, log_scale), /health(run_id), /timeline(run_id, step), /cancel_run(run_id), /resume_run(run_id),
/delete_run(run_id, confirm).
"""

from __future__ import annotations

import math
import os
import threading
import time

import gradio as gr
import yaml

from studio import charts, health, timeline
from studio.errors import StudioError
from studio.runs import manager
from studio.runs.metrics import last_value
from studio.runs.rundir import FINAL_STATES, RunDir
from studio.runs.store import RunIndex

COLUMNS = ["id", "name", "stage", "state", "step", "ETA", "last loss / reward", "key metric", "parent"]
REFRESH_SECONDS = 2
CHART_SECONDS = 1  # a new metric point shows within two seconds: one tick of waiting plus the redraw
PLOT_SLOTS = max(len(panels) for panels in charts.STAGE_PANELS.values())
CHART_MIN_WIDTH = 420  # px: two charts side by side on a laptop, one a line on a phone
DEFAULT_SMOOTHING = 0.6  # TensorBoard's default; the logged values stay visible, faint, behind the line
MAX_SMOOTHING = 0.99

# Stages that learn from a reward signal show the last reward in the table; the others their last loss.
REWARD_STAGES = ("ppo", "grpo", "rloo", "rejection")
KEY_METRIC = {  # stage -> (logged key, short name): the number that says whether this stage is learning
    "sft": ("mean_token_accuracy", "token acc"),
    "reward": ("accuracy", "accuracy"),
    "dpo": ("rewards/margins", "margin"),
    "kto": ("rewards/margins", "margin"),
    "ppo": ("kl", "kl"),
    "grpo": ("kl", "kl"),
    "rloo": ("kl", "kl"),
    "rejection": ("reward_gain", "gain"),
}


# ---------------------------------------------------------------- the table


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)  # "nan" and "inf" are logged as text


_last_metrics_cache: dict[str, tuple[tuple[int, int], tuple[str, str]]] = {}


def last_metrics(run_id: str, stage: str, metrics_path) -> tuple[str, str]:
    """("loss 0.412" or "reward 1.3", "token acc 0.81"): the newest values, read from the end of metrics.jsonl
    only when the file changed since the last table refresh."""
    try:
        st = os.stat(metrics_path)
    except OSError:
        return "", ""
    stamp = (st.st_size, st.st_mtime_ns)
    cached = _last_metrics_cache.get(run_id)
    if cached and cached[0] == stamp:
        return cached[1]
    main_key = "reward" if stage in REWARD_STAGES else "loss"
    main = last_value(metrics_path, main_key)
    key, name = KEY_METRIC.get(stage, ("", ""))
    extra = last_value(metrics_path, key) if key else None
    cells = (f"{main_key} {_number(main)}" if _number(main) else "",
             f"{name} {_number(extra)}" if _number(extra) else "")
    _last_metrics_cache[run_id] = (stamp, cells)
    return cells


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def eta(status: dict, now: float | None = None) -> str:
    """Time left for a running run at its step rate since its worker started (since the resume, for a resumed
    run); empty while no step is done yet or the total is unknown."""
    if status.get("state") != "running":
        return ""
    step, total, started = status.get("step") or 0, status.get("total_steps") or 0, status.get("started")
    done = step - (status.get("resumed_from") or 0)
    elapsed = (now if now is not None else time.time()) - (started or 0)
    if not started or not total or done <= 0 or step >= total or elapsed <= 0:
        return ""
    return duration((total - step) * elapsed / done)


def runs_table() -> list[list]:
    """One row per run, newest first (the columns are COLUMNS)."""
    rows = []
    for r in reversed(manager.list_runs()):
        run = RunDir.of(r["id"])
        remaining = eta(run.read_status()) if r["state"] == "running" else ""
        main, extra = last_metrics(r["id"], r["stage"], run.metrics_path)
        rows.append([r["id"], r["name"] or r["model"], r["stage"], manager.state_label(r),
                     f"{r['step'] or 0}/{r['total_steps'] or '?'}", remaining, main, extra, r["parent"] or ""])
    return rows


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
    status.update(manager.queue_places().get(run.id, {}))
    line = f"**{run.id}**: {manager.state_label(status)}, step {status.get('step')}/{status.get('total_steps')}"
    left = eta(status)
    if left:
        line += f", about {left} left"
    if status.get("queued_behind"):
        line += f", waiting behind {status['queued_behind']}"
    if status.get("error"):
        line += f"\n\nError: {status['error']}"
    return line, run.log_tail(40)


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
    state = manager.status(run).get("state")
    if state in FINAL_STATES:
        return f"Run {run.id} is already {state}; nothing to cancel."
    after = manager.cancel(run)
    return f"Run {run.id} is {after.get('state')}."


def cancel_run(run_id: str) -> str:
    """Cancel the run: a waiting run leaves the queue, a running one saves and stops."""
    if not run_id:
        return "Select a run in the table first."
    return _guarded(_cancel, run_id)


def _resume(run_id: str) -> str:
    run = manager.find(run_id)
    worker = manager.resume(run)
    step = run.read_status().get("resumed_from") or 0
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
        warning = (f" Run {', '.join(needed)} starts from it or is scored by it and will no longer load."
                   if needed else "")
        return f"Tick “Yes, delete it” to delete run {run.id}: its folder, checkpoints and adapter.{warning}"
    manager.delete(run)
    return f"Deleted run {run.id}."


def delete_run(run_id: str, confirm: bool) -> tuple[str, str, bool]:
    """(message, the selection afterwards, the confirmation box afterwards): delete a finished run once confirmed."""
    if not run_id:
        return "Select a run in the table first.", run_id, False
    message = _guarded(_delete, run_id, bool(confirm))
    return message, ("" if message.startswith("Deleted run") else run_id), False


# ---------------------------------------------------------------- charts and health


def _stage(run: RunDir) -> str:
    try:
        return (yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}).get("stage", "")
    except (OSError, yaml.YAMLError, AttributeError):
        return ""


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
                self.feed.add_run(run.id, run.metrics_path, stage=_stage(run), label=run.id)

    def update(self, run_id: str, overlays: list[str], smoothing: float,
               log_scale: bool) -> tuple[str, str, list[charts.PanelData], int]:
        """(run id, stage, panels, rows read) for the run and its overlays; StudioError for an unknown run."""
        run = manager.find(run_id)
        ids = list(dict.fromkeys([run.id, *(_overlay_id(o) for o in overlays or ())]))
        ids = [i for i in ids if i]
        self.follow(ids)
        rows = self.feed.refresh()
        stage = self.feed.stage(run.id)
        log_y = {p.title: True for p in charts.stage_panels(stage)} if log_scale else None
        panels = charts.shown(self.feed.panel(p, smoothing, (log_y or {}).get(p.title), run_ids=ids)
                              for p in charts.stage_panels(stage))
        return run.id, stage, panels, rows


def _signature(data: charts.PanelData) -> tuple:
    return (data.panel.title, data.log_y, data.smoothing, tuple(data.notes),
            tuple((s.label, len(s.steps), s.steps[-1] if s.steps else None, s.values[-1] if s.values else None)
                  for s in data.series))


def health_markdown(warnings: list[health.HealthWarning]) -> str:
    if not warnings:
        return "Health: no warnings."
    lines = [f"- ⚠️ **{w.message}**. {w.suggestion}." for w in warnings]  # every message names its step
    return "**Health warnings**\n\n" + "\n".join(lines)


def refresh_charts(run_id: str, overlays: list[str], smoothing: float, log_scale: bool,
                   session: ChartSession | None):
    """[session, health, *plots]; plots whose data did not change since the last refresh are skipped."""
    session = session if isinstance(session, ChartSession) else ChartSession()
    if not session.lock.acquire(blocking=False):
        return [session, gr.skip(), *[gr.skip()] * PLOT_SLOTS]  # the refresh in progress draws it
    try:
        return [session, *_draw(session, run_id, overlays, _smoothing(smoothing), bool(log_scale))]
    finally:
        session.lock.release()


def _draw(session: ChartSession, run_id: str, overlays: list[str], smoothing: float, log_scale: bool) -> list:
    hidden = [gr.Plot(value=None, visible=False)] * PLOT_SLOTS
    if not run_id:
        session.drawn, session.health_drawn, session.health_of = [None] * PLOT_SLOTS, None, None
        session.drawn_for = None
        return ["", *hidden]
    try:
        run = manager.find(run_id)
        settings = (run.id, tuple(overlays or ()), smoothing, log_scale)
        if settings == session.drawn_for and not session.feed.has_new_rows():
            return [gr.skip()] * (1 + PLOT_SLOTS)  # nothing new: the tick costs a stat per followed run
        run_id, stage, panels, rows = session.update(run_id, overlays, smoothing, log_scale)
    except StudioError as err:
        session.drawn, session.health_drawn, session.health_of = [None] * PLOT_SLOTS, None, None
        session.drawn_for = None
        return [str(err), *hidden]
    session.drawn_for = settings
    out = []
    if rows or session.health_of != run_id or session.health_drawn is None:
        text = health_markdown(health.check(stage, session.feed.columns(run_id).series()))
        out.append(gr.skip() if text == session.health_drawn else text)
        session.health_drawn, session.health_of = text, run_id
    else:
        out.append(gr.skip())
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
    return {"title": data.panel.title, "log_y": data.log_y, "x_label": data.x_label, "notes": list(data.notes),
            "series": [{"label": s.label, "key": s.key, "run_id": s.run_id, "points": len(s.steps),
                        "last_step": s.steps[-1] if s.steps else None,
                        "last_value": s.values[-1] if s.values else None} for s in data.series]}


def chart_data(run_id: str, smoothing: float, overlays: list[str] | None, log_scale: bool,
               session: ChartSession | None) -> tuple[ChartSession, dict]:
    """The selected run's panels as plain data (for scripts and tests): per panel its title and, per series, the
    label, the number of points and the last step; `rows_read` counts the rows this call read (only new ones)."""
    session = session if isinstance(session, ChartSession) else ChartSession()
    if not run_id:
        return session, {"error": "Select a run in the table first."}
    with session.lock:
        try:
            run_id, stage, panels, rows = session.update(run_id, overlays or [], _smoothing(smoothing),
                                                         bool(log_scale))
        except StudioError as err:
            return session, {"error": str(err)}
    steps = [s.steps[-1] for p in panels for s in p.series if s.steps]
    return session, {"run_id": run_id, "stage": stage, "rows_read": rows,
                     "last_step": max(steps) if steps else None, "panels": [_panel_json(p) for p in panels]}


def health_report(run_id: str) -> dict:
    """The run's health warnings: each with its check, metric, step, value, message and suggestion."""
    try:
        run = manager.find(run_id)
    except StudioError as err:
        return {"error": str(err)}
    warnings = health.check_run(run)
    return {"run_id": run.id, "warnings": [
        {"check": w.check, "metric": w.metric, "step": w.step, "value": _number(w.value), "message": w.message,
         "suggestion": w.suggestion} for w in warnings]}


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
    return {"run_id": found.run_id, "steps": found.steps, "step": found.step, "headers": _headers(found.step),
            "rows": found.rows, "note": found.note}


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
    slider = gr.Slider(minimum=0, maximum=found.steps[-1], step=found.slider_step, value=found.step, visible=True,
                       interactive=len(found.steps) > 1, info=timeline.STEP_ZERO_NOTE,
                       label=f"Step ({len(found.steps)} recorded: {', '.join(map(str, found.steps))})")
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
    stage = _stage(run)
    rows = [r for r in reversed(RunIndex().rows()) if r["stage"] == stage and r["id"] != run.id]
    return [(f"{r['id']} {r['name']}".strip(), r["id"]) for r in rows]


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


def build() -> None:
    table = gr.Dataframe(value=_initial_table, headers=COLUMNS, interactive=False, label="Runs (newest first)",
                         wrap=True)
    with gr.Row(equal_height=True):
        selected = gr.Textbox(label="Selected run", interactive=False, scale=3)
        cancel = gr.Button("Cancel", scale=1)
        resume = gr.Button("Resume", scale=1)
        confirm = gr.Checkbox(label="Yes, delete it", value=False, scale=1)
        delete = gr.Button("Delete", variant="stop", scale=1)
    action = gr.Markdown()
    status = gr.Markdown()
    health_box = gr.Markdown()
    with gr.Row():
        smoothing = gr.Slider(0.0, MAX_SMOOTHING, value=DEFAULT_SMOOTHING, step=0.01, label="Smoothing",
                              info="Exponential moving average, as in TensorBoard; 0 draws the logged values")
        log_scale = gr.Checkbox(label="Log scale (y)", value=False)
        # allow_custom_value: a run id may be typed or sent through /chart_data before the choices are loaded
        overlays = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True, label="Overlay runs",
                               info="Other runs of the same stage, drawn on the same charts")
    # One wrapping row, two plots a line (min_width), so that the hidden slots of a stage with fewer panels leave
    # no empty rows behind.
    with gr.Row():
        plots = [gr.Plot(visible=False, show_label=False, min_width=CHART_MIN_WIDTH) for _ in range(PLOT_SLOTS)]
    with gr.Accordion("Answers over training", open=True):
        timeline_note = gr.Markdown()
        timeline_step = gr.Slider(0, 1, value=0, step=1, label="Step", visible=False)
        timeline_table = gr.Dataframe(headers=_headers(None), interactive=False, wrap=True, visible=False,
                                      column_widths=["24%", "38%", "38%"])
    with gr.Accordion("Log tail", open=True):
        log = gr.Code(label="Log tail", language=None, lines=12)

    chart_session = gr.State(None)
    api_session = gr.State(None)  # /chart_data keeps its own feed, so an API call never eats the UI's new rows
    chart_json = gr.JSON(visible=False)
    chart_api = gr.Button(visible=False)

    timeline_shown = gr.State(None)  # which run and file version the answers section draws, for the refresh tick
    timeline_outputs = [timeline_shown, timeline_note, timeline_step, timeline_table]

    chart_inputs = [selected, overlays, smoothing, log_scale, chart_session]
    chart_outputs = [chart_session, health_box, *plots]
    quiet = dict(show_progress="hidden")

    # Events the page alone uses are private, each with its own name so the public names below stay as written.
    private = dict(api_visibility="private", **quiet)
    table.select(selected_id, outputs=selected, api_name="select_run", api_visibility="private")
    selected.change(run_details, inputs=selected, outputs=[status, log], api_name="details_on_select", **private)
    selected.change(lambda: (False, ""), outputs=[confirm, action], api_name="reset_on_select", **private)
    selected.change(overlay_choices, inputs=[selected, overlays], outputs=overlays, api_name="overlays_on_select",
                    **private)
    selected.change(refresh_charts, inputs=chart_inputs, outputs=chart_outputs, api_name="charts_on_select",
                    **private)
    selected.change(timeline_on_select, inputs=selected, outputs=timeline_outputs, api_name="timeline_on_select",
                    **private)
    # input, not change: only what the person does (drag, arrow keys, typing), never the updates sent from here
    timeline_step.input(show_timeline, inputs=[selected, timeline_step], outputs=timeline_outputs,
                        api_name="timeline_on_step", trigger_mode="always_last", **private)
    overlays.focus(refresh_overlays, inputs=selected, outputs=overlays, api_name="overlays_on_focus",
                   **private)
    for name, control in (("overlays", overlays.change), ("log_scale", log_scale.change),
                          ("smoothing", smoothing.release)):
        control(refresh_charts, inputs=chart_inputs, outputs=chart_outputs, api_name=f"charts_on_{name}", **private)

    table_timer = gr.Timer(REFRESH_SECONDS)
    table_timer.tick(runs_table, outputs=table, api_name="runs_table", **quiet)
    table_timer.tick(run_details, inputs=selected, outputs=[status, log], api_name="run_details", **quiet)
    table_timer.tick(refresh_timeline, inputs=[selected, timeline_step, timeline_shown], outputs=timeline_outputs,
                     api_name="timeline_on_tick", **private)
    chart_timer = gr.Timer(CHART_SECONDS)
    chart_timer.tick(refresh_charts, inputs=chart_inputs, outputs=chart_outputs, api_name="charts_on_tick",
                     concurrency_limit=None, **private)

    cancel.click(cancel_run, inputs=selected, outputs=action, api_name="cancel_run")
    resume.click(resume_run, inputs=selected, outputs=action, api_name="resume_run")
    delete.click(delete_run, inputs=[selected, confirm], outputs=[action, selected, confirm], api_name="delete_run")
    chart_api.click(chart_data, inputs=[selected, smoothing, overlays, log_scale, api_session],
                    outputs=[api_session, chart_json], api_name="chart_data")
    gr.api(health_report, api_name="health")
    gr.api(timeline_rows, api_name="timeline")
