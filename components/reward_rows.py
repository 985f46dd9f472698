"""The Train tab's reward sources as rows: each row one entry of `rewards.sources` (studio/config.py RewardSource), a
reward run, a built-in rule with one input per parameter (studio/rewards/builtins.py) or a Python function, with its
weight and name.

    rows = reward_rows.build(list_runs)       # in the tab's Rewards section: SLOTS rows, none in use; list_runs()
                                              # gives (label, id) of the completed reward runs
    rows.inputs                               # every row's inputs, row by row in ROW_KEYS order (input_keys())
    reward_rows.sources(values)               # the values of rows.inputs as rewards.sources entries, filled rows only
    reward_rows.updates(drafts)               # what rows.outputs show for these rows (draft_of(source) makes one)

The rows are a fixed number of slots, shown while in use: every value has one input that Start, Check and the API
read, and what is typed stays where it is (a block rendered again from a state would rebuild its inputs). The rows in
use are always the first ones: Add source shows the next one, Remove moves the rows below it up.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import gradio as gr

from components.fieldwidgets import KEY_SEPARATOR, caption
from studio import config as cfg
from studio.rewards.builtins import BUILTINS, REQUIRED, Param

SLOTS = 6  # rows on the page; a preset with more keeps the rest in the YAML box below them
KINDS = (("Reward run", "run"), ("Built-in", "builtin"), ("Python function", "function"))
SOURCE_INFO = cfg.field_info(cfg.RewardSource)  # run, builtin, function, args, weight, name: labels and help
# A new built-in row starts at the first built-in. Every row input starts with a value, not None: the API takes an
# input with no value as required, and scripts leave the rows out. A row not in use has kind "" (no choice picked).
FIRST_BUILTIN = next(iter(BUILTINS))


def param_key(builtin: str, param: str) -> str:
    return f"args.{builtin}.{param}"


# One row's inputs: the kind, what it names, weight and name, then every built-in's parameters (one shown at a time).
ROW_KEYS = (
    "kind",
    "run",
    "builtin",
    "function",
    "weight",
    "name",
    *(param_key(b.name, p.name) for b in BUILTINS.values() for p in b.params),
)


def row_key(index: int, key: str) -> str:
    """The name of one row input, as /reward_row_keys lists them: rewards.sources[1].args.format.pattern."""
    return f"rewards.sources[{index}].{key}"


def input_keys() -> list[str]:
    """The name of every row input, in the order of `SourceRows.inputs` (and of the form's values after its fields)."""
    return [row_key(i, key) for i in range(SLOTS) for key in ROW_KEYS]


# ---------------------------------------------------------------- a parameter's input


def _widget_kind(param: Param) -> str:
    """checkbox, dropdown, number, lines (one text per line) or text; a number with no default is typed as text, so
    an empty box means "not given" (gradio draws an empty number as 0)."""
    if param.kind == "bool":
        return "checkbox"
    if param.kind == "choice":
        return "dropdown"
    if param.kind == "texts":
        return "lines"
    if param.kind in ("int", "float") and param.default not in (REQUIRED, None):
        return "number"
    return "text"


def _shown(param: Param, value: typing.Any) -> typing.Any:
    """A parameter's value as its input shows it."""
    kind = _widget_kind(param)
    if value is REQUIRED or value is None:
        return {"checkbox": False, "dropdown": None, "number": None}.get(kind, "")
    if kind == "lines":
        return "\n".join(map(str, value))
    return str(value) if kind == "text" else value


_OMIT = object()  # an input left empty: the source does not give this parameter, so its default (or "required") holds


def _read(param: Param, payload: typing.Any) -> typing.Any:
    """A parameter's input as the config value it gives; numbers typed as text become numbers, other text stays as
    typed, so the built-in's check names the parameter ("...args.target = 'ten': expected an integer")."""
    kind = _widget_kind(param)
    if kind == "checkbox":
        return _OMIT if payload is None else bool(payload)
    if kind == "lines":
        lines = [line.strip() for line in str(payload or "").splitlines() if line.strip()]
        return lines or _OMIT
    if payload is None or payload == "":
        return _OMIT
    if isinstance(payload, str) and param.kind in ("int", "float"):
        text = payload.strip()
        if not text:
            return _OMIT
        try:
            return int(text) if param.kind == "int" else float(text)
        except ValueError:
            return text
    if param.kind == "int" and isinstance(payload, float) and payload.is_integer():
        return int(payload)
    return payload


def _param_input(index: int, builtin: str, param: Param):
    common = {
        "label": cfg.name_label(param.name),
        "info": f"args.{param.name}{KEY_SEPARATOR}{param.help}",
        "elem_id": _elem_id(index, param_key(builtin, param.name)),
        "min_width": 180,
    }
    kind, value = _widget_kind(param), _shown(param, param.default)
    if kind == "checkbox":
        return gr.Checkbox(value=value, **common)
    if kind == "dropdown":
        return gr.Dropdown(choices=list(param.choices), value=value, **common)
    if kind == "number":
        return gr.Number(value=value, precision=0 if param.kind == "int" else None, **common)
    if kind == "lines":
        return gr.Textbox(value=value, lines=3, max_lines=12, placeholder="one per line", **common)
    placeholder = "required" if param.default is REQUIRED else "empty: default"
    return gr.Textbox(value=value, placeholder=placeholder, **common)


# ---------------------------------------------------------------- rows as values (drafts) and as sources

Draft = dict[str, typing.Any]  # ROW_KEYS -> what the row's inputs hold


def blank() -> Draft:
    """A row not in use: no kind, each input at its starting value."""
    draft: Draft = {"kind": "", "run": "", "builtin": FIRST_BUILTIN, "function": "", "weight": 1.0, "name": ""}
    for builtin in BUILTINS.values():
        for param in builtin.params:
            draft[param_key(builtin.name, param.name)] = _shown(param, param.default)
    return draft


def draft_of(source: typing.Mapping) -> Draft:
    """The row showing one rewards.sources entry (a config mapping: run, builtin with args, or function)."""
    draft = blank()
    kind = next((kind for _, kind in KINDS if source.get(kind)), None)
    draft["kind"] = kind
    if kind:
        draft[kind] = source[kind]
    if source.get("weight") is not None:
        draft["weight"] = source["weight"]
    draft["name"] = source.get("name") or ""
    builtin = BUILTINS.get(source.get("builtin") or "")
    if builtin:
        args = source.get("args") or {}
        for param in builtin.params:
            if param.name in args:
                draft[param_key(builtin.name, param.name)] = _shown(param, args[param.name])
    return draft


def source_of(draft: Draft) -> dict | None:
    """The rewards.sources entry a row gives, or None for a row not in use or naming nothing (a blank new row)."""
    kind = draft.get("kind")
    if kind not in ("run", "builtin", "function"):
        return None
    named = draft.get(kind)
    if isinstance(named, str):
        named = named.strip()
    if not named:
        return None
    source: dict = {kind: named}
    builtin = BUILTINS.get(named) if kind == "builtin" else None
    if builtin:
        args = {p.name: _read(p, draft.get(param_key(builtin.name, p.name))) for p in builtin.params}
        source["args"] = {name: value for name, value in args.items() if value is not _OMIT}
    weight = draft.get("weight")
    if weight is not None and weight != "":
        source["weight"] = weight
    name = (draft.get("name") or "").strip()
    if name:
        source["name"] = name
    return source


def drafts(values: typing.Sequence) -> list[Draft]:
    """The rows' values (SourceRows.inputs, row by row) as one draft per row."""
    values = list(values)
    width = len(ROW_KEYS)
    return [dict(zip(ROW_KEYS, values[i * width : (i + 1) * width])) for i in range(SLOTS)]


def sources(values: typing.Sequence) -> list[dict]:
    """The rewards.sources entries of the filled rows, in order."""
    return [source for draft in drafts(values) if (source := source_of(draft)) is not None]


# ---------------------------------------------------------------- what the rows show


def _view(kind: str | None, builtin: str | None) -> dict[str, typing.Any]:
    """Which parts of a row show for its kind and built-in, and the built-in's help."""
    return {
        "group": bool(kind),
        "run": kind == "run",
        "function": kind == "function",
        "builtin_box": kind == "builtin",
        "about": BUILTINS[builtin].help if kind == "builtin" and builtin in BUILTINS else "",
        "boxes": {name: kind == "builtin" and builtin == name for name in BUILTINS},
    }


def _view_updates(view: dict) -> list:
    """Updates for a row's views: its group, the built-in's box, its help and each built-in's parameters."""
    return [
        gr.update(visible=view["group"]),
        gr.update(visible=view["builtin_box"]),
        gr.update(value=view["about"]),
        *(gr.update(visible=shown) for shown in view["boxes"].values()),
    ]


def view_updates(kind: str | None, builtin: str | None) -> list:
    """A row's kind or built-in changed: [run, function, *views] of that row (Row.view_outputs)."""
    view = _view(kind, builtin)
    return [gr.update(visible=view["run"]), gr.update(visible=view["function"]), *_view_updates(view)]


def updates(rows: typing.Sequence[Draft | None], run_choices: list | None = None, add: bool | None = None) -> list:
    """What SourceRows.outputs show for these rows (None: a row left as it is): every input's value, then every
    row's views, then whether Add source shows (None: as it is). `run_choices` refreshes the run lists."""
    values, views = [], []
    for draft in rows:
        if draft is None:
            values += [gr.update() for _ in ROW_KEYS]
            views += [gr.update() for _ in range(3 + len(BUILTINS))]
            continue
        view = _view(draft["kind"], draft["builtin"])
        for key in ROW_KEYS:
            if key == "run":
                extra = {"choices": run_choices} if run_choices is not None else {}
                values.append(gr.update(value=draft[key], visible=view["run"], **extra))
            elif key == "function":
                values.append(gr.update(value=draft[key], visible=view["function"]))
            else:
                values.append(gr.update(value=draft[key]))
        views += _view_updates(view)
    return [*values, *views, gr.update() if add is None else gr.update(visible=add)]


def filled(found: list[dict], run_choices: list | None = None) -> tuple[list, list[dict]]:
    """(updates showing the first SLOTS sources in the rows and no other row in use, the sources left over)."""
    shown = [draft_of(source) for source in found[:SLOTS]]
    rows = shown + [blank() for _ in range(SLOTS - len(shown))]
    return updates(rows, run_choices, add=len(shown) < SLOTS), found[SLOTS:]


def added(values: typing.Sequence, kind: str, run_choices: list | None = None) -> list:
    """Add source: the first row not in use gets `kind` (its other inputs as new), the others stay as they are."""
    free = next((i for i, draft in enumerate(drafts(values)) if not draft["kind"]), None)
    if free is None:
        return updates([None] * SLOTS, add=False)
    changed: list[Draft | None] = [None] * SLOTS
    changed[free] = {**blank(), "kind": kind}
    return updates(changed, run_choices, add=free + 1 < SLOTS)


def removed(index: int, values: typing.Sequence) -> list:
    """Remove row `index`: the rows below it move up one, the last becomes free."""
    rows = drafts(values)
    moved = rows[index + 1 :] + [blank()]
    return updates([None] * index + moved, add=True)


# ---------------------------------------------------------------- layout


def _elem_id(index: int, key: str) -> str:
    return f"reward-source-{index}-{key.replace('.', '-').replace('_', '-')}"


def _caption(index: int, key: str) -> dict:
    return caption(row_key(index, key), SOURCE_INFO[key])


@dataclass
class Row:
    """One row's components: its inputs (ROW_KEYS -> input) and the parts shown or hidden."""

    index: int
    inputs: dict[str, typing.Any]
    group: typing.Any
    builtin_box: typing.Any
    about: typing.Any
    boxes: dict[str, typing.Any]  # built-in name -> the row holding its parameters
    remove: typing.Any

    @property
    def views(self) -> list:
        return [self.group, self.builtin_box, self.about, *self.boxes.values()]

    @property
    def view_outputs(self) -> list:
        return [self.inputs["run"], self.inputs["function"], *self.views]


@dataclass
class SourceRows:
    rows: list[Row]
    add: typing.Any
    inputs: list = field(default_factory=list)  # every row's inputs, row by row in ROW_KEYS order

    @property
    def outputs(self) -> list:
        """What `updates` fills: every input, every row's views, the Add source button."""
        return [*self.inputs, *(view for row in self.rows for view in row.views), self.add]

    @property
    def run_inputs(self) -> list:
        return [row.inputs["run"] for row in self.rows]


def _row(index: int, run_choices: list) -> Row:
    inputs: dict[str, typing.Any] = {}
    boxes: dict[str, typing.Any] = {}
    with gr.Group(visible=False) as group:  # (a group repeats its elem_id inside: the inputs carry the ids)
        with gr.Row(equal_height=True):
            inputs["kind"] = gr.Radio(
                choices=list(KINDS),
                value="",
                label=f"Source {index + 1}",
                info="A reward run's model, a built-in rule or a Python function scores each answer",
                elem_id=_elem_id(index, "kind"),
                scale=3,
            )
            remove = gr.Button("Remove", elem_id=_elem_id(index, "remove"), size="sm", scale=0, min_width=100)
        inputs["run"] = gr.Dropdown(
            choices=run_choices,
            value="",
            allow_custom_value=True,
            visible=False,
            elem_id=_elem_id(index, "run"),
            **_caption(index, "run"),
        )
        with gr.Column(visible=False) as builtin_box:
            inputs["builtin"] = gr.Dropdown(
                choices=list(BUILTINS),
                value=FIRST_BUILTIN,
                elem_id=_elem_id(index, "builtin"),
                **_caption(index, "builtin"),
            )
            about = gr.Markdown(elem_id=_elem_id(index, "about"))
            for builtin in BUILTINS.values():
                with gr.Row(visible=False) as boxes[builtin.name]:
                    for param in builtin.params:
                        inputs[param_key(builtin.name, param.name)] = _param_input(index, builtin.name, param)
        inputs["function"] = gr.Textbox(
            value="",
            placeholder="my_rewards.py:score",
            visible=False,
            elem_id=_elem_id(index, "function"),
            **_caption(index, "function"),
        )
        with gr.Row():
            inputs["weight"] = gr.Number(
                value=1.0, elem_id=_elem_id(index, "weight"), min_width=160, **_caption(index, "weight")
            )
            inputs["name"] = gr.Textbox(
                value="",
                placeholder="empty: the run id, the built-in's or the function's name",
                elem_id=_elem_id(index, "name"),
                min_width=160,
                **_caption(index, "name"),
            )
    ordered = {key: inputs[key] for key in ROW_KEYS}
    return Row(index, ordered, group, builtin_box, about, boxes, remove)


def build(run_choices: typing.Callable[[], list]) -> SourceRows:
    """Lay out SLOTS rows, none in use, and Add source; wire each row's kind and built-in to what it shows, and
    Add and Remove. `run_choices()`: (label, id) of the completed reward runs, asked as the rows are laid out and
    on Add (a new row is a reward run where there is one, else a built-in)."""
    runs = run_choices()
    rows = [_row(i, runs) for i in range(SLOTS)]
    add = gr.Button("Add source", elem_id="reward-source-add")
    editor = SourceRows(rows, add, [component for row in rows for component in row.inputs.values()])

    def add_row(*values):
        choices = run_choices()
        return added(values, "run" if choices else "builtin", choices)

    add.click(
        add_row,
        inputs=editor.inputs,
        outputs=editor.outputs,
        api_name="add_reward_source",
        api_visibility="private",
        preprocess=False,
    )
    for row in rows:
        row.remove.click(
            lambda *values, index=row.index: removed(index, values),
            inputs=editor.inputs,
            outputs=editor.outputs,
            api_name=f"remove_reward_source_{row.index}",
            api_visibility="private",
            preprocess=False,
        )
    for row in rows:
        kind, builtin = row.inputs["kind"], row.inputs["builtin"]
        gr.on(
            [kind.change, builtin.change],
            view_updates,
            inputs=[kind, builtin],
            outputs=row.view_outputs,
            api_visibility="private",
            preprocess=False,  # a free row's kind is "", not one of the choices
            show_progress="hidden",
        )
    return editor
