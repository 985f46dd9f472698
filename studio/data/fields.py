"""Checked access to raw fields, shared by every source: a bad field raises `RowProblem` naming the column."""

from __future__ import annotations


class RowProblem(Exception):
    """One raw row that cannot be converted; the loader adds the row number and counts it by reason."""

    def __init__(self, column: str, reason: str):
        super().__init__(f"column '{column}': {reason}")
        self.column = column
        self.reason = reason


def text(row: dict, column: str, *, required: bool = True) -> str:
    """The stripped text in `column`; missing, empty (when required) or non-text values are problems."""
    if column not in row or row[column] is None:
        if required:
            raise RowProblem(column, "missing")
        return ""
    value = row[column]
    if not isinstance(value, str):
        raise RowProblem(column, f"expected text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise RowProblem(column, "empty")
    return value


def with_extra(instruction: str, label: str, extra: str) -> str:
    """An instruction with its optional extra text (Dolly's context, Alpaca's input) folded in under a label."""
    return f"{instruction}\n\n{label}:\n{extra}" if extra else instruction


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


ROLES = ("system", "user", "assistant")


def messages(value, column: str) -> list[dict]:
    """A checked list of {"role", "content"} messages (roles system, user, assistant; text content)."""
    if not isinstance(value, list) or not value:
        raise RowProblem(column, f"expected a non-empty list of role/content messages, got {type(value).__name__}")
    checked = []
    for i, message in enumerate(value, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise RowProblem(column, f"message {i} needs 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise RowProblem(column, f"message {i} has role {role!r}; allowed roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise RowProblem(column, f"message {i} content: expected text, got {type(content).__name__}")
        if not content.strip():
            raise RowProblem(column, f"message {i} content: empty")
        checked.append({"role": role, "content": content.strip()})
    return checked
