"""Form fields keyed by config key: the contract between the tabs.

Each tab's `build()` returns a `Fields` dict {config key: gradio component}, e.g. {"model.name": gr.Textbox}.
The app merges them; a handler that needs a config (Start, the memory estimate, the data preview) takes the
merged components as inputs and turns their values back into a nested config dict with `to_config`.

    fields = {**model_tab.build(), **data_tab.build()}
    button.click(lambda *values: start(to_config(list(fields), values)), inputs=list(fields.values()))
"""

from __future__ import annotations

from typing import Any

from components.fieldwidgets import number_kind

Fields = dict[str, Any]  # config key -> gradio component


def to_config(keys: list[str], values: tuple | list) -> dict:
    """A nested config dict from dotted keys and their form values; empty text means "use the default"."""
    config: dict = {}
    for key, value in zip(keys, values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _number(key, value.strip()) if isinstance(value, str) else value
    return config


def _number(key: str, text: str):
    """The text of an optional number's box (fieldwidgets.widget) as the number it spells; other text as it is, so
    the config check names the key and the value ("data.limit = 'ten': expected an integer")."""
    kind = number_kind(key)
    if kind is None:
        return text
    try:
        return kind(text)
    except ValueError:
        return text
