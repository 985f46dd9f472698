"""Form fields keyed by config key: the contract between the tabs.

Each tab's `build()` returns a `Fields` dict {config key: gradio component}, e.g. {"model.name": gr.Textbox}.
The app merges them; a handler that needs a config (Start, the memory estimate, the data preview) takes the
merged components as inputs and turns their values back into a nested config dict with `to_config`.

    fields = {**model_tab.build(), **data_tab.build()}
    button.click(lambda *values: start(to_config(list(fields), values)), inputs=list(fields.values()))

A key holding a list of mappings (rewards.sources) has a text box of YAML: `yaml_text` writes it, `to_config` reads it.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from typing import Any

import yaml

from components.fieldwidgets import number_kind
from studio.config import field_info

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
        if isinstance(value, str):
            value = _yaml(value) if key in yaml_keys() else _number(key, value.strip())
        node[leaf] = value
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


@lru_cache(maxsize=1)
def yaml_keys() -> frozenset[str]:
    """The config keys whose value is a list of mappings (rewards.sources): a form holds them as YAML text."""
    return frozenset(
        key
        for key, meta in field_info().items()
        if typing.get_origin(meta["type"]) is list and dataclasses.is_dataclass(typing.get_args(meta["type"])[0])
    )


def yaml_text(value: list | None) -> str:
    """A list of mappings as its text box shows it: YAML, one `- ` entry each; empty text for none."""
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True) if value else ""


def _yaml(text: str):
    """The YAML a text box holds; text that does not parse stays text, so the config check names the key
    ("rewards.sources = '- run: [': expected a list of mappings")."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
