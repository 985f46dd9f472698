"""Widgets are labelled in words ("Learning rate"), with the config key shown small on their info line
(`train.learning_rate · Peak learning rate`) for presets, --set and the API. The labels are written once, in
studio/config.py, next to each key's default and help text."""

from __future__ import annotations

import dataclasses
import re
import typing

import gradio as gr

from components import fieldwidgets, generation
from studio import config as cfg
from studio.rewards.builtins import BUILTINS

# A reward row's input on the Train tab: rewards.sources[N].<a RewardSource field>.
ROW_KEY = re.compile(r"rewards\.sources\[\d+\]\.(run|builtin|function|weight|name)")
SOURCE_INFO = cfg.field_info(cfg.RewardSource)
ARG_KEY = re.compile(r"args\.(\w+)")
JUDGE_KEY = re.compile(r"judge\.(\w+)")  # the Judge view's form: one JudgeSpec (an entry of eval.judges)
JUDGE_INFO = cfg.field_info(cfg.JudgeSpec)

# A label in words: starts with a capital, and is no key (no dots, no underscores).
WORDS = re.compile(r"[A-Z][^._]*")


def _shown_keys() -> dict[str, dict]:
    return {**cfg.field_info(), **cfg.field_info(cfg.GenerationSpec, generation.PREFIX)}


def _written_labels(cls: type, prefix: str = ""):
    """(key, the label written in config.py or None) of every leaf field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _written_labels(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f.metadata.get("label")


def test_every_config_key_writes_its_label_in_words_next_to_its_help():
    """Every field a person sees in the studio has a label written in config.py, not one made from its name."""
    written = dict(_written_labels(cfg.RunConfig)) | dict(_written_labels(cfg.GenerationSpec, generation.PREFIX))
    assert sorted(written) == sorted(_shown_keys())
    assert [key for key, label in written.items() if not label] == []
    for key, meta in _shown_keys().items():
        assert WORDS.fullmatch(meta["label"]) and meta["label"] == written[key] != key, (key, meta["label"])
    assert cfg.field_info()["train.learning_rate"]["label"] == "Learning rate"
    assert cfg.field_info()["lora.r"]["label"] == "LoRA rank"


def test_a_field_without_a_written_label_gets_its_name_in_words():
    @dataclasses.dataclass
    class Spec:
        save_total_limit: int = cfg.option(2, "Keep at most this many")
        beta: float = cfg.option(0.1, "Temperature", label="Beta (KL)")

    info = cfg.field_info(Spec, "x.")
    assert info["x.save_total_limit"]["label"] == "Save total limit"
    assert info["x.beta"]["label"] == "Beta (KL)"


def test_every_config_key_in_the_studio_is_labelled_in_words_with_its_key_beside_it():
    """Built as served: each config key has a widget (Model, Data, Train; generation.* in Compare and Chat) labelled
    with its words, its info line starting with the key; no widget anywhere is labelled with a bare key."""
    from components.app import build_app

    keys = _shown_keys()
    found: dict[str, list[str]] = {}
    bare = []
    rows: set[str] = set()
    for block in build_app().blocks.values():
        label, info = getattr(block, "label", None), getattr(block, "info", None)
        if label in keys:
            bare.append(label)
        if isinstance(info, str) and fieldwidgets.KEY_SEPARATOR in info:
            key, _, help_text = info.partition(fieldwidgets.KEY_SEPARATOR)
            arg = ARG_KEY.fullmatch(key)  # a built-in reward's parameter: its help from studio/rewards/builtins.py
            if arg:
                assert help_text in {p.help for b in BUILTINS.values() for p in b.params if p.name == arg[1]}, key
                continue
            judge = JUDGE_KEY.fullmatch(key)
            if judge:
                assert label == JUDGE_INFO[judge[1]]["label"] and help_text == JUDGE_INFO[judge[1]]["help"], key
                continue
            row = ROW_KEY.fullmatch(key)  # a reward row's input: labelled as its RewardSource field
            if row:
                assert label == SOURCE_INFO[row[1]]["label"] and help_text == SOURCE_INFO[row[1]]["help"], key
                rows.add(key)
                continue
            assert key in keys, info
            assert isinstance(block, gr.components.Component) and help_text == keys[key]["help"], key
            found.setdefault(key, []).append(label)
    assert bare == []
    assert sorted(found) == sorted(keys)  # every key is shown, with its key
    assert {key: set(labels) for key, labels in found.items()} == {key: {meta["label"]} for key, meta in keys.items()}
    # Compare, Chat, Rewards (sampling answers to try) and Compare's Judge view
    assert len(found["generation.temperature"]) == 4
    assert {"rewards.sources[0].run", "rewards.sources[5].weight"} <= rows  # every reward row's inputs, in words
