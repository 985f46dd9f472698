"""Try reward sources on a few answers before a run trains with them: each source's score of each answer, the
combined score, and each source's spread, with a warning for a source that cannot tell the answers apart. The
Rewards tab's "Try reward sources" calls it; so can a script.

    sources = Sources(text="- builtin: format\\n  args: {pattern: '\\\\d+'}", combine="sum")   # written as YAML
    sources = Sources(run="20261101-120000-grpo-ab12")     # a ppo/grpo/rloo/rejection run's configured rewards
    trial = try_typed(sources, "What is 2+2?", "It is 4.\\n---\\nNo idea.", "answer: 4")
    trial = try_sampled(sources, "base (tiny)", DataSpec(source="dolly", path="sample"), 4, 0, GenerationSpec())
    trial.scored.per_source, trial.scored.combined, trial.spreads(), trial.warnings()

Typed answers all reply to one prompt; they are separated by a line holding only ---. Data columns for
reference_match and Python functions are `column: value` lines, the same values for every typed answer. Sampled
answers reply to `count` prompts drawn (seeded) from a data source, one answer each, with each row's own columns.
`length` with unit tokens counts the policy's tokens: the sampling model's tokenizer, or for typed answers the
configured run's model; typed answers tried with written sources have no policy to count with.

Tests: `.venv/bin/pytest -q tests/test_reward_trial.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import yaml

from studio import access
from studio import config as cfg
from studio.config import DataSpec, GenerationSpec, ModelSpec, RewardsSpec
from studio.data import HUB, RESERVED_COLUMNS, SAMPLE, first_that_loads, load
from studio.errors import ConfigError, RewardError, StudioError
from studio.serve import generate
from studio.serve.rewards import RewardSet, Scored, Spread, columns_of, run_rewards

ANSWER_SEPARATOR = "---"  # a line holding only this separates typed answers
MAX_SAMPLES = 32  # answers sampled at most in one try: enough to see a source's spread, quick on a CPU


# ---------------------------------------------------------------- which sources


@dataclass(frozen=True)
class Sources:
    """The sources to try: a run's configured rewards when `run` is set, else `text`, a YAML list of sources (as
    under rewards.sources in a config), combined by `combine`."""

    text: str = ""
    combine: str = "sum"
    run: str | None = None

    def spec(self) -> RewardsSpec:
        if self.run is not None:
            if not self.run.strip():
                raise ConfigError(f"pick a run whose configured rewards to try ({', '.join(cfg.ONLINE_STAGES)})")
            return run_rewards(self.run.strip())
        return parse_sources(self.text, self.combine)

    def policy(self) -> generate.Target | None:
        """The model whose tokens `length` counts in typed answers: the configured run's base model, or None."""
        if self.run is None:
            return None
        from studio.runs import manager

        return generate.model_target(manager.open_run(self.run.strip()).config.model)


def parse_sources(text: str, combine: str) -> RewardsSpec:
    """A YAML list of sources (or one source as a mapping) checked as a grpo config's rewards section would be:
    each key, the built-ins' args (their defaults filled) and the names; ConfigError names the key at fault."""
    if not (text or "").strip():
        raise ConfigError(
            "reward sources: write at least one, e.g. `- builtin: format` with `args: {pattern: ...}` below it, "
            "`- run: RUN_ID` or `- function: FILE.py:NAME`"
        )
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "cannot be read"
        raise ConfigError(f"reward sources: not valid YAML{where} ({problem})") from None
    if isinstance(raw, dict) and any(kind in raw for kind in cfg.REWARD_SOURCE_KINDS):
        raw = [raw]  # one source written without its leading "- "
    if not isinstance(raw, list):
        raise ConfigError(
            f"reward sources: expected a list of sources, each line starting with '- ' (got {_kind_of(raw)})"
        )
    return cfg.from_dict({"stage": "grpo", "rewards": {"sources": raw, "combine": combine}}).rewards


def _kind_of(value) -> str:
    return {dict: "a mapping", str: "text"}.get(type(value), type(value).__name__)


def rewards_yaml(spec: RewardsSpec) -> str:
    """A rewards section as YAML, each source saying only what is set (as a saved config shows it)."""
    return yaml.safe_dump(cfg.to_dict(cfg.RunConfig(stage="grpo", rewards=spec))["rewards"], sort_keys=False)


def online_runs() -> list[dict]:
    """Runs of the stages that score sampled answers (ppo, grpo, rloo, rejection), in any state, whose folder holds a
    config, newest first: {"id", "name", "stage", "state", "model"}."""
    from studio.runs import manager

    rows = [r for r in manager.list_runs() if r["stage"] in cfg.ONLINE_STAGES]
    rows = [r for r in rows if manager.find(r["id"]).config_path.is_file()]
    keys = ("id", "name", "stage", "state", "model")
    return [{k: r[k] for k in keys} for r in reversed(rows)]


# ---------------------------------------------------------------- typed answers


def split_answers(text: str) -> list[str]:
    """Answers typed in one box, separated by lines holding only ---; each stripped, empty ones left out."""
    parts, current = [], []
    for line in (text or "").splitlines():
        if line.strip() == ANSWER_SEPARATOR:
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_columns(text: str) -> dict[str, str]:
    """`column: value` lines -> {column: value} (the value as text, from the first colon on); blank lines skipped."""
    columns: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"data columns line {number} {line.strip()!r}: write it as column: value")
        if name in RESERVED_COLUMNS:
            raise ConfigError(
                f"data columns line {number}: '{name}' is passed to reward functions by TRL itself; "
                "name a column of the data"
            )
        if name in columns:
            raise ConfigError(f"data columns line {number}: column '{name}' is given twice")
        columns[name] = value.strip()
    return columns


def try_typed(sources: Sources, prompt: str, answers_text: str, columns_text: str = "") -> Trial:
    """Score typed answers, all replying to one prompt, with the sources; the columns apply to every answer."""
    spec = sources.spec()
    if not (prompt or "").strip():
        raise ConfigError("type the prompt the answers reply to")
    answers = split_answers(answers_text)
    if not answers:
        raise ConfigError(f"type at least one answer (separate several with a line holding only {ANSWER_SEPARATOR})")
    row = parse_columns(columns_text)
    columns = {name: [value] * len(answers) for name, value in row.items()}
    prompts = [[{"role": "user", "content": prompt.strip()}]] * len(answers)
    return score(spec, prompts, answers, columns, TokenCounter(sources.policy()))


# ---------------------------------------------------------------- sampled answers


@dataclass
class Sampled:
    """Answers sampled from a model to prompts drawn from a data source, with each prompt's row columns."""

    model: str  # the model's label, as the pickers name it
    prompts: list[list[dict]]
    answers: list[str]
    columns: dict[str, list]
    target: generate.Target


def sampling_models() -> list[tuple[str, str]]:
    """(label, key) of every model answers can be sampled from: the answering models (generate.answering_models),
    then the base model of each online run not listed yet (a grpo run not trained yet still names its model)."""
    choices = generate.answering_models()
    listed = {key for _label, key in choices}
    for run in online_runs():
        label = generate.model_target(ModelSpec(name=run["model"])).label
        if label not in listed:
            choices.append((label, label))
            listed.add(label)
    return choices


def sampling_target(key: str) -> generate.Target:
    """The model a sampling_models() key names; a base model only an online run names loads as that run's config
    says (revision, dtype, quantisation)."""
    key = (key or "").strip()
    if not key:
        raise StudioError("pick a model to sample answers from: a base model or a completed run")
    try:
        return generate.target_for(key)
    except StudioError:
        if not (key.startswith("base (") and key.endswith(")")):
            raise
        from studio.runs import manager

        for run in online_runs():
            model = manager.open_run(run["id"]).config.model
            if generate.model_target(model).label == key:
                return generate.model_target(model)
        raise


def _check_count(count, what: str) -> int:
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SAMPLES:
        raise ConfigError(f"{what} = {count}: a whole number from 1 to {MAX_SAMPLES}")
    return count


def sample_answers(model_key: str, data: DataSpec, count: int, seed: int, settings: GenerationSpec) -> Sampled:
    """`count` prompts drawn from the data (seeded; fewer when it has fewer rows), in the data's order, each answered
    once by the model."""
    count = _check_count(count, "answers to sample")
    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed = {seed}: a whole number of at least 0")
    if data.path and data.path not in (SAMPLE, HUB):
        access.check_readable(data.path, "data.path")
    target = sampling_target(model_key)
    loaded = first_that_loads(cfg.SOURCE_FORMATS[data.source], lambda fmt: load(data, fmt))
    picked = sorted(random.Random(seed).sample(range(len(loaded.rows)), min(count, len(loaded.rows))))
    raw_columns = loaded.columns if len(loaded.columns) == len(loaded.rows) else [{}] * len(loaded.rows)
    prompts = [loaded.rows[i]["prompt"] for i in picked]
    answers = generate.shared().generate(target, prompts, settings).texts
    return Sampled(target.label, prompts, answers, columns_of([raw_columns[i] for i in picked]), target)


def try_sampled(
    sources: Sources, model_key: str, data: DataSpec, count: int, seed: int, settings: GenerationSpec
) -> Trial:
    """Sample answers (sample_answers) and score them with the sources, which are checked and loaded first: a bad
    source fails before any model generates."""
    spec = sources.spec()
    counter = TokenCounter(None)
    reward_set = RewardSet(spec, counter)
    sampled = sample_answers(model_key, data, count, seed, settings)
    counter.target = sampled.target
    return _scored(reward_set, sampled.prompts, sampled.answers, sampled.columns, sampled.model)


# ---------------------------------------------------------------- scoring


class TokenCounter:
    """Counts an answer's tokens with the target's tokenizer, loaded when first asked (only `length` with unit
    tokens asks)."""

    def __init__(self, target: generate.Target | None):
        self.target = target

    def __call__(self, text: str) -> int:
        if self.target is None:
            raise RewardError(
                "unit tokens counts the policy's tokens, and typed answers tried with written sources have no "
                "policy; sample the answers from a model, try a run's configured rewards, or count words or "
                "characters"
            )
        tokenizer = generate.shared().tokenizer(self.target)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def score(
    spec: RewardsSpec,
    prompts: list[list[dict]],
    answers: list[str],
    columns: dict[str, list] | None = None,
    count_tokens: TokenCounter | None = None,
    model: str | None = None,
) -> Trial:
    """Every source's score and the combined score of each answer (RewardSet, as a run scores them)."""
    return _scored(RewardSet(spec, count_tokens), prompts, answers, columns or {}, model)


def _scored(reward_set: RewardSet, prompts, answers, columns, model) -> Trial:
    scored = reward_set.score(prompts, answers, columns)
    return Trial(reward_set.spec, prompts, answers, reward_set.names, scored, model)


@dataclass
class Trial:
    """Answers and their scores: each source's (by name, None where it gave none) and the combined one."""

    spec: RewardsSpec
    prompts: list[list[dict]]
    answers: list[str]
    names: list[str]  # the sources, in the config's order
    scored: Scored
    model: str | None = None  # who wrote the answers; None: typed

    def spreads(self) -> dict[str, Spread]:
        """Each source's spread over the answers, by name, in order."""
        return {name: Spread.of(self.scored.per_source[name]) for name in self.names}

    def combined_spread(self) -> Spread:
        return Spread.of(list(self.scored.combined))

    def warnings(self) -> list[str]:
        """One line per source (and for the combined score of several sources) that teaches a policy nothing on these
        answers: it scores none of them, or gives every answer it scores the same score (with two or more scored)."""
        count = len(self.answers)
        lines = []
        checked = [(f"source '{name}'", spread) for name, spread in self.spreads().items()]
        if len(checked) > 1:  # with one source the combined score is that source's, already warned about
            checked.append(("the combined score", self.combined_spread()))
        for what, spread in checked:
            if spread.scored == 0:
                lines.append(f"{what} scores none of the {count} answers: it adds nothing to the combined score")
            elif spread.scored >= 2 and spread.high == spread.low:
                every = "every answer" if spread.scored == count else f"every answer it scores ({spread.scored})"
                lines.append(f"{what} gives {every} the same score, {spread.low:g}: no signal to tell them apart")
        return lines
