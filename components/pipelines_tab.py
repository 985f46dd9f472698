"""Pipelines tab: pick a recipe (InstructGPT, Llama 2, DPO, ... and your own), see its stages as a graph, Start it,
and watch each stage's run; every stage is a normal run, listed in the Runs tab too.

Start validates the YAML in the code box (with the overrides, one KEY=VALUE per line as `--set` takes them), checks
every stage's inputs (files, the hub) and records the pipeline and launches its runner in its own process
(`studio.pipelines.runner.start`); the pipeline goes on if the browser closes. A second Start of the same YAML within a
few seconds is refused (a double click), and a recipe sized for a GPU says so on a machine without one, naming its
tiny twin. Recipes that need a GPU or the hub say so in the list, after the offline ones on a machine without a GPU.
A running stage shows its step and time left (the Runs tab's ETA). The graph is drawn by `graph_html`, a pure
function of the stages: a box per stage, a solid arrow
from the stage it starts from, a dashed arrow from each reward stage that scores it, colored by state once running.

Endpoints (every handler is one): /recipes (the recipe list), /show_recipe, /preview, /save_pipeline, /start_pipeline,
/pipelines_table, /show_pipeline, /cancel_pipeline. Recipes are listed, loaded and saved by studio/pipelines/presets.py.
"""

from __future__ import annotations

import html

import gradio as gr

from components.oneline import error_line
from components.runs_tab import ESTIMATING, duration
from studio.errors import StudioError
from studio.pipelines import presets, runner
from studio.runs.status import State

REFRESH_SECONDS = 2
STATE_COLORS = {
    runner.WAITING: "#f3f4f6",
    State.QUEUED: "#fef3c7",
    State.RUNNING: "#dbeafe",
    State.COMPLETED: "#dcfce7",
    State.FAILED: "#fee2e2",
    State.CANCELLED: "#e5e7eb",
    runner.SKIPPED: "#e5e7eb",
}
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 62, 70, 26, 12
ARC_RISE, ARC_STEP = 24, 14  # how far arcs over skipped columns rise
TABLE_HEADERS = ["stage", "kind", "from", "rewards from", "state", "step", "ETA", "run"]
PIPELINE_HEADERS = ["id", "recipe", "state", "stages", "error"]


# ---------------------------------------------------------------- the graph (pure)


def _columns(stages: list[dict]) -> dict[str, int]:
    """Each stage's column: one right of the furthest stage it starts from or is scored by."""
    column: dict[str, int] = {}
    for stage in stages:
        before = [stage.get("parent"), *(stage.get("reward_stages") or [])]
        column[stage["name"]] = max((column[n] + 1 for n in before if n in column), default=0)
    return column


def graph_html(stages: list[dict]) -> str:
    """An SVG of the stages: dicts with name, stage (kind), parent, reward_stages and, once running, state and
    run_id."""
    if not stages:
        return "<p>No stages.</p>"
    column = _columns(stages)
    links = [(s.get("parent"), s["name"], "") for s in stages if s.get("parent")]
    links += [(r, s["name"], ' stroke-dasharray="5 4"') for s in stages for r in s.get("reward_stages") or []]
    # A link that skips a column arcs over the boxes, each a little higher, so none hides behind a box.
    arcs = [link for link in links if column[link[1]] - column[link[0]] > 1]
    top = PAD + (ARC_RISE + ARC_STEP * len(arcs) if arcs else 0)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for stage in stages:
        col = column[stage["name"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        place[stage["name"]] = (PAD + col * (BOX_W + GAP_X), top + row * (BOX_H + GAP_Y))
    width = PAD * 2 + (max(column.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = top + PAD + max(rows.values()) * (BOX_H + GAP_Y) - GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#374151"/></marker></defs>',
    ]
    for source, target, dash in links:
        (x1, y1), (x2, y2) = place[source], place[target]
        style = f'fill="none" stroke="#374151" stroke-width="1.5"{dash} marker-end="url(#arrow)"'
        if (source, target, dash) in arcs:
            lift = top - ARC_RISE - ARC_STEP * arcs.index((source, target, dash))
            sx, ex = x1 + BOX_W * 0.6, x2 + BOX_W * 0.4
            parts.append(f'<path d="M {sx} {y1} C {sx} {lift} {ex} {lift} {ex} {y2}" {style}/>')
        else:
            parts.append(f'<path d="M {x1 + BOX_W} {y1 + BOX_H / 2} L {x2} {y2 + BOX_H / 2}" {style}/>')
    for stage in stages:
        x, y = place[stage["name"]]
        state = stage.get("state")
        fill = STATE_COLORS.get(state or "", "#ffffff")
        name, kind = html.escape(stage["name"]), html.escape(stage.get("stage") or "")
        progress = f" {_step(stage)}" if state == State.RUNNING and _step(stage) else ""
        parts.append(
            f'<g class="stage" data-stage="{name}" data-state="{html.escape(state or "")}">'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" stroke="#374151"/>'
            f'<text x="{x + 10}" y="{y + 20}" font-size="14" font-weight="bold" fill="#111827">{name}</text>'
            f'<text x="{x + 10}" y="{y + 37}" font-size="12" fill="#374151">{kind}'
            f"{' · ' + html.escape(state) if state else ''}{progress}</text>"
        )
        if stage.get("run_id"):
            parts.append(
                f'<text x="{x + 10}" y="{y + 53}" font-size="9" fill="#6b7280">{html.escape(stage["run_id"])}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    legend = (
        "<p style='font-size:12px'>Solid arrow: starts from that stage's weights. "
        "Dashed arrow: scored by that reward model.</p>"
    )
    return f"<div class='pipeline-graph-box'>{''.join(parts)}</div>{legend}"


def _stage_dicts(pipeline) -> list[dict]:
    return [
        {"name": s.name, "stage": s.config.stage, "parent": s.parent, "reward_stages": list(s.reward_stages)}
        for s in pipeline.stages
    ]


def _step(stage: dict) -> str:
    """'12/60' once a stage's run has a total, else empty."""
    return f"{stage.get('step') or 0}/{stage['total_steps']}" if stage.get("total_steps") else ""


def _eta(stage: dict) -> str:
    """The time left of a running stage (runner.status takes it from manager.time_left, as the Runs tab
    does): "estimating" until it can be told, empty for a stage that is not running."""
    if stage.get("state") != State.RUNNING:
        return ""
    return ESTIMATING if stage.get("time_left") is None else duration(stage["time_left"])


def stages_table(stages: list[dict]) -> list[list]:
    return [
        [
            s["name"],
            s.get("stage"),
            s.get("parent") or "",
            ", ".join(s.get("reward_stages") or []),
            s.get("state") or "",
            _step(s),
            _eta(s),
            s.get("run_id") or "",
        ]
        for s in stages
    ]


# ---------------------------------------------------------------- recipes


NEEDS_WORDS = {"GPU": "a GPU", "hub": "the Hugging Face Hub"}


def needs_label(needs: list[str]) -> str:
    """' · needs a GPU and the Hugging Face Hub' for what a recipe or preset needs (studio.pipelines.twins.needs),
    or ''."""
    return f" · needs {' and '.join(NEEDS_WORDS[n] for n in needs)}" if needs else ""


def recipe_choices() -> list[tuple[str, str]]:
    """(label, name) of every recipe in the engine's order: on a machine without a GPU, those needing one last."""
    choices = []
    for name, recipe in presets.recipes().items():
        title = recipe.description.split(":", 1)[0] if recipe.description else name
        choices.append((f"{title} · {name}{' (yours)' if recipe.yours else ''}{needs_label(list(recipe.needs))}", name))
    return choices


def recipe_list() -> list[list[str]]:
    """[label, name] of every recipe, as the Recipe dropdown lists them (for scripts and tests)."""
    return [list(choice) for choice in recipe_choices()]


def refresh_recipes():
    """The recipe list with no value: sent on focus, an answer that carried the value from before would undo a pick
    made while it was on its way."""
    return gr.Dropdown(choices=recipe_choices())


def show_recipe(name: str | None):
    """(description, graph, YAML) of a recipe; on a problem the description line says it."""
    try:
        text, pipeline, description = presets.recipe(name)
    except StudioError as err:
        return error_line(err), "", gr.update()
    warning = runner.gpu_warning(pipeline)
    return (
        (description or name) + (f"\n\n**Note:** {warning}" if warning else ""),
        graph_html(_stage_dicts(pipeline)),
        text,
    )


def _overrides(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def preview(text: str, overrides: str | None):
    """(one line, graph) of the YAML in the code box as it is now."""
    try:
        pipeline, _ = runner.validate(text, _overrides(overrides))
    except StudioError as err:
        return f"Not valid: {error_line(err)}", gr.update()
    return f"Valid: {len(pipeline.stages)} stages.", graph_html(_stage_dicts(pipeline))


def save_pipeline(name: str | None, text: str):
    """Save the code box as the user's own recipe; (one line, recipe dropdown)."""
    try:
        path = presets.save_recipe(name, text)
    except StudioError as err:
        return f"Not saved: {error_line(err)}", gr.Dropdown()
    return f"Saved pipeline **{path.stem}** ({path}).", gr.Dropdown(choices=recipe_choices(), value=path.stem)


def start_pipeline(text: str, overrides: str | None):
    """Validate the code box and launch the pipeline's runner; (one line, pipeline dropdown)."""
    try:
        record = runner.start_text(text, _overrides(overrides), refuse_repeats=True)
    except StudioError as err:
        return f"Not started: {error_line(err)}", gr.Dropdown()
    warning = runner.gpu_warning(record.load())
    return (
        f"Started pipeline **{record.id}**; its stages' runs appear in the Runs tab as they start."
        + (f" **Note:** {warning}" if warning else ""),
        gr.Dropdown(choices=pipeline_choices(), value=record.id),
    )


# ---------------------------------------------------------------- recorded pipelines


def pipeline_choices() -> list[str]:
    return [p["id"] for p in reversed(runner.list_pipelines())]


def _stage_summary(stages: list[dict]) -> str:
    return ", ".join(f"{s['name']} {s.get('state')}" for s in stages)


def pipelines_table() -> list[list]:
    """A row per recorded pipeline, newest first: id, recipe, state, its stages' states, error."""
    return [
        [p["id"], p.get("name"), p.get("state"), _stage_summary(p.get("stages", [])), p.get("error") or ""]
        for p in reversed(runner.list_pipelines())
    ]


def show_pipeline(pipeline_id: str | None):
    """(one line, graph, stages table) of a recorded pipeline, with live states and run ids."""
    if not pipeline_id:
        return "Pick a pipeline to see its stages.", "", []
    try:
        state = runner.status(runner.find(pipeline_id))
    except StudioError as err:
        return error_line(err), "", []
    line = f"Pipeline **{state['id']}** ({state.get('name')}): {state.get('state')}"
    running = [s for s in state["stages"] if s.get("state") == State.RUNNING]
    if running:
        stage = running[0]
        line += f", stage {stage['name']} at step {_step(stage) or '0/?'}, "
        line += "estimating the time left" if _eta(stage) == ESTIMATING else f"about {_eta(stage)} left"
    if state.get("error"):
        line += f". {state['error']}"
    return line, graph_html(state["stages"]), stages_table(state["stages"])


def cancel_pipeline(pipeline_id: str | None) -> str:
    if not pipeline_id:
        return "Pick a pipeline to cancel."
    try:
        state = runner.cancel(runner.find(pipeline_id))
    except StudioError as err:
        return error_line(err)
    return f"Pipeline {pipeline_id}: {state['state']}."


def refresh_pipelines():
    """The pipeline list with no value, sent on focus (see refresh_recipes)."""
    return gr.Dropdown(choices=pipeline_choices())


# ---------------------------------------------------------------- layout


def build() -> None:
    quiet = dict(show_progress="hidden")
    private = dict(api_visibility="private", **quiet)
    with gr.Row():
        recipe = gr.Dropdown(
            choices=recipe_choices(),
            value=None,
            label="Recipe",
            scale=3,
            allow_custom_value=True,
            info="Bundled pipelines and the ones you saved; each stage is a normal run",
        )
        load_button = gr.Button("Show", scale=1)
    description = gr.Markdown()
    graph = gr.HTML()
    code = gr.Code(language="yaml", label="Pipeline YAML (edit before Start or Save)", interactive=True)
    overrides = gr.Textbox(
        label="Overrides",
        lines=2,
        placeholder="train.max_steps=10\nstages.ppo.ppo.kl_coef=0.2",
        info="One KEY=VALUE per line, as `rlhf-studio train --set` takes them: a plain key sets "
        "every stage, stages.NAME.KEY one stage",
    )
    with gr.Row():
        check_button = gr.Button("Check", scale=1)
        start_button = gr.Button("Start", variant="primary", scale=1)
        save_name = gr.Textbox(label="Save as my pipeline", placeholder="my-pipeline", scale=2)
        save_button = gr.Button("Save", scale=1)
    message = gr.Markdown()

    gr.Markdown("### Pipelines")
    with gr.Row():
        selected = gr.Dropdown(
            choices=pipeline_choices(),
            value=None,
            label="Pipeline",
            scale=3,
            allow_custom_value=True,
            info="Started here or with rlhf-studio train; newest first",
        )
        cancel_button = gr.Button("Cancel pipeline", variant="stop", scale=1)
    pipeline_line = gr.Markdown()
    pipeline_graph = gr.HTML()
    stages = gr.Dataframe(headers=TABLE_HEADERS, value=[], interactive=False, label="Stages")
    table = gr.Dataframe(headers=PIPELINE_HEADERS, value=pipelines_table(), interactive=False, label="All pipelines")

    recipe.focus(refresh_recipes, outputs=recipe, api_name="recipes_on_focus", **private)
    recipe.change(show_recipe, inputs=recipe, outputs=[description, graph, code], api_name="show_recipe")
    load_button.click(
        show_recipe, inputs=recipe, outputs=[description, graph, code], api_name="show_recipe_on_click", **private
    )
    check_button.click(preview, inputs=[code, overrides], outputs=[message, graph], api_name="preview")
    save_button.click(save_pipeline, inputs=[save_name, code], outputs=[message, recipe], api_name="save_pipeline")
    start_button.click(start_pipeline, inputs=[code, overrides], outputs=[message, selected], api_name="start_pipeline")
    selected.focus(refresh_pipelines, outputs=selected, api_name="pipelines_on_focus", **private)
    selected.change(
        show_pipeline,
        inputs=selected,
        outputs=[pipeline_line, pipeline_graph, stages],
        api_name="show_pipeline",
        **quiet,
    )
    cancel_button.click(cancel_pipeline, inputs=selected, outputs=message, api_name="cancel_pipeline")
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(
        show_pipeline,
        inputs=selected,
        outputs=[pipeline_line, pipeline_graph, stages],
        api_name="show_pipeline_on_tick",
        **private,
    )
    timer.tick(pipelines_table, outputs=table, api_name="pipelines_table", **quiet)
    gr.api(recipe_list, api_name="recipes")
