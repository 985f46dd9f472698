"""Score responses with a completed reward model run: the scalar its score head gives each answer.

    score("20250101-120000-reward-ab12", [{"role": "user", "content": "hi"}], "Hello! How can I help?")
    score_batch(run_id, [prompt_a, prompt_b], ["answer a", "answer b"])   # one padded batch
    held_out_scores(run_id).accuracy     # on the pairs the run's data.eval_fraction held out of training

A conversation is rendered exactly as TRL's RewardTrainer renders a conversational training pair (the chat
template applied to prompt + [assistant response], no generation prompt, nothing appended), padded on the
right, and read at the last real token, so a score is the reward the trainer computed for the same text.
Loaded models are cached per run, so comparing many answers loads the model once. Never imports gradio.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from studio import config as cfg
from studio.errors import StudioError
from studio.runs import manager
from studio.runs.rundir import RunDir
from studio.runs.status import State

# torch, transformers and the model code load on the first score, not at import: the UI imports this module, and
# its start must stay quick.

BATCH_SIZE = 16  # responses per forward pass; small enough for long answers on a CPU


def check_reward_run(run_id: str) -> RunDir:
    """The completed reward run with this id (or unique prefix), or one line saying why it cannot score."""
    run = manager.open_run(run_id)
    if run.config.stage != "reward":
        raise StudioError(
            f"run '{run.id}' is not a reward model (its stage is {run.config.stage}); pick a completed "
            "reward run to score answers"
        )
    return run.require_completed("reward run can score answers").folder


@lru_cache(maxsize=2)
def _load(run_path: str):
    """(tokenizer, model, device) of a completed reward run; cached by run folder (a finished run never changes)."""
    from transformers.utils import logging as hf_logging

    run = RunDir(Path(run_path))
    # The body loads with a fresh score head that the adapter then replaces: transformers' "score.weight MISSING"
    # report is expected here, and would only clutter the output of compare and the demo.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return _load_model(run)
    finally:
        hf_logging.set_verbosity(verbosity)


def _load_model(run: RunDir):
    import torch
    from transformers import AutoTokenizer

    from studio.modeling import models
    from studio.runs.rundir import start_weights

    config = cfg.load_config(run.config_path)
    tokenizer = AutoTokenizer.from_pretrained(str(run.adapter_dir))  # as trained: its pad token and chat template
    if (run.adapter_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        models.check_safe_weights(run.adapter_dir)  # before the body loads: peft would fall back to a pickle .bin
        # The body the adapter was trained on: the base model, with the parent run merged in for a chained RM.
        base = models.load_reward_model(config.model, start_weights(config), pad_token_id=tokenizer.pad_token_id)
        model = PeftModel.from_pretrained(base, str(run.adapter_dir))  # LoRA weights and the trained score head
        if config.model.quantization == "none":
            model = model.merge_and_unload()  # frozen from now on: merged, a forward pass skips the LoRA branch
    else:  # trained without LoRA: the folder holds the whole model
        model = models.load_reward_model(config.model, run.adapter_dir, pad_token_id=tokenizer.pad_token_id)
    # The score is read at the last token that is not padding, so the model must pad with the tokenizer's pad.
    model.config.pad_token_id = tokenizer.pad_token_id
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.model.quantization == "none":
        model.to(device)
    else:  # quantised weights were placed on their device when loaded
        device = next(model.parameters()).device
    model.eval()
    return tokenizer, model, device


def render(tokenizer, prompt_messages: list[dict], response: str) -> list[int]:
    """Token ids of prompt + response, as RewardTrainer tokenizes a conversational pair for training."""
    messages = list(prompt_messages) + [{"role": "assistant", "content": response}]
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]


def score_batch(run_id: str, prompt_messages_list: list[list[dict]], responses: list[str]) -> list[float]:
    """The reward of each (prompt, response) pair under a completed reward run, in order."""
    if len(prompt_messages_list) != len(responses):
        raise StudioError(f"score_batch: {len(prompt_messages_list)} prompts but {len(responses)} responses")
    return score_checked(check_reward_run(run_id), prompt_messages_list, responses)


def score_checked(run: RunDir, prompt_messages_list: list[list[dict]], responses: list[str]) -> list[float]:
    """score_batch for a run already checked to be a completed reward run: what a trainer scoring every step calls,
    so it does not re-read the run's config and status each time."""
    import torch

    tokenizer, model, device = _load(str(run.path))
    ids = [render(tokenizer, prompt, response) for prompt, response in zip(prompt_messages_list, responses)]
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            width = max(len(x) for x in chunk)
            input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, x in enumerate(chunk):  # right padding, like TRL's DataCollatorForPreference
                input_ids[row, : len(x)] = torch.tensor(x)
                attention_mask[row, : len(x)] = 1
            logits = model(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
            ).logits
            scores.extend(logits.squeeze(-1).float().tolist())
    return scores


def score(run_id: str, prompt_messages: list[dict], response: str) -> float:
    """The reward a completed reward run gives one response to a conversation (role/content messages)."""
    return score_batch(run_id, [prompt_messages], [response])[0]


def reward_runs() -> list[dict]:
    """Completed reward runs, newest first: {"id", "name", "model"}."""
    rows = [r for r in manager.list_runs() if r["state"] == State.COMPLETED and r["stage"] == "reward"]
    return [{"id": r["id"], "name": r["name"], "model": r["model"]} for r in reversed(rows)]


HELD_OUT_LIMIT = 500  # pairs scored by default: enough for a stable accuracy, seconds on a CPU for a small model


@dataclass
class HeldOutScores:
    """A reward run's scores on the preference pairs it held out of training (its data.eval_fraction split)."""

    run_id: str
    chosen: list[float]  # one score per pair, in the split's order
    rejected: list[float]
    held_out: int  # pairs the run held out; chosen/rejected cover the first `limit` of them

    @property
    def accuracy(self) -> float:
        """The share of pairs whose chosen answer scores above the rejected one (a tie counts as wrong, as in
        TRL's RewardTrainer)."""
        return sum(c > r for c, r in zip(self.chosen, self.rejected)) / len(self.chosen)


def held_out_pairs(run_id: str) -> list[dict]:
    """The preference rows a reward run held out of training, in the order its trainer evaluated them, as its
    data_report.json records them (see data.held_out_rows)."""
    from studio import data

    run = check_reward_run(run_id)
    config = cfg.load_config(run.config_path)
    held_out = data.held_out_rows(run.path, config.data)
    if held_out is None:
        raise StudioError(
            f"run '{run.id}' has no record of the pairs it held out of training (it was trained before runs kept "
            "one); score pairs by hand instead"
        )
    if not held_out:
        raise StudioError(
            f"run '{run.id}' held no pairs out of training (data.eval_fraction is "
            f"{config.data.eval_fraction}); score pairs by hand instead"
        )
    return held_out


def held_out_scores(run_id: str, limit: int | None = HELD_OUT_LIMIT) -> HeldOutScores:
    """The run's scores for the chosen and rejected answer of each of its first `limit` held-out pairs (all with
    None)."""
    if limit is not None and limit < 1:
        raise StudioError(f"limit = {limit}: score at least 1 pair")
    run = check_reward_run(run_id)
    pairs = held_out_pairs(run.id)
    picked = pairs[:limit] if limit is not None else pairs
    prompts = [row["prompt"] for row in picked]
    # A canonical preference row answers with one assistant message; its text is what gets scored.
    chosen = score_checked(run, prompts, [row["chosen"][-1]["content"] for row in picked])
    rejected = score_checked(run, prompts, [row["rejected"][-1]["content"] for row in picked])
    return HeldOutScores(run_id=run.id, chosen=chosen, rejected=rejected, held_out=len(pairs))
