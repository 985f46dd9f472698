"""Anthropic HH-RLHF (Anthropic/hh-rlhf) -> preference pairs.

    load(DataSpec(source="hh-rlhf", path="sample"), "preference")
    load(DataSpec(source="hh-rlhf", subset="harmless-base"), "preference")   # from the hub

Raw schema: chosen, rejected, each a whole conversation as one transcript:
"\\n\\nHuman: hi\\n\\nAssistant: hello\\n\\nHuman: more?\\n\\nAssistant: yes". Each transcript is split into
role/content messages ("Human:" -> user, "Assistant:" -> assistant). The turns both share before the final
assistant answer are the prompt; the two final answers are chosen and rejected.

On the hub, `data.subset` is one of SUBSETS (a data directory); empty loads all four. The red-team-attempts
directory has no chosen/rejected pairs and is refused.
"""

from __future__ import annotations

import re

from studio.data.fields import RowProblem, assistant, text, user
from studio.data.hub import load_hub_rows
from studio.errors import ConfigError

HUB_ID = "Anthropic/hh-rlhf"
COLUMNS = ("chosen", "rejected")
SUBSETS = ("helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled")

# A turn starts at a blank line (or the very start, where the leading blank line is often missing).
MARKER = re.compile(r"(?:\A\s*|\n\n)(Human|Assistant):")
ROLE = {"Human": user, "Assistant": assistant}

# Drop reasons: short stable phrases, since the loader counts dropped rows by column and reason.
NO_TURNS = "unparseable transcript: no Human/Assistant turns"
NOT_HUMAN_FIRST = "unparseable transcript: does not start with a Human turn"
NOT_ALTERNATING = "unparseable transcript: turns do not alternate Human/Assistant"
NO_ANSWER = "does not end with an Assistant answer"
EMPTY_TURN = "empty turn before the final answer"
EMPTY_ANSWER = "empty final answer"
SAME_ANSWER = "final answer identical to chosen"
DIFFERENT_PROMPT = "conversation differs from chosen before the final answer"


def hub_rows(spec):
    return load_hub_rows(HUB_ID, None, data_dir=spec.subset)


def check_filters(spec) -> None:
    if spec.subset and spec.subset not in SUBSETS:
        raise ConfigError(
            f"data.subset = {spec.subset!r}: allowed values for hh-rlhf are {', '.join(SUBSETS)} "
            "(empty loads all four; red-team-attempts has no chosen/rejected pairs)"
        )


def parse(transcript: str, column: str) -> list[dict]:
    """A transcript -> messages alternating user/assistant, starting with user and ending with assistant."""
    parts = MARKER.split(transcript)  # [text before the first marker, role, content, role, content, ...]
    if len(parts) == 1:
        raise RowProblem(column, NO_TURNS)
    roles, contents = parts[1::2], [content.strip() for content in parts[2::2]]
    if parts[0].strip() or roles[0] != "Human":
        raise RowProblem(column, NOT_HUMAN_FIRST)
    if any(role == previous for previous, role in zip(roles, roles[1:])):
        raise RowProblem(column, NOT_ALTERNATING)
    if roles[-1] != "Assistant":
        raise RowProblem(column, NO_ANSWER)
    if not contents[-1]:
        raise RowProblem(column, EMPTY_ANSWER)
    if not all(contents):
        raise RowProblem(column, EMPTY_TURN)
    return [ROLE[role](content) for role, content in zip(roles, contents)]


def convert(row: dict, spec=None, fmt: str = "preference") -> dict:
    chosen = parse(text(row, "chosen"), "chosen")
    rejected = parse(text(row, "rejected"), "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise RowProblem("rejected", DIFFERENT_PROMPT)
    if chosen[-1] == rejected[-1]:
        raise RowProblem("rejected", SAME_ANSWER)
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}
