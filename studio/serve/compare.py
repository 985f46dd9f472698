"""Base and tuned answers to the same prompts, side by side, scored by a reward model.

    result = compare(["20261101-120000-dpo-ab12"], [[{"role": "user", "content": "Name a fruit."}]],
                     GenerationSpec(), reward_run="20261101-110000-reward-cd34")
    result.answers["base (tiny)"], result.answers["20261101-120000-dpo-ab12"], result.summary()
    result.names["20261101-120000-dpo-ab12"]      # "my-dpo": what the UI heads the column with
    Path("out.csv").write_text(to_csv(result))
    prompts = read_prompts("prompts.txt")          # one per line; or .jsonl with a "prompt" field
    next_held_out_prompt(run_id, shown=["Name a fruit."])  # a held-out prompt not shown yet, for the next A/B round
    rlhf-studio compare RUN_ID --prompt "Name a fruit." --reward-run RM_ID

The base column is the base model the runs were tuned from (they must share it), so a run's column differs from
the base column only by what training did. Every model answers with the same settings and seed.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from studio import config as cfg
from studio.config import GenerationSpec
from studio.errors import StudioError
from studio.serve import generate

MAX_PROMPTS = 256  # one comparison; more is a benchmark, not something to read side by side
MAX_HELD_OUT = 1_000_000  # "all of them", for a count of held-out prompts


@dataclass
class Comparison:
    prompts: list[list[dict]]  # role/content messages, one conversation per prompt
    labels: list[str]  # column keys: the base first, then each run's id
    answers: dict[str, list[str]]  # label -> one answer per prompt
    tokens_per_second: dict[str, float]  # label -> generation speed
    reward_run: str | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)  # label -> one score per prompt (with a reward run)
    names: dict[str, str] = field(default_factory=dict)  # label -> the run's name (its id when unnamed)

    @property
    def base(self) -> str:
        return self.labels[0]

    def name(self, label: str) -> str:
        """What a person calls the model: the run's name, or its id when it has none."""
        return self.names.get(label) or label

    def title(self, label: str) -> str:
        """The run's name, with its id when another compared model has the same name (a name alone would be
        ambiguous)."""
        name = self.name(label)
        clash = sum(self.name(other) == name for other in self.labels) > 1
        return f"{name} ({label})" if clash and name != label else name

    def summary(self) -> list[dict]:
        """One row per model: mean score, and for each tuned model its win rate against the base (the share of
        prompts where its answer scored higher; a tie counts half)."""
        rows = []
        for label in self.labels:
            row = {"model": label, "tokens_per_second": round(self.tokens_per_second[label], 1)}
            if self.scores:
                mine, base = self.scores[label], self.scores[self.base]
                row["mean_score"] = sum(mine) / len(mine)
                if label != self.base:
                    wins = sum(1.0 if m > b else 0.5 if m == b else 0.0 for m, b in zip(mine, base))
                    row["win_rate"] = wins / len(mine)
            rows.append(row)
        return rows

    def records(self) -> list[dict]:
        """One flat record per prompt: the prompt text, each model's answer and score; what the exports hold."""
        out = []
        for i, prompt in enumerate(self.prompts):
            record = {"prompt": prompt_text(prompt)}
            for label in self.labels:
                record[label] = self.answers[label][i]
                if self.scores:
                    record[f"{label} score"] = self.scores[label][i]
            out.append(record)
        return out


def prompt_text(messages: list[dict]) -> str:
    """A conversation as one readable string: a single user turn as it is, more turns as 'role: text' lines."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def as_messages(prompt: str | list[dict]) -> list[dict]:
    """A typed prompt -> one user message; a conversation is kept as it is."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise StudioError("a prompt is empty; type some text or leave the line out")
        return [{"role": "user", "content": prompt.strip()}]
    return prompt


def read_prompts(path: str | Path) -> list[str | list[dict]]:
    """Prompts from a file: .txt, one prompt per line (blank lines skipped); .jsonl, one object per line with a
    "prompt" field holding text or role/content messages that end with a user turn."""
    from studio.data.fields import RowProblem, messages

    path = Path(path).expanduser()
    if path.suffix not in (".txt", ".jsonl"):
        raise StudioError(f'{path}: use a .txt file (one prompt per line) or a .jsonl file (a "prompt" field per line)')
    if not path.is_file():
        raise StudioError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise StudioError(f"{path}: not UTF-8 text") from None
    prompts: list[str | list[dict]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix == ".txt":
            prompts.append(line.strip())
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise StudioError(f"{path} line {number}: not valid JSON ({err.msg})") from None
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if isinstance(prompt, str) and prompt.strip():
            prompts.append(prompt.strip())
            continue
        if not isinstance(prompt, list):
            raise StudioError(
                f'{path} line {number}: expected an object with a "prompt" field holding text or role/content messages'
            )
        try:
            conversation = messages(prompt, "prompt")
        except RowProblem as problem:
            raise StudioError(f"{path} line {number}: {problem}") from None
        if conversation[-1]["role"] != "user":
            raise StudioError(f"{path} line {number}: the prompt must end with a user message")
        prompts.append(conversation)
    if not prompts:
        raise StudioError(f"{path}: no prompts in the file")
    return prompts


def compare(
    run_ids: list[str],
    prompts: list[str | list[dict]],
    settings: GenerationSpec,
    reward_run: str | None = None,
    generator: generate.Generator | None = None,
) -> Comparison:
    """Answers of the runs' base model and of each run to every prompt, scored by reward_run if given."""
    if not run_ids:
        raise StudioError("pick at least one finished run to compare with its base model")
    if not prompts:
        raise StudioError("no prompts: type at least one, or sample some from a run's held-out data")
    if len(prompts) > MAX_PROMPTS:
        raise StudioError(f"{len(prompts)} prompts: compare at most {MAX_PROMPTS} at a time")
    if len(set(run_ids)) != len(run_ids):
        raise StudioError("the same run is picked twice")
    conversations = [as_messages(p) for p in prompts]
    # Here, not at the top: scoring brings in the training stack (peft, TRL's helpers), which a command that only
    # checks its input and exits should not wait for.
    from studio.serve import scoring

    if reward_run:
        scoring.check_reward_run(reward_run)  # before minutes of generation, not after
    targets = [generate.run_target(r) for r in run_ids]
    names = {t.model.name for t in targets}
    if len(names) > 1:
        raise StudioError(
            f"the runs start from different base models ({', '.join(sorted(names))}); compare runs of "
            "one base model at a time"
        )
    base = generate.base_target(run_ids[0])
    generator = generator or generate.shared()
    result = Comparison(prompts=conversations, labels=[], answers={}, tokens_per_second={}, reward_run=reward_run)
    for target in [base, *targets]:
        out = generator.generate(target, conversations, settings)
        result.labels.append(target.label)
        result.names[target.label] = run_name(target.run_id) if target.run_id else target.label
        result.answers[target.label] = out.texts
        result.tokens_per_second[target.label] = out.tokens_per_second
    if reward_run:
        for label in result.labels:
            result.scores[label] = scoring.score_batch(reward_run, conversations, result.answers[label])
    return result


def run_name(run_id: str) -> str:
    """A run's name, or its id when it has none."""
    from studio.runs.rundir import RunDir

    return cfg.load_config(RunDir.of(run_id).config_path).name or run_id


def held_out_prompts(run_id: str, count: int, seed: int = 0) -> list[list[dict]]:
    """`count` prompts drawn (seeded) from the rows a run held out of training (its data.eval_fraction split, as
    its data_report.json records it, every stage alike), so the tuned model is judged on prompts it did not train
    on."""
    return [row["prompt"] for row in held_out_sample(run_id, count, seed)]


def held_out_sample(run_id: str, count: int, seed: int = 0) -> list[dict]:
    """The held-out rows behind held_out_prompts, with every column (a judge's rule may read one)."""
    from studio import data
    from studio.runs import manager

    run = manager.find(run_id)
    config = cfg.load_config(run.config_path)
    held_out = data.held_out_rows(run.path, config.data)
    if held_out is None:
        raise StudioError(
            f"run '{run.id}' has no record of the rows it held out of training (it was trained before runs kept "
            "one); type prompts instead"
        )
    if not held_out:
        raise StudioError(
            f"run '{run.id}' held no rows out of training (data.eval_fraction is "
            f"{config.data.eval_fraction}); type prompts instead"
        )
    # One row per prompt: the pairs of one ranking, or an SHP post's several pairs, share it, and answering it
    # twice would count one prompt twice in a win rate.
    unique, seen = [], set()
    for row in held_out:
        key = json.dumps(row["prompt"], sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return random.Random(seed).sample(unique, min(count, len(unique)))


def next_held_out_prompt(run_id: str, shown: list[str], seed: int | None = None) -> tuple[list[dict], bool]:
    """(a random held-out prompt of the run whose text is not in `shown`, whether every one had been shown): blind
    A/B moves to a new prompt each round; once all were shown, it starts over from any of them."""
    everything = held_out_prompts(run_id, MAX_HELD_OUT, random.randrange(2**31) if seed is None else seed)
    seen = set(shown)
    fresh = [p for p in everything if prompt_text(p) not in seen]
    return (fresh or everything)[0], not fresh


def to_jsonl(result: Comparison) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records())


def to_csv(result: Comparison) -> str:
    records = result.records()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()
