"""Generation settings shared by the Compare and Chat tabs: one box per GenerationSpec key, its label in words (the
key small on its info line, fieldwidgets.caption), default and help text read from studio/config.py, and the values
turned back into a checked GenerationSpec.

    boxes = generation.build()                          # [gr.Number, ...] in KEYS order, inside an accordion
    button.click(handler, inputs=[prompt, *boxes], **generation.QUEUE)
    def handler(prompt, *values):
        spec = generation.settings(values)              # ConfigError: one line naming the key, value and range

Must be called inside a gr.Blocks context, like any component.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import gradio as gr

from components.fieldwidgets import caption
from studio import config as cfg

PREFIX = "generation."
# Every event that loads or runs a model waits in this one queue: the process holds one model (studio.serve.generate),
# so running them one at a time is what happens anyway, and waiting in gradio's queue shows the user a place in
# line instead of a spinner stuck on a lock.
QUEUE = dict(concurrency_id="generation", concurrency_limit=1)


@lru_cache(maxsize=1)
def _info() -> dict[str, dict]:
    return cfg.field_info(cfg.GenerationSpec, PREFIX)


KEYS = tuple(_info())


def build(open: bool = False, visible: bool = True) -> list[gr.Number]:
    """A number box per generation setting (no bounds in the browser: the config's check answers a bad value).
    visible=False builds them hidden, for firstopen.reveal_on_open."""
    boxes = []
    with gr.Accordion("Generation settings", open=open), gr.Row():
        for key in KEYS:
            meta = _info()[key]
            boxes.append(
                gr.Number(
                    value=meta["default"],
                    **caption(key, meta),
                    precision=0 if meta["type"] is int else None,
                    placeholder="empty: default",
                    min_width=140,
                    visible=visible,
                )
            )
    return boxes


def settings(values: Sequence) -> cfg.GenerationSpec:
    """The boxes' values as a GenerationSpec; an empty box takes the default."""
    raw = {}
    for key, value in zip(KEYS, values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if _info()[key]["type"] is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        raw[key[len(PREFIX) :]] = value
    return cfg.from_dict(raw, cfg.GenerationSpec, PREFIX)
