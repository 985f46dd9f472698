"""What a run config will run, worked out before Start: the Train tab's summary above its Start button.

    summary = run_summary(load_config("presets/sft-dolly-tiny.yaml"))
    summary.rows.train, summary.steps, summary.memory.total     # 180 rows, 60 steps, run_estimate's bytes

The record says the stage (and what it trains), the model as the run loads it (an earlier run's base model when it
starts from one), the data source and its file (or hub id, or the bundled sample), the rows the stage trains on and
holds out (counted as the Data tab's Preview counts them: studio/data/preflight.data_report), the optimizer steps
(train.max_steps, or computed from the epochs as each stage's trainer computes them), the run it starts from, the
reward runs that score an online stage, and the estimated peak memory (studio/estimate.run_estimate).

A part that cannot be worked out says why in `problems`, under its own name, and the rest is still given: a hub
dataset is not downloaded here (its rows are left uncounted, with the reason in `rows_note`), a parent run that is
still running, a model out of reach. A config that does not validate is refused before this, by config.from_dict.

Asking again is cheap: rows are counted once per data spec, tokenizer, seed and file version, and the memory once
per model, LoRA and workload, so the Train tab can refresh the summary whenever a field that matters changes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from studio import access, data, stages
from studio import config as cfg
from studio.data.hub import check_dataset, dataset_cached
from studio.errors import StudioError
from studio.modeling import model_files
from studio.modeling.estimate import StageEstimate, run_estimate, workload_of
from studio.pipelines import twins
from studio.runs import launcher, manager

SAMPLE, FILE, HUB, OWN_FILE = "sample", "file", "hub", "own file"  # where a run's rows come from (data_kind)
AUTO_COUNTED_AS = "bfloat16 (auto, as on a GPU)"  # what estimate.py counts model.dtype auto as
MEMO_SIZE = 32  # summaries the memos keep; a form changes a few fields at a time


@dataclass(frozen=True)
class Rows:
    """The rows a run reads, counted as its worker counts them (conversion, filters, limit, the length check)."""

    format: str  # "sft" or "preference" rows
    usable: int  # after rows were dropped
    dropped: int
    train: int  # what the stage trains on
    held_out: int  # measured for eval loss (or eval rewards), or prompts the online stages leave for comparing
    length_checked: bool = True  # False when the model's tokenizer was out of reach: counted before the length check


@dataclass(frozen=True)
class RunRef:
    """An earlier run the new one uses: the run it starts from, or a reward run that scores its answers."""

    id: str
    name: str | None
    stage: str
    kind: str | None = None  # a reward run's reward.kind (helpfulness, safety, general)


@dataclass(frozen=True)
class RunSummary:
    stage: str
    stage_about: str  # one line of what the stage trains
    model: str  # as the run loads it: the parent run's base model when it starts from one
    model_where: str  # "the built-in tiny model", "a local folder", "the Hugging Face Hub, ..."
    source: str  # data.source
    data_kind: str  # SAMPLE, FILE, HUB or OWN_FILE (the studio's own file of a source: votes)
    data_where: str  # in words: "the bundled sample", "a local file", "the Hugging Face Hub, ..."
    data_origin: str | None  # the file or hub id the rows come from (None when it cannot be told)
    rows: Rows | None
    rows_note: str  # why rows are not counted, when they are not and it is no problem
    steps: int | None
    steps_how: str  # where the number comes from: "train.max_steps", "1 epoch x 180 rows / (8 x 1 ...)"
    parent: RunRef | None  # init.from_run
    reward_models: tuple[RunRef, ...]  # the reward runs among the reward sources
    reward_rules: tuple[str, ...]  # the other reward sources in words: "format (built-in, weight 0.5)"
    memory: StageEstimate | None  # the stage's memory estimate; .total is the peak in bytes, .terms its parts
    memory_dtype: str  # the dtype it is counted at (auto counts as bfloat16, what it picks on a GPU)
    # part -> the one line saying why it could not be worked out (model, data, parent, rewards, steps, memory,
    # train); notes: what Start would take but a person should know (the GPU warning)
    problems: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def run_summary(config: cfg.RunConfig) -> RunSummary:
    """The summary of a validated run config; each part that cannot be worked out says why in `problems`."""
    problems: dict[str, str] = {}
    linked = copy.deepcopy(config)  # link_parent and link_rewards resolve ids in place
    parent = _parent(linked, problems)
    rewards = _reward_models(linked, problems)
    model_where = _model_where(linked.model, problems)
    data_kind, data_where, origin, rows_note = _data_where(linked, problems)
    rows = None
    if origin is not None and "data" not in problems and not rows_note:
        rows = _rows(linked, origin, tokenizer_ok="model" not in problems, problems=problems)
    steps, steps_how = count_steps(linked, rows)
    if steps is None and rows is not None:
        problems["steps"] = steps_how
    memory = None
    if "model" not in problems:
        try:
            memory = _memory(linked)
        except StudioError as err:
            problems["memory"] = str(err)
    try:
        launcher.check(linked)
    except StudioError as err:
        problems["train"] = str(err)
    warning = twins.gpu_warning([linked])
    return RunSummary(
        stage=config.stage,
        stage_about=cfg.STAGE_SUMMARIES[config.stage],
        model=linked.model.name,
        model_where=model_where,
        source=config.data.source,
        data_kind=data_kind,
        data_where=data_where,
        data_origin=origin,
        rows=rows,
        rows_note=rows_note,
        steps=steps,
        steps_how=steps_how,
        parent=parent,
        reward_models=rewards,
        reward_rules=_reward_rules(config),
        memory=memory,
        memory_dtype=AUTO_COUNTED_AS if linked.model.dtype == "auto" else linked.model.dtype,
        problems=problems,
        notes=(warning,) if warning else (),
    )


# ---------------------------------------------------------------- earlier runs


def _parent(config: cfg.RunConfig, problems: dict) -> RunRef | None:
    """The run init.from_run names (the config then takes its base model, as the run will), or None."""
    if not config.init.from_run:
        return None
    try:
        run = manager.link_parent(config)
        parent = run.config
    except StudioError as err:
        problems["parent"] = str(err)
        return None
    return RunRef(run.id, parent.name, parent.stage)


def _reward_models(config: cfg.RunConfig, problems: dict) -> tuple[RunRef, ...]:
    if config.stage not in cfg.ONLINE_STAGES:
        return ()
    try:
        manager.link_rewards(config)
        found = [(run_id, cfg.load_config(manager.find(run_id).config_path)) for run_id in config.rewards.runs]
    except StudioError as err:
        problems["rewards"] = str(err)
        return tuple(RunRef(run_id, None, "reward") for run_id in config.rewards.runs)
    return tuple(RunRef(run_id, reward.name, reward.stage, reward.reward.kind) for run_id, reward in found)


def _reward_rules(config: cfg.RunConfig) -> tuple[str, ...]:
    """The built-in and Python function sources in words, with their weight where it is not 1."""
    if config.stage not in cfg.ONLINE_STAGES:
        return ()
    described = []
    for source in config.rewards.sources:
        if source.run:
            continue
        what = "built-in" if source.builtin else Path(source.function.rpartition(":")[0]).name
        weight = f", weight {source.weight:g}" if source.weight != 1 else ""
        described.append(f"{source.label} ({what}{weight})")
    return tuple(described)


# ---------------------------------------------------------------- model and data


def _model_where(spec: cfg.ModelSpec, problems: dict) -> str:
    """Where the model comes from; a model the run could not load puts its one line under problems["model"]."""
    name = spec.name
    if name == model_files.TINY_NAME:
        return "the built-in tiny model" + ("" if model_files.tiny_built() else ", built on first use")
    try:
        if model_files.local_folder(name) is not None:
            model_files.check_weights(name)
            return "a local folder"
        if model_files.model_cached(name, spec.revision):
            return "the Hugging Face Hub, in the local cache"
        model_files.check_reachable(spec)
    except StudioError as err:
        problems["model"] = str(err)
        return "the Hugging Face Hub" if not model_files.looks_like_a_path(name) else "a local folder"
    return "the Hugging Face Hub, downloaded when the run starts"


def _data_where(config: cfg.RunConfig, problems: dict) -> tuple[str, str, str | None, str]:
    """(data_kind, where the rows come from in words, the file or hub id, why they are not counted here or ""). A
    hub dataset is not downloaded here: it is counted when the run loads it, and refused (under problems["data"])
    when it is neither cached nor reachable, as Start refuses it."""
    spec = config.data
    module = data.source_module(spec.source)
    if spec.path == data.SAMPLE:
        kind, where = SAMPLE, "the bundled sample"
    elif spec.path and spec.path != data.HUB:
        kind, where = FILE, "a local file"
    elif spec.path or module.HUB_ID is not None:
        kind, where = HUB, "the Hugging Face Hub"
    elif hasattr(module, "default_path"):
        kind, where = (
            OWN_FILE,
            (f"the vote set '{spec.votes.set}'" if spec.source == "votes" else f"the studio's own {spec.source} file"),
        )
    else:  # the file source with no file given: origin_of says so
        kind, where = FILE, "a local file"
    try:
        if kind == FILE:
            access.check_readable(spec.path, "data.path")
        origin = data.origin_of(spec)
        if kind != HUB:
            if not os.path.isfile(origin):
                raise StudioError(f"data.path = '{spec.path}': no such file")
            return kind, where, origin, ""
        check_dataset(module.HUB_ID, spec.source, spec.path)
    except StudioError as err:
        problems["data"] = str(err)
        return kind, where, None, ""
    cached = "in the local cache" if dataset_cached(module.HUB_ID) else "downloaded when the run starts"
    return kind, f"{where}, {cached}", origin, "the hub dataset is read when the run starts, not here"


_rows_memo: dict[str, Rows] = {}


def _rows(config: cfg.RunConfig, origin: str, tokenizer_ok: bool, problems: dict) -> Rows | None:
    """The rows as the stage's worker reads them: the stage's format (the prompt-only stages take the first format
    the source gives that loads), dropped rows counted, then its train / held-out split."""
    spec = config.data
    stat = os.stat(origin)
    key = json.dumps(
        [
            dataclasses.asdict(spec),
            cfg.STAGE_FORMATS[config.stage],
            dataclasses.asdict(config.model) if tokenizer_ok else None,
            config.train.seed,
            origin,
            stat.st_size,
            stat.st_mtime_ns,
        ],
        sort_keys=True,
        default=str,
    )
    if key in _rows_memo:
        return _rows_memo[key]
    fmt = cfg.STAGE_FORMATS[config.stage]
    formats = cfg.SOURCE_FORMATS[spec.source] if fmt == cfg.PROMPT_ONLY else (fmt,)
    try:
        counts = data.first_that_loads(formats, lambda fmt: _count(spec, fmt, config, tokenizer_ok))
    except StudioError as err:
        problems["data"] = str(err)
        return None
    rows = Rows(
        format=counts["format"],
        usable=counts["rows"],
        dropped=sum(counts["dropped"].values()),
        train=counts["train_rows"],
        held_out=counts["eval_rows"],
        length_checked=tokenizer_ok,
    )
    _remember(_rows_memo, key, rows)
    return rows


def _count(spec: cfg.DataSpec, fmt: str, config: cfg.RunConfig, tokenizer_ok: bool) -> dict:
    """data_report's counts (the Data tab's Preview), or without the length check when the tokenizer is out of
    reach."""
    from studio.data.preflight import data_report

    if tokenizer_ok:
        return data_report(spec, fmt, config.model, examples=0, seed=config.train.seed, stage=config.stage)
    loaded = data.load(spec, fmt)
    train, held_out = data.split_rows(loaded, spec.eval_fraction, config.train.seed, config.stage)
    return {
        "format": loaded.format,
        "rows": len(loaded.rows),
        "train_rows": len(train.rows),
        "eval_rows": len(held_out.rows),
        "dropped": dict(loaded.dropped),
    }


# ---------------------------------------------------------------- steps and memory


def count_steps(config: cfg.RunConfig, rows: Rows | None) -> tuple[int | None, str]:
    """(optimizer steps, how they are counted); (None, why) when they depend on rows not counted. With max_steps at
    -1 each stage counts as its trainer does: transformers' Trainer (sft, reward, dpo, kto) takes ceil(rows /
    (batch_size x processes)) batches per epoch and one step per gradient_accumulation_steps of them (rounded up);
    PPO one step per batch_size prompts; GRPO and RLOO sample num_generations answers to each prompt, batch_size
    x gradient_accumulation_steps x processes answers a step, whole steps only, each taken num_iterations times;
    rejection sampling counts its rounds."""
    t, stage = config.train, stages.get(config.stage)
    if stage.steps == stages.ROUNDS:
        spec = getattr(config, stage.section)
        passes = f"{spec.sft_epochs} pass{'es' if spec.sft_epochs != 1 else ''}"
        return spec.rounds, (
            f"rejection.rounds; each samples {spec.samples_per_prompt} answers to each of "
            f"{spec.prompts_per_round} prompts, keeps the best and fine-tunes on it, {passes}"
        )
    if t.max_steps > 0:
        return t.max_steps, "train.max_steps"
    epochs = f"{t.epochs:g} epoch{'s' if t.epochs != 1 else ''}"
    if rows is None:
        return None, f"{epochs} over the rows, which are not counted yet"
    processes = f" x {t.processes} processes" if t.processes > 1 else ""
    if stage.steps == stages.PROMPTS:
        return (
            stages.prompt_steps(t, rows.train, t.processes),
            f"{epochs} x {rows.train:,} prompts / ({t.batch_size} prompts a step{processes})",
        )
    if stage.steps == stages.GROUPS:
        spec = getattr(config, stage.section)
        prompts_a_step = t.batch_size * t.gradient_accumulation_steps * t.processes // spec.num_generations
        whole = rows.train // prompts_a_step
        if not whole:
            return None, (
                f"{rows.train:,} training prompts, fewer than a step takes ({prompts_a_step}: "
                f"train.batch_size x gradient_accumulation_steps{processes} / "
                f"{stage.section}.num_generations)"
            )
        return (
            math.ceil(t.epochs * whole * spec.num_iterations),
            f"{epochs} x {rows.train:,} prompts / {prompts_a_step} a step (whole steps)"
            + (f" x {spec.num_iterations} iterations" if spec.num_iterations > 1 else ""),
        )
    examples, what = rows.train, "rows"
    if stage.examples_per_row > 1:
        row = "pair" if stage.data_format == stages.PREFERENCE else "row"
        examples, what = stage.examples_per_row * rows.train, f"examples ({stage.examples_per_row} per {row})"
    batches = math.ceil(examples / (t.batch_size * t.processes))
    steps = math.ceil(t.epochs * math.ceil(batches / t.gradient_accumulation_steps))
    how = f"{epochs} x {examples:,} {what} / ({t.batch_size} x {t.gradient_accumulation_steps} accumulated{processes})"
    if config.stage == "sft" and config.sft.packing:
        how += "; at most: sft.packing joins short rows, so fewer"
    return steps, how


_memory_memo: dict[str, StageEstimate] = {}


def _memory(config: cfg.RunConfig) -> StageEstimate:
    """run_estimate for the stage (the model built on the meta device: a fraction of a second once torch is
    imported; the tiny model is built first if it is not yet)."""
    key = repr((config.stage, config.model, config.lora, workload_of(config)))
    if key not in _memory_memo:
        _remember(_memory_memo, key, run_estimate(config))
    return _memory_memo[key]


def _remember(memo: dict, key: str, value) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.pop(next(iter(memo)))  # the oldest
    memo[key] = value
