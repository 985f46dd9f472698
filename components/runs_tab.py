"""Runs tab: every run with its live state (a waiting run shows its place, e.g. "queued (2nd)"), and the selected
run's status and log tail."""

from __future__ import annotations

import gradio as gr

from studio.runs import manager
from studio.errors import StudioError

COLUMNS = ["id", "stage", "state", "step", "last loss", "name"]
REFRESH_SECONDS = 2


def runs_table() -> list[list]:
    rows = []
    for r in reversed(manager.list_runs()):  # newest first
        loss = f"{r['last_loss']:.4f}" if isinstance(r["last_loss"], (int, float)) else ""
        rows.append([r["id"], r["stage"], manager.state_label(r), f"{r['step'] or 0}/{r['total_steps'] or '?'}", loss,
                     r["name"] or r["model"]])
    return rows


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
    if status.get("queued_behind"):
        line += f", waiting behind {status['queued_behind']}"
    if status.get("error"):
        line += f"\n\nError: {status['error']}"
    return line, run.log_tail(40)


def selected_id(evt: gr.SelectData) -> str:
    row = evt.row_value if evt.row_value else []
    return row[0] if row else ""


def build() -> None:
    table = gr.Dataframe(value=runs_table, headers=COLUMNS, interactive=False, label="Runs (newest first)")
    selected = gr.Textbox(label="Selected run", interactive=False)
    status = gr.Markdown()
    log = gr.Code(label="Log tail", language=None, lines=12)
    table.select(selected_id, outputs=selected)
    selected.change(run_details, inputs=selected, outputs=[status, log])
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(runs_table, outputs=table)
    timer.tick(run_details, inputs=selected, outputs=[status, log])
