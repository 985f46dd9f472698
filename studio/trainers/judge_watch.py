"""The reward-hacking alarm's eyes: judges score the policy's answers to fixed held-out prompts while it trains.

    watch = judge_watch.start(config, run, tokenizer)      # None without eval.judges
    if watch:
        watch.check(policy, step)         # at step 0 and every eval.every_steps steps (and the last step)
    callbacks=[..., *judge_watch.callbacks(config, run, tokenizer)]   # the TRL stages

At each check the policy answers the same prompts greedily (eval.prompts of the run's held-out rows, or of
eval.prompts_file), and each judge (config.eval.judges, studio/eval/judges.py) rates the answers: a score judge
by its mean score, a pairwise judge by the policy's win rate against its own answers at step 0 (kept in
<run>/eval/watch-start.json, so a resumed run compares with the same answers). Each check appends one metrics row,
{"step", "judge/<name>", "judge_se/<name>" (the standard error over prompts)}, which the Runs tab charts beside the
training reward and studio/monitor/health.py reads for the reward_hacking warning. Generating leaves training
undisturbed (timeline_writer.undisturbed). Only the process that writes files (rank 0) checks.
"""

from __future__ import annotations

import json
import logging
import math
import time

from transformers import TrainerCallback

from studio.config import GenerationSpec, RunConfig
from studio.errors import ConfigError, StudioError
from studio.modeling.generation import generate_batch
from studio.runs.metrics import MetricsWriter
from studio.runs.rundir import RunDir
from studio.trainers.timeline_writer import undisturbed

log = logging.getLogger(__name__)

START_FILE = "watch-start.json"  # in <run>/eval/: the step-0 answers that pairwise judges compare with


def watch_prompts(config: RunConfig, run: RunDir) -> list[dict]:
    """The rows the judges watch: the first eval.prompts of eval.prompts_file, or of the run's held-out rows."""
    from studio import data
    from studio.serve.compare import as_messages, read_prompts

    spec = config.eval
    if spec.prompts_file:
        try:
            prompts = read_prompts(spec.prompts_file)
        except StudioError as err:
            raise ConfigError(f"eval.prompts_file: {err}") from None
        return [{"prompt": as_messages(p)} for p in prompts[: spec.prompts]]
    rows = data.held_out_rows(run.path, config.data) or []
    if not rows:
        raise ConfigError(
            f"eval.judges: the run holds no rows out of training (data.eval_fraction is {config.data.eval_fraction}), "
            "so the judges have no prompts it did not train on; raise data.eval_fraction or give eval.prompts_file"
        )
    return [{**row, "prompt": as_messages(row["prompt"])} for row in rows[: spec.prompts]]


class JudgeWatch:
    def __init__(self, config: RunConfig, run: RunDir, tokenizer):
        from studio.eval import judges

        self.spec = config.eval
        self.run = run
        self.tokenizer = tokenizer
        self.rows = watch_prompts(config, run)
        self.prompts = [row["prompt"] for row in self.rows]
        self.columns = {c: [row.get(c) for row in self.rows] for c in self.rows[0] if c != "prompt"}
        self.judges = [judges.build(spec) for spec in self.spec.judges]
        for judge in self.judges:
            judge.check()
        self.settings = GenerationSpec(temperature=0.0, max_new_tokens=self.spec.max_new_tokens, batch_size=16)
        self.metrics = MetricsWriter(run.metrics_path)
        self.start_path = run.eval_dir / START_FILE

    def due(self, step: int, last_step: int) -> bool:
        return step == 0 or step % self.spec.every_steps == 0 or step == last_step

    def check(self, model, step: int) -> None:
        """Answer the prompts and log each judge's rating of the answers at this step."""
        started = time.perf_counter()
        with undisturbed(model):
            answers = generate_batch(model, self.tokenizer, self.prompts, self.settings).texts
        start = self._start_answers(step, answers)
        row: dict = {"step": step, "time": time.time()}
        for judge in self.judges:
            if judge.pairwise:
                outcomes = [v.outcome for v in judge.compare(self.prompts, answers, start)]
            else:
                outcomes = judge.score(self.prompts, answers, self.columns)
            value, se = _mean_and_se([o for o in outcomes if o is not None])
            row[f"judge/{judge.name}"] = value
            row[f"judge_se/{judge.name}"] = se
        self.metrics.write(row)
        log.info(
            "judges at step %d: %s (%.1f s)",
            step,
            ", ".join(f"{j.name} {row[f'judge/{j.name}']:.3g}" for j in self.judges),
            time.perf_counter() - started,
        )

    def _start_answers(self, step: int, answers: list[str]) -> list[str]:
        """The step-0 answers: these at step 0 (saved), else the saved ones."""
        if step == 0 or not self.start_path.is_file():
            self.start_path.parent.mkdir(exist_ok=True)
            self.start_path.write_text(
                json.dumps({"kind": "watch_start", "step": step, "answers": answers}), encoding="utf-8"
            )
            return answers
        return json.loads(self.start_path.read_text(encoding="utf-8"))["answers"]


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def start(config: RunConfig, run: RunDir, tokenizer) -> JudgeWatch | None:
    """A JudgeWatch when the config has judges, else None."""
    return JudgeWatch(config, run, tokenizer) if config.eval.judges else None


class JudgeCallback(TrainerCallback):
    """For the TRL stages: check at step 0 (a fresh run) and at every due step after."""

    def __init__(self, watch: JudgeWatch):
        self.watch = watch

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and state.global_step == 0:
            self.watch.check(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and self.watch.due(state.global_step, state.max_steps):
            self.watch.check(model, state.global_step)


def callbacks(config: RunConfig, run: RunDir, tokenizer) -> list:
    found = start(config, run, tokenizer)
    return [JudgeCallback(found)] if found else []
