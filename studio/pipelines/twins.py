"""Offline twins of presets: the same recipe on the built-in tiny model and the bundled samples, cut to seconds.

The GPU presets in presets/ name hub models and hub data, which this machine (and CI) cannot download. Each one's
twin keeps every setting that picks a code path (stage, data source, LoRA, packing, margin loss, DPO loss, PPO's
KL control, pipeline links) and swaps only what needs the network or a GPU, or takes long:

- model.name -> tiny, model.quantization -> none (bitsandbytes 4-bit wants a GPU), model.dtype -> auto,
  model.revision -> empty;
- data.path -> sample (the source's bundled file), data.subset -> empty, data.limit -> at most 32 rows,
  data.max_length -> at most 256, Dolly categories and SHP domains -> all (the samples hold a few of each);
- train.max_steps -> 2 with a metrics row every step, batch_size -> at most 4, no accumulation, no checkpoints
  on the way, eval only at the end; sampled answers at most 8 tokens; timeline answers at most 4 tokens.

The twin is written as `--set` overrides, so it is also a command line (a pipeline's as `stages.NAME.KEY=VALUE`):

    python -m studio.pipelines.twins sets presets/rm-hh-qwen2.5-0.5b.yaml      # prints --set KEY=VALUE ...
    P=presets/rm-hh-qwen2.5-0.5b.yaml; rlhf-studio train $P $(python -m studio.pipelines.twins sets $P)
    python -m studio.pipelines.twins twin presets/ppo-hh-smollm2-135m.yaml        # prints the twin's YAML

    from studio.pipelines.twins import offline_twin
    raw = offline_twin(cfg.read_yaml("presets/dpo-hh-qwen2.5-1.5b.yaml"))   # a mapping, as read_yaml gives

tests/test_presets.py trains every GPU preset's twin for real (slow-marked).

What a preset needs, for the lists that offer them (the Train tab's presets, the Pipelines tab's recipes): `needs`
says "GPU" and "hub" for a config, `offline_first` puts the presets this machine can run now first when it has no
GPU, and `gpu_warning` is the one line a GPU recipe gets on such a machine, naming its tiny twin among the bundled
presets (`tiny_twin`: the offline preset with the same stages, and the same data source where there is one).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from studio import config as cfg
from studio import stages as registry
from studio.paths import BUNDLED_PRESETS

TWIN_STEPS = 2
TWIN_ROWS = 32
TWIN_MAX_LENGTH = 256
TWIN_BATCH = 4
TWIN_ANSWER_TOKENS = 8


def is_offline(config: cfg.RunConfig) -> bool:
    """True when a run config needs neither the hub nor quantisation (a GPU): the tiny model (or a local folder),
    local data (see `needs`)."""
    return "hub" not in needs(config) and config.model.quantization == "none"


def needs(config: cfg.RunConfig) -> list[str]:
    """What a run config needs beyond this machine's CPU and files: "GPU" for a real model (the presets size them
    for one) or bitsandbytes quantisation (CUDA only), "hub" for a hub model or hub data. Empty for the tiny model on
    local data."""
    from studio import data
    from studio.modeling import model_files

    name = config.model.name
    hub_model = (
        name != model_files.TINY_NAME
        and not model_files.looks_like_a_path(name)
        and not Path(name).expanduser().is_dir()
    )
    hub_data = config.data.path in (None, "", data.HUB) and data.source_module(config.data.source).HUB_ID is not None
    found = []
    if name != model_files.TINY_NAME or config.model.quantization != "none":
        found.append("GPU")
    if hub_model or hub_data:
        found.append("hub")
    return found


def pipeline_needs(configs: Iterable[cfg.RunConfig]) -> list[str]:
    """What any of a pipeline's stage configs needs (see `needs`), in the same order."""
    found = {need for config in configs for need in needs(config)}
    return [need for need in ("GPU", "hub") if need in found]


def has_gpu() -> bool:
    """Whether this machine has a GPU to train on, asked without importing torch (seconds): an NVIDIA or AMD device
    node, or Apple silicon. CUDA_VISIBLE_DEVICES set empty (or -1) hides the GPUs, as it does from torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return any(Path(node).exists() for node in ("/dev/nvidia0", "/dev/kfd")) or any(
        Path("/proc/driver/nvidia/gpus").glob("*")
    )


def offline_first(named: dict[str, list[str]]) -> list[str]:
    """The names of {name: needs} in their order, those that need something moved after the rest when this
    machine has no GPU (with one, the order stays)."""
    if has_gpu():
        return list(named)
    return sorted(named, key=lambda name: bool(named[name]))  # stable: each group keeps its order


def configs_of(raw: dict) -> list[cfg.RunConfig]:
    """The run configs of a preset mapping (as `config.read_yaml` gives it): one, or a pipeline's stages in order."""
    from studio.pipelines import recipe

    if recipe.is_pipeline(raw):
        return [stage.config for stage in recipe.from_dict(raw).stages]
    return [cfg.from_dict(raw)]


@functools.lru_cache(maxsize=1)
def _offline_bundled() -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """(name, stages, data sources) of every bundled preset and recipe that needs neither a GPU nor the hub; read
    once, since the bundled files do not change while the studio runs."""
    from studio.errors import StudioError

    found = []
    for path in sorted(BUNDLED_PRESETS.glob("*.yaml")):
        try:
            configs = configs_of(cfg.read_yaml(path))
        except StudioError:
            continue
        if not pipeline_needs(configs):
            found.append((path.stem, tuple(c.stage for c in configs), tuple(c.data.source for c in configs)))
    return tuple(found)


def tiny_twin(configs: list[cfg.RunConfig]) -> str | None:
    """The bundled offline preset (or recipe, for several stages) that trains the same stages in the same order,
    preferring one on the same data sources: the tiny twin to name when `configs` need a GPU; None when none does."""
    shape = tuple(config.stage for config in configs)
    sources = [config.data.source for config in configs]
    best, best_score = None, -1
    for name, stages, twin_sources in _offline_bundled():
        score = sum(a == b for a, b in zip(sources, twin_sources))
        if stages == shape and score > best_score:
            best, best_score = name, score
    return best


def gpu_warning(configs: list[cfg.RunConfig]) -> str | None:
    """One line for a run config (or a pipeline's stage configs) that needs a GPU on a machine without one, naming
    its tiny twin; None when there is a GPU or no need of one."""
    if "GPU" not in pipeline_needs(configs) or has_gpu():
        return None
    twin = tiny_twin(configs)
    kind = "recipe" if len(configs) > 1 else "preset"
    models = sorted({config.model.name for config in configs if config.model.name != "tiny"})
    what = f"sized for a GPU ({', '.join(models)})" if models else "sized for a GPU (quantised weights)"
    if twin is None:
        instead = "for a quick try here, set model.name to tiny and data.path to sample"
    elif kind == "recipe":
        instead = f"its tiny twin, the recipe {twin}, runs the same stages offline here in a few minutes"
    else:
        instead = f"its tiny twin, the preset {twin}, trains the same stage offline here in about a minute"
    return f"This {kind} is {what} and this machine has none, so it would take hours here; {instead}."


def offline_overrides(config: cfg.RunConfig) -> list[str]:
    """The `KEY=VALUE` overrides that turn a run config into its offline twin (see the module docstring)."""
    data, train = config.data, config.train
    sets = [
        "model.name=tiny",
        "model.quantization=none",
        "model.dtype=auto",
        "model.revision=",
        "model.trust_remote_code=false",
        "data.subset=",
        "data.categories=[]",
        "data.domains=[]",
        f"data.limit={min(data.limit or TWIN_ROWS, TWIN_ROWS)}",
        f"data.max_length={min(data.max_length, TWIN_MAX_LENGTH)}",
        f"train.batch_size={min(train.batch_size, TWIN_BATCH)}",
        "train.gradient_accumulation_steps=1",
        "train.logging_steps=1",
        "train.eval_steps=0",
        "train.save_steps=0",
        f"timeline.max_new_tokens={min(config.timeline.max_new_tokens, 4)}",
    ]
    if data.source != "votes":  # the votes source reads a vote set of the studio, never the hub
        sets.append("data.path=sample")
    if config.stage == "rejection":  # rounds take the place of max_steps there
        sets += [
            "rejection.rounds=1",
            "rejection.prompts_per_round=4",
            "rejection.samples_per_prompt=2",
            f"rejection.response_length={min(config.rejection.response_length, TWIN_ANSWER_TOKENS)}",
            "rejection.sft_epochs=1",
            "rejection.generation_batch_size=8",
        ]
    else:
        sets.append(f"train.max_steps={TWIN_STEPS}")
    if config.stage == "ppo":
        sets += [
            "train.batch_size=4",
            "ppo.mini_batch_size=2",
            "ppo.ppo_epochs=1",
            f"ppo.response_length={min(config.ppo.response_length, TWIN_ANSWER_TOKENS)}",
        ]
    if registry.get(config.stage).steps == registry.GROUPS:
        section = registry.get(config.stage).section
        sets += [
            "train.batch_size=4",
            f"{section}.num_generations=2",
            f"{section}.max_completion_length="
            f"{min(getattr(config, section).max_completion_length, TWIN_ANSWER_TOKENS)}",
        ]
    if config.stage == "kto":
        sets.append("train.batch_size=4")  # the kto loss needs at least 2 per batch
    return sets


def pipeline_overrides(raw: dict) -> list[str]:
    """The twin of a pipeline mapping as `stages.NAME.KEY=VALUE` overrides, one set per stage."""
    from studio.pipelines import recipe

    loaded = recipe.from_dict(raw)
    return [f"stages.{stage.name}.{text}" for stage in loaded.stages for text in offline_overrides(stage.config)]


def offline_twin(raw: dict) -> dict:
    """A run config or pipeline mapping (as `config.read_yaml` gives it) -> its offline twin, a new mapping that
    validates the same way. The input is checked first, so a broken preset fails here with its own message."""
    from studio.pipelines import recipe

    if not recipe.is_pipeline(raw):
        return cfg.apply_overrides(raw, offline_overrides(cfg.from_dict(raw)))
    loaded = recipe.from_dict(raw)
    twin = cfg.apply_overrides(raw, [])  # a deep copy
    entries = {entry["name"]: entry for entry in twin["stages"]}
    for stage in loaded.stages:
        # A stage's own keys win over `defaults`, so setting them on the stage entry is enough.
        entries[stage.name].update(cfg.apply_overrides(entries[stage.name], offline_overrides(stage.config)))
    if isinstance(twin.get("pipeline"), str):
        twin["pipeline"] = f"{twin['pipeline']}-offline"
    return twin


def peak_memory(config: cfg.RunConfig, model_name: str | None = None) -> int:
    """Bytes studio/modeling/estimate.py counts for the run config's stage, on a GPU (auto counted as bfloat16);
    `model_name`
    (a local folder holding the model's config.json) stands in for model.name, e.g. a hub id with no network."""
    from studio.modeling.estimate import run_estimate

    return run_estimate(config, model_name).total


def twin_sets(path: str | Path) -> list[str]:
    """`--set` arguments that make `rlhf-studio train PATH` run the offline twin of the preset at PATH."""
    from studio.pipelines import recipe

    raw = cfg.read_yaml(path)
    texts = pipeline_overrides(raw) if recipe.is_pipeline(raw) else offline_overrides(cfg.from_dict(raw))
    return [part for text in texts for part in ("--set", text)]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("sets", "twin"):
        print("usage: python -m studio.pipelines.twins sets|twin PRESET.yaml", file=sys.stderr)
        return 2
    from studio.errors import StudioError

    try:
        if argv[0] == "sets":
            print(" ".join(twin_sets(argv[1])))
        else:
            print(yaml.safe_dump(offline_twin(cfg.read_yaml(argv[1])), sort_keys=False), end="")
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
