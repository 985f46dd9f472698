"""Score answers with the sources of a config's `rewards` section and combine them into one score per answer, as
the stages that sample answers (ppo, grpo, rloo, rejection), `rlhf-studio rewards try` and the Rewards tab do.

    rewards = RewardSet(config.rewards)                    # loads every source: reward runs, built-ins, functions
    rewards.dry_run(prompts[:3], columns_of(rows[:3]))     # each source on a few answers: a bad one fails now
    scored = rewards.score(prompts, answers, columns)      # Scored(combined=[...], per_source={"format": [...]})

A source's scores may hold None ("no score for this answer", which a Python function may return, and
reference_match gives for a row without a reference). As in TRL, None counts 0 in the combined score and is left
out of that source's mean. Combined:
    sum            sum_i weight_i * score_i
    safety_gated   Llama 2 (section 3.2.2) over the two reward runs: the safety run's score where it is below
                   rewards.safety_threshold, else the helpfulness run's; plus sum_i weight_i * score_i of the others
Never imports torch or gradio itself: reward runs load their models through studio/serve/scoring.py when first used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from studio import config as cfg
from studio.errors import ConfigError, RewardError
from studio.rewards import builtins, functions
from studio.serve import scoring

log = logging.getLogger(__name__)

# The answers every source is tried on before a run trains (with the first data rows' prompts and columns): a
# plain one, a short one and an empty one, since a policy writes all three.
PROBE_ANSWERS = ("The answer is 4.", "I am not sure.", "")
# TRL's own keywords to a reward function (not data columns): passed to Python functions, not to built-ins.
TRL_KEYWORDS = ("completion_ids", "trainer_state")


@dataclass
class Scored:
    """The scores of a batch of answers: the combined score of each, and each source's (by name) with None kept."""

    combined: list[float]
    per_source: dict[str, list[float | None]]

    def means(self) -> dict[str, float | None]:
        """Each source's mean over the answers it scored; None where it scored none."""
        return {name: mean_scored(scores) for name, scores in self.per_source.items()}

    def spread(self) -> dict[str, Spread]:
        """Each source's spread over these answers, and the combined score's (under "combined")."""
        out = {name: Spread.of(scores) for name, scores in self.per_source.items()}
        out["combined"] = Spread.of(list(self.combined))
        return out


@dataclass(frozen=True)
class Spread:
    """How a source's scores vary over a set of answers: a source that gives every answer the same score teaches
    the policy nothing."""

    scored: int  # answers with a score (not None)
    unscored: int
    low: float | None
    high: float | None
    mean: float | None
    std: float | None  # population standard deviation

    @classmethod
    def of(cls, scores: list[float | None]) -> Spread:
        given = [s for s in scores if s is not None]
        if not given:
            return cls(0, len(scores), None, None, None, None)
        mean = sum(given) / len(given)
        std = (sum((s - mean) ** 2 for s in given) / len(given)) ** 0.5
        return cls(len(given), len(scores) - len(given), min(given), max(given), mean, std)


def mean_scored(scores: list[float | None]) -> float | None:
    given = [s for s in scores if s is not None]
    return sum(given) / len(given) if given else None


def columns_of(rows: list[dict]) -> dict[str, list]:
    """Data columns as keyword lists, one value per row (None where a row lacks the column), from rows of
    {"prompt": messages, column: value, ...}."""
    names = list(dict.fromkeys(k for row in rows for k in row if k != "prompt"))
    return {name: [row.get(name) for row in rows] for name in names}


def as_completions(answers: list[str]) -> list[list[dict]]:
    """Answers as TRL hands conversational completions to reward functions: [assistant message] each."""
    return [[{"role": "assistant", "content": answer}] for answer in answers]


def run_rewards(run_id: str) -> cfg.RewardsSpec:
    """The rewards section a run of an online stage trained with (its saved config), to try its sources again."""
    from studio.runs import manager

    run = manager.open_run(run_id)
    config = run.config
    if config.stage not in cfg.ONLINE_STAGES:
        raise ConfigError(
            f"run '{run.id}' is a {config.stage} run, which has no reward sources; pick a "
            f"{', '.join(cfg.ONLINE_STAGES)} run"
        )
    return config.rewards


def reward_kinds(run_ids: list[str]) -> dict[str, str]:
    """Each reward run's reward.kind (helpfulness, safety, general), from its saved config."""
    from studio.runs import manager

    return {run_id: cfg.load_config(manager.find(run_id).config_path).reward.kind for run_id in run_ids}


class _Source:
    """One configured source, ready to score: name, weight, and score(prompts, answers, completions, columns, extra)."""

    def __init__(self, source: cfg.RewardSource, index: int, spec: cfg.RewardsSpec, count_tokens):
        self.name, self.weight, self.kind = source.label, source.weight, source.kind
        where = f"rewards.sources[{index}]"
        if source.run:
            self.run_id = source.run
            self.run = scoring.check_reward_run(source.run)
            scoring.score_checked(self.run, [], [])  # loads and caches the model now, not in the first step
        elif source.builtin:
            self.builtin = builtins.get(source.builtin, f"{where}.builtin")
            self.args = self.builtin.check(source.args, where)
            self.count_tokens = count_tokens
        else:
            self.function = functions.load(source.function, f"{where}.function")
            self.time_limit = spec.time_limit

    def score(self, prompts, answers, completions, columns, extra) -> list[float | None]:
        if self.kind == "run":
            return scoring.score_checked(self.run, prompts, answers)
        if self.kind == "builtin":
            try:
                return self.builtin.score(answers, self.args, columns, self.count_tokens)
            except RewardError as err:
                why = str(err).removeprefix(f"{self.builtin.name}: ")
                raise RewardError(f"reward '{self.name}' ({self.builtin.name}): {why}") from None
        return functions.call(self.function, self.name, prompts, completions, columns, self.time_limit, extra)


class RewardSet:
    """Every source of a rewards section, loaded once; `score` gives each answer's combined score and every
    source's own. Building it refuses, in one line, a reward run that cannot score, an unknown built-in or bad
    args, and a Python function that cannot be loaded."""

    def __init__(self, spec: cfg.RewardsSpec, count_tokens: Callable[[str], int] | None = None):
        if not spec.sources:
            raise ConfigError("rewards.sources is empty: add a reward run, a built-in or a Python function")
        self.spec = spec
        self.sources = [_Source(source, i, spec, count_tokens) for i, source in enumerate(spec.sources)]
        self.gated: tuple[str, str] | None = None  # (safety run's name, helpfulness run's name)
        if spec.combine == "safety_gated":
            self.gated = self._gated_pair()

    @property
    def names(self) -> list[str]:
        return [source.name for source in self.sources]

    def _gated_pair(self) -> tuple[str, str]:
        runs = {source.run_id: source.name for source in self.sources if source.kind == "run"}
        kinds = reward_kinds(list(runs))
        safety = [run_id for run_id, kind in kinds.items() if kind == "safety"]
        helpful = [run_id for run_id, kind in kinds.items() if kind != "safety"]
        if len(safety) != 1 or len(helpful) != 1:
            raise ConfigError(
                "rewards.combine = 'safety_gated': needs one reward run trained with reward.kind safety and one "
                f"other; these are {', '.join(f'{r}: {k}' for r, k in kinds.items())}"
            )
        return runs[safety[0]], runs[helpful[0]]

    def score(
        self,
        prompts: list[list[dict]],
        answers: list[str],
        columns: dict[str, list] | None = None,
        completions: list | None = None,
        extra: dict | None = None,
    ) -> Scored:
        """Score answers to prompts (role/content message lists). columns: the data columns of each answer's row, as
        keyword lists; completions: the answers as TRL passed them (default: [assistant message] each); extra:
        TRL's own keywords for Python functions (completion_ids, trainer_state)."""
        columns = columns or {}
        completions = completions if completions is not None else as_completions(answers)
        per_source = {
            source.name: source.score(prompts, answers, completions, columns, extra or {}) for source in self.sources
        }
        return Scored(self.combine(per_source), per_source)

    def combine(self, per_source: dict[str, list[float | None]]) -> list[float]:
        """One score per answer (see the module docstring); None counts 0."""
        count = len(next(iter(per_source.values()))) if per_source else 0
        combined = [0.0] * count
        gated = set(self.gated or ())
        for source in self.sources:
            if source.name in gated:
                continue
            for i, value in enumerate(per_source[source.name]):
                if value is not None:
                    combined[i] += source.weight * value
        if self.gated:
            safety, helpful = (per_source[name] for name in self.gated)
            threshold = self.spec.safety_threshold
            for i in range(count):
                combined[i] += safety[i] if safety[i] < threshold else helpful[i]
        return combined

    def dry_run(self, prompts: list[list[dict]], columns: dict[str, list]) -> None:
        """Score PROBE_ANSWERS with every source, each answer to one of the given prompts (the first data rows, with
        their columns): a function that raises, returns the wrong number of scores, text or NaN, or is too slow
        fails here, before any policy loads, with the one line `score` would give mid-run."""
        if not prompts:
            return
        count = len(PROBE_ANSWERS)
        rows = [i % len(prompts) for i in range(count)]
        probe_columns = {name: [values[i] for i in rows] for name, values in columns.items()}
        scored = self.score([prompts[i] for i in rows], list(PROBE_ANSWERS), probe_columns)
        shown = ", ".join(f"{name} {_show(scores)}" for name, scores in scored.per_source.items())
        log.info("rewards: dry run on %d answers: %s", count, shown)


def _show(scores: list[float | None]) -> str:
    return "[" + ", ".join("None" if s is None else f"{s:.3g}" for s in scores) + "]"
