"""The offline demo: the whole RLHF pipeline on the built-in tiny model, on a task it can learn on a CPU in minutes.

    rlhf-studio demo [--json]

The task: answer short questions politely, in a taught format, "Of course! <the answer> I hope that helps."
The data is generated here from templates (nothing downloaded, nothing copied), into <home>/demo/:
  sft.jsonl     questions with answers, two thirds in the taught format and the rest plain, so supervised fine-tuning
                teaches the format only in part and leaves the preference stages something to add;
  pairs.jsonl   the same questions, the formatted answer chosen over a plain or a rude one.
Stages (a pipeline like any other, its runs visible in the Runs tab afterwards):
  sft (tiny) -> rm (reward model, from sft) -> ppo (from sft, scored by rm) -> dpo (from sft)
Then the base model and every tuned policy answer held-out questions (never trained on) greedily, and the table
reports each model's mean reward-model score and the share of answers in the taught format.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from studio import stages
from studio.paths import studio_home

OPENER, CLOSER = "Of course!", "I hope that helps."
HELD_OUT = 24  # questions kept out of every stage's data, for the final table
EVAL_TOKENS = 40  # a formatted answer to these questions is about 24 tokens of the tiny model

# (question template, answer template, fillers): each filler tuple fills both templates.
FACTS = [
    (
        "What colour is {0}?",
        "{1} is {2}.",
        [
            ("a banana", "A banana", "yellow"),
            ("grass", "Grass", "green"),
            ("the sky", "The sky", "blue"),
            ("snow", "Snow", "white"),
            ("coal", "Coal", "black"),
            ("a tomato", "A tomato", "red"),
            ("a carrot", "A carrot", "orange"),
            ("a plum", "A plum", "purple"),
            ("a lemon", "A lemon", "yellow"),
            ("a frog", "A frog", "green"),
            ("milk", "Milk", "white"),
            ("a cherry", "A cherry", "red"),
        ],
    ),
    (
        "How many legs does {0} have?",
        "{1} has {2} legs.",
        [
            ("a dog", "A dog", "four"),
            ("a spider", "A spider", "eight"),
            ("a bird", "A bird", "two"),
            ("an ant", "An ant", "six"),
            ("a cat", "A cat", "four"),
            ("a duck", "A duck", "two"),
            ("a horse", "A horse", "four"),
            ("a beetle", "A beetle", "six"),
            ("a goat", "A goat", "four"),
        ],
    ),
    (
        "What is the capital of {0}?",
        "The capital of {0} is {1}.",
        [
            ("France", "Paris"),
            ("Italy", "Rome"),
            ("Spain", "Madrid"),
            ("Japan", "Tokyo"),
            ("Egypt", "Cairo"),
            ("Norway", "Oslo"),
            ("Peru", "Lima"),
            ("Greece", "Athens"),
            ("Kenya", "Nairobi"),
            ("Chile", "Santiago"),
        ],
    ),
    (
        "What do you use {0} for?",
        "You use {0} to {1}.",
        [
            ("a spoon", "eat soup"),
            ("a broom", "sweep the floor"),
            ("a pen", "write"),
            ("a key", "open a lock"),
            ("scissors", "cut paper"),
            ("a towel", "dry yourself"),
            ("a ladder", "reach high places"),
            ("a kettle", "boil water"),
            ("a map", "find your way"),
            ("an umbrella", "stay dry"),
        ],
    ),
    (
        "What is {0} plus {1}?",
        "{0} plus {1} is {2}.",
        [
            ("two", "three", "five"),
            ("one", "one", "two"),
            ("four", "four", "eight"),
            ("three", "six", "nine"),
            ("five", "two", "seven"),
            ("six", "four", "ten"),
            ("two", "two", "four"),
            ("seven", "one", "eight"),
        ],
    ),
    (
        "Where does {0} live?",
        "{1} lives {2}.",
        [
            ("a fish", "A fish", "in water"),
            ("a bee", "A bee", "in a hive"),
            ("a bear", "A bear", "in the forest"),
            ("a camel", "A camel", "in the desert"),
            ("a penguin", "A penguin", "on the ice"),
            ("a squirrel", "A squirrel", "in a tree"),
            ("a mole", "A mole", "under the ground"),
            ("a cow", "A cow", "on a farm"),
        ],
    ),
]
RUDE = [
    "Figure it out yourself.",
    "Why would I tell you that?",
    "That is a silly question.",
    "Ask someone else.",
    "I am not answering that.",
    "Look it up, I am busy.",
]


def questions() -> list[tuple[str, str]]:
    """Every (question, plain answer) pair, in a fixed order."""
    pairs = []
    for question, answer, fillers in FACTS:
        for fill in fillers:
            pairs.append((question.format(*fill), answer.format(*fill)))
    return pairs


def formatted(answer: str) -> str:
    return f"{OPENER} {answer} {CLOSER}"


def in_format(text: str) -> bool:
    """The demo's check: the answer opens the taught way (the base model never does)."""
    return text.strip().startswith(OPENER)


def split(seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training pairs, held-out pairs): a seeded shuffle, the last HELD_OUT kept out of every stage's data."""
    pairs = questions()
    random.Random(seed).shuffle(pairs)
    return pairs[:-HELD_OUT], pairs[-HELD_OUT:]


def write_data(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write the demo's SFT and preference files (TRL layouts, read by data.source: file) and its held-out
    questions; returns their paths by name."""
    train, held_out = split(seed)
    rng = random.Random(seed)
    sft, pairs = [], []
    for repeat in range(3):  # a few hundred rows: enough steps to learn from without repeating one batch
        for i, (question, answer) in enumerate(train):
            taught = (i + repeat) % 3 != 0  # two thirds of the SFT answers carry the format
            sft.append({"prompt": question, "completion": formatted(answer) if taught else answer})
            rejected = answer if rng.random() < 0.5 else rng.choice(RUDE)
            pairs.append({"prompt": question, "chosen": formatted(answer), "rejected": rejected})
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.jsonl" for name in ("sft", "pairs", "held_out")}
    for name, rows in (("sft", sft), ("pairs", pairs), ("held_out", [{"prompt": q, "answer": a} for q, a in held_out])):
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def pipeline_raw(paths: dict[str, Path]) -> dict:
    """The demo's pipeline, as a pipeline YAML would hold it."""
    model = {"name": "tiny"}
    lora = {"r": 16, "alpha": 32, "dropout": 0.0}
    sft_data = {"source": "file", "path": str(paths["sft"]), "eval_fraction": 0.0, "max_length": 128}
    pair_data = {"source": "file", "path": str(paths["pairs"]), "eval_fraction": 0.0, "max_length": 128}
    quiet = {"save_steps": 0, "eval_steps": 0, "logging_steps": 5, "warmup_ratio": 0.05}
    return {
        "pipeline": "demo",
        "description": "The offline demo: SFT, a reward model, PPO and DPO on the tiny model",
        "defaults": {"model": model, "lora": lora},
        "stages": [
            {
                "name": "sft",
                "stage": "sft",
                "data": sft_data,
                "train": {"max_steps": 200, "learning_rate": 3e-3, "batch_size": 8, **quiet},
            },
            {
                "name": "rm",
                "stage": "reward",
                "from": "sft",
                "data": pair_data,
                "train": {"max_steps": 40, "learning_rate": 3e-3, "batch_size": 8, **quiet},
            },
            {
                "name": "ppo",
                "stage": "ppo",
                "from": "sft",
                "rewards_from": "rm",
                "data": pair_data,
                "train": {"max_steps": 40, "learning_rate": 1e-3, "batch_size": 16, **quiet},
                "ppo": {
                    "response_length": EVAL_TOKENS,
                    "temperature": 0.7,
                    "kl_coef": 0.1,
                    "ppo_epochs": 2,
                    "mini_batch_size": 8,
                },
                "eval": watched_by_format_judge(paths["held_out"]),
            },
            {
                "name": "dpo",
                "stage": "dpo",
                "from": "sft",
                "data": pair_data,
                "train": {"max_steps": 60, "learning_rate": 1e-3, "batch_size": 8, **quiet},
                "dpo": {"beta": 0.1},
            },
        ],
    }


# The taught format from its first word to its last: the judge that watches PPO train (eval.judges) checks it
# independently of the reward model PPO is trained against, which learned it only from pairs.
TAUGHT_FORMAT = r"Of course! .+ I hope that helps\."  # formatted(answer), whole


def watched_by_format_judge(held_out: Path, every_steps: int = 10) -> dict:
    """The eval section that has a rule judge the held-out answers in the whole taught format while a policy trains:
    the reward-hacking alarm's independent view."""
    return {
        "judges": [
            {
                "kind": "builtin",
                "name": "taught_format",
                "builtin": "format",
                "args": {"pattern": TAUGHT_FORMAT, "match": "full"},
            }
        ],
        "every_steps": every_steps,
        "prompts_file": str(held_out),
        "prompts": HELD_OUT,
        "max_new_tokens": EVAL_TOKENS,
    }


@dataclass
class Row:
    model: str  # "base", or a stage name
    run_id: str | None
    reward: float  # mean reward-model score of its answers to the held-out questions
    check: float  # share of those answers in the taught format


def policy_steps() -> tuple[str, ...]:
    """The demo pipeline's steps that train a policy (every one but the reward model), in order: the models the
    demo compares with the base model."""
    steps = pipeline_raw(data_paths())["stages"]
    return tuple(step["name"] for step in steps if stages.get(step["stage"]).writes_text)


def evaluate(
    runs: dict[str, str], held_out_path: Path, policies: tuple[str, ...] | None = None, reward: str = "rm"
) -> tuple[list[Row], dict[str, list[str]]]:
    """The table (base first, then each policy step, by default policy_steps()) and every model's answers, on the
    held-out questions."""
    from studio.config import GenerationSpec
    from studio.serve import compare

    policies = policies or policy_steps()

    prompts = [json.loads(line)["prompt"] for line in held_out_path.read_text(encoding="utf-8").splitlines()]
    settings = GenerationSpec(temperature=0.0, max_new_tokens=EVAL_TOKENS, batch_size=len(prompts))
    result = compare.compare([runs[name] for name in policies], prompts, settings, reward_run=runs[reward])
    names = {result.base: "base", **{runs[name]: name for name in policies}}
    rows, answers = [], {}
    for label in result.labels:
        texts, scores = result.answers[label], result.scores[label]
        rows.append(
            Row(
                model=names[label],
                run_id=None if label == result.base else label,
                reward=sum(scores) / len(scores),
                check=sum(map(in_format, texts)) / len(texts),
            )
        )
        answers[names[label]] = texts
    return rows, answers


def demo_home() -> Path:
    return studio_home() / "demo"


def data_paths() -> dict[str, Path]:
    """Where the demo's files are (written by write_data)."""
    return {name: demo_home() / "data" / f"{name}.jsonl" for name in ("sft", "pairs", "held_out")}


def held_out_questions() -> list[str]:
    """The questions no stage trained on, as written by write_data."""
    path = data_paths()["held_out"]
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def start():
    """Write the demo's data and start its pipeline in the background (what the studio's "Run the offline demo"
    does; `rlhf-studio demo` runs the same pipeline in the foreground). A second start while one is recent is
    refused in one line naming it (runner.create)."""
    from studio.pipelines import recipe, runner

    raw = pipeline_raw(write_data(demo_home() / "data"))
    return runner.start(recipe.from_dict(raw), raw["description"], refuse_repeats=True)


@dataclass
class Progress:
    """Where a demo pipeline is: its state, a line per stage, and once completed the run of each stage."""

    state: str  # the pipeline's state: running, completed, failed, cancelled
    lines: list[str]  # "sft: completed", "ppo: running, step 12 of 40"
    runs: dict[str, str]  # stage name -> run id, for the stages that have a run


def progress(pipeline_id: str) -> Progress:
    from studio.pipelines import runner
    from studio.runs.status import State

    state = runner.status(runner.find(pipeline_id))
    lines, runs = [], {}
    for stage in state.get("stages", []):
        where = stage.get("state") or runner.WAITING
        if where == State.RUNNING and stage.get("total_steps"):
            where += f", step {stage.get('step') or 0} of {stage['total_steps']}"
        lines.append(f"{stage['name']}: {where}")
        if stage.get("run_id"):
            runs[stage["name"]] = stage["run_id"]
    return Progress(state=state.get("state") or State.RUNNING.value, lines=lines, runs=runs)
