"""Checks that need the tokenizer but not the model: the length of every example after the chat template,
and a preview of what training sees, with the trained part marked.

    loaded = data.load(config.data, "sft")
    check_lengths(loaded, tokenizer, max_length=512, on_bad_rows="drop")
    for example in preview(loaded.rows[:3], tokenizer): ...
"""

from __future__ import annotations

from studio.data.lengths import answers, check_lengths, raise_no_template


def _render(tokenizer, messages: list[dict], **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def preview(rows: list[dict], tokenizer) -> list[dict]:
    """Each row as training sees it: {"prompt": text not trained on, "<answer>": trained text, ...}."""
    if not tokenizer.chat_template:
        raise_no_template(tokenizer)
    examples = []
    for row in rows:
        prompt = _render(tokenizer, row["prompt"], add_generation_prompt=True)
        example = {"prompt": prompt}
        for name, answer in answers(row).items():
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


def data_report(spec, fmt: str, model_spec, examples: int = 3, seed: int = 42, stage: str | None = None) -> dict:
    """Everything a data preview shows (`rlhf-studio data --model`, the UI's Data tab): counts, rows dropped by
    reason, the first problems naming file, row and column, the train/eval split, and the first examples as
    training sees them, with the model's chat template applied and the trained part separated. `stage` splits as that
    stage's training does (data.split_rows)."""
    from studio import data
    from studio.modeling import models

    loaded = data.load(spec, fmt)
    tokenizer = models.load_tokenizer(model_spec)
    check_lengths(loaded, tokenizer, spec.max_length, spec.on_bad_rows)
    train, held_out = data.split_rows(loaded, spec.eval_fraction, seed, stage)  # as the stage's training splits them
    return {
        **loaded.counts(),
        "train_rows": len(train.rows),
        "eval_rows": len(held_out.rows),
        "previews": preview(loaded.rows[:examples], tokenizer),
    }
