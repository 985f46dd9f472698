"""Train tab: the stage, where it starts from, LoRA, hyperparameters and the stage's own settings, presets, and Start.

Every input is generated from `studio.config.field_info()` (its label in words, the key and help text under it, its
choices and bounds), so defaults and help live only in studio/config.py. Start reads the whole form (the Model and Data
tabs' fields too), validates it with `config.from_dict` and queues the run with `runs.manager.start`; the training
itself runs in its own process and shows up in the Runs tab.

Start checks what it can in about a second before a run exists (files, the hub: `manager.check_inputs`) and refuses
a second Start of the same config within a few seconds (a double click), naming the run already started. Presets that
need a GPU or the hub say so in the list, after the offline ones on a machine without a GPU, and one sized for a GPU
gets a note naming its tiny twin there.

The online stages (ppo, grpo, rloo, rejection) show a Rewards section: rows of reward sources
(components/reward_rows.py: a reward run, a built-in rule with its parameters, or a Python function, each with a
weight and a name), Add source and Remove, then `rewards.sources` as YAML for more (the API's way to pass sources),
combine, safety_threshold and time_limit. Start, Check and Save read the form's fields and then the rows' inputs:
the filled rows come first in rewards.sources, the YAML's after them. A loaded preset's sources go back into the rows
(/reward_rows).

Above Start, a summary says what Start will run (studio/pipelines/preview.py decides, this tab formats): stage, model,
data source and file, rows, steps, the run it starts from, the rewards and the estimated memory. It is worked out
when the tab opens, when a preset loads, on Check, and when a field that changes it does: dropdowns as they change,
text and number boxes when they lose focus or Enter is pressed, never on each keystroke.

Endpoints (every handler is one): /start_run, /load_preset, /save_preset, /presets (the preset list), /stage_runs,
/stage_sections, /form_keys, /reward_row_keys, /reward_rows, /run_summary. /start_run, /save_preset and /run_summary
take the values of /form_keys, then those of /reward_row_keys (each row's inputs; left out, the rows are empty).
Presets are listed, loaded and saved by studio/pipelines/presets.py.
"""

from __future__ import annotations

import html
import math
import re
import typing
from pathlib import Path

import gradio as gr

from components import fieldwidgets, reward_rows
from components.forms import Fields, to_config, yaml_keys, yaml_text
from components.model_tab import BUILDING_TINY
from components.oneline import ERROR_CLASS, as_error, error_line, error_markdown, uploads_named
from components.pipelines_tab import needs_label
from studio import config as cfg
from studio import stages
from studio.errors import ConfigError, StudioError
from studio.modeling import model_files
from studio.modeling.estimate import gib
from studio.pipelines import presets, twins
from studio.pipelines.preview import HUB, SAMPLE, RunRef, RunSummary, run_summary
from studio.runs import manager
from studio.runs.status import State

BASE_MODEL = ""  # init.from_run's "no earlier run" choice; to_config turns empty text into the default (None)

TRAIN_BASICS = (
    "train.max_steps",
    "train.epochs",
    "train.learning_rate",
    "train.batch_size",
    "train.gradient_accumulation_steps",
)  # the rest of train.* sits under "More"
TRACKER_KEYS = ("train.report_to", "train.run_name")  # laid out on their own, with TRACKERS_NOTE
TRACKERS_NOTE = (
    "Every metric row and the config also go to the trackers picked here, under the same keys as the charts "
    "(`metrics.jsonl` stays the record). Tokens come from their usual environment variables: `WANDB_API_KEY` "
    "(or `WANDB_MODE=offline`), `MLFLOW_TRACKING_URI`, `HF_TOKEN` for a Trackio Space. The Runs tab links to "
    "where each run went."
)
SHARED_SECTIONS = ("model.", "data.")  # the Model and Data tabs own these keys
SOURCES = "rewards.sources"
REWARD_KEYS = ("rewards.combine", "rewards.safety_threshold", "rewards.time_limit")  # laid out after the sources


# ---------------------------------------------------------------- inputs from field_info


def _float_step(default: float | None) -> float:
    """A spinner step of the default's order of magnitude (2e-4 steps by 1e-4, 0.95 by 0.1)."""
    if not default:
        return 0.01
    return 10.0 ** math.floor(math.log10(abs(default)))


def field_id(key: str) -> str:
    """The element id of a config key's input (train.max_steps -> field-train-max_steps): a handle for the page's
    scripts and tests that does not change with the words of its label."""
    return "field-" + key.replace(".", "-")


def field_input(key: str, **overrides) -> gr.components.Component:
    """The input for one config key (fieldwidgets.widget), floats stepping by their default's order of magnitude."""
    overrides = {"elem_id": field_id(key), **overrides}
    meta = fieldwidgets.info(key)
    # an optional number with no default is a text box (fieldwidgets.widget), which takes no step
    if meta["type"] in (float, float | None) and meta["default"] is not None and not meta.get("choices"):
        overrides = {"step": _float_step(meta["default"]), **overrides}
    return fieldwidgets.widget(key, **overrides)


def display_value(key: str, component: typing.Any, value: typing.Any) -> typing.Any:
    """A config value as the form shows it: lists as text in a textbox, joined by the key's separator (commas, or
    new lines for prompts), None as empty text; a list of mappings (rewards.sources) as YAML."""
    if key in yaml_keys():
        return yaml_text(value)
    if isinstance(component, gr.Textbox):
        if value is None:
            return ""
        return fieldwidgets.list_text(key, value) if isinstance(value, list) else str(value)
    if isinstance(component, gr.Dropdown) and component.multiselect:
        return list(value or [])
    return value


def read_value(key: str, component: typing.Any, payload: typing.Any) -> typing.Any:
    """A form value as sent by the browser (these handlers skip gradio's preprocessing): numbers, choices and text
    go to `config.from_dict` as they are, so an out-of-range or unknown value gets its one line naming the key."""
    if isinstance(component, (gr.Number, gr.Dropdown, gr.Textbox, gr.Checkbox)):
        if (
            isinstance(component, gr.Number)
            and component.precision == 0
            and isinstance(payload, float)
            and payload.is_integer()
        ):
            return int(payload)
        return payload
    data_model = getattr(component, "data_model", None)
    try:  # any other input kind (a file, say) gets gradio's own processing
        return component.preprocess(
            data_model.model_validate(payload) if data_model and payload is not None else payload
        )
    except gr.Error as err:
        raise StudioError(f"{key}: {err.message}") from None


def form_raw(fields: Fields, values: typing.Sequence) -> dict:
    """The whole form as a config mapping, not validated yet. Values after the fields' are the reward rows'
    (reward_rows.input_keys()): their filled rows are the first rewards.sources, the YAML text's come after."""
    keys = list(fields)
    raw = to_config(keys, [read_value(key, fields[key], value) for key, value in zip(keys, values)])
    from_rows = reward_rows.sources(values[len(keys) :])
    if from_rows:
        rewards = raw.setdefault("rewards", {})
        more = rewards.get("sources") or []
        if isinstance(more, list):  # other text is left for the config check to name
            rewards["sources"] = from_rows + more
    return raw


def form_config(fields: Fields, values: typing.Sequence) -> cfg.RunConfig:
    """The whole form as a validated RunConfig (ConfigError names the key at fault)."""
    return cfg.from_dict(form_raw(fields, values))


def flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ---------------------------------------------------------------- runs to start from


def _run_label(row: dict) -> str:
    return f"{row['id']} ({row['name']})" if row.get("name") else row["id"]


def completed_runs(stages: typing.Iterable[str]) -> list[tuple[str, str]]:
    """(label, id) of the completed runs of these stages, newest first."""
    stages = set(stages)
    rows = [r for r in manager.list_runs() if r["state"] == State.COMPLETED and r["stage"] in stages]
    return [(_run_label(r), r["id"]) for r in reversed(rows)]


def parent_choices(stage: str) -> list[tuple[str, str]]:
    parents = stages.starts_from(stage) if stages.find(stage) else ()
    return [("(base model)", BASE_MODEL), *completed_runs(parents)]


def stage_runs(stage: str, from_run: str | None):
    """Refresh the runs this stage can start from, keeping the pick while it is on offer, and each reward row's list
    of reward runs, whose picks stay (a preset may be filling the rows; Start checks the run)."""
    parents = parent_choices(stage)
    keep_parent = from_run if from_run in {value for _, value in parents} else BASE_MODEL
    rewards = completed_runs(["reward"])
    return gr.Dropdown(choices=parents, value=keep_parent), *(
        gr.Dropdown(choices=rewards) for _ in range(reward_rows.SLOTS)
    )


def stage_run_choices(stage: str):
    """The same lists with no value: sent on focus, an answer that carried the value from before would undo a pick
    made while it was on its way."""
    rewards = completed_runs(["reward"])
    return gr.Dropdown(choices=parent_choices(stage)), *(gr.Dropdown(choices=rewards) for _ in range(reward_rows.SLOTS))


def stage_choices() -> list[tuple[str, str]]:
    """The stage picker: one line per registered stage, what it trains on and what it needs."""
    return [(f"{s.name}: {s.summary}", s.name) for s in stages.all_stages()]


def own_sections() -> tuple[str, ...]:
    """The config sections that belong to a stage (sft, ppo, ...), each laid out once, shown with its stage."""
    return tuple(dict.fromkeys(s.section for s in stages.all_stages()))


def stage_sections(stage: str) -> list:
    """Show the rewards for the online stages and only the selected stage's own section."""
    record = stages.find(stage)
    return [
        gr.update(visible=bool(record and record.online)),
        *(gr.update(visible=bool(record and record.section == section)) for section in own_sections()),
    ]


# ---------------------------------------------------------------- presets (studio/pipelines/presets.py keeps them)


def preset_choices() -> list[tuple[str, str]]:
    """(label, name) of every single-run preset, in the engine's order: on a machine without a GPU, those needing
    one last."""
    return [
        (f"{name}{' (yours)' if preset.yours else ''}{needs_label(list(preset.needs))}", name)
        for name, preset in presets.runs().items()
    ]


def preset_list() -> list[list[str]]:
    """[label, name] of every single-run preset, as the Preset dropdown lists them (for scripts and tests)."""
    return [list(choice) for choice in preset_choices()]


def refresh_presets():
    """The preset list with no value, sent on focus (see stage_run_choices)."""
    return gr.Dropdown(choices=preset_choices())


def preset_values(fields: Fields, name: str | None) -> tuple[str, list | None]:
    """(message, value of every field) from a preset; None for the values when it cannot be loaded, which the
    message says. Its reward sources are YAML in rewards.sources (fill_rows puts them into the rows)."""
    try:
        raw, config = presets.load_run(name)
        raw = cfg.upgrade_reward_models(raw)  # a preset written with reward_models: its runs are rewards.sources
    except StudioError as err:
        return str(err), None
    values = flatten(cfg.to_dict(config))
    left_out = [key for key in flatten(raw) if key not in fields]
    message = f"Loaded preset **{name}**."
    if left_out:
        message += f" Not in this form, so left out: {', '.join(left_out)}."
    warning = twins.gpu_warning([config])
    if warning:
        message += f" **Note:** {warning}"
    return message, [display_value(key, component, values.get(key)) for key, component in fields.items()]


def load_preset(fields: Fields, name: str | None) -> list:
    """[message, value of every field] from a preset; on a problem the message says it and the form stays."""
    message, values = preset_values(fields, name)
    return [message, *(values if values is not None else (gr.update() for _ in fields))]


def fill_rows(text: str | None) -> list:
    """The reward rows showing the sources in rewards.sources' YAML (as a loaded preset puts them there): the first
    reward_rows.SLOTS in the rows, the rest left in the text. [every output of the rows (SourceRows.outputs, the
    inputs' values first), the text, the YAML box (open when sources are left in it)]; unchanged for text that
    does not hold a list of sources, which Start then names."""
    found = (to_config([SOURCES], [text]).get("rewards") or {}).get("sources") or []
    if not isinstance(found, list) or not all(isinstance(source, dict) for source in found):
        return [*reward_rows.updates([None] * reward_rows.SLOTS), gr.update(), gr.update()]
    shown, rest = reward_rows.filled(found, completed_runs(["reward"]))
    return [*shown, yaml_text(rest), gr.update(open=True) if rest else gr.update()]


def save_preset(fields: Fields, name: str | None, values: typing.Sequence):
    """Save the form as the user's preset NAME (presets.save_run); (message, preset dropdown)."""
    try:
        raw = form_raw(fields, values)
    except StudioError as err:
        return f"Not saved: {err}", gr.Dropdown()
    try:
        path, replaced = presets.save_run(name, raw)
    except presets.NameRefused as err:
        return str(err), gr.Dropdown()
    except ConfigError as err:
        return f"Not saved: {err}", gr.Dropdown()
    except StudioError as err:  # the file could not be written
        return str(err), gr.Dropdown()
    verb = "Replaced" if replaced else "Saved"
    return f"{verb} preset **{path.stem}** ({path}).", gr.Dropdown(choices=preset_choices(), value=path.stem)


# ---------------------------------------------------------------- start


def start_run(fields: Fields, values: typing.Sequence) -> str:
    """Validate the form and queue the run; one line either way, and nothing is started on a problem."""
    try:
        config = form_config(fields, values)
        run, proc = manager.start(config, refuse_repeats=True)
    except StudioError as err:
        return as_error(f"Not started: {error_line(err)}")
    warning = twins.gpu_warning([config])
    note = f" **Note:** {warning}" if warning else ""
    if proc is not None:
        return f"Started **{run.id}**. Watch it in the Runs tab.{note}"
    place = manager.queue_places().get(run.id, {})
    behind = f" behind {place['queued_behind']}" if place.get("queued_behind") else ""
    return f"Queued **{run.id}**{behind}; it starts when the device is free. Watch it in the Runs tab.{note}"


# ---------------------------------------------------------------- what Start will run

SUMMARY_HINT = "Press **Check** to see what Start will run: stage, model, data, rows, steps and memory."
# The fields the summary depends on; dropdowns and checkboxes refresh it as they change, text and numbers on blur or
# Enter (see build).
SUMMARY_KEYS = (
    "stage",
    "model.name",
    "model.dtype",
    "model.quantization",
    "data.source",
    "data.path",
    "data.subset",
    "data.limit",
    "data.eval_fraction",
    "data.max_length",
    "init.from_run",
    "rewards.sources",
    "rewards.combine",
    "train.max_steps",
    "train.epochs",
    "train.batch_size",
    "train.gradient_accumulation_steps",
    "lora.enabled",
)


def summary_steps(fields: Fields, values: typing.Sequence):
    """What the summary shows, in turn: a line saying the tiny model is being built, when it is not yet (its first
    use takes seconds), then the summary; a form that does not validate gets its one line instead."""
    try:
        config = form_config(fields, values)
    except Exception as err:  # a ConfigError naming the key, or a bug: one line either way
        yield error_markdown(err)
        return
    if config.model.name == model_files.TINY_NAME and not config.init.from_run and not model_files.tiny_built():
        yield BUILDING_TINY
    yield summary_markdown(config)


def summary_markdown(config: cfg.RunConfig) -> str:
    try:
        return format_summary(run_summary(config))
    except Exception as err:  # a bug: one line in the UI, never a traceback
        return error_markdown(err)


def _text(text: str) -> str:
    """Plain text for a line of Markdown: HTML escaped, and Markdown's own characters escaped, so that a path or a
    message shows exactly as written."""
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", html.escape(str(text), quote=False))


def _problem(text: str) -> str:
    return f'<span class="{ERROR_CLASS}">{_text(uploads_named(text))}</span>'


def _run(ref: RunRef) -> str:
    name = f" ({ref.name})" if ref.name else ""
    kind = f", {ref.kind}" if ref.kind else ""
    return _text(f"{ref.id}{name}{kind}")


def format_summary(summary: RunSummary) -> str:
    """The summary as a Markdown list, one line a part; a part that could not be worked out shows its one line."""
    problems = summary.problems
    lines = [("Stage", _text(f"{summary.stage}: {summary.stage_about}"))]

    model = f"{summary.model}, {summary.model_where}" + (", as in the run it starts from" if summary.parent else "")
    lines.append(("Model", _text(model) + (f" {_problem(problems['model'])}" if "model" in problems else "")))

    if summary.data_origin is None:
        where = summary.data_where
    elif summary.data_kind == SAMPLE:
        where = f"{summary.data_where} ({Path(summary.data_origin).name})"
    elif summary.data_kind == HUB:
        where = f"{summary.data_where} ({summary.data_origin})"
    else:
        where = f"{summary.data_where}: {uploads_named(summary.data_origin)}"
    lines.append(
        (
            "Data",
            _text(f"{summary.source}, from {where}") + (f" {_problem(problems['data'])}" if "data" in problems else ""),
        )
    )

    counted = summary.rows
    if counted is not None:
        held = f"{counted.held_out:,} held out" if counted.held_out else "none held out"
        text = f"{counted.usable:,} {counted.format} rows: {counted.train:,} to train on, {held}"
        text += f"; {counted.dropped:,} dropped" if counted.dropped else "; none dropped"
        if not counted.length_checked:
            text += " (before the data.max_length check: the model's tokenizer is out of reach)"
        lines.append(("Rows", _text(text)))
    elif summary.rows_note:
        lines.append(("Rows", _text(f"not counted: {summary.rows_note}")))
    else:
        lines.append(("Rows", _text("not counted: the data cannot be read (see above)")))

    if summary.steps is not None:
        steps = _text(
            f"{summary.steps:,} optimizer steps ({summary.steps_how})"
            if stages.get(summary.stage).steps != stages.ROUNDS
            else f"{summary.steps:,} rounds ({summary.steps_how})"
        )
    elif "steps" in problems:
        steps = _problem(problems["steps"])
    else:
        steps = _text(f"not counted: {summary.steps_how}")
    lines.append(("Steps", steps))

    if "parent" in problems:
        parent = _problem(problems["parent"])
    elif summary.parent is not None:
        parent = f"run {_run(summary.parent)}, a {_text(summary.parent.stage)} run, its adapter merged in"
    else:
        parent = _text("the base model (no earlier run)")
    lines.append(("Starts from", parent))

    if summary.stage in cfg.ONLINE_STAGES:
        scorers = "; ".join([*(_run(ref) for ref in summary.reward_models), *map(_text, summary.reward_rules)])
        lines.append(("Rewards", scorers + (f" {_problem(problems['rewards'])}" if "rewards" in problems else "")))

    if summary.memory is not None:
        parts = ", ".join(f"{term.name} {gib(term.bytes)}" for term in summary.memory.terms if term.bytes)
        memory = _text(
            f"about {gib(summary.memory.total)} at {summary.memory_dtype}: {parts}; the Model tab's "
            "Inspect explains each part"
        )
    elif "memory" in problems:
        memory = _problem(problems["memory"])
    else:
        memory = _text("not estimated: the model is out of reach (see above)")
    lines.append(("Memory", memory))

    if "train" in problems:
        lines.append(("Training", _problem(problems["train"])))
    lines += [("Note", _text(note)) for note in summary.notes]
    return "\n".join(["**What Start will run**", "", *(f"- **{what}:** {cell}" for what, cell in lines)])


# ---------------------------------------------------------------- layout


def _section_doc(section: str) -> str | None:
    """A spec's own docstring (written in studio/config.py), not the repr dataclasses make up without one."""
    spec = typing.get_type_hints(cfg.RunConfig)[section]
    doc = spec.__doc__ or ""
    return None if doc.startswith(f"{spec.__name__}(") else " ".join(doc.split())


def _inputs(keys: typing.Iterable[str], fields: Fields, **overrides) -> None:
    for key in keys:
        fields[key] = field_input(key, **overrides)


def build(shared_fields: Fields) -> Fields:
    """Lay out the tab; returns its inputs keyed by config key. `shared_fields` are the Model and Data tabs'."""
    info = cfg.field_info()
    keys = list(info)
    section_keys = {
        s: [k for k in keys if k.startswith(f"{s}.")]
        for s in ("lora", "train", "timeline", "rollouts", "eval", *own_sections())
    }
    own: Fields = {}
    initial_stage = info["stage"]["default"]

    with gr.Row():
        preset = gr.Dropdown(
            choices=preset_choices(),
            value=None,
            allow_custom_value=True,
            label="Preset",
            info="Single-run presets, bundled and saved; pipelines (several linked stages) are in the Pipelines tab",
            scale=3,
        )
        load_button = gr.Button("Load", scale=1)
        preset_name = gr.Textbox(label="Save the form as", placeholder="my-preset", scale=2)
        save_button = gr.Button("Save as", scale=1)
    preset_message = gr.Markdown()

    with gr.Row():
        own["stage"] = gr.Dropdown(
            choices=stage_choices(),
            value=initial_stage,
            **fieldwidgets.caption("stage"),
            scale=2,
            elem_id=field_id("stage"),
        )
        _inputs(["name"], own, scale=1)
    with gr.Row():
        own["init.from_run"] = gr.Dropdown(
            choices=parent_choices(initial_stage),
            value=BASE_MODEL,
            allow_custom_value=True,
            **fieldwidgets.caption("init.from_run"),
            scale=4,
            elem_id=field_id("init.from_run"),
        )
        refresh_button = gr.Button("Refresh runs", scale=1)

    with gr.Column(
        visible=initial_stage in cfg.ONLINE_STAGES, variant="panel", elem_id="train-rewards"
    ) as rewards_group:
        gr.Markdown(f"**Rewards** · {_section_doc('rewards') or ''}")
        rows = reward_rows.build(lambda: completed_runs(["reward"]))
        with gr.Accordion("More sources as YAML (rewards.sources)", open=False) as more_sources:
            own[SOURCES] = gr.Textbox(
                value="",
                lines=3,
                max_lines=20,
                placeholder="- builtin: length\n  args: {target: 40}\n  weight: 0.5",
                **fieldwidgets.caption(SOURCES),
                elem_id=field_id(SOURCES),
            )
        with gr.Row():
            _inputs(REWARD_KEYS, own)
        with gr.Accordion("Answers recorded (rollouts.*)", open=False):
            gr.Markdown(_section_doc("rollouts") or "")
            with gr.Row():
                _inputs(section_keys["rollouts"], own, min_width=180)
        with gr.Accordion("Judges watching for reward hacking (eval.*)", open=False):
            gr.Markdown(_section_doc("eval") or "")
            own["eval.judges"] = gr.Textbox(
                value="",
                lines=3,
                max_lines=20,
                placeholder="- kind: reward_run\n  run: RUN_ID\n- kind: builtin\n  builtin: format",
                **fieldwidgets.caption("eval.judges"),
                elem_id=field_id("eval.judges"),
            )
            with gr.Row():
                _inputs([k for k in section_keys["eval"] if k != "eval.judges"], own, min_width=180)

    sections = []
    for section in own_sections():
        with gr.Accordion(
            f"{section} settings", open=True, visible=section == stages.get(initial_stage).section
        ) as block:
            doc = _section_doc(section)
            if doc:
                gr.Markdown(doc)
            with gr.Row():
                _inputs(section_keys[section], own, min_width=220)
        sections.append(block)

    with gr.Accordion("Hyperparameters (train.*)", open=True):
        with gr.Row():
            _inputs(TRAIN_BASICS, own, min_width=180)
        with gr.Accordion("More", open=False), gr.Row():
            _inputs([k for k in section_keys["train"] if k not in (*TRAIN_BASICS, *TRACKER_KEYS)], own, min_width=220)

    with gr.Accordion("Experiment trackers (train.report_to)", open=False):
        gr.Markdown(TRACKERS_NOTE)
        with gr.Row():
            _inputs(list(TRACKER_KEYS), own, min_width=220)

    with gr.Accordion("LoRA (lora.*)", open=False), gr.Row():
        _inputs(section_keys["lora"], own, min_width=180)

    with gr.Accordion("Answers over training (timeline.*)", open=False):
        gr.Markdown(_section_doc("timeline") or "")
        with gr.Row():
            _inputs(["timeline.prompts"], own, scale=3)
            _inputs([k for k in section_keys["timeline"] if k != "timeline.prompts"], own, scale=1, min_width=180)

    with gr.Column(variant="panel", elem_id="run-summary-box"):
        summary = gr.Markdown(SUMMARY_HINT, elem_id="run-summary")
        with gr.Row():
            check_button = gr.Button("Check", scale=1, min_width=120)
            start_button = gr.Button("Start", variant="primary", scale=4)
    start_message = gr.Markdown()

    missing = [k for k in keys if not k.startswith(SHARED_SECTIONS) and k not in own]
    assert not missing, f"train tab has no input for {missing}"  # a key added to config.py needs a place here
    fields: Fields = {**shared_fields, **own}
    form = [*fields.values(), *rows.inputs]  # what Start, Check and Save read: the fields, then the reward rows
    stage, from_run = own["stage"], own["init.from_run"]
    run_lists = [from_run, *rows.run_inputs]

    stage.change(stage_runs, inputs=[stage, from_run], outputs=run_lists, api_name="stage_runs")
    stage.change(stage_sections, inputs=stage, outputs=[rewards_group, *sections], api_name="stage_sections")
    # The page alone uses these: private, each with its own name so that the public names stay as written.
    refresh_button.click(
        stage_runs,
        inputs=[stage, from_run],
        outputs=run_lists,
        api_name="stage_runs_on_refresh",
        api_visibility="private",
    )
    gr.on(
        [from_run.focus],
        stage_run_choices,
        inputs=stage,
        outputs=run_lists,
        api_name="stage_runs_on_parent_focus",
        api_visibility="private",
    )
    gr.on(
        [dropdown.focus for dropdown in rows.run_inputs],
        stage_run_choices,
        inputs=stage,
        outputs=run_lists,
        api_name="stage_runs_on_rewards_focus",
        api_visibility="private",
    )
    preset.focus(refresh_presets, outputs=preset, api_name="presets_on_focus", api_visibility="private")

    # Whether the last Load found its preset: only then do its sources replace the rows (a State: not in the API).
    preset_found = gr.State(True)

    def load(name):
        message, values = preset_values(fields, name)
        if values is None:
            return [message, *(gr.update() for _ in fields), False]
        return [message, *values, True]

    def rows_after_load(found, text):
        if not found:
            return [*reward_rows.updates([None] * reward_rows.SLOTS), gr.update(), gr.update()]
        return fill_rows(text)

    def save(name, *values):
        return save_preset(fields, name, values)

    def start(*values):
        return start_run(fields, values)

    def summarize(*values):
        yield from summary_steps(fields, values)

    def form_keys() -> list[str]:
        """The config key of each form value, in the order /start_run, /save_preset and /load_preset use."""
        return list(fields)

    def reward_row_keys() -> list[str]:
        """The name of each reward row input (rewards.sources[0].kind, ...[0].args.format.pattern), in the order
        /start_run, /save_preset and /run_summary take them after the form's values."""
        return reward_rows.input_keys()

    fields_out = list(fields.values())
    loaded = load_button.click(
        load, inputs=preset, outputs=[preset_message, *fields_out, preset_found], api_name="load_preset"
    )
    sources_box = [own[SOURCES], more_sources]
    rows_loaded = loaded.then(
        rows_after_load,
        inputs=[preset_found, own[SOURCES]],
        outputs=[*rows.outputs, *sources_box],
        api_name="reward_rows",
        preprocess=False,
    )
    # The form handlers skip gradio's preprocessing so that from_dict, not gradio, judges every value (see read_value).
    save_button.click(
        save, inputs=[preset_name, *form], outputs=[preset_message, preset], api_name="save_preset", preprocess=False
    )
    start_button.click(start, inputs=form, outputs=start_message, api_name="start_run", preprocess=False)
    gr.api(form_keys, api_name="form_keys")
    gr.api(reward_row_keys, api_name="reward_row_keys")
    gr.api(preset_list, api_name="presets")

    # The summary: one event for every trigger, so a burst of changes (a preset filling the form) runs it once more
    # at most (always_last), one at a time (its own queue); the values go unprocessed, as Start's do.
    summary_options = dict(
        fn=summarize,
        inputs=form,
        outputs=summary,
        preprocess=False,
        show_progress="minimal",
        concurrency_id="run_summary",
        concurrency_limit=1,
    )
    triggers = [check_button.click]
    # a row's parameters are left to Check: the summary names the source, not each of its arguments
    named = ("kind", "run", "builtin", "function", "weight", "name")
    row_inputs = [row.inputs[key] for row in rows.rows for key in named]
    for component in [*(fields[key] for key in SUMMARY_KEYS), *row_inputs]:
        if isinstance(component, (gr.Dropdown, gr.Checkbox, gr.Radio)):
            triggers.append(component.change)
        else:  # typed into: asked when the person is done with it, not at each keystroke
            triggers += [component.blur, component.submit]
    gr.on(triggers, **summary_options, trigger_mode="always_last", api_name="run_summary")
    rows_loaded.then(**summary_options, api_name="run_summary_after_load", api_visibility="private")
    tab = fieldwidgets.home_of(own["stage"])
    if isinstance(tab, gr.Tab):  # built inside the app's Train tab: worked out as it opens
        tab.select(**summary_options, api_name="run_summary_on_open", api_visibility="private")
    return own
