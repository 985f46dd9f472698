"""What the stages that sample their own answers share (PPO, rejection sampling, GRPO, RLOO): the train and
held-out prompts of a data source, and (PPO, rejection sampling) the mask of each sampled answer's tokens up to its
end-of-turn."""

from __future__ import annotations

import logging

import torch

from studio import data
from studio.config import SOURCE_FORMATS, RunConfig
from studio.runs.rundir import RunDir

log = logging.getLogger(__name__)


def load_prompts(config: RunConfig, tokenizer, run: RunDir) -> tuple[list[dict], list[dict]]:
    """(train, held out) rows {"prompt": messages, column: value, ...}: the prompt of each usable row of the data
    source (any format: only the prompt is trained on) with the row's raw columns, which reward functions get as
    keyword lists. Split as every stage splits its rows (data.eval_fraction; the run's data_report.json records the
    held-out ones). A source that gives both formats tries them in order, so a file of preference pairs gives its
    prompts too."""
    train, held_out = data.first_that_loads(
        SOURCE_FORMATS[config.data.source], lambda fmt: data.prepare(config, fmt, tokenizer, run)
    )
    log.info("data: %d prompts to train on, %d held out", len(train.rows), len(held_out.rows))
    return prompt_rows(train), prompt_rows(held_out)


def prompt_rows(loaded: data.Loaded) -> list[dict]:
    """{"prompt": messages, **columns} per row; a data column named prompt is the prompt itself (RESERVED_COLUMNS)."""
    columns = loaded.columns if len(loaded.columns) == len(loaded.rows) else [{}] * len(loaded.rows)
    return [{**extra, "prompt": row["prompt"]} for row, extra in zip(loaded.rows, columns)]


def response_mask(responses: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, ended): 1 on each response's tokens up to and including its first EOS; whether it had one."""
    is_eos = responses == eos_id
    ended = is_eos.any(dim=1)
    # Tokens strictly after the first EOS: the cumulative count of EOS before them is at least 1.
    after = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
    return (~after).float(), ended
