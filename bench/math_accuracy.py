"""How many held-out arithmetic questions a run answers right: the SFT run against the GRPO run started from it.

    python bench/math_accuracy.py SFT_RUN GRPO_RUN [--show 5]     # runs in $RLHF_STUDIO_HOME
    python bench/math_accuracy.py --train [--home DIR]             # trains presets/grpo-math-tiny.yaml first

The questions are the rows the last run held out of training (its data.eval_fraction split, read back from its
data_report.json as `compare --held-out` reads it); every other run named must have held them out too, so no run is
measured on a question it trained on. Each run answers every question greedily (temperature 0), and an answer is
right when the reference_match built-in (mode last_number) finds the row's answer column as its last number, the
score the GRPO preset trains on. The share in the format the preset asks for ("... The answer is N.") is printed
beside it. One run of this script measures one training of each run; on a small held-out set a few questions
either way move the share by several points.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRESET = REPO / "presets" / "grpo-math-tiny.yaml"
ANSWER_COLUMN = "answer"


def preset_grpo_stage():
    """The preset's GRPO stage config: its reward rules and answer length are what this script scores and samples by."""
    from studio.pipelines import recipe

    return recipe.load_pipeline(PRESET).stages[-1].config


@dataclass
class Question:
    prompt: list[dict]  # role/content messages
    answer: object  # the row's answer column


@dataclass
class Score:
    run_id: str
    stage: str
    right: int
    formatted: int
    answers: list[str]

    def line(self, total: int) -> str:
        return (
            f"{self.run_id} ({self.stage}): {self.right}/{total} right ({self.right / total:.1%}), "
            f"{self.formatted}/{total} in the format ({self.formatted / total:.1%})"
        )


def held_out_questions(run_id: str) -> list[Question]:
    """The questions a run held out of training, each with its answer column, in the run's split order."""
    from studio import config as cfg
    from studio import data
    from studio.errors import StudioError
    from studio.runs import manager

    run = manager.find(run_id)
    spec = cfg.load_config(run.config_path).data
    rows = data.held_out_rows(run.path, spec)
    if not rows:
        raise StudioError(f"run '{run.id}' held no questions out of training (data.eval_fraction is 0 or unrecorded)")
    report = json.loads((run.path / data.REPORT).read_text(encoding="utf-8"))
    # held_out_rows checked that the source still holds these rows; the same load gives their raw columns.
    loaded = data.load(replace(spec, path=report["origin"]), report["format"])
    columns = dict(zip(loaded.row_numbers, loaded.columns))
    questions = []
    for number, row in zip(report["held_out"], rows):
        if ANSWER_COLUMN not in columns[number]:
            raise StudioError(f"{loaded.label} row {number}: no '{ANSWER_COLUMN}' column to check answers against")
        questions.append(Question(row["prompt"], columns[number][ANSWER_COLUMN]))
    return questions


def check_held_out(run_id: str, questions: list[Question]) -> None:
    """A run measured on these questions must not have trained on any of them."""
    from studio.errors import StudioError

    own = {json.dumps(q.prompt, sort_keys=True) for q in held_out_questions(run_id)}
    seen = [q for q in questions if json.dumps(q.prompt, sort_keys=True) not in own]
    if seen:
        raise StudioError(
            f"run '{run_id}' trained on {len(seen)} of the {len(questions)} questions (e.g. "
            f"{seen[0].prompt[-1]['content']!r}); give runs that held out the same rows "
            "(same data, eval_fraction and seed)"
        )


def measure(run_id: str, questions: list[Question]) -> Score:
    from studio import config as cfg
    from studio.config import GenerationSpec
    from studio.rewards.builtins import BUILTINS
    from studio.runs import manager
    from studio.serve import generate

    run = manager.find(run_id)
    stage = cfg.load_config(run.config_path).stage
    grpo = preset_grpo_stage()
    rules = {source.builtin: source.args for source in grpo.rewards.sources}  # as config.yaml holds them: checked
    settings = GenerationSpec(temperature=0.0, max_new_tokens=grpo.grpo.max_completion_length, batch_size=16)
    answers = generate.shared().generate(generate.run_target(run.id), [q.prompt for q in questions], settings).texts
    columns = {rules["reference_match"]["column"]: [q.answer for q in questions]}
    right = BUILTINS["reference_match"].score(answers, rules["reference_match"], columns)
    formatted = BUILTINS["format"].score(answers, rules["format"], {})
    return Score(run.id, stage, int(sum(s or 0 for s in right)), int(sum(formatted)), answers)


def train_preset(home: Path) -> list[str]:
    """Train the grpo-math-tiny pipeline in `home`; the run ids of its stages, in order."""
    done = subprocess.run(
        [sys.executable, "-m", "studio", "train", str(PRESET)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "RLHF_STUDIO_HOME": str(home)},
    )
    if done.returncode != 0:
        sys.exit(f"training {PRESET.name} failed:\n{done.stderr[-2000:]}")
    # "pipeline grpo-math-tiny completed: sft RUN_ID, grpo RUN_ID"
    summary = next(line for line in done.stdout.splitlines() if line.startswith("pipeline ") and " completed: " in line)
    return [part.split()[1] for part in summary.split(": ", 1)[1].split(", ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run ids (or unique prefixes); the last one's held-out rows are asked")
    parser.add_argument("--train", action="store_true", help=f"train {PRESET.name} first and measure its runs")
    parser.add_argument("--home", help="with --train: the studio home to train in (default: a new temporary one)")
    parser.add_argument("--show", type=int, default=0, help="print this many questions with every run's answer")
    args = parser.parse_args()
    if args.train == bool(args.runs):
        parser.error("give run ids, or --train")
    if args.train:
        home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="bench-math-"))
        os.environ["RLHF_STUDIO_HOME"] = str(home)
        run_ids = train_preset(home)
        print(f"trained {PRESET.name} in {home}: {', '.join(run_ids)}")
    else:
        run_ids = args.runs

    from studio.errors import StudioError

    try:
        questions = held_out_questions(run_ids[-1])
        for run_id in run_ids[:-1]:
            check_held_out(run_id, questions)
        scores = [measure(run_id, questions) for run_id in run_ids]
    except StudioError as err:
        sys.exit(f"error: {err}")
    print(f"{len(questions)} held-out questions, greedy answers, scored by reference_match (last_number)")
    for score in scores:
        print(score.line(len(questions)))
    for i, question in enumerate(questions[: args.show]):
        print(f"\n{question.prompt[-1]['content']}  (answer {question.answer})")
        for score in scores:
            print(f"  {score.run_id}: {score.answers[i]}")


if __name__ == "__main__":
    main()
