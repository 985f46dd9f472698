"""A run's generation timeline: its answers to config.timeline.prompts before training and at each checkpoint.

    <run>/timeline.jsonl    one JSON line per prompt and step: {"step": 30, "prompt": "...", "answer": "..."}

The worker appends (studio/trainers/timeline_writer.py generates the answers); the Runs tab and scripts read:

    timeline = read(RunDir.of(run_id).timeline_path)
    timeline.prompts, timeline.steps, timeline.answers[30]["Name a fruit."]
    view(run_id, step=30).rows      # [prompt, answer at step 0, answer at step 30] per prompt

Step 0 is the model before its first update: the starting weights (the base model, or the init.from_run parent),
since a fresh LoRA adapter's B matrix is zero. A half-written last line is skipped, never an error. This module
imports no ML library, since the UI process reads it; generating needs torch and lives with the trainers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from studio import config as cfg
from studio.errors import StudioError
from studio.runs import manager

STEP_ZERO_NOTE = (
    "Step 0 is the model before its first update: the base model, or the run it starts from "
    "(init.from_run). A fresh LoRA adapter changes nothing until it trains: its B matrix starts at "
    "zero."
)


@dataclass
class Timeline:
    """What a timeline file holds: the prompts, the steps they were answered at, and each answer."""

    prompts: list[str] = field(default_factory=list)  # in the order first recorded (the config's order)
    steps: list[int] = field(default_factory=list)  # sorted
    answers: dict[int, dict[str, str]] = field(default_factory=dict)  # step -> prompt -> answer

    def missing(self, step: int, prompts: list[str]) -> list[str]:
        """The prompts with no answer at this step yet, in the order given."""
        done = self.answers.get(step, {})
        return [p for p in prompts if p not in done]


def read(path: Path) -> Timeline:
    """The timeline file as written so far; a missing file is an empty timeline."""
    timeline = Timeline()
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return timeline
    for line in text.split("\n")[:-1]:  # the last piece has no newline yet: written half, or empty
        try:
            row = json.loads(line)
            step, prompt, answer = int(row["step"]), str(row["prompt"]), str(row["answer"])
        except (ValueError, TypeError, KeyError):
            continue
        if prompt not in timeline.prompts:
            timeline.prompts.append(prompt)
        timeline.answers.setdefault(step, {})[prompt] = answer
    timeline.steps = sorted(timeline.answers)
    return timeline


def append(path: Path, step: int, answers: dict[str, str]) -> None:
    """Add one step's answers (prompt -> answer), flushed; a half line left by a killed writer is dropped first,
    so the new lines never run on from it."""
    path = Path(path)
    lines = "".join(
        json.dumps({"step": step, "prompt": p, "answer": a}, ensure_ascii=False) + "\n" for p, a in answers.items()
    )
    with open(path, "ab+") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
        f.write(lines.encode("utf-8"))
        f.flush()


# ---------------------------------------------------------------- what the Runs tab shows


@dataclass
class View:
    """The timeline section for one run: a note (empty when there are answers to show), the recorded steps, the
    step shown (the recorded step nearest the one asked for) and one row per prompt."""

    run_id: str
    note: str
    steps: list[int] = field(default_factory=list)
    step: int | None = None
    rows: list[list[str]] = field(default_factory=list)  # [prompt, answer at step 0, answer at `step`]

    @property
    def slider_step(self) -> int:
        """A slider increment that lands on every recorded step (their greatest common divisor)."""
        return max(1, math.gcd(*self.steps)) if self.steps else 1


def _has_prompts(run) -> bool:
    try:
        return bool(cfg.load_config(run.config_path).timeline.prompts)
    except StudioError:
        return False


def nearest(steps: list[int], wanted: float | None) -> int:
    """The recorded step closest to `wanted` (the later one on a tie); the last step when nothing is asked."""
    if wanted is None:
        return steps[-1]
    return min(reversed(steps), key=lambda s: abs(s - wanted))


def view(run_id: str, step: float | None = None) -> View:
    """What the Runs tab shows of a run's timeline at a step; StudioError for an unknown run."""
    run = manager.find(run_id)
    timeline = read(run.timeline_path)
    if not timeline.steps:
        if not _has_prompts(run):
            return View(
                run.id,
                "This run has no timeline prompts. Set timeline.prompts (Train tab, Answers over "
                "training) to watch a run's answers change as it trains.",
            )
        return View(run.id, "No answers recorded yet: the first are written just before step 1.")
    shown = nearest(timeline.steps, step)
    first = timeline.answers.get(0, {})
    rows = [[p, first.get(p, ""), timeline.answers[shown].get(p, "")] for p in timeline.prompts]
    return View(run.id, "", steps=timeline.steps, step=shown, rows=rows)
