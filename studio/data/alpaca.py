"""Stanford Alpaca (tatsu-lab/alpaca) -> SFT rows.

Raw schema: instruction, input, output, text. The input, where present, is folded into the user turn after
the instruction; `text` is the same example pre-rendered into one prompt string and is not used, so the chat
template of the model being trained decides the layout.

    load(DataSpec(source="alpaca", path="sample"), "sft")
"""

from __future__ import annotations

from studio.data.fields import assistant, text, user, with_extra

HUB_ID = "tatsu-lab/alpaca"
COLUMNS = ("instruction", "input", "output", "text")


def convert(row: dict, spec=None, fmt: str = "sft") -> dict:
    instruction = text(row, "instruction")
    extra = text(row, "input", required=False)
    output = text(row, "output")
    prompt = with_extra(instruction, "Input", extra)
    return {"prompt": [user(prompt)], "completion": [assistant(output)]}
