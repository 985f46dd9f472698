"""Rollouts: every answer an online stage (ppo, grpo, rloo, rejection) sampled, one JSON object per line of the run
folder's rollouts.jsonl. The trainer appends a step's answers at once and flushes them, so the file is readable while
the run trains; it is read as metrics.jsonl is (runs/metrics.py: the incremental reader, and truncate_after, which a
resume calls on both files so the steps after its checkpoint are recorded once).

    from studio.runs import rollouts
    rows = rollouts.read(run)                                   # every recorded answer, in order
    best = rollouts.select(rows, step=3, sort="reward", top=2)  # the two best answers of step 3

A row:
    step            the optimizer step that sampled it (rejection: the round)
    prompt, answer  text (a prompt of several messages as "role: content" lines)
    reward          the combined score of the rewards section, as the stage's `reward` metric averages it
    scores          {source name: its score, or None where it gave none}
    kl              policy minus reference log-probability summed over the answer's tokens (None without a reference)
    length, ended   answer tokens; whether it ended with the end-of-turn token
    penalty         ppo: what the missing-EOS penalty took off the reward before the update
    group, advantage    grpo and rloo: the index of the prompt's group in its step, and the answer's advantage
    round, kept     rejection: its round, and whether it was kept to fine-tune on
    tokens, logprobs, ref_logprobs    for the first rollouts.token_samples answers of a step: the answer token by
                    token, with each token's log-probability under the policy and the reference
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

from studio.config import RolloutsSpec
from studio.errors import StudioError
from studio.runs.metrics import MetricsReader, MetricsWriter, read_all

log = logging.getLogger(__name__)

SORT_KEYS = ("reward", "kl", "length")  # what rows can be sorted by (`rlhf-studio rollouts --sort`)
THIN_FACTOR = 10  # past half the size cap, one kept step in this many is recorded


class RolloutWriter:
    """Appends a step's rows to rollouts.jsonl. Which steps: `due` says it from the step alone (every process of a
    run agrees, so they can gather their rows), and `write` then applies the size cap on the file: past half of
    max_mb one due step in THIN_FACTOR is written, at max_mb none; each change is logged once."""

    def __init__(self, path: Path, spec: RolloutsSpec):
        self.path = Path(path)
        self.spec = spec
        self.thinning = self.stopped = False
        self._writer = MetricsWriter(self.path)  # one JSON object per line, NaN written as "nan"

    def due(self, step: int) -> bool:
        """Whether this step's answers are recorded: every step up to keep_first, then one in keep_every."""
        spec = self.spec
        if not spec.record or self.stopped:
            return False
        return step <= spec.keep_first or (step - spec.keep_first) % spec.keep_every == 0

    def write(self, step: int, rows: list[dict]) -> bool:
        """Append a due step's rows and flush them together, unless the size cap holds them back; whether written."""
        if not rows or not self._room(step):
            return False
        self._writer.write_many([_rounded(row) for row in rows])
        return True

    def _room(self, step: int) -> bool:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        cap = self.spec.max_mb * 1e6
        if size >= cap:
            self.stopped = True
            log.info(
                "rollouts.jsonl reached rollouts.max_mb (%g MB) at step %d: no more answers are recorded",
                self.spec.max_mb,
                step,
            )
            return False
        if size >= cap / 2 and not self.thinning:
            self.thinning = True
            log.info(
                "rollouts.jsonl passed half of rollouts.max_mb (%g MB) at step %d: from now on one recorded step in %d",
                self.spec.max_mb,
                step,
                THIN_FACTOR,
            )
        return not self.thinning or step % THIN_FACTOR == 0


def _rounded(row: dict) -> dict:
    """Scores to 6 decimals and log-probabilities to 4: the file stays small and no figure shown loses a digit."""
    out = {}
    for key, value in row.items():
        if key in ("logprobs", "ref_logprobs") and value is not None:
            out[key] = [_round(v, 4) for v in value]
        elif key == "scores":
            out[key] = {name: _round(v, 6) for name, v in value.items()}
        else:
            out[key] = _round(value, 6)
    return out


def _round(value, digits: int):
    if isinstance(value, float) and math.isfinite(value):
        return round(value, digits)
    return value


def prompt_text(messages: list[dict] | str) -> str:
    """A prompt as the rollout row holds it: one message as its text, several as "role: content" lines."""
    if isinstance(messages, str):
        return messages
    if len(messages) == 1:
        return str(messages[0].get("content", ""))
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages)


# ---------------------------------------------------------------- reading


def read(run) -> list[dict]:
    """Every recorded rollout row of a run (a RunDir), in the order written; [] when it recorded none."""
    return read_all(run.rollouts_path)


def reader(run) -> MetricsReader:
    """An incremental reader of a run's rollouts: read_new() gives the rows written since its last call."""
    return MetricsReader(run.rollouts_path)


def steps(rows: Iterable[dict]) -> list[int]:
    """The steps that have rows, in order."""
    return sorted({int(row["step"]) for row in rows if isinstance(row.get("step"), (int, float))})


def select(
    rows: list[dict],
    step: int | None = None,
    sort: str | None = None,
    top: int | None = None,
    bottom: int | None = None,
    text: str = "",
) -> list[dict]:
    """The rows of one step (None: all steps) whose prompt or answer holds `text` (any case), sorted by a SORT_KEYS
    field from highest to lowest; `top` keeps the first K of that order and `bottom` the last K, lowest first. A row
    without the sort value (no reference for kl) sorts last."""
    if sort is not None and sort not in SORT_KEYS:
        raise StudioError(f"sort by {sort!r}: rows sort by {', '.join(SORT_KEYS)}")
    if top is not None and bottom is not None:
        raise StudioError("ask for the top or the bottom rows, not both")
    if step is not None:
        rows = [row for row in rows if row.get("step") == step]
    if text:
        needle = text.lower()
        rows = [row for row in rows if needle in f"{row.get('prompt', '')}\n{row.get('answer', '')}".lower()]
    key = sort or "reward"
    if sort is not None or top is not None or bottom is not None:
        rows = sorted(rows, key=lambda row: _sort_value(row, key), reverse=True)
    if top is not None:
        rows = rows[:top]
    if bottom is not None:
        rows = list(reversed([row for row in rows if _number(row.get(key)) is not None][-bottom:]))
    return rows


def _sort_value(row: dict, key: str) -> float:
    value = _number(row.get(key))
    return -math.inf if value is None else value


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------- one run's rows, for the CLI and a notebook


def load(
    run_id: str,
    step: int | None = None,
    sort: str | None = None,
    top: int | None = None,
    bottom: int | None = None,
    text: str = "",
    every_step: bool = False,
) -> list[dict]:
    """The rollout rows of a run (an id or a unique start of one): one step's (`step`, or the newest recorded step),
    or with every_step=True all of them; then sorted and cut as `select` does. What `rlhf-studio rollouts` prints.

        from studio.runs import rollouts
        rollouts.load("20261206-ppo", step=3, sort="reward", top=2)
    """
    run, _ = online_run(run_id)
    rows = read(run)
    recorded = steps(rows)
    if not recorded:
        raise StudioError(
            f"run {run.id} has recorded no rollouts yet: its first step has not ended, or rollouts.record is off"
        )
    if not every_step:
        if step is None:
            step = recorded[-1]
        elif step not in recorded:
            raise StudioError(f"step {step} of run {run.id} was not recorded; recorded steps: {step_ranges(recorded)}")
    return select(rows, None if every_step else step, sort, top, bottom, text)


def online_run(run_id: str):
    """(run folder, its stage's record) of a run (an id or a unique start of one) whose stage samples answers;
    one StudioError line for an unknown run or another stage."""
    from studio import stages
    from studio.runs import manager
    from studio.runs.table import stage_of

    run = manager.find(run_id)
    stage = stages.find(stage_of(run))
    if stage is None or not stage.online:
        online = ", ".join(stages.names(lambda s: s.online))
        raise StudioError(
            f"run {run.id} trains {stage.name if stage else 'an unknown stage'}: only the stages that sample "
            f"answers ({online}) record rollouts"
        )
    return run, stage


def step_ranges(recorded: list[int]) -> str:
    """Steps as short ranges: [1, 2, 3, 5, 10, 20] -> "1-3, 5, 10, 20"."""
    parts, start = [], None
    for i, step in enumerate(recorded):
        if start is None:
            start = step
        if i + 1 == len(recorded) or recorded[i + 1] != step + 1:
            parts.append(str(start) if start == step else f"{start}-{step}")
            start = None
    return ", ".join(parts)
