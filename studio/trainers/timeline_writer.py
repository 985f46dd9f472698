"""The generation timeline while a run trains: answer config.timeline.prompts with the model being trained and
append the answers to <run>/timeline.jsonl (the format and the reader are in studio/monitor/timeline.py).

    callbacks=[StudioCallback(run, keep), *timeline.callbacks(config, run, tokenizer)]   # the TRL stages
    recorder = timeline.recorder(config, run, tokenizer)                                # our own loops
    if recorder:
        recorder.record(policy, step)

Each prompt is one user message, answered greedily (temperature 0) with up to timeline.max_new_tokens tokens.
Recording a step adds only the answers that step lacks, so a resumed run that passes a step again never records
it twice. Generating leaves training as it was: no gradients, every module's train/eval mode restored, and the
random generators that generate_batch seeds (Python, NumPy, torch, CUDA) put back, so a run's loss curve is the
same with or without timeline prompts. Only the process that writes files (rank 0) records.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time

import numpy as np
import torch
from transformers import TrainerCallback

from studio.config import GenerationSpec, RunConfig
from studio.errors import ConfigError, ModelError
from studio.modeling.generation import generate_batch, prompt_ids
from studio.monitor import timeline
from studio.runs.rundir import RunDir

log = logging.getLogger(__name__)


@contextlib.contextmanager
def undisturbed(model):
    """Run the body without gradients and put back what it may change that training depends on: each module's
    mode and the random generators (generate_batch seeds them for every batch)."""
    modes = [(module, module.training) for module in model.modules()]
    cuda = torch.cuda.is_available()
    saved = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
        torch.cuda.get_rng_state_all() if cuda else None,
    )
    try:
        with torch.no_grad():
            yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if cuda:
            torch.cuda.set_rng_state_all(saved[3])
        for module, mode in modes:
            module.training = mode


class Recorder:
    """Answers the run's timeline prompts with a model and appends them under a step."""

    def __init__(self, config: RunConfig, run: RunDir, tokenizer):
        self.prompts = list(dict.fromkeys(config.timeline.prompts))  # answers are kept by prompt: once each
        self.path = run.timeline_path
        self.tokenizer = tokenizer
        self.settings = GenerationSpec(temperature=0.0, max_new_tokens=config.timeline.max_new_tokens)
        try:  # a tokenizer without a chat template fails now, in one line, not at the first checkpoint
            prompt_ids(tokenizer, self.messages(self.prompts[:1]))
        except ModelError as err:
            raise ConfigError(f"timeline.prompts: {err}") from None

    @staticmethod
    def messages(prompts: list[str]) -> list[list[dict]]:
        return [[{"role": "user", "content": p}] for p in prompts]

    def record(self, model, step: int) -> None:
        """Answer the prompts that have no answer at this step yet. A failure is logged and training goes on: the
        timeline is for watching, and a run should not die for it."""
        missing = timeline.read(self.path).missing(step, self.prompts)
        if not missing:
            return
        started = time.perf_counter()
        try:
            with undisturbed(model):
                out = generate_batch(model, self.tokenizer, self.messages(missing), self.settings)
        except Exception as err:  # noqa: BLE001 - see the docstring
            log.warning("timeline: step %d not recorded (%s: %s); training goes on", step, type(err).__name__, err)
            return
        timeline.append(self.path, step, dict(zip(missing, out.texts)))
        log.info("timeline: step %d, %d answers in %.2f s", step, len(missing), time.perf_counter() - started)


def recorder(config: RunConfig, run: RunDir, tokenizer) -> Recorder | None:
    """A Recorder when the config has timeline prompts, else None."""
    return Recorder(config, run, tokenizer) if config.timeline.prompts else None


class TimelineCallback(TrainerCallback):
    """For the TRL stages: record before the first step (step 0; a resumed run's checkpoint step, recorded when it
    was saved), at every checkpoint, and at the end unless cancelled (the cancel's checkpoint was recorded)."""

    def __init__(self, recorder: Recorder, run: RunDir):
        self.recorder = recorder
        self.run = run

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self.recorder.record(model, state.global_step)

    def on_save(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self.recorder.record(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and not self.run.cancel_requested():
            self.recorder.record(model, state.global_step)


def callbacks(config: RunConfig, run: RunDir, tokenizer) -> list:
    """The TRL trainer callbacks the timeline needs: none without timeline prompts."""
    found = recorder(config, run, tokenizer)
    return [TimelineCallback(found, run)] if found else []
