"""Arithmetic questions with a checkable answer -> SFT rows; the studio's own small task for reward rules.

Raw schema: question, solution, answer. The solution works the sum out and ends on the answer; the answer column
holds the number alone, so that the online stages can score a sampled answer against it (the reference_match
built-in with `column: answer`, `mode: last_number`). There is no hub dataset: the bundled sample
(scripts/sample_gen/arithmetic.py) or your own file in this schema.

    {"question": "What is 7 + 5?", "solution": "7 + 5 = 12. The answer is 12.", "answer": "12"}
    load(DataSpec(source="arithmetic", path="sample"), "sft")
"""

from __future__ import annotations

import math
import re

from studio.data.fields import RowProblem, assistant, text, user

HUB_ID = None
COLUMNS = ("question", "solution", "answer")

# A plain number: an optional minus, digits, optional decimals (no thousands commas: the answer column is data).
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def convert(row: dict, spec=None, fmt: str = "sft") -> dict:
    question = text(row, "question")
    solution = text(row, "solution")
    answer = _answer(row)
    # The reward compares a sampled answer's last number with the answer column, so a solution that ends on
    # another number would teach SFT the very answer the reward calls wrong.
    numbers = _NUMBER.findall(solution)
    if not numbers or not math.isclose(float(numbers[-1]), answer):
        last = numbers[-1] if numbers else "no number"
        raise RowProblem("solution", f"ends with {last}, not the answer {_show(answer)}")
    return {"prompt": [user(question)], "completion": [assistant(solution)]}


def _answer(row: dict) -> float:
    """The answer column as a number: a number, or text holding one number alone."""
    value = row.get("answer")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RowProblem("answer", f"expected a finite number, got {value}")
        return float(value)
    written = text(row, "answer")
    if not _NUMBER.fullmatch(written):
        raise RowProblem("answer", f"expected a number, got {written!r}")
    return float(written)


def _show(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)
