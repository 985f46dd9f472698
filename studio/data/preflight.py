"""Checks that need the tokenizer but not the model: the length of every example after the chat template,
and a preview of what training sees, with the trained part marked.

    loaded = data.load(config.data, "sft")
    check_lengths(loaded, tokenizer, max_length=512, on_bad_rows="drop")
    for example in preview(loaded.rows[:3], tokenizer): ...
"""

from __future__ import annotations

from studio.data import Loaded


def _render(tokenizer, messages: list[dict], **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def _answers(row: dict) -> dict[str, list[dict]]:
    """The trained continuations of a canonical row: its completion, or its chosen and rejected answers."""
    if "completion" in row:
        return {"completion": row["completion"]}
    return {"chosen": row["chosen"], "rejected": row["rejected"]}


def token_length(row: dict, tokenizer) -> int:
    """Tokens in the longest full conversation the row gives, chat template included."""
    return max(
        len(tokenizer.apply_chat_template(row["prompt"] + answer, tokenize=True, return_dict=False))
        for answer in _answers(row).values()
    )


def check_lengths(loaded: Loaded, tokenizer, max_length: int, on_bad_rows: str) -> Loaded:
    """Drop (and count) or refuse rows longer than max_length tokens; returns the same Loaded, trimmed."""
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
    from studio.errors import ModelError

    name = getattr(tokenizer, "name_or_path", "the model")
    raise ModelError(
        f"the tokenizer of '{name}' has no chat template, and this data is chat messages; pick an "
        "instruct or chat model, or one that ships a chat template"
    )


def preview(rows: list[dict], tokenizer) -> list[dict]:
    """Each row as training sees it: {"prompt": text not trained on, "<answer>": trained text, ...}."""
    if not tokenizer.chat_template:
        raise_no_template(tokenizer)
    examples = []
    for row in rows:
        prompt = _render(tokenizer, row["prompt"], add_generation_prompt=True)
        example = {"prompt": prompt}
        for name, answer in _answers(row).items():
            full = _render(tokenizer, row["prompt"] + answer)
            # With a prefix-consistent template (the usual case) the trained part is the text after the prompt.
            example[name] = full[len(prompt) :] if full.startswith(prompt) else full
        examples.append(example)
    return examples


def marked(example: dict) -> str:
    """One preview example as plain text, each trained part between >>> and <<<."""
    parts = [example["prompt"].rstrip("\n")]
    for name, text in example.items():
        if name != "prompt":
            parts.append(f"[{name}, trained] >>>{text}<<<")
    return "\n".join(parts)


def data_report(spec, fmt: str, model_spec, examples: int = 3, seed: int = 42) -> dict:
    """Everything a data preview shows (`rlhf-studio data --model`, the UI's Data tab): counts, rows dropped by
    reason, the first problems naming file, row and column, the train/eval split, and the first examples as
    training sees them, with the model's chat template applied and the trained part separated."""
    from studio import data, models

    loaded = data.load(spec, fmt)
    tokenizer = models.load_tokenizer(model_spec)
    check_lengths(loaded, tokenizer, spec.max_length, spec.on_bad_rows)
    train_rows, eval_rows = data.split_eval(loaded.rows, spec.eval_fraction, seed)
    return {
        "source": loaded.source,
        "format": loaded.format,
        "origin": loaded.origin,
        "rows": len(loaded.rows),
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "dropped": dict(loaded.dropped),
        "problems": loaded.problems,
        "previews": preview(loaded.rows[:examples], tokenizer),
    }
