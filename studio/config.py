"""Typed run configuration: the only home of defaults, ranges and help text.

A run is described by a `RunConfig` made of small specs (model, data, LoRA, training, one per stage).
Configs come from YAML files and `--set section.key=value` overrides; a bad value is refused before
anything loads, with one line naming the key, the value and what is allowed.

    config = load_config("presets/sft-dolly-tiny.yaml", ["train.max_steps=20"])
    print(to_yaml(config))

The UI reads `field_info()` to build its forms, so help text and each key's label in words ("Learning rate"
for train.learning_rate) are written once, here.
This module imports only the standard library, PyYAML, the studio's errors and stage registry (stages.py, where
each stage's facts live) and the reward rules that check a source's parameters (studio/rewards, standard library
only): the UI and the run launcher use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studio import stages
from studio.errors import ConfigError


def option(
    default: Any,
    help: str,
    *,
    label: str | None = None,
    choices: tuple | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    separator: str = ",",
) -> Any:
    """A config field with its help text, its label in words for the UI ("Learning rate"; left out, one is made from
    the field's name) and allowed values, read by validation and by the UI. A list field given as text (a form,
    --set) is split on `separator`: commas for names, new lines for prompts that hold commas."""
    meta = {
        "help": help,
        "label": label,
        "choices": choices,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "separator": separator,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# The stages and their facts come from the registry (studio/stages.py), read each time they are used, so a stage
# registered there is a valid `stage` here.
STAGES = stages.Names()
STAGE_SUMMARIES = stages.Facts(lambda s: s.summary)  # one line per stage, for the stage picker and docs
# What each source can give: prompt -> response rows ("sft") and/or prompt -> chosen/rejected ("preference").
SOURCE_FORMATS = {
    "dolly": ("sft",),
    "alpaca": ("sft",),
    "shp": ("preference",),
    "hh-rlhf": ("preference",),
    "oasst": ("sft", "preference"),
    "file": ("sft", "preference"),
    "votes": ("preference",),  # the pairs voted on in the Compare tab's blind A/B mode
    "arithmetic": ("sft",),  # questions with a checkable answer column, for the reward rules
}
DATA_SOURCES = tuple(SOURCE_FORMATS)
# The online stages need only prompts, which every format has: they sample their own answers and reward models
# score them.
PROMPT_ONLY = stages.PROMPT_ONLY
STAGE_FORMATS = stages.Facts(lambda s: s.data_format)
REWARD_COMBINES = ("sum", "safety_gated")
# Stages that sample their own answers and score them with the sources of the rewards section.
ONLINE_STAGES = stages.Names(lambda s: s.online)
ROUND_STAGES = stages.Names(lambda s: s.votes_round)  # what a vote set's next round may train its policy with
DPO_LOSS_TYPES = (
    "sigmoid",
    "ipo",
    "hinge",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
)  # TRL 1.16's paired losses
# The experiment trackers train.report_to offers; studio/runs/trackers.py has one class for each.
TRACKERS = ("trackio", "tensorboard", "wandb", "mlflow")
# The TRL 1.16 losses that read label_smoothing; every other loss ignores it, so a value there would be a no-op.
LABEL_SMOOTHING_LOSSES = ("robust", "exo_pair", "aot", "aot_unpaired")
GRPO_LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's GRPO losses


@dataclass
class ModelSpec:
    name: str = option(
        "tiny",
        "Hub id (e.g. HuggingFaceTB/SmolLM2-135M-Instruct), a local folder, "
        "or 'tiny' for the built-in tiny model that needs no download",
        label="Base model",
    )
    revision: str | None = option(
        None, "Hub branch, tag or commit to load; empty means the default branch", label="Revision"
    )
    dtype: str = option(
        "auto",
        "Weight dtype: auto picks bfloat16 on GPUs that support it, float16 on older GPUs and float32 on CPU",
        label="Weight precision",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    quantization: str = option(
        "none",
        "Load the frozen base weights quantised with bitsandbytes: 4bit (NF4, QLoRA) or 8bit; needs LoRA on",
        label="Quantisation",
        choices=("none", "4bit", "8bit"),
    )
    double_quant: bool = option(
        True,
        "With 4bit: quantise the quantisation constants too (saves about 0.4 bits per weight)",
        label="Double quantisation",
    )
    trust_remote_code: bool = option(
        False,
        "Run Python code shipped with the model repository. Only for repositories you trust",
        label="Trust remote code",
    )
    attention: str = option(
        "auto",
        "Attention kernel: auto uses FlashAttention 2 on a GPU when the flash-attn "
        "package is installed, else PyTorch's SDPA; eager is the plain, slowest one",
        label="Attention kernel",
        choices=("auto", "flash_attention_2", "sdpa", "eager"),
    )


@dataclass
class ColumnMap:
    """For data.source: file. Empty entries are detected from common layouts (TRL prompt/completion and
    prompt/chosen/rejected, conversational messages, Alpaca, ShareGPT)."""

    prompt: str | None = option(
        None, "Column holding the prompt (text, or a list of role/content messages)", label="Prompt column"
    )
    response: str | None = option(None, "Column holding the response, for SFT", label="Response column")
    chosen: str | None = option(
        None, "Column holding the preferred response, for preference pairs", label="Chosen column"
    )
    rejected: str | None = option(
        None, "Column holding the dispreferred response, for preference pairs", label="Rejected column"
    )
    system: str | None = option(None, "Column holding a system prompt, if any", label="System prompt column")
    messages: str | None = option(
        None,
        "Column holding a whole conversation as role/content messages; the last assistant turn is the response",
        label="Messages column",
    )


@dataclass
class VotesSpec:
    """For data.source: votes. How a vote set's graded votes and rankings become preference pairs."""

    set: str = option(
        "default",
        "The vote set to train on (made in the Compare tab's Vote view); data.path, when given, reads a votes file "
        "instead",
        label="Vote set",
    )
    margin_scale: str = option(
        "small",
        "Llama 2's margins for the four grades (significantly better, better, slightly better, negligibly better): "
        "small 1, 2/3, 1/3, 0; large 3, 2, 1, 0. Used by the reward stage's margin loss",
        label="Margin scale",
        choices=("small", "large"),
    )
    group_rankings: bool = option(
        True,
        "Give the pairs of one ranking a shared group, so the reward stage weighs a ranking of K answers as one "
        "comparison (InstructGPT), not K(K-1)/2",
        label="Group each ranking's pairs",
    )


@dataclass
class DataSpec:
    source: str = option(
        "dolly",
        "Dataset source: dolly, alpaca (SFT); shp, hh-rlhf (preference pairs); "
        "oasst (both); file (your own file); votes (a vote set from the Compare tab: "
        "graded votes and rankings); arithmetic (SFT, with an answer column for reward rules)",
        label="Data source",
        choices=DATA_SOURCES,
    )
    path: str | None = option(
        None,
        "Local file in the source's raw schema (jsonl, jsonl.gz, json, csv, "
        "parquet); 'sample' for the small sample bundled with the studio; "
        "empty or 'hub' loads the source from the Hugging Face Hub (for votes: "
        "empty reads the vote set data.votes.set names)",
        label="Data file",
    )
    subset: str | None = option(
        None,
        "Hub configuration or data directory of the source, e.g. helpful-base "
        "for hh-rlhf; empty uses the source's default",
        label="Subset",
    )
    limit: int | None = option(
        None, "Use at most this many rows (after filtering); empty uses all", label="Max rows", ge=1
    )
    categories: list[str] = option(
        [], "Dolly: keep only these categories (e.g. open_qa, summarization); empty keeps all", label="Dolly categories"
    )
    domains: list[str] = option(
        [], "SHP: keep only these subreddit domains (e.g. askscience_train); empty keeps all", label="SHP domains"
    )
    min_score_ratio: float = option(
        2.0,
        "SHP: keep pairs whose preferred answer scored at least this many times the other (the SHP authors advise 2)",
        label="Min score ratio",
        ge=1.0,
    )
    languages: list[str] = option(
        ["en"], "OpenAssistant: keep conversations in these languages; empty keeps all", label="Languages"
    )
    columns: ColumnMap = field(default_factory=ColumnMap)
    votes: VotesSpec = field(default_factory=VotesSpec)
    on_bad_rows: str = option(
        "drop",
        "Rows that cannot be used (missing column, empty text, wrong type): "
        "drop them and count by reason, or fail naming the first one",
        label="Unusable rows",
        choices=("drop", "fail"),
    )
    eval_fraction: float = option(
        0.05,
        "Share of rows held out of training, by every stage (PPO, rejection sampling, GRPO and RLOO hold out "
        "prompts): eval metrics are measured on them, and compare --held-out draws its prompts from them",
        label="Held-out share",
        ge=0.0,
        lt=0.5,
    )
    max_length: int = option(
        512,
        "Longest example in tokens, chat template included; longer rows are "
        "dropped and counted (or stop the run, see on_bad_rows)",
        label="Max length in tokens",
        ge=16,
        le=131072,
    )


@dataclass
class LoraSpec:
    enabled: bool = option(True, "Train a LoRA adapter; off trains every weight (full fine-tuning)", label="Use LoRA")
    r: int = option(16, "LoRA rank: higher learns more and uses more memory", label="LoRA rank", ge=1, le=1024)
    alpha: int = option(
        32, "LoRA scaling numerator; the update is scaled by alpha / r", label="LoRA alpha", ge=1, le=4096
    )
    dropout: float = option(
        0.05,
        "Dropout on the LoRA input during training (the reward and DPO stages turn all dropout off, as TRL does)",
        label="LoRA dropout",
        ge=0.0,
        lt=1.0,
    )
    target_modules: list[str] = option(
        ["all-linear"],
        "Layer names to adapt (e.g. q_proj, v_proj), or all-linear for every linear layer but the output head",
        label="Target modules",
    )
    use_dora: bool = option(
        False, "DoRA: weight-decomposed LoRA, often better at low rank, somewhat slower", label="Use DoRA"
    )
    use_rslora: bool = option(
        False, "rsLoRA: scale by alpha / sqrt(r), which keeps high ranks stable", label="Use rsLoRA"
    )


@dataclass
class TrainSpec:
    max_steps: int = option(
        -1, "Stop after this many optimizer steps; -1 runs train.epochs full passes", label="Max steps", ge=-1
    )
    epochs: float = option(1.0, "Passes over the training set when max_steps is -1", label="Epochs", gt=0.0, le=1000.0)
    learning_rate: float = option(2e-4, "Peak learning rate", label="Learning rate", gt=0.0, le=1.0)
    batch_size: int = option(4, "Examples per device per forward pass", label="Batch size", ge=1, le=4096)
    gradient_accumulation_steps: int = option(
        1,
        "Forward passes summed into one optimizer step; the effective batch is batch_size x this x devices",
        label="Gradient accumulation",
        ge=1,
        le=4096,
    )
    warmup_ratio: float = option(
        0.03, "Share of steps spent warming the learning rate up from 0", label="Warm-up share", ge=0.0, lt=1.0
    )
    lr_scheduler: str = option(
        "cosine",
        "How the learning rate falls after warm-up",
        label="Learning rate schedule",
        choices=("cosine", "linear", "constant", "constant_with_warmup"),
    )
    weight_decay: float = option(0.0, "AdamW weight decay", label="Weight decay", ge=0.0, le=1.0)
    max_grad_norm: float = option(
        1.0, "Clip the gradient norm to this; 0 turns clipping off", label="Gradient clipping", ge=0.0
    )
    logging_steps: int = option(5, "Write metrics every this many optimizer steps", label="Log every N steps", ge=1)
    eval_steps: int = option(
        50,
        "Measure eval loss every this many steps (and at the end); 0 only at the end",
        label="Evaluate every N steps",
        ge=0,
    )
    save_steps: int = option(
        100, "Write a resumable checkpoint every this many steps; 0 only at the end", label="Save every N steps", ge=0
    )
    save_total_limit: int = option(2, "Keep at most this many checkpoints (the newest)", label="Checkpoints kept", ge=1)
    gradient_checkpointing: bool = option(
        False,
        "Recompute activations in the backward pass: much less memory, about 30% slower",
        label="Gradient checkpointing",
    )
    liger_kernel: bool = option(
        True,
        "SFT with Liger's fused kernels (RMSNorm, RoPE, SwiGLU, and a loss that "
        "never holds the full logits) on a GPU, when the liger-kernel package is "
        "installed",
        label="Liger kernels",
    )
    seed: int = option(42, "Random seed for data order, LoRA init and sampling", label="Random seed", ge=0)
    report_to: list[str] = option(
        [],
        "Experiment trackers that also receive every metrics row and the config (studio/runs/trackers.py); "
        "their tokens come from their own environment variables (WANDB_API_KEY, MLFLOW_TRACKING_URI, ...)",
        label="Experiment trackers",
        choices=TRACKERS,
    )
    run_name: str = option("", "The run's name in the trackers; empty uses the run's id", label="Tracker run name")
    processes: int = option(
        1,
        "Training processes, one per GPU; more than 1 starts the run through accelerate "
        "launch (on a machine without a GPU: CPU processes over gloo). batch_size is per "
        "process",
        label="Training processes",
        ge=1,
        le=64,
    )
    distributed: str = option(
        "ddp",
        "How several processes share the work: ddp keeps a whole model in each; "
        "deepspeed-zero2 shards optimizer state and gradients, deepspeed-zero3 and "
        "fsdp the weights too (studio/runs/launch/ holds their accelerate configs)",
        label="Multi-process strategy",
        choices=("ddp", "deepspeed-zero2", "deepspeed-zero3", "fsdp"),
    )


@dataclass
class SFTSpec:
    completion_only_loss: bool = option(
        True,
        "Train only on the response tokens; the prompt and chat template tokens are masked out of the loss",
        label="Loss on responses only",
    )
    packing: bool = option(
        False,
        "Pack several short examples into each max_length sequence, each still "
        "attending only to itself: faster on data of mixed lengths (bench/packing.py)",
        label="Pack examples",
    )


@dataclass
class InitSpec:
    from_run: str | None = option(
        None,
        "Start from an earlier run's weights, by its id: e.g. an SFT run becomes "
        "the starting point of a reward model, DPO or PPO run. The earlier "
        "run's base model is used, with its adapter merged in",
        label="Start from run",
    )


@dataclass
class RewardSpec:
    use_margin: bool = option(
        False,
        "Llama 2 margin loss: -log sigmoid(r_chosen - r_rejected - margin), the "
        "margin taken from the data (SHP score ratio, OpenAssistant rank gap, or "
        "a margin column in your file)",
        label="Margin loss",
    )
    center_rewards_coefficient: float | None = option(
        None,
        "Push rewards towards mean zero with this weight "
        "(e.g. 0.01), so scores stay comparable across "
        "prompts; empty turns it off",
        label="Reward centring",
        ge=0.0,
        le=10.0,
    )
    kind: str = option(
        "helpfulness",
        "What this reward model judges; PPO can combine a helpfulness and a safety model (Llama 2)",
        label="Reward kind",
        choices=("helpfulness", "safety", "general"),
    )


@dataclass
class DPOSpec:
    SMOOTHING_LOSSES = LABEL_SMOOTHING_LOSSES  # not a field: the losses that read label_smoothing
    beta: float = option(
        0.1, "DPO temperature: higher keeps the policy closer to the reference", label="Beta", gt=0.0, le=10.0
    )
    loss_type: str = option(
        "sigmoid",
        "DPO loss: sigmoid (the DPO paper), ipo, hinge, robust and the other paired losses TRL offers",
        label="Loss type",
        choices=DPO_LOSS_TYPES,
    )
    label_smoothing: float = option(
        0.0,
        "Assumed share of flipped preference labels; used by the robust, exo_pair, aot and aot_unpaired losses",
        label="Label smoothing",
        ge=0.0,
        lt=0.5,
    )


@dataclass
class KTOSpec:
    beta: float = option(
        0.1, "KTO temperature: higher keeps the policy closer to the reference", label="Beta", gt=0.0, le=10.0
    )
    loss_type: str = option(
        "kto", "kto (the KTO paper) or apo_zero_unpaired", label="Loss type", choices=("kto", "apo_zero_unpaired")
    )
    desirable_weight: float = option(
        1.0, "Weight of the loss on chosen (desirable) answers", label="Desirable weight", gt=0.0, le=100.0
    )
    undesirable_weight: float = option(
        1.0, "Weight of the loss on rejected (undesirable) answers", label="Undesirable weight", gt=0.0, le=100.0
    )


# The reference-free stages (orpo, simpo, cpo) score an answer by the policy's own log-likelihood, so no frozen copy
# of the starting weights is needed. Their fields are TRL 1.16's ORPOConfig and CPOConfig ones.
CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo")  # CPOConfig's losses but simpo, which is the simpo stage
CPO_SMOOTHING_LOSSES = ("sigmoid",)  # hinge and ipo ignore label_smoothing


def label_smoothing_option(config) -> dict:
    """The label_smoothing keyword for the stage's TRL config, only where its loss reads it (the config check
    refuses a value that a loss would ignore). The stage's section lists those losses as SMOOTHING_LOSSES."""
    spec = getattr(config, stages.get(config.stage).section)
    return {"label_smoothing": spec.label_smoothing} if spec.loss_type in spec.SMOOTHING_LOSSES else {}


@dataclass
class ORPOSpec:
    beta: float = option(
        0.1,
        "Weight of the odds-ratio term beside the chosen answers' NLL loss (the ORPO paper's lambda): higher "
        "separates chosen from rejected harder",
        label="Lambda (beta)",
        gt=0.0,
        le=10.0,
    )


@dataclass
class CPOSpec:
    SMOOTHING_LOSSES = CPO_SMOOTHING_LOSSES  # not a field: the losses that read label_smoothing
    beta: float = option(
        0.1, "CPO temperature on the log-likelihood gap between chosen and rejected", label="Beta", gt=0.0, le=10.0
    )
    loss_type: str = option(
        "sigmoid",
        "Preference loss: sigmoid (the CPO paper), hinge (SLiC) or ipo",
        label="Loss type",
        choices=CPO_LOSS_TYPES,
    )
    cpo_alpha: float = option(
        1.0,
        "Weight of the NLL loss on the chosen answers, which keeps them likely (0 turns it off)",
        label="NLL weight (alpha)",
        ge=0.0,
        le=10.0,
    )
    label_smoothing: float = option(
        0.0,
        "Assumed share of flipped preference labels; used by the sigmoid loss only",
        label="Label smoothing",
        ge=0.0,
        lt=0.5,
    )


@dataclass
class SimPOSpec:
    beta: float = option(
        2.0,
        "SimPO reward scale on the length-normalised log-likelihood (the paper uses 2 to 10)",
        label="Beta",
        gt=0.0,
        le=20.0,
    )
    gamma: float = option(
        0.5,
        "Target reward margin the chosen answer must clear over the rejected one (TRL's simpo_gamma)",
        label="Target margin (gamma)",
        ge=0.0,
        le=10.0,
    )
    cpo_alpha: float = option(
        0.0,
        "Weight of an NLL loss on the chosen answers; 0 is plain SimPO, above 0 mixes in CPO's NLL term",
        label="NLL weight (alpha)",
        ge=0.0,
        le=10.0,
    )


@dataclass
class RewardSource:
    """One scorer of sampled answers: exactly one of a reward run, a built-in rule or a Python function."""

    run: str | None = option(
        None, "A completed reward run's id: its reward model scores each answer", label="Reward run"
    )
    builtin: str | None = option(
        None,
        "A built-in rule: format, length, contains, excludes, reference_match, json_valid or no_repetition; "
        "its parameters go under args",
        label="Built-in reward",
    )
    function: str | None = option(
        None,
        "A Python reward function as FILE.py:NAME, with TRL's signature f(prompts, completions, **columns) -> "
        "list of floats (None: no score for that answer)",
        label="Python function",
    )
    args: dict = option({}, "The built-in's parameters, e.g. {pattern: 'The answer is \\d+'}", label="Parameters")
    weight: float = option(
        1.0, "How much this source counts in the combined score", label="Weight", ge=-100.0, le=100.0
    )
    name: str | None = option(
        None,
        "Its name in charts and metrics (reward/<name>); empty uses the run id, the built-in's or the function's name",
        label="Name",
    )

    @property
    def kind(self) -> str:
        """Which of run, builtin, function this source is (the one that is set)."""
        return next(kind for kind in REWARD_SOURCE_KINDS if getattr(self, kind))

    @property
    def label(self) -> str:
        """The name it is logged under: `name`, else the run id, the built-in's name or the function's name."""
        if self.name:
            return self.name
        if self.function:
            return self.function.rpartition(":")[2]
        return self.run or self.builtin or ""


REWARD_SOURCE_KINDS = ("run", "builtin", "function")
# Seconds a Python reward function may take for one call (a batch of answers) before the run stops with an error.
REWARD_TIME_LIMIT = 60.0


@dataclass
class RewardsSpec:
    """What scores the answers the online stages sample (ppo, grpo, rloo, rejection): reward runs, built-in rules
    and Python functions, combined into one score per answer."""

    sources: list[RewardSource] = option(
        [],
        "The reward sources, a YAML list: each is run: RUN_ID, builtin: NAME (with args) or function: FILE.py:NAME, "
        "with a weight and an optional name; in the Train tab these come after the rows above",
        label="Reward sources",
    )
    combine: str = option(
        "sum",
        "sum: the weighted sum of every source; safety_gated (Llama 2): of the two reward runs, the safety "
        "model's score where it is below safety_threshold, else the helpfulness model's, plus the other sources",
        label="Combine rewards",
        choices=REWARD_COMBINES,
    )
    safety_threshold: float = option(
        0.15,
        "With safety_gated: a safety score below this overrides the helpfulness score (Llama 2 uses 0.15)",
        label="Safety threshold",
        ge=-100.0,
        le=100.0,
    )
    time_limit: float = option(
        REWARD_TIME_LIMIT,
        "Seconds a Python reward function may take for one batch of answers; a slower call stops the run",
        label="Reward function time limit",
        gt=0.0,
        le=3600.0,
    )

    @property
    def runs(self) -> list[str]:
        """The reward run ids among the sources, in order."""
        return [source.run for source in self.sources if source.run]

    @property
    def functions(self) -> list[str]:
        """The FILE.py:NAME of every Python function source, in order."""
        return [source.function for source in self.sources if source.function]


@dataclass
class PPOSpec:
    response_length: int = option(53, "Most tokens sampled per answer", label="Max answer tokens", ge=1, le=8192)
    temperature: float = option(
        1.0,
        "Sampling temperature of the answers (TRL's PPO uses 0.7): lower samples the "
        "policy's likelier answers, which a small model needs to find rewarded ones; "
        "log-probs and KL are taken from the same tempered distribution",
        label="Temperature",
        gt=0.0,
        le=10.0,
    )
    kl_coef: float = option(
        0.05,
        "Weight of the per-token KL penalty that keeps the policy near its starting "
        "weights; the starting value when target_kl is set",
        label="KL coefficient",
        ge=0.0,
        le=10.0,
    )
    target_kl: float | None = option(
        None,
        "Adapt kl_coef so the KL per answer approaches this (Ziegler et al., e.g. 6); empty keeps kl_coef fixed",
        label="Target KL",
        gt=0.0,
        le=1000.0,
    )
    kl_horizon: int = option(
        10000, "With target_kl: answers over which kl_coef adapts; smaller adapts faster", label="KL horizon", ge=1
    )
    kl_estimator: str = option(
        "k1",
        "Per-token KL estimate in the reward: k1 (log ratio, unbiased) or k3 (non-negative, lower variance)",
        label="KL estimator",
        choices=("k1", "k3"),
    )
    missing_eos_penalty: float = option(
        1.0,
        "Subtracted from the score of an answer that stops at "
        "response_length without its end-of-turn token; 0 turns it off",
        label="Unfinished answer penalty",
        ge=0.0,
        le=100.0,
    )
    gamma: float = option(
        1.0, "Discount of later rewards in the advantage estimate", label="Discount (gamma)", ge=0.0, le=1.0
    )
    lam: float = option(
        0.95,
        "GAE lambda: lower trusts the value head more (less variance, more bias)",
        label="GAE lambda",
        ge=0.0,
        le=1.0,
    )
    cliprange: float = option(
        0.2, "PPO clip: how far one update may move each token's probability ratio", label="Clip range", gt=0.0, le=10.0
    )
    cliprange_value: float = option(
        0.2, "How far one update may move each value estimate", label="Value clip range", gt=0.0, le=100.0
    )
    vf_coef: float = option(
        0.1, "Weight of the value loss next to the policy loss", label="Value loss weight", ge=0.0, le=100.0
    )
    ppo_epochs: int = option(
        4, "Optimisation passes over each batch of sampled answers", label="PPO epochs", ge=1, le=100
    )
    mini_batch_size: int = option(
        4,
        "Answers per optimizer step inside a PPO epoch; must divide "
        "train.batch_size (the prompts sampled per step), and be divisible by "
        "train.gradient_accumulation_steps",
        label="Mini-batch size",
        ge=1,
        le=4096,
    )
    whiten_advantages: bool = option(
        True, "Normalise advantages to mean 0 and std 1 over each batch", label="Normalise advantages"
    )


@dataclass
class RejectionSpec:
    """Rejection sampling (Llama 2): each round samples K answers per prompt, keeps the best-scoring one and
    fine-tunes the policy on it. The fine-tuning uses train.learning_rate, batch_size and
    gradient_accumulation_steps; rounds and sft_epochs take the place of train.max_steps and train.epochs."""

    rounds: int = option(
        3,
        "Rounds of sample, score, keep the best, fine-tune; each round samples from the policy "
        "the round before trained",
        label="Rounds",
        ge=1,
        le=1000,
    )
    prompts_per_round: int = option(
        64,
        "Prompts per round, a fresh slice of the data each round (reshuffled after each full pass)",
        label="Prompts per round",
        ge=1,
        le=1_000_000,
    )
    samples_per_prompt: int = option(
        4,
        "Answers sampled per prompt (K); the best-scoring one is kept, so more "
        "answers find better ones at K times the sampling cost",
        label="Answers per prompt (K)",
        ge=2,
        le=256,
    )
    response_length: int = option(128, "Most tokens sampled per answer", label="Max answer tokens", ge=1, le=8192)
    temperature: float = option(
        1.0,
        "Sampling temperature: higher gives more varied answers for the best-of-K choice; too high gives nonsense",
        label="Temperature",
        gt=0.0,
        le=10.0,
    )
    min_score: float | None = option(
        None,
        "Fine-tune on a prompt's best answer only if its score reaches this; "
        "empty keeps the best answer of every prompt",
        label="Minimum score",
    )
    sft_epochs: int = option(
        1, "Fine-tuning passes over each round's kept answers", label="Fine-tuning epochs", ge=1, le=100
    )
    generation_batch_size: int = option(
        64,
        "Answers sampled in one generate call; lower it if sampling runs out of memory",
        label="Sampling batch size",
        ge=1,
        le=65536,
    )


@dataclass
class GRPOSpec:
    """GRPO (TRL's GRPOTrainer): num_generations answers per prompt, each answer's advantage its reward against its
    group's mean; no value model. train.batch_size counts answers, so a step samples train.batch_size x
    train.gradient_accumulation_steps answers to that many / num_generations prompts."""

    num_generations: int = option(
        4,
        "Answers sampled per prompt (the group); must divide train.batch_size x "
        "train.gradient_accumulation_steps, the answers sampled per step",
        label="Answers per prompt",
        ge=2,
        le=256,
    )
    max_completion_length: int = option(128, "Most tokens sampled per answer", label="Max answer tokens", ge=1, le=8192)
    temperature: float = option(
        1.0,
        "Sampling temperature: higher gives more varied answers within a group, which "
        "is what the group baseline learns from",
        label="Temperature",
        gt=0.0,
        le=10.0,
    )
    beta: float = option(
        0.04,
        "Weight of the per-token KL penalty (k3 estimate) that keeps the policy near its "
        "starting weights (DeepSeekMath uses 0.04); 0 turns it off: no reference pass and no kl "
        "metric",
        label="KL weight (beta)",
        ge=0.0,
        le=10.0,
    )
    loss_type: str = option(
        "dapo",
        "How token losses are averaged: dapo (over every token of the step; no length "
        "bias), grpo (the paper: per answer, then over answers), dr_grpo (by "
        "max_completion_length), bnpo (over the tokens of each forward pass), cispo (clips "
        "importance weights at epsilon_high), sapo (a soft gate instead of the clip), "
        "luspo (per-answer ratios, length-weighted), vespo (smooth per-answer weights)",
        label="Loss type",
        choices=GRPO_LOSS_TYPES,
    )
    epsilon: float = option(
        0.2, "Clip: how far one update may move each token's probability ratio", label="Clip (epsilon)", gt=0.0, lt=1.0
    )
    epsilon_high: float | None = option(
        None,
        "Upper clip bound when it should differ from epsilon (DAPO uses 0.28); "
        "with the cispo loss, the cap on each importance weight (ScaleRL uses "
        "5); empty uses epsilon",
        label="Upper clip",
        gt=0.0,
        le=100.0,
    )
    num_iterations: int = option(
        1,
        "Optimisation passes over each batch of sampled answers; above 1 the clip starts to matter",
        label="Passes per batch",
        ge=1,
        le=100,
    )
    scale_rewards: str = option(
        "group",
        "Divide advantages by the reward spread of the group (the GRPO paper), of "
        "the whole step (batch), or not at all (none, Dr. GRPO: no bias towards "
        "prompts whose answers score alike)",
        label="Scale rewards by",
        choices=("group", "batch", "none"),
    )
    mask_truncated_completions: bool = option(
        False,
        "Leave answers cut off at max_completion_length out of the loss "
        "(DAPO), so an unfinished answer is neither rewarded nor punished",
        label="Leave out cut-off answers",
    )


@dataclass
class RLOOSpec:
    """RLOO (TRL's RLOOTrainer): num_generations answers per prompt, each answer's advantage its reward minus the
    mean reward of the other answers to the same prompt; the whole answer is one action. train.batch_size counts
    answers, as in GRPO."""

    num_generations: int = option(
        4,
        "Answers sampled per prompt (k); must divide train.batch_size x "
        "train.gradient_accumulation_steps, the answers sampled per step",
        label="Answers per prompt",
        ge=2,
        le=256,
    )
    max_completion_length: int = option(128, "Most tokens sampled per answer", label="Max answer tokens", ge=1, le=8192)
    temperature: float = option(
        1.0, "Sampling temperature: higher gives more varied answers to compare", label="Temperature", gt=0.0, le=10.0
    )
    beta: float = option(
        0.05,
        "Weight of the KL penalty subtracted from each answer's reward (its summed log ratio to "
        "the starting weights, as in the RLOO paper); 0 turns it off: no reference pass and no "
        "kl metric",
        label="KL weight (beta)",
        ge=0.0,
        le=10.0,
    )
    epsilon: float = option(
        0.2, "Clip: how far one update may move each answer's probability ratio", label="Clip (epsilon)", gt=0.0, lt=1.0
    )
    num_iterations: int = option(
        1,
        "Optimisation passes over each batch of sampled answers; above 1 the clip starts to matter",
        label="Passes per batch",
        ge=1,
        le=100,
    )
    normalize_advantages: bool = option(
        False, "Normalise advantages to mean 0 and std 1 over each step's answers", label="Normalise advantages"
    )
    mask_truncated_completions: bool = option(
        False,
        "Leave answers cut off at max_completion_length out of the loss, "
        "so an unfinished answer is neither rewarded nor punished",
        label="Leave out cut-off answers",
    )


@dataclass
class TimelineSpec:
    """A few fixed prompts the policy answers as it trains, so its answers can be watched changing step by step."""

    prompts: list[str] = option(
        [],
        "Prompts answered greedily before training and at every checkpoint, shown in the "
        "Runs tab by step; one per line (at most 8); empty answers none",
        label="Timeline prompts",
        separator="\n",
    )
    max_new_tokens: int = option(
        64, "Most tokens generated per timeline answer", label="Max answer tokens", ge=1, le=2048
    )


@dataclass
class RolloutsSpec:
    """Every answer an online stage samples, recorded in the run folder (rollouts.jsonl) with its scores and KL, so
    the Runs tab and `rlhf-studio rollouts` can show what the policy wrote at any step. Bounded: after the first
    keep_first steps only every keep_every-th step is recorded, and past half of max_mb one step in 10 of those."""

    record: bool = option(True, "Record the answers of every kept step (rollouts.jsonl)", label="Record rollouts")
    token_samples: int = option(
        2,
        "Answers per step recorded token by token with their log-probabilities under the policy and the reference",
        label="Answers with token detail",
        ge=0,
        le=64,
    )
    keep_first: int = option(
        100, "Steps recorded in full at the start of the run", label="Record every step up to", ge=0
    )
    keep_every: int = option(
        1, "After keep_first, record one step in this many (1 records every step)", label="Then one step in", ge=1
    )
    max_mb: float = option(
        100.0,
        "Size cap of rollouts.jsonl in MB: past half of it one kept step in 10 is recorded, at it recording stops",
        label="Size cap (MB)",
        gt=0,
    )


JUDGE_KINDS = ("reward_run", "builtin", "llm", "endpoint")
# The judging prompt of the llm and endpoint judges when a judge gives none; {prompt}, {answer_a} and {answer_b} are
# filled in. Written once here: the Compare tab shows it for editing and the judges use it.
DEFAULT_JUDGE_PROMPT = (
    "Two assistants answered the same request. Decide which answer serves the person better: correct, helpful, "
    "clear and honest. The order of the answers says nothing, and a longer answer is not better for being longer."
    "\n\nRequest:\n{prompt}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\n"
    "Which answer is better? Reply with the single letter A or B."
)
JUDGE_PROMPT_FIELDS = ("{prompt}", "{answer_a}", "{answer_b}")
# What each kind of judge needs, and which kinds read each of JudgeSpec's own keys (the form shows a key for those).
JUDGE_NEEDS = {"reward_run": ("run",), "builtin": ("builtin",), "llm": ("model",), "endpoint": ("base_url", "model")}
JUDGE_FIELD_KINDS = {
    "run": ("reward_run",),
    "builtin": ("builtin",),
    "args": ("builtin",),
    "model": ("llm", "endpoint"),
    "prompt": ("llm", "endpoint"),
    "base_url": ("endpoint",),
    "api_key_env": ("endpoint",),
    "timeout_s": ("endpoint",),
    "retries": ("endpoint",),
}


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


@dataclass
class JudgeSpec:
    """One judge of answers that is not the reward a run trained against: a reward run, a built-in rule, a local chat
    model comparing two answers, or an OpenAI-compatible server doing the same."""

    kind: str = option(
        "reward_run",
        "reward_run: a completed reward run scores each answer; builtin: a built-in rule scores it; llm: a local chat "
        "model says which of two answers is better; endpoint: an OpenAI-compatible server says it",
        label="Judge kind",
        choices=JUDGE_KINDS,
    )
    name: str | None = option(
        None, "Its name in results and charts (judge/<name>); empty uses the run, rule or model", label="Judge name"
    )
    run: str | None = option(None, "reward_run: the completed reward run's id", label="Reward run")
    builtin: str | None = option(None, "builtin: the rule (format, length, contains, ...)", label="Built-in rule")
    args: dict = option({}, "builtin: the rule's parameters", label="Rule parameters")
    model: str | None = option(
        None,
        "llm: a hub id, a local folder, tiny or a finished run's id; endpoint: the model name the server serves",
        label="Judge model",
    )
    prompt: str | None = option(
        None,
        "llm and endpoint: the judging prompt, with {prompt}, {answer_a} and {answer_b}; empty uses the default",
        label="Judging prompt",
    )
    base_url: str | None = option(
        None, "endpoint: the server's base URL, e.g. http://127.0.0.1:8000/v1", label="Server URL"
    )
    api_key_env: str | None = option(
        None,
        "endpoint: the name of the environment variable holding the server's key (never the key itself); empty "
        "sends none",
        label="Key variable",
    )
    timeout_s: float = option(60.0, "endpoint: seconds to wait for one answer", label="Timeout (s)", gt=0.0, le=3600.0)
    retries: int = option(
        3,
        "endpoint: tries again this many times after a timeout, a server error or a rate limit",
        label="Retries",
        ge=0,
        le=20,
    )

    @property
    def label(self) -> str:
        """The name it is shown and logged under."""
        if self.name:
            return self.name
        if self.kind == "reward_run":
            return self.run or "reward_run"
        if self.kind == "builtin":
            return self.builtin or "builtin"
        tail = (self.model or self.kind).rstrip("/").rsplit("/", 1)[-1]
        return f"{self.kind}-{tail}"

    @property
    def pairwise(self) -> bool:
        """Whether it compares two answers (llm, endpoint) rather than scoring one (reward_run, builtin)."""
        return self.kind in ("llm", "endpoint")


@dataclass
class EvalSpec:
    """Judges watching an online run while it trains (the reward-hacking alarm): every every_steps steps the policy
    answers the same held-out prompts greedily and each judge scores the answers, charted as judge/<name> beside the
    training reward. A score judge gives its mean score; a pairwise judge the policy's win rate against its own
    answers at step 0."""

    judges: list[JudgeSpec] = option(
        [],
        "The judges, a YAML list: each kind: reward_run (run: ID), builtin (builtin: NAME), llm (model: NAME) or "
        "endpoint (base_url, model); none turns the watch off",
        label="Judges",
    )
    every_steps: int = option(
        0, "Judge the policy every this many steps (0: never)", label="Judge every (steps)", ge=0, le=1_000_000
    )
    prompts: int = option(16, "Held-out prompts answered at each check", label="Prompts per check", ge=1, le=512)
    prompts_file: str | None = option(
        None,
        "A .txt (one prompt per line) or .jsonl file (a prompt field) of prompts to judge on; empty: the run's "
        "held-out rows (data.eval_fraction)",
        label="Prompts file",
    )
    max_new_tokens: int = option(
        64, "Most tokens per answer at each check", label="Max new tokens per check", ge=1, le=4096
    )


@dataclass
class GenerationSpec:
    """Generation settings for Compare and Chat. Every model in a comparison answers with the same settings and
    seed, so differences come from the weights. Not part of a run: the UI and `rlhf-studio compare` read it."""

    max_new_tokens: int = option(128, "Most tokens generated per answer", label="Max new tokens", ge=1, le=8192)
    temperature: float = option(
        0.7,
        "Sampling temperature: higher gives more varied answers; 0 always takes the likeliest token (greedy)",
        label="Temperature",
        ge=0.0,
        le=10.0,
    )
    top_p: float = option(
        0.9,
        "Sample only from the likeliest tokens whose probabilities add up to this; 1 keeps every token",
        label="Top-p",
        gt=0.0,
        le=1.0,
    )
    repetition_penalty: float = option(
        1.0,
        "Above 1 makes tokens already in the answer less likely; 1 is off",
        label="Repetition penalty",
        gt=0.0,
        le=10.0,
    )
    seed: int = option(0, "Random seed: every model starts each batch from the same random state", label="Seed", ge=0)
    batch_size: int = option(
        8,
        "Prompts answered together in one generate call; lower it if generation runs out of memory",
        label="Batch size",
        ge=1,
        le=1024,
    )


# The settings every model answers with in an evaluation (rlhf-studio eval, the Compare tab's judges) unless told
# otherwise: greedy, so the same evaluation run twice gives the same answers.
EVAL_GENERATION = GenerationSpec(temperature=0.0, max_new_tokens=128, seed=0)
MAX_TIMELINE_PROMPTS = 8
# The stages whose trained weights write text: every stage but the reward model, which outputs a score.
GENERATING_STAGES = stages.Names(lambda s: s.writes_text)


@dataclass
class RunConfig:
    stage: str = option("sft", "Training stage", label="Stage", choices=STAGES)
    name: str | None = option(None, "A short name to find the run by; empty uses the stage and model", label="Run name")
    model: ModelSpec = field(default_factory=ModelSpec)
    init: InitSpec = field(default_factory=InitSpec)
    data: DataSpec = field(default_factory=DataSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    sft: SFTSpec = field(default_factory=SFTSpec)
    reward: RewardSpec = field(default_factory=RewardSpec)
    dpo: DPOSpec = field(default_factory=DPOSpec)
    kto: KTOSpec = field(default_factory=KTOSpec)
    orpo: ORPOSpec = field(default_factory=ORPOSpec)
    simpo: SimPOSpec = field(default_factory=SimPOSpec)
    cpo: CPOSpec = field(default_factory=CPOSpec)
    rewards: RewardsSpec = field(default_factory=RewardsSpec)
    ppo: PPOSpec = field(default_factory=PPOSpec)
    rejection: RejectionSpec = field(default_factory=RejectionSpec)
    grpo: GRPOSpec = field(default_factory=GRPOSpec)
    rloo: RLOOSpec = field(default_factory=RLOOSpec)
    timeline: TimelineSpec = field(default_factory=TimelineSpec)
    rollouts: RolloutsSpec = field(default_factory=RolloutsSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)


# ---------------------------------------------------------------- building and checking


def from_dict(raw: Any, cls: type = RunConfig, prefix: str = "") -> Any:
    """Build a spec from plain data, checking every key, type and range."""
    where = prefix.rstrip(".") or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {_show(raw)}")
    if cls is RunConfig:
        raw = upgrade_reward_models(raw)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(_unknown_key_message(prefix, str(key), list(known), where))
    values = {}
    for name, value in raw.items():
        f = known[name]
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(value, kind, f"{prefix}{name}.")
        elif typing.get_origin(kind) is list and dataclasses.is_dataclass(typing.get_args(kind)[0]):
            if not isinstance(value, list):
                raise ConfigError(f"{prefix}{name} = {_show(value)}: expected a list of mappings")
            item = typing.get_args(kind)[0]
            values[name] = [from_dict(v, item, f"{prefix}{name}[{i}].") for i, v in enumerate(value)]
        else:
            values[name] = _check_value(f"{prefix}{name}", value, kind, f.metadata)
    config = cls(**values)
    if cls is RunConfig:
        _check_combinations(config)
    return config


def _unknown_key_message(prefix: str, key: str, allowed: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return f"unknown key {prefix + key!r}{hint} (keys in {where}: {', '.join(allowed)})"


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _type_name(kind: Any) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(kind, str(kind))


def _check_value(key: str, value: Any, kind: Any, meta: typing.Mapping) -> Any:
    if kind is dict:  # a built-in reward's parameters: checked by the built-in (studio/rewards/builtins.py)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {_show(value)}: expected a mapping of parameters, e.g. {{target: 50}}")
        return dict(value)
    optional = False
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        optional, kind = True, args[0]
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required ({_type_name(kind)})")

    if typing.get_origin(kind) is list:
        if isinstance(value, str):  # "q_proj,v_proj" from a form or --set
            value = [part.strip() for part in value.split(meta.get("separator") or ",") if part.strip()]
        if typing.get_args(kind) == (float,):
            if not isinstance(value, list):
                raise ConfigError(f"{key} = {_show(value)}: expected a list of numbers")
            return [_check_value(f"{key}[{i}]", v, float, {}) for i, v in enumerate(value)]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            what = "texts" if meta.get("separator") == "\n" else "names"
            raise ConfigError(f"{key} = {_show(value)}: expected a list of {what}")
        choices = meta.get("choices")
        unknown = [v for v in value if choices and v not in choices]
        if unknown:
            raise ConfigError(f"{key} = {_show(unknown[0])}: allowed values are {', '.join(choices)}")
        if choices and len(set(value)) < len(value):
            raise ConfigError(f"{key} = {_show(value)}: names a value twice")
        return value

    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {_show(value)}: expected true or false")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {_show(value)}: expected {_type_name(int)}")
    elif kind is float:
        if isinstance(value, str):  # YAML reads 2e-4 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} = {_show(value)}: expected {_type_name(float)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {_show(value)}: expected {_type_name(float)}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key} = {value}: expected a finite number")
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{key} = {_show(value)}: expected {_type_name(str)}")

    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{key} = {_show(value)}: allowed values are {', '.join(map(str, choices))}")
    for bound, test, words in (
        ("ge", lambda v, b: v >= b, "at least"),
        ("gt", lambda v, b: v > b, "greater than"),
        ("le", lambda v, b: v <= b, "at most"),
        ("lt", lambda v, b: v < b, "less than"),
    ):
        limit = meta.get(bound)
        if limit is not None and not test(value, limit):
            raise ConfigError(f"{key} = {_show(value)}: must be {words} {limit}")
    return value


def _check_combinations(config: RunConfig) -> None:
    """Rules that involve more than one field."""
    if config.train.max_steps == 0:
        raise ConfigError("train.max_steps = 0: must be -1 (use train.epochs) or a positive number of steps")
    stage_format, source = STAGE_FORMATS[config.stage], config.data.source
    if stage_format != PROMPT_ONLY and stage_format not in SOURCE_FORMATS[source]:
        gives = " and ".join(SOURCE_FORMATS[source])
        raise ConfigError(
            f"data.source = '{source}' gives {gives} rows, but the {config.stage} stage trains on "
            f"{stage_format} rows; pick a source that has them: "
            f"{', '.join(s for s, f in SOURCE_FORMATS.items() if stage_format in f)}"
        )
    loss, smoothing = config.dpo.loss_type, config.dpo.label_smoothing
    if config.stage == "dpo" and loss == "exo_pair" and smoothing == 0:
        raise ConfigError(
            "dpo.label_smoothing = 0: the exo_pair loss needs a value above 0 (the EXO paper suggests 0.001)"
        )
    section = stages.get(config.stage).section
    spec = getattr(config, section, None)
    losses = getattr(spec, "SMOOTHING_LOSSES", None)  # DPOSpec, CPOSpec
    if losses and spec.label_smoothing > 0 and spec.loss_type not in losses:
        raise ConfigError(
            f"{section}.label_smoothing = {spec.label_smoothing}: the {spec.loss_type} loss does not use "
            f"label smoothing; set it to 0 or pick a loss that does: {', '.join(losses)}"
        )
    if config.stage == "kto" and config.train.batch_size < 2 and config.kto.loss_type == "kto":
        raise ConfigError(
            "train.batch_size = 1: the kto loss estimates its KL term from other examples in the "
            "batch, so it needs at least 2"
        )
    if config.stage in ONLINE_STAGES:
        _check_rewards(config)
    _check_eval(config)
    if config.stage == "ppo":
        _check_ppo(config)
    if stages.get(config.stage).steps == stages.GROUPS:
        _check_groups(config)
    if config.stage == "rejection" and config.train.max_steps != -1:
        raise ConfigError(
            f"train.max_steps = {config.train.max_steps}: the rejection stage runs rejection.rounds "
            "rounds of rejection.sft_epochs passes over the kept answers; leave max_steps at -1"
        )
    if config.timeline.prompts and config.stage not in GENERATING_STAGES:
        raise ConfigError(
            f"timeline.prompts: the {config.stage} stage trains a model that scores answers rather than "
            "writing them, so it has no answers to show; leave timeline.prompts empty"
        )
    if len(config.timeline.prompts) > MAX_TIMELINE_PROMPTS:
        raise ConfigError(
            f"timeline.prompts has {len(config.timeline.prompts)} prompts: at most "
            f"{MAX_TIMELINE_PROMPTS}, each is answered at every checkpoint"
        )
    if config.train.distributed != "ddp" and stages.get(config.stage).own_loop:
        raise ConfigError(
            f"train.distributed = {config.train.distributed}: the {config.stage} stage runs its own "
            "loop, which supports ddp only"
        )
    if config.model.quantization != "none" and not config.lora.enabled:
        raise ConfigError(
            f"model.quantization = '{config.model.quantization}': quantised weights cannot be "
            "trained directly; turn lora.enabled on (QLoRA) or set quantization to none"
        )


def _check_eval(config: RunConfig) -> None:
    """The judges watch only online stages, and only when every_steps and judges are both given."""
    spec = config.eval
    if not spec.every_steps and not spec.judges:
        return
    if config.stage not in ONLINE_STAGES:
        raise ConfigError(
            f"eval: the {config.stage} stage does not sample answers while it trains, so judges have nothing to watch; "
            f"use eval with an online stage ({', '.join(ONLINE_STAGES)}) or rlhf-studio eval after training"
        )
    if spec.every_steps and not spec.judges:
        raise ConfigError(f"eval.every_steps = {spec.every_steps}: give at least one judge in eval.judges")
    if spec.judges and not spec.every_steps:
        raise ConfigError("eval.judges: set eval.every_steps (how often they judge the policy), or remove the judges")
    taken: dict[str, int] = {}
    for i, judge in enumerate(spec.judges):
        check_judge(judge, f"eval.judges[{i}]")
        trained_on = [s for s in config.rewards.sources if judge.run and s.run == judge.run]
        trained_on += [
            s for s in config.rewards.sources if judge.builtin and (s.builtin, s.args) == (judge.builtin, judge.args)
        ]
        if trained_on:
            raise ConfigError(
                f"eval.judges[{i}]: {trained_on[0].label} is also in rewards.sources; a judge of the very reward the "
                "run is trained against rises with it and cannot see reward hacking: pick another reward run or rule"
            )
        if judge.label in taken:
            raise ConfigError(
                f"eval.judges[{i}]: the name '{judge.label}' is taken by eval.judges[{taken[judge.label]}]; give one "
                "of them a name of its own"
            )
        taken[judge.label] = i


def check_judge(judge: JudgeSpec, where: str) -> JudgeSpec:
    """A judge with what its kind needs and nothing another kind takes; a built-in's args checked (defaults filled
    in). One line naming the key otherwise."""
    from studio.rewards import builtins

    for key in JUDGE_NEEDS[judge.kind]:
        if not getattr(judge, key):
            raise ConfigError(f"{where}.{key}: {_a(judge.kind)} judge needs one")
    for key, kinds in JUDGE_FIELD_KINDS.items():
        value = getattr(judge, key)
        if judge.kind not in kinds and value and value != getattr(JudgeSpec, key, None):  # set, and not the default
            raise ConfigError(
                f"{where}.{key}: only {_a(' or '.join(kinds))} judge takes it; this judge is {judge.kind}"
            )
    if judge.builtin:
        judge.args = builtins.get(judge.builtin, f"{where}.builtin").check(judge.args, where)
    if judge.prompt is not None:
        missing = [f for f in JUDGE_PROMPT_FIELDS if f not in judge.prompt]
        if missing:
            raise ConfigError(f"{where}.prompt: the judging prompt must hold {', '.join(missing)}")
    if judge.base_url and not re.match(r"https?://[^\s/]+", judge.base_url):
        raise ConfigError(f"{where}.base_url = {judge.base_url!r}: expected http://HOST[:PORT]/... or https://...")
    if judge.api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", judge.api_key_env):
        raise ConfigError(
            f"{where}.api_key_env = {judge.api_key_env!r}: give the name of an environment variable (letters, digits "
            "and _), not the key itself"
        )
    if not REWARD_NAME.fullmatch(judge.label):
        raise ConfigError(
            f"{where}.name = {judge.label!r}: use letters, digits, _, - and . only (it names the chart judge/<name>)"
        )
    return judge


def _check_rewards(config: RunConfig) -> None:
    """Every source is exactly one kind with a usable name; a built-in's args are checked (and its defaults filled
    in, so the saved config says everything); safety_gated has its two reward runs."""
    from studio.rewards import builtins, functions

    spec = config.rewards
    if not spec.sources:
        raise ConfigError(
            f"rewards.sources is empty: the {config.stage} stage scores its answers with at least one source: "
            "a completed reward run (run: ID), a built-in rule (builtin: format) or a Python function "
            "(function: FILE.py:NAME)"
        )
    taken: dict[str, int] = {}
    for i, source in enumerate(spec.sources):
        where = f"rewards.sources[{i}]"
        given = [kind for kind in REWARD_SOURCE_KINDS if getattr(source, kind)]
        if len(given) != 1:
            has = f"it has {' and '.join(given)}" if given else "it has none"
            raise ConfigError(f"{where}: give exactly one of run, builtin or function ({has})")
        if source.args and not source.builtin:
            raise ConfigError(f"{where}.args: only a built-in takes args; this source is a {given[0]}")
        if source.builtin:
            source.args = builtins.get(source.builtin, f"{where}.builtin").check(source.args, where)
        if source.function:
            functions.parse_reference(source.function, f"{where}.function")
        name = source.label
        if not REWARD_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}.name = {name!r}: use letters, digits, _, - and . only (it names the metric reward/{name})"
            )
        if name in taken:
            raise ConfigError(
                f"{where}: the name '{name}' is taken by rewards.sources[{taken[name]}]; give one of them a "
                "name of its own"
            )
        taken[name] = i
    runs = spec.runs
    if spec.combine == "safety_gated":
        if len(runs) != 2:
            raise ConfigError(
                f"rewards.combine = 'safety_gated': needs two reward runs (helpfulness and safety), got {len(runs)}"
            )
        for i, source in enumerate(spec.sources):
            if source.run and source.weight != 1.0:
                raise ConfigError(
                    f"rewards.sources[{i}].weight = {source.weight:g}: with combine safety_gated the two reward "
                    "runs are gated, not weighted; leave their weights at 1"
                )


REWARD_NAME = re.compile(r"[A-Za-z0-9_.-]+")
LEGACY_REWARD_KEYS = ("runs", "combine", "weights", "safety_threshold")


def upgrade_reward_models(raw: dict) -> dict:
    """The section before `rewards`, reward_models: {runs, combine, weights, safety_threshold}, read as reward run
    sources of `rewards`, so configs, presets and run folders written before it still load."""
    if "reward_models" not in raw:
        return raw
    raw = dict(raw)
    old = raw.pop("reward_models") or {}
    if not isinstance(old, dict):
        raise ConfigError(f"reward_models: expected a mapping of keys, got {_show(old)}")
    for key in old:
        if key not in LEGACY_REWARD_KEYS:
            raise ConfigError(
                _unknown_key_message("reward_models.", str(key), list(LEGACY_REWARD_KEYS), "reward_models")
            )
    runs = _check_value("reward_models.runs", old.get("runs") or [], list[str], {})
    weights = _check_value("reward_models.weights", old.get("weights") or [], list[float], {})
    if weights and len(weights) != len(runs):
        raise ConfigError(
            f"reward_models.weights = {weights}: give one weight per reward run ({len(runs)}), or none to weigh each 1"
        )
    new = raw.get("rewards") or {}
    if not isinstance(new, dict):
        raise ConfigError(f"rewards: expected a mapping of keys, got {_show(new)}")
    new = dict(new)
    if runs and new.get("sources"):
        raise ConfigError(
            "reward_models.runs and rewards.sources: name the reward runs in rewards.sources (run: ID) with the "
            "other sources"
        )
    if runs:
        new["sources"] = [{"run": run, "weight": w} for run, w in zip(runs, weights or [1.0] * len(runs))]
    for key in ("combine", "safety_threshold"):
        if key in old:
            if key in new and new[key] != old[key]:
                raise ConfigError(f"reward_models.{key} and rewards.{key} differ: give it once, in rewards.{key}")
            new[key] = old[key]
    raw["rewards"] = new
    return raw


def _check_ppo(config: RunConfig) -> None:
    ppo, train = config.ppo, config.train
    if train.batch_size % ppo.mini_batch_size:
        raise ConfigError(
            f"ppo.mini_batch_size = {ppo.mini_batch_size}: must divide train.batch_size "
            f"({train.batch_size}), the prompts sampled per PPO step"
        )
    if ppo.mini_batch_size % train.gradient_accumulation_steps:
        raise ConfigError(
            f"train.gradient_accumulation_steps = {train.gradient_accumulation_steps}: must divide "
            f"ppo.mini_batch_size ({ppo.mini_batch_size}), which it splits into forward passes"
        )


def _check_groups(config: RunConfig) -> None:
    """GRPO and RLOO compare the answers to one prompt with each other, so every batch must hold whole groups."""
    stage, train = stages.get(config.stage).section, config.train
    spec = getattr(config, stage)
    per_step = train.batch_size * train.gradient_accumulation_steps
    if per_step % spec.num_generations:
        raise ConfigError(
            f"{stage}.num_generations = {spec.num_generations}: must divide the answers sampled per "
            f"step, train.batch_size x train.gradient_accumulation_steps = {train.batch_size} x "
            f"{train.gradient_accumulation_steps} = {per_step}"
        )
    if config.data.eval_fraction > 0 and train.batch_size % spec.num_generations:
        raise ConfigError(
            f"{stage}.num_generations = {spec.num_generations}: must divide train.batch_size "
            f"({train.batch_size}) to score held-out prompts, which are sampled in batches of "
            "train.batch_size answers; or set data.eval_fraction to 0"
        )
    if stage == "grpo" and spec.loss_type == "cispo" and spec.epsilon_high is None:
        raise ConfigError(
            "grpo.epsilon_high is empty: the cispo loss caps each importance weight at epsilon_high "
            "(ScaleRL uses 5); set it"
        )


# ---------------------------------------------------------------- YAML and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.learning_rate=1e-4' -> (['train', 'learning_rate'], 1e-4), the value read as YAML."""
    key, sep, raw_value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.max_steps=20")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    if "\n" in raw_value.strip() and not isinstance(value, list):
        value = raw_value  # lines are items (timeline.prompts): YAML would fold them into one line, or read a colon
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each KEY=VALUE in a copy of the raw mapping; unknown keys are caught by from_dict."""
    raw = _deep_copy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is not a section")
            node = child
        node[path[-1]] = value
    return raw


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply --set overrides, and validate it."""
    raw = read_yaml(path) if path is not None else {}
    return from_dict(apply_overrides(raw, overrides or []))


def to_dict(config: Any) -> dict:
    out = dataclasses.asdict(config)
    if isinstance(config, RunConfig):  # a reward source says only what it is: {builtin: format, args: ..., weight: 1}
        out["rewards"]["sources"] = [
            {k: v for k, v in source.items() if v is not None and v != {}} for source in out["rewards"]["sources"]
        ]
    return out


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def field_info(cls: type = RunConfig, prefix: str = "") -> dict[str, dict]:
    """Every leaf key with its default, type, label, help text and allowed values, for forms and docs."""
    info = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            info.update(field_info(hints[f.name], key + "."))
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        info[key] = {
            "default": default,
            "type": hints[f.name],
            **f.metadata,
            "label": f.metadata.get("label") or name_label(f.name),
        }
    return info


def name_label(name: str) -> str:
    """A field's name in words, for a field written without a label: 'save_total_limit' -> 'Save total limit'."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]
