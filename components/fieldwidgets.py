"""One form widget per config key, its label, default, help text and choices read from studio/config.py.

    name = widget("model.name")                   # gr.Textbox with the key's default and help
    dtype = widget("model.dtype", scale=1)        # choices -> gr.Dropdown
    gr.Dropdown(choices=..., **caption("init.from_run"))   # a widget built by hand gets the same label and info

A widget is labelled in words ("Learning rate"); its info line starts with the config key, small, for presets, --set
and the API (`train.learning_rate · Peak learning rate`).

Must be called inside a gr.Blocks context, like any component.
"""

from __future__ import annotations

import types
import typing
from functools import lru_cache

import gradio as gr

from studio.config import field_info


@lru_cache(maxsize=1)
def _info() -> dict[str, dict]:
    return field_info()


def info(key: str) -> dict:
    return _info()[key]


KEY_SEPARATOR = " · "  # between the config key and its help text on a widget's info line


def caption(key: str, meta: dict | None = None) -> dict:
    """label= and info= for a config key's widget: its words as the label, the key and help text as the info line.
    `meta` is the key's field_info entry, for keys outside RunConfig (generation.*)."""
    meta = meta or info(key)
    return {"label": meta["label"], "info": f"{key}{KEY_SEPARATOR}{meta['help']}"}


def _base_type(kind):
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def number_kind(key: str) -> type | None:
    """int or float for a config key that holds a number (optional or not), else None."""
    meta = _info().get(key)
    kind = _base_type(meta["type"]) if meta else None
    return kind if kind in (int, float) else None


def list_text(key: str, value: list) -> str:
    """A list value as its textbox shows it: joined by the key's separator ("a, b", or one item per line)."""
    separator = info(key).get("separator") or ","
    return ("\n" if separator == "\n" else f"{separator} ").join(map(str, value or []))


def widget(key: str, **overrides):
    """The widget for a config key: choices -> Dropdown (several may be picked for a list), bool -> Checkbox,
    int/float -> Number, lists -> Textbox split on the key's separator (comma separated, or one item per line),
    text -> Textbox. An empty value means the config's default (see forms.to_config)."""
    meta = info(key)
    kind, default = _base_type(meta["type"]), meta["default"]
    common = {**caption(key, meta), **overrides}
    if meta.get("choices"):
        several = typing.get_origin(kind) is list  # a list with choices (train.report_to): pick any of them
        return gr.Dropdown(choices=list(meta["choices"]), value=default, multiselect=several, **common)
    if kind is bool:
        return gr.Checkbox(value=default, **common)
    if kind in (int, float):
        # No minimum/maximum here: gradio would refuse an out-of-range value in a dialog before the handler runs;
        # the config check answers instead, in one line naming the key, the value and the allowed range.
        if default is None:
            # An optional number is a text box: gr.Number shows and sends None as 0 until a load event empties it
            # (gradio issue #6728), so a Preview or Start in the first second read 0. forms.to_config reads the text.
            return gr.Textbox(value="", placeholder="empty: default", **common)
        return gr.Number(value=default, precision=0 if kind is int else None, **common)
    if typing.get_origin(kind) is list:
        if meta.get("separator") == "\n":  # items that may hold commas (prompts): one per line
            return gr.Textbox(
                value=list_text(key, default), lines=3, max_lines=12, placeholder="one per line", **common
            )
        return gr.Textbox(value=list_text(key, default), **common)
    return gr.Textbox(value=default or "", **common)


def home_of(component):
    """The tab holding a component (or its outermost container): entering it again adds components at its end,
    which lets a tab's attach() place its buttons and outputs after the fields its build() laid out."""
    block = component.parent
    while not isinstance(block, gr.Tab) and block.parent is not None and not isinstance(block.parent, gr.Blocks):
        block = block.parent
    return block
