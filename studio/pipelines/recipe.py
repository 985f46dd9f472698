"""Pipelines: several stages run in order as linked runs, e.g. SFT -> reward model -> PPO (InstructGPT).

A pipeline YAML has `stages:`, each a run config with a `name` and optionally `from: <earlier stage name>`
(that stage's run becomes this one's init.from_run) and, for stages that score their own samples (PPO),
`rewards_from: <earlier reward stage>` or a list of two (their runs become the first reward sources, run: <id>,
before any built-in or function sources the stage names under rewards.sources). `defaults:` is
merged into every stage.

    pipeline: dpo-tiny
    defaults: {model: {name: tiny}}
    stages:
      - {name: sft, stage: sft, data: {source: dolly, path: sample}}
      - {name: dpo, stage: dpo, from: sft, data: {source: hh-rlhf, path: sample}}
      # InstructGPT: - {name: rm, stage: reward, ...}  - {name: ppo, stage: ppo, from: sft, rewards_from: rm}

`rlhf-studio train PIPELINE.yaml [--set KEY=VALUE]` runs it: a plain key applies to every stage, and
`stages.NAME.KEY=VALUE` to one. Every stage is validated before the first one starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio import config as cfg
from studio.errors import ConfigError

PIPELINE_KEYS = ("pipeline", "description", "defaults", "stages")


@dataclass
class Stage:
    name: str
    parent: str | None  # the name of the earlier stage this one starts from
    config: cfg.RunConfig
    reward_stages: list[str] = field(default_factory=list)  # earlier reward stages that score this one's samples


@dataclass
class Pipeline:
    name: str
    stages: list[Stage]


def is_pipeline(raw: dict) -> bool:
    return "stages" in raw


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def from_dict(raw: dict, overrides: list[str] | None = None, default_name: str = "pipeline") -> Pipeline:
    """Validate a pipeline mapping: unique stage names, `from` links to earlier stages, every stage config."""
    unknown = sorted(set(raw) - set(PIPELINE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown pipeline key '{unknown[0]}' (a pipeline has {', '.join(PIPELINE_KEYS)}; "
            "stage settings go under stages or defaults)"
        )
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError("stages: expected a list of stage configs")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError("defaults: expected a mapping of config keys")

    shared, per_stage = [], {}
    for text in overrides or []:
        path, _ = cfg.parse_override(text)
        if path[0] == "stages" and len(path) > 2:
            per_stage.setdefault(path[1], []).append(text.split(".", 2)[2])
        else:
            shared.append(text)
    names = [s.get("name") if isinstance(s, dict) else None for s in stages_raw]
    for stage_name in per_stage:
        if stage_name not in names:
            raise ConfigError(
                f"--set stages.{stage_name}...: no stage named '{stage_name}' (stages: {', '.join(map(str, names))})"
            )

    stages: list[Stage] = []
    for index, entry in enumerate(stages_raw, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"stages[{index}]: expected a mapping with a name and a stage config")
        entry = dict(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"stages[{index}]: every stage needs a name")
        if name in (s.name for s in stages):
            raise ConfigError(f"stages[{index}]: the name '{name}' is used twice")
        parent = entry.pop("from", None)
        if parent is not None and parent not in (s.name for s in stages):
            raise ConfigError(
                f"stages.{name}.from = '{parent}': not an earlier stage "
                f"(earlier: {', '.join(s.name for s in stages) or 'none'})"
            )
        reward_stages = _reward_stages(name, entry.pop("rewards_from", None), stages)
        stage_raw = cfg.apply_overrides(_merge(defaults, entry), shared + per_stage.get(name, []))
        stage_raw.setdefault("name", name)
        if reward_stages:
            stage_raw = _with_reward_stages(name, stage_raw, reward_stages)
        try:
            config = cfg.from_dict(stage_raw)
        except ConfigError as err:
            raise ConfigError(f"stages.{name}: {err}") from None
        if parent is not None and config.init.from_run:
            raise ConfigError(f"stages.{name}: give either from (an earlier stage) or init.from_run, not both")
        if reward_stages and config.stage not in cfg.ONLINE_STAGES:
            raise ConfigError(
                f"stages.{name}.rewards_from: a {config.stage} stage takes no reward models "
                f"(only {', '.join(cfg.ONLINE_STAGES)} stages do)"
            )
        stages.append(Stage(name, parent, config, reward_stages))
    return Pipeline(str(raw.get("pipeline") or default_name), stages)


def _with_reward_stages(name: str, stage_raw: dict, reward_stages: list[str]) -> dict:
    """The stage's raw config with its rewards_from stages as the first reward sources (run: <stage name>), before
    any built-in or function sources it names. The stage names stand in for run ids while validating; the runs' ids
    replace them when the runs exist (runner.run_pipeline)."""
    try:
        stage_raw = cfg.upgrade_reward_models(stage_raw)
    except ConfigError as err:
        raise ConfigError(f"stages.{name}: {err}") from None
    rewards = dict(stage_raw.get("rewards") or {})
    others = rewards.get("sources") or []
    if not isinstance(others, list):
        raise ConfigError(f"stages.{name}.rewards.sources: expected a list of sources")
    if any(isinstance(source, dict) and source.get("run") for source in others):
        raise ConfigError(
            f"stages.{name}: give the reward runs either as rewards_from (earlier reward stages) or as "
            "rewards.sources run entries, not both"
        )
    rewards["sources"] = [{"run": reward_name} for reward_name in reward_stages] + others
    return {**stage_raw, "rewards": rewards}


def _reward_stages(name: str, value, earlier: list[Stage]) -> list[str]:
    """The names in a stage's rewards_from, each checked to be an earlier reward stage."""
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"stages.{name}.rewards_from: expected the name of an earlier reward stage, or a list")
    by_name = {s.name: s for s in earlier}
    for reward_name in names:
        if reward_name not in by_name:
            raise ConfigError(
                f"stages.{name}.rewards_from = '{reward_name}': not an earlier stage "
                f"(earlier: {', '.join(by_name) or 'none'})"
            )
        if by_name[reward_name].config.stage != "reward":
            raise ConfigError(
                f"stages.{name}.rewards_from = '{reward_name}': that stage trains "
                f"{by_name[reward_name].config.stage}, not a reward model"
            )
    return names


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> Pipeline:
    return from_dict(cfg.read_yaml(path), overrides, default_name=Path(path).stem)
