"""The length check every stage's rows go through: each example's tokens after the chat template, against
data.max_length (dropped and counted, or refused, as data.on_bad_rows says).

    check_lengths(loaded, tokenizer, max_length=512, on_bad_rows="drop")
"""

from __future__ import annotations

from studio.errors import ModelError


def answers(row: dict) -> dict[str, list[dict]]:
    """The trained continuations of a canonical row: its completion, or its chosen and rejected answers."""
    if "completion" in row:
        return {"completion": row["completion"]}
    return {"chosen": row["chosen"], "rejected": row["rejected"]}


def token_length(row: dict, tokenizer) -> int:
    """Tokens in the longest full conversation the row gives, chat template included."""
    return max(
        len(tokenizer.apply_chat_template(row["prompt"] + answer, tokenize=True, return_dict=False))
        for answer in answers(row).values()
    )


def check_lengths(loaded, tokenizer, max_length: int, on_bad_rows: str):
    """Drop (and count) or refuse rows longer than max_length tokens; returns the same `data.Loaded`, trimmed."""
    if not tokenizer.chat_template:
        raise_no_template(tokenizer)
    kept_rows, kept_numbers = [], []
    for row, number in zip(loaded.rows, loaded.row_numbers):
        tokens = token_length(row, tokenizer)
        if tokens > max_length:
            loaded.drop(
                number,
                "longer than data.max_length",
                f"{tokens} tokens after the chat template, over data.max_length = {max_length}",
                on_bad_rows,
            )
            continue
        kept_rows.append(row)
        kept_numbers.append(number)
    loaded.rows, loaded.row_numbers = kept_rows, kept_numbers
    return loaded


def raise_no_template(tokenizer) -> None:
    name = getattr(tokenizer, "name_or_path", "the model")
    raise ModelError(
        f"the tokenizer of '{name}' has no chat template, and this data is chat messages; pick an "
        "instruct or chat model, or one that ships a chat template"
    )
