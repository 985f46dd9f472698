"""Dolly-15k (databricks/databricks-dolly-15k) -> SFT rows.

Raw schema: instruction, context, response, category. The context, where present, is folded into the user
turn after the instruction; `data.categories` keeps only the named categories.
"""

from __future__ import annotations

from studio.data.fields import assistant, text, user, with_extra
from studio.errors import ConfigError

HUB_ID = "databricks/databricks-dolly-15k"
COLUMNS = ("instruction", "context", "response", "category")
CATEGORIES = (
    "brainstorming",
    "classification",
    "closed_qa",
    "creative_writing",
    "general_qa",
    "information_extraction",
    "open_qa",
    "summarization",
)


def keep(row: dict, spec) -> bool:
    return not spec.categories or row.get("category") in spec.categories


def convert(row: dict, spec=None, fmt: str = "sft") -> dict:
    instruction = text(row, "instruction")
    context = text(row, "context", required=False)
    response = text(row, "response")
    prompt = with_extra(instruction, "Context", context)
    return {"prompt": [user(prompt)], "completion": [assistant(response)]}


def check_filters(spec) -> None:
    unknown = [c for c in spec.categories if c not in CATEGORIES]
    if unknown:
        raise ConfigError(f"data.categories: unknown {', '.join(unknown)}; Dolly has {', '.join(CATEGORIES)}")
