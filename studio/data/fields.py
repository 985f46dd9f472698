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


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}
