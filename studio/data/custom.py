"""Your own file (data.source: file) -> SFT or preference rows, its layout told by the column names.

    data: {source: file, path: pairs.jsonl}                                   # layout detected
    data: {source: file, path: qa.csv, columns: {prompt: q, response: a}}    # or columns named

Layouts, tried in this order for the format the stage trains on:
    sft          prompt/completion (TRL); messages (a role/content conversation whose last assistant turn is
                 the response); conversations (ShareGPT from/value); instruction/input/output (Alpaca);
                 prompt/response; question/answer
    preference   prompt/chosen/rejected (TRL, explicit prompt); chosen/rejected (TRL, implicit prompt: two
                 conversations that share every message before the last assistant turn)
Prompts and responses may be text or role/content message lists (in a CSV cell, as JSON text). A `system`
column, where present, is prepended as a system message; a `margin` column gives preference rows a margin.
Any data.columns.* entry names the column for that role and wins over detection; the other roles are still
detected. `detect_layout` tells the UI what was found.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from studio.data.fields import RowProblem, assistant, messages, text, user, with_extra
from studio.errors import DataError

HUB_ID = None
SFT, PREFERENCE = "sft", "preference"
DETECT_ROWS = 50  # columns are the union of the keys of this many first rows (jsonl rows may omit keys)
ROLES = ("prompt", "response", "chosen", "rejected", "system", "messages")  # the fields of config.ColumnMap

# name, columns that must be present, how the error messages write it, shape (how a row is read)
SFT_LAYOUTS = (
    ("trl-prompt-completion", ("prompt", "completion"), "prompt/completion", "pair"),
    ("messages", ("messages",), "messages", "conversation"),
    ("sharegpt", ("conversations",), "conversations (ShareGPT)", "conversation"),
    ("alpaca", ("instruction", "output"), "instruction/input/output (Alpaca)", "alpaca"),
    ("prompt-response", ("prompt", "response"), "prompt/response", "pair"),
    ("question-answer", ("question", "answer"), "question/answer", "pair"),
)
PREFERENCE_LAYOUTS = (
    ("trl-preference", ("prompt", "chosen", "rejected"), "prompt/chosen/rejected", "explicit"),
    ("trl-implicit-preference", ("chosen", "rejected"), "chosen/rejected conversations", "implicit"),
)
# Where a role is mapped and another is not, the unmapped one is looked for under these names.
PROMPT_NAMES = ("prompt", "question", "instruction")
RESPONSE_NAMES = ("completion", "response", "answer", "output")
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}


@dataclass
class Layout:
    name: str  # what the UI shows: "messages", "alpaca", ..., or "mapped" when data.columns chose the columns
    shape: str  # pair, conversation, alpaca (sft); explicit, implicit (preference)
    columns: dict[str, str] = field(default_factory=dict)  # role -> column: prompt, response, input, messages,
    #                                                        chosen, rejected, system, margin


def detect_layout(columns: list[str], fmt: str, spec=None) -> str:
    """The short name of the layout that `columns` are read as, for `fmt` rows (mapped columns first)."""
    return resolve_layout(columns, fmt, spec).name


def resolve_layout(columns: list[str], fmt: str, spec=None) -> Layout:
    """The layout and the column for each role, or a one-line DataError saying what the file lacks."""
    if fmt not in (SFT, PREFERENCE):
        raise ValueError(f"fmt must be {SFT!r} or {PREFERENCE!r}, not {fmt!r}")
    where = _where(spec)
    mapped = _mapped(spec)
    for role, column in mapped.items():
        if column not in columns:
            raise DataError(
                f"{where}data.columns.{role} = {column!r}: no such column; the file has {_listing(columns)}"
            )
    layout = _mapped_layout(columns, fmt, mapped, where) or _detected_layout(columns, fmt)
    if layout is None:
        raise DataError(where + _no_layout(columns, fmt))
    used = set(layout.columns.values())
    system = mapped.get("system") or ("system" if "system" in columns and "system" not in used else None)
    if system:
        layout.columns["system"] = system
    if fmt == PREFERENCE and "margin" in columns and "margin" not in used:
        layout.columns["margin"] = "margin"
    return layout


def convert_rows(rows: list[dict], spec, fmt: str):
    """(row number, canonical row or RowProblem) for every row, read in the file's layout."""
    if not rows:
        return  # the loader says there are no usable rows
    columns = _columns(rows[:DETECT_ROWS])
    for column in _mapped(spec).values():  # a mapped column may first appear late in a jsonl file
        if column not in columns and any(column in row for row in rows):
            columns.append(column)
    layout = resolve_layout(columns, fmt, spec)
    read = {
        "pair": _pair,
        "conversation": _conversation_row,
        "alpaca": _alpaca,
        "explicit": _explicit,
        "implicit": _implicit,
    }[layout.shape]
    for number, row in enumerate(rows, start=1):
        try:
            yield number, read(row, layout.columns)
        except RowProblem as problem:
            yield number, problem


# ---------------------------------------------------------------- layouts


def _mapped(spec) -> dict[str, str]:
    column_map = getattr(spec, "columns", None)
    return {role: getattr(column_map, role) for role in ROLES if getattr(column_map, role, None)}


def _mapped_layout(columns: list[str], fmt: str, mapped: dict[str, str], where: str) -> Layout | None:
    """The layout the data.columns entries ask for, the roles they leave out found by name; None if none
    of them matters for `fmt` (a system column alone leaves the layout to detection)."""

    def find(role: str, names: tuple[str, ...], taken: set[str]) -> str | None:
        if role in mapped:
            return mapped[role]
        return next((name for name in names if name in columns and name not in taken), None)

    def need(role: str, column: str | None) -> str:
        if column is None:
            raise DataError(
                f"{where}data.columns.{role} is not set and no {role} column was found; the file has "
                f"{_listing(columns)}; set data.columns.{role}=<column>"
            )
        return column

    if fmt == SFT:
        if "messages" in mapped:
            if "prompt" in mapped or "response" in mapped:
                raise DataError(
                    f"{where}data.columns.messages and data.columns.prompt/response are both set; a "
                    "messages column holds the prompt and the response, so set one or the other"
                )
            return Layout("mapped", "conversation", {"messages": mapped["messages"]})
        if "prompt" in mapped or "response" in mapped:
            prompt = need("prompt", find("prompt", PROMPT_NAMES, {mapped.get("response")}))
            response = need("response", find("response", RESPONSE_NAMES, {prompt}))
            return Layout("mapped", "pair", {"prompt": prompt, "response": response})
        return None
    if not {"prompt", "chosen", "rejected"} & set(mapped):
        return None
    chosen = need("chosen", find("chosen", ("chosen",), set()))
    rejected = need("rejected", find("rejected", ("rejected",), set()))
    prompt = find("prompt", PROMPT_NAMES, {chosen, rejected})
    if prompt is None:
        return Layout("mapped", "implicit", {"chosen": chosen, "rejected": rejected})
    return Layout("mapped", "explicit", {"prompt": prompt, "chosen": chosen, "rejected": rejected})


def _detected_layout(columns: list[str], fmt: str) -> Layout | None:
    for name, needed, _, shape in SFT_LAYOUTS if fmt == SFT else PREFERENCE_LAYOUTS:
        if all(column in columns for column in needed):
            return Layout(name, shape, _roles(name, columns))
    return None


def _roles(name: str, columns: list[str]) -> dict[str, str]:
    if name == "alpaca":
        roles = {"prompt": "instruction", "response": "output"}
        if "input" in columns:
            roles["input"] = "input"
        return roles
    return {
        "trl-prompt-completion": {"prompt": "prompt", "response": "completion"},
        "messages": {"messages": "messages"},
        "sharegpt": {"messages": "conversations"},
        "prompt-response": {"prompt": "prompt", "response": "response"},
        "question-answer": {"prompt": "question", "response": "answer"},
        "trl-preference": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
        "trl-implicit-preference": {"chosen": "chosen", "rejected": "rejected"},
    }[name]


def _no_layout(columns: list[str], fmt: str) -> str:
    """Why no layout fits, in one line: the columns, the format asked for, what would fit, how to map."""
    has = f"the file has {_listing(columns)}"
    if fmt == PREFERENCE:
        other = _first(columns, SFT_LAYOUTS)
        if other:
            return (
                f"{has}, which looks like SFT data ({other[2]}); the reward and DPO stages need chosen and "
                "rejected columns (map them with data.columns.chosen=<column> and "
                "data.columns.rejected=<column>)"
            )
        return (
            f"no preference layout fits: {has}; preference data needs "
            f"{' or '.join(layout[2] for layout in PREFERENCE_LAYOUTS)}, or name your columns with "
            "data.columns.prompt=<column>, data.columns.chosen=<column> and data.columns.rejected=<column>"
        )
    other = _first(columns, PREFERENCE_LAYOUTS)
    if other:
        hint = "data.columns.response=chosen" if other[3] == "explicit" else "data.columns.messages=chosen"
        return (
            f"{has}, which looks like preference data ({other[2]}); the SFT stage needs a prompt and a "
            f"response (to train on the preferred answers, set {hint})"
        )
    return (
        f"no SFT layout fits: {has}; SFT data needs {', '.join(layout[2] for layout in SFT_LAYOUTS)}, "
        "or name your columns with data.columns.prompt=<column> and data.columns.response=<column> "
        "(or data.columns.messages=<column> for whole conversations)"
    )


def _first(columns: list[str], layouts: tuple) -> tuple | None:
    return next((layout for layout in layouts if all(column in columns for column in layout[1])), None)


def _columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _listing(columns: list[str]) -> str:
    return ", ".join(columns) if columns else "no columns"


def _where(spec) -> str:
    path = getattr(spec, "path", None)
    if not path or path == "hub":
        return ""
    if path == "sample":
        from studio.data import sample_path  # here, not at the top: studio.data imports this module lazily

        return f"{sample_path('file').name}: "
    return f"{Path(path).name}: "


# ---------------------------------------------------------------- rows


def _pair(row: dict, columns: dict) -> dict:
    prompt = _with_system(row, columns.get("system"), _prompt(row, columns["prompt"]))
    return {"prompt": prompt, "completion": _completion(row, columns["response"])}


def _alpaca(row: dict, columns: dict) -> dict:
    instruction = text(row, columns["prompt"])
    extra = text(row, columns["input"], required=False) if "input" in columns else ""
    prompt = with_extra(instruction, "Input", extra)
    response = text(row, columns["response"])
    return {"prompt": _with_system(row, columns.get("system"), [user(prompt)]), "completion": [assistant(response)]}


def _conversation_row(row: dict, columns: dict) -> dict:
    column = columns["messages"]
    prompt, completion = _split(_conversation(row, column), column)
    return {"prompt": _with_system(row, columns.get("system"), prompt), "completion": completion}


def _explicit(row: dict, columns: dict) -> dict:
    prompt = _with_system(row, columns.get("system"), _prompt(row, columns["prompt"]))
    chosen = _completion(row, columns["chosen"])
    rejected = _completion(row, columns["rejected"])
    return _preference(row, columns, prompt, chosen, rejected)


def _implicit(row: dict, columns: dict) -> dict:
    no_prompt = "plain text and no prompt column; set data.columns.prompt"
    chosen_prompt, chosen = _split(_conversation(row, columns["chosen"], no_prompt), columns["chosen"])
    rejected_prompt, rejected = _split(_conversation(row, columns["rejected"], no_prompt), columns["rejected"])
    if rejected_prompt != chosen_prompt:
        raise RowProblem(columns["rejected"], "the messages before the last assistant turn differ from chosen's")
    prompt = _with_system(row, columns.get("system"), chosen_prompt)
    return _preference(row, columns, prompt, chosen, rejected)


def _preference(row: dict, columns: dict, prompt: list, chosen: list, rejected: list) -> dict:
    if chosen == rejected:
        raise RowProblem(columns["rejected"], "identical to chosen")
    result = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if "margin" in columns:
        result["margin"] = _margin(row, columns["margin"])
    return result


# ---------------------------------------------------------------- fields


def _kind(value) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def _message_list(value):
    """A list of message dicts from a list, or from JSON text holding one (a CSV cell); else the value."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, list) and all(isinstance(item, dict) for item in parsed):
            return parsed
    return value


def _prompt(row: dict, column: str) -> list[dict]:
    """A text prompt as one user message, or a checked message list that ends with a user message."""
    value = _message_list(row.get(column))
    if isinstance(value, list):
        prompt = messages(value, column)
        if prompt[-1]["role"] != "user":
            raise RowProblem(column, "the prompt must end with a user message")
        return prompt
    if value is None or isinstance(value, str):
        return [user(text(row, column))]
    raise RowProblem(column, f"expected text or a list of role/content messages, got {_kind(value)}")


def _completion(row: dict, column: str) -> list[dict]:
    """A text response as one assistant message; a message list must hold assistant messages only (the
    last one is the response)."""
    value = _message_list(row.get(column))
    if isinstance(value, list):
        checked = messages(value, column)
        if any(message["role"] != "assistant" for message in checked):
            raise RowProblem(column, "a response message list must hold only assistant messages")
        return [checked[-1]]
    if value is None or isinstance(value, str):
        return [assistant(text(row, column))]
    raise RowProblem(column, f"expected text or a list of role/content messages, got {_kind(value)}")


def _conversation(row: dict, column: str, text_reason: str = "expected a list of messages, got text") -> list[dict]:
    """A checked role/content message list; ShareGPT {"from", "value"} messages are read too."""
    value = _message_list(row.get(column))
    if value is None:
        raise RowProblem(column, "missing")
    if isinstance(value, str):
        raise RowProblem(column, "empty" if not value.strip() else text_reason)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "from" in m and "role" not in m for m in value)
    ):
        value = [_from_sharegpt(message, i, column) for i, message in enumerate(value, start=1)]
    return messages(value, column)


def _from_sharegpt(message: dict, i: int, column: str) -> dict:
    role = SHAREGPT_ROLES.get(message["from"]) if isinstance(message["from"], str) else None
    if role is None:
        raise RowProblem(column, f"message {i} is from {message['from']!r}; allowed are human, gpt, system")
    if "value" not in message:
        raise RowProblem(column, f"message {i} needs 'from' and 'value'")
    return {"role": role, "content": message["value"]}


def _split(conversation: list[dict], column: str) -> tuple[list[dict], list[dict]]:
    """(prompt, [last assistant message]) of a conversation that ends with an assistant answer to a user."""
    if conversation[-1]["role"] != "assistant":
        raise RowProblem(column, "the conversation does not end with an assistant message")
    prompt = conversation[:-1]
    if not prompt or prompt[-1]["role"] != "user":
        raise RowProblem(column, "the last assistant message does not follow a user message")
    return prompt, conversation[-1:]


def _with_system(row: dict, column: str | None, prompt: list[dict]) -> list[dict]:
    if column is None:
        return prompt
    system = text(row, column, required=False)
    if not system:
        return prompt
    if prompt[0]["role"] == "system":
        if prompt[0]["content"] == system:
            return prompt
        raise RowProblem(column, "the prompt already has a different system message")
    return [{"role": "system", "content": system}, *prompt]


def _margin(row: dict, column: str) -> float:
    value = row.get(column)
    if value is None:
        raise RowProblem(column, "missing")
    if isinstance(value, str):
        if not value.strip():
            raise RowProblem(column, "empty")
        try:
            value = float(value)
        except ValueError:
            raise RowProblem(column, "expected a number, got text") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowProblem(column, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise RowProblem(column, "expected a finite number")
    return float(value)
