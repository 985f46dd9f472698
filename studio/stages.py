"""The stage registry: one record per training stage, holding everything true of it.

    from studio import stages
    ppo = stages.get("ppo")
    ppo.online, ppo.trainer, ppo.key_metric, [p.title for p in ppo.panels]   # True, 'studio.trainers.ppo', ...
    stages.names()                        # ('sft', 'reward', 'dpo', 'kto', 'orpo', 'simpo', 'cpo', 'ppo', ...)
    stages.names(lambda s: s.online)      # the stages whose answers the reward sources score

Every stage-keyed table of the engine and the UI (config validation, the memory estimate, the charts, the health
checks, which runs a stage may start from, the model card, the Train and Runs tabs, the CLI's help) is read from
these records when it is used, so adding a stage is one `register(Stage(...))`, one trainer module (its dotted
name in `trainer`, imported by the worker), one tiny preset and its tests. A test may register a throwaway stage
and `unregister` it after.

This module sits at the bottom of the engine beside config.py (which takes its stage facts from here), so it
imports nothing of the studio but its errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from studio.errors import ConfigError

# The rows a stage trains on: prompt -> response ("sft"), prompt -> chosen / rejected ("preference"), or only the
# prompts, which every format has (the online stages sample their own answers).
SFT, PREFERENCE, PROMPT_ONLY = "sft", "preference", "prompt"

# How a stage counts its optimizer steps with train.max_steps at -1 (pipelines/preview.count_steps does the sums).
BATCHES = "batches"  # transformers' Trainer: ceil(examples / batch) per epoch, one step per accumulation
PROMPTS = "prompts"  # one step per train.batch_size prompts (prompt_steps below; PPO's own loop)
GROUPS = "groups"  # TRL's group samplers: num_generations answers to each prompt, whole steps only
ROUNDS = "rounds"  # rejection sampling: its rounds, whatever max_steps says
STEP_RULES = (BATCHES, PROMPTS, GROUPS, ROUNDS)


# ---------------------------------------------------------------- the parts of a record


@dataclass(frozen=True)
class Panel:
    """One chart: a title and the metric keys drawn on it ("reward/*" matches keys by prefix)."""

    title: str
    keys: tuple[str, ...]
    log_y: bool = False  # the scale the panel opens with; the user may switch it
    when_logged: bool = False  # drawn only once one of its keys was logged (e.g. MFU, which only a GPU logs)

    def keys_in(self, logged: Iterable[str]) -> list[str]:
        """The logged keys this panel draws, in the panel's order (prefix matches sorted among themselves)."""
        logged = set(logged)
        out: list[str] = []
        for pattern in self.keys:
            if pattern.endswith("*"):
                found = sorted(k for k in logged if k.startswith(pattern[:-1]))
            else:
                found = [pattern] if pattern in logged else []
            out.extend(k for k in found if k not in out)
        return out


@dataclass(frozen=True)
class Health:
    """Which health checks read a stage's metrics (names that monitor/health.py maps to its checks), and the
    settings their advice names."""

    checks: tuple[str, ...] = ()
    kl_weight: str = ""  # the setting that holds the policy near its start
    kl_per_answer: bool = False  # KL logged summed over an answer's tokens (PPO), not per token
    kl_note: str = ""  # added to the advice when KL goes negative
    cutoff_fix: str = ""  # what to change when answers run to the length limit
    clip_key: str = ""  # the logged share of clipped probability ratios
    passes: str = ""  # the setting for the updates each batch of answers gets
    chosen_fix: str = ""  # without a reference: the setting that keeps the chosen answers likely


@dataclass(frozen=True)
class Memory:
    """What the memory estimate (modeling/estimate.py) needs beyond the record's own flags."""

    sequences: int = 1  # sequences per example in one training forward pass (a chosen / rejected pair: 2)
    full_logits: bool = False  # the whole vocabulary's logits and float32 log-probabilities are held (own loop)
    value_head: bool = False  # a Linear(hidden, 1) trained beside the policy


@dataclass(frozen=True)
class Stage:
    """Everything true of one training stage."""

    name: str
    summary: str  # one line, for the stage picker, `rlhf-studio train --help` and model cards
    data_format: str  # SFT, PREFERENCE or PROMPT_ONLY
    trainer: str  # the module whose train(config, run) trains it, imported by the worker when a run starts
    section: str  # its own config section (RunConfig.<section>), beside model, data, lora and train
    online: bool = False  # samples answers that the reward sources (rewards.sources) score
    votes_round: bool = False  # trains a vote set's next round against its reward model (Llama 2: PPO, rejection)
    writes_text: bool = True  # its weights write answers (a policy); False: they score answers (a reward model)
    reference: bool = False  # compares the policy with a frozen reference (the starting weights)
    own_loop: bool = False  # the studio's own training loop, not a TRL trainer: ddp only, logs response_length
    also_starts_from: tuple[str, ...] = ()  # stages it may start from besides every policy stage
    steps: str = BATCHES  # how its optimizer steps are counted (STEP_RULES)
    examples_per_row: int = 1  # training examples a row makes (KTO: a pair is one desirable and one undesirable)
    learning_metric: tuple[str, str] = ("", "")  # (logged key, short name) that says whether it is learning
    panels: tuple[Panel, ...] = ()  # its charts, in order
    health: Health = field(default_factory=Health)
    memory: Memory = field(default_factory=Memory)

    def __post_init__(self):
        formats = (SFT, PREFERENCE, PROMPT_ONLY)
        if self.data_format not in formats:
            raise ValueError(f"stage {self.name}: data_format {self.data_format!r} is not one of {', '.join(formats)}")
        if self.steps not in STEP_RULES:
            raise ValueError(f"stage {self.name}: steps {self.steps!r} is not one of {', '.join(STEP_RULES)}")

    @property
    def key_metric(self) -> str:
        """The number the runs table shows first: the reward for the stages that learn from one, else the loss."""
        return "reward" if self.online else "loss"

    @property
    def sections(self) -> tuple[str, ...]:
        """The config sections that shape its training, beside model, lora and train."""
        return (self.section, "rewards") if self.online else (self.section,)

    @property
    def x_label(self) -> str:
        """What one step of its metric rows is: rejection sampling writes one row per round."""
        return "round" if self.steps == ROUNDS else "step"


# ---------------------------------------------------------------- the registry

_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage; every table read after this sees it. A name already taken is refused."""
    if stage.name in _REGISTRY:
        raise ValueError(f"stage {stage.name!r} is registered already")
    _REGISTRY[stage.name] = stage
    return stage


def unregister(name: str) -> None:
    """Take a stage out again (a test's throwaway stage)."""
    del _REGISTRY[name]


def names(where: Callable[[Stage], bool] | None = None) -> tuple[str, ...]:
    """The registered stage names in registration order, those for which `where` holds if given."""
    return tuple(name for name, stage in _REGISTRY.items() if where is None or where(stage))


def all_stages() -> tuple[Stage, ...]:
    return tuple(_REGISTRY.values())


def find(name: str) -> Stage | None:
    return _REGISTRY.get(name)


def get(name: str) -> Stage:
    """The record of a stage; ConfigError naming the allowed stages for an unknown one."""
    stage = _REGISTRY.get(name)
    if stage is None:
        raise ConfigError(f"stage = {name!r}: allowed values are {', '.join(_REGISTRY)}")
    return stage


def starts_from(name: str) -> tuple[str, ...]:
    """The stages whose runs can give this stage its starting weights: every policy, and what the record adds."""
    policies = names(lambda s: s.writes_text)
    return (*policies, *(s for s in get(name).also_starts_from if s not in policies))


def prompt_steps(train, prompts: int, processes: int = 1) -> int:
    """Optimizer steps of a stage that takes one step per train.batch_size prompts on each process (PPO):
    train.max_steps when set, else train.epochs over the prompts. `train` is the run config's TrainSpec."""
    if train.max_steps > 0:
        return train.max_steps
    return max(1, math.ceil(train.epochs * prompts / (train.batch_size * processes)))


class Names(Sequence):
    """The names of the stages `where` holds for, read from the registry each time the view is used, so a module
    constant built from it (config.STAGES, a field's choices) sees a stage registered later."""

    def __init__(self, where: Callable[[Stage], bool] | None = None):
        self._where = where

    def _now(self) -> tuple[str, ...]:
        return names(self._where)

    def __getitem__(self, index):
        return self._now()[index]

    def __len__(self) -> int:
        return len(self._now())

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __contains__(self, name) -> bool:
        return name in self._now()

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and self._now() == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._now())


class Facts(Mapping):
    """stage name -> one fact of its record (`fact(stage)`), read from the registry each time it is used."""

    def __init__(self, fact: Callable[[Stage], object]):
        self._fact = fact

    def __getitem__(self, name: str):
        stage = _REGISTRY.get(name)
        if stage is None:
            raise KeyError(name)
        return self._fact(stage)

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __repr__(self) -> str:
        return repr(dict(self))


# ---------------------------------------------------------------- the stages

# Every stage's charts end with these: each stage logs tokens/s (and MFU and peak memory on a GPU) itself.
_THROUGHPUT = (
    Panel("Tokens/s (trained)", ("tokens_per_second",), when_logged=True),
    Panel("MFU (fraction of the GPU's peak)", ("mfu",), when_logged=True),
    Panel("GPU memory, peak allocated (GiB)", ("gpu_memory_gib",), when_logged=True),
)


def _losses(*extra: Panel) -> tuple[Panel, ...]:
    return (
        Panel("Loss", ("loss", "eval_loss")),
        *extra,
        Panel("Learning rate", ("learning_rate",)),
        Panel("Gradient norm", ("grad_norm",)),
        *_THROUGHPUT,
    )


_PREFERENCE_REWARDS = Panel(
    "Reward chosen / rejected", ("rewards/chosen", "rewards/rejected", "eval_rewards/chosen", "eval_rewards/rejected")
)
_MARGINS = Panel("Reward margin", ("rewards/margins", "eval_rewards/margins"))
_ACCURACY = Panel("Reward accuracy", ("rewards/accuracies", "eval_rewards/accuracies"))
_NLL = Panel("NLL loss on the chosen answers", ("nll_loss", "eval_nll_loss"))
# The judges watching an online run (eval.judges), drawn next to its reward: what the reward-hacking warning reads.
_JUDGES = Panel("Judges on held-out answers (eval.judges)", ("judge/*",), when_logged=True)

_ONLINE_TRL = (  # GRPO and RLOO: TRL's keys, plus our reward/<run id>
    Panel("Reward", ("reward", "reward/*")),
    _JUDGES,
    Panel("Reward spread (std)", ("reward_std",)),
    Panel("KL to the starting model (per token)", ("kl",)),
    Panel("Entropy (per token)", ("entropy",)),
    Panel("Loss", ("loss",)),
    Panel("Answer length (tokens)", ("completions/mean_length", "completions/mean_terminated_length")),
    Panel("Answers cut off at the length limit", ("completions/clipped_ratio",)),
    Panel("Clipped probability ratios", ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean")),
    Panel("Learning rate", ("learning_rate",)),
    *_THROUGHPUT,
)

# The training loss of these stages falls from the first row in a healthy run. Online stages are left out: their
# loss is a policy-gradient objective whose level says little, and rejection's rows are rounds on new answers.
_LOSS_CHECKS = ("loss_diverging", "eval_loss_rising")
# Every stage that samples answers also watches each reward source (reward/<name>): no signal, saturated, no scores.
_SOURCE_CHECKS = ("source_no_signal", "source_saturated", "source_unscored")
# ... and reads its answers (answers/* in the metrics): the same answer to different prompts, answers growing to the
# length limit as the reward rises, answers nothing scored; and with judges watching (judge/<name>, eval.judges), the
# reward rising while a judge's rating falls.
_ANSWER_CHECKS = ("repeated_answers", "length_hacking", "unscored_answers", "reward_hacking")
_RL_CHECKS = (
    "kl_negative",
    "kl_exploding",
    "length_runaway",
    "length_drop",
    "entropy_collapse",
    "reward_falling",
    *_SOURCE_CHECKS,
    *_ANSWER_CHECKS,
)


def _group_sampler(name: str, summary: str) -> Stage:
    """GRPO and RLOO: TRL's online trainers that compare a group of answers to each prompt."""
    return Stage(
        name,
        summary,
        PROMPT_ONLY,
        f"studio.trainers.{name}",
        name,
        online=True,
        reference=True,
        steps=GROUPS,
        learning_metric=("kl", "kl"),
        panels=_ONLINE_TRL,
        health=Health(
            (*_RL_CHECKS, "clip_fraction_high"),
            kl_weight=f"{name}.beta",
            cutoff_fix=f"set {name}.mask_truncated_completions or raise {name}.beta",
            clip_key="clip_ratio/region_mean",
            passes=f"{name}.num_iterations",
        ),
    )


for _stage in (
    Stage(
        "sft",
        "supervised fine-tuning on prompt -> response rows",
        SFT,
        "studio.trainers.sft",
        "sft",
        learning_metric=("mean_token_accuracy", "token acc"),
        panels=_losses(Panel("Token accuracy", ("mean_token_accuracy", "eval_mean_token_accuracy"))),
        health=Health(_LOSS_CHECKS),
    ),
    Stage(
        "reward",
        "a reward model trained on chosen / rejected pairs",
        PREFERENCE,
        "studio.trainers.reward",
        "reward",
        writes_text=False,
        also_starts_from=("reward",),
        learning_metric=("accuracy", "accuracy"),
        panels=_losses(
            Panel("Accuracy (chosen scored higher)", ("accuracy", "eval_accuracy")),
            Panel("Margin (chosen - rejected)", ("margin", "eval_margin")),
            Panel(
                "Chosen / rejected reward",
                ("chosen_reward", "rejected_reward", "eval_chosen_reward", "eval_rejected_reward"),
            ),
        ),
        health=Health((*_LOSS_CHECKS, "rm_at_chance")),
        memory=Memory(sequences=2),
    ),
    Stage(
        "dpo",
        "direct preference optimisation on chosen / rejected pairs, no reward model",
        PREFERENCE,
        "studio.trainers.dpo",
        "dpo",
        reference=True,
        learning_metric=("rewards/margins", "margin"),
        panels=_losses(_PREFERENCE_REWARDS, _MARGINS, _ACCURACY),
        health=Health((*_LOSS_CHECKS, "chosen_reward_falling")),
        memory=Memory(sequences=2),
    ),
    Stage(
        "kto",
        "KTO on desirable / undesirable answers, no reward model",
        PREFERENCE,
        "studio.trainers.kto",
        "kto",
        reference=True,
        examples_per_row=2,
        learning_metric=("rewards/margins", "margin"),
        panels=_losses(_PREFERENCE_REWARDS, _MARGINS, Panel("KL to the reference (batch estimate)", ("kl", "eval_kl"))),
        health=Health((*_LOSS_CHECKS, "chosen_reward_falling")),
        memory=Memory(sequences=2),
    ),
    # The reference-free stages: TRL's rewards/* are beta x the policy's own log-likelihood of each answer.
    Stage(
        "orpo",
        "ORPO: SFT loss plus an odds-ratio penalty on rejected answers, no reference model",
        PREFERENCE,
        "studio.trainers.orpo",
        "orpo",
        learning_metric=("rewards/margins", "margin"),
        panels=_losses(
            _PREFERENCE_REWARDS,
            _MARGINS,
            _ACCURACY,
            _NLL,
            Panel("Log odds, chosen over rejected", ("log_odds_chosen", "eval_log_odds_chosen")),
            Panel("Odds-ratio term, log sigmoid(log odds)", ("log_odds_ratio", "eval_log_odds_ratio")),
        ),
        health=Health(
            (*_LOSS_CHECKS, "chosen_reward_falling"), chosen_fix="lower orpo.beta, so the NLL term weighs more"
        ),
        memory=Memory(sequences=2),
    ),
    Stage(
        "simpo",
        "SimPO: length-normalised likelihood margin, no reference model (TRL's CPOTrainer, simpo loss)",
        PREFERENCE,
        "studio.trainers.simpo",
        "simpo",
        learning_metric=("rewards/margins", "margin"),
        panels=_losses(_PREFERENCE_REWARDS, _MARGINS, _ACCURACY, _NLL),
        health=Health(
            (*_LOSS_CHECKS, "chosen_reward_falling"),
            chosen_fix="set simpo.cpo_alpha above 0, an NLL term on the chosen answers",
        ),
        memory=Memory(sequences=2),
    ),
    Stage(
        "cpo",
        "CPO: DPO's loss without a reference model, plus an NLL term on chosen answers",
        PREFERENCE,
        "studio.trainers.cpo",
        "cpo",
        learning_metric=("rewards/margins", "margin"),
        panels=_losses(_PREFERENCE_REWARDS, _MARGINS, _ACCURACY, _NLL),
        health=Health(
            (*_LOSS_CHECKS, "chosen_reward_falling"),
            chosen_fix="raise cpo.cpo_alpha, the weight of the NLL term on the chosen answers",
        ),
        memory=Memory(sequences=2),
    ),
    Stage(
        "ppo",
        "PPO: samples answers, reward sources score them (InstructGPT)",
        PROMPT_ONLY,
        "studio.trainers.ppo",
        "ppo",
        online=True,
        votes_round=True,
        reference=True,
        own_loop=True,
        steps=PROMPTS,
        learning_metric=("kl", "kl"),
        panels=(
            Panel("Reward", ("reward", "reward/*", "reward_with_eos_penalty")),
            _JUDGES,
            Panel("KL to the starting model (per answer)", ("kl",)),
            Panel("KL coefficient", ("kl_coef",)),
            Panel("Entropy (per token)", ("entropy",)),
            Panel("Policy loss", ("policy_loss",)),
            Panel("Value loss", ("value_loss",)),
            Panel("Clip fraction", ("clip_fraction", "value_clip_fraction")),
            Panel("Approximate KL per update", ("approx_kl",)),
            Panel("Answer length (tokens)", ("response_length",)),
            Panel("Answers ending with end-of-turn", ("eos_fraction",)),
            Panel("Seconds per step: generation / optimization", ("time/generation", "time/optimization")),
            Panel("Learning rate", ("learning_rate",)),
            *_THROUGHPUT,
        ),
        health=Health(
            (*_RL_CHECKS, "clip_fraction_high"),
            kl_weight="ppo.kl_coef (or set ppo.target_kl)",
            kl_per_answer=True,
            kl_note="; ppo.kl_estimator=k3 is never negative",
            cutoff_fix="raise ppo.missing_eos_penalty or ppo.kl_coef",
            clip_key="clip_fraction",
            passes="ppo.ppo_epochs",
        ),
        memory=Memory(full_logits=True, value_head=True),
    ),
    Stage(
        "rejection",
        "rejection sampling: keep the best of K answers, fine-tune on it (Llama 2)",
        PROMPT_ONLY,
        "studio.trainers.rejection",
        "rejection",
        online=True,
        votes_round=True,
        own_loop=True,
        steps=ROUNDS,
        learning_metric=("reward_gain", "gain"),
        panels=(
            Panel("Reward (all answers, best of K)", ("reward", "reward_best", "reward/*")),
            _JUDGES,
            Panel("Reward gain from best of K", ("reward_gain",)),
            Panel("Fine-tuning loss", ("loss",)),
            Panel("Prompts kept", ("kept",)),
            Panel("Answer length (tokens)", ("response_length", "best_response_length")),
            Panel("Answers ending with end-of-turn", ("eos_fraction",)),
            Panel("Seconds per round: generation / training", ("time/generation", "time/training")),
            *_THROUGHPUT,
        ),
        health=Health(
            ("length_runaway", "length_drop", "reward_falling", *_SOURCE_CHECKS, *_ANSWER_CHECKS),
            cutoff_fix="set rejection.min_score or lower rejection.temperature",
        ),
    ),
    _group_sampler("grpo", "GRPO: answers compared within their group, no value model"),
    _group_sampler("rloo", "RLOO: each answer against the mean of the others, no value model"),
):
    register(_stage)
