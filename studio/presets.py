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

    python -m studio.presets sets presets/rm-hh-qwen2.5-0.5b.yaml      # prints --set KEY=VALUE ...
    P=presets/rm-hh-qwen2.5-0.5b.yaml; rlhf-studio train $P $(python -m studio.presets sets $P)
    python -m studio.presets twin presets/ppo-hh-smollm2-135m.yaml        # prints the twin's YAML

    from studio.presets import offline_twin
    raw = offline_twin(cfg.read_yaml("presets/dpo-hh-qwen2.5-1.5b.yaml"))   # a mapping, as read_yaml gives

tests/test_presets.py trains every GPU preset's twin for real (slow-marked).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from studio import config as cfg

TWIN_STEPS = 2
TWIN_ROWS = 32
TWIN_MAX_LENGTH = 256
TWIN_BATCH = 4
TWIN_ANSWER_TOKENS = 8


def is_offline(config: cfg.RunConfig) -> bool:
    """True when a run config needs neither the hub nor a GPU: the tiny model (or a local folder), local data."""
    model_local = config.model.name == "tiny" or config.model.name.startswith((".", "/", "~"))
    data_local = config.data.source == "votes" or config.data.path not in (None, "", "hub")
    return model_local and data_local and config.model.quantization == "none"


def offline_overrides(config: cfg.RunConfig) -> list[str]:
    """The `KEY=VALUE` overrides that turn a run config into its offline twin (see the module docstring)."""
    data, train = config.data, config.train
    sets = ["model.name=tiny", "model.quantization=none", "model.dtype=auto", "model.revision=",
            "model.trust_remote_code=false",
            "data.subset=", "data.categories=[]", "data.domains=[]",
            f"data.limit={min(data.limit or TWIN_ROWS, TWIN_ROWS)}",
            f"data.max_length={min(data.max_length, TWIN_MAX_LENGTH)}",
            f"train.batch_size={min(train.batch_size, TWIN_BATCH)}", "train.gradient_accumulation_steps=1",
            "train.logging_steps=1", "train.eval_steps=0", "train.save_steps=0",
            f"timeline.max_new_tokens={min(config.timeline.max_new_tokens, 4)}"]
    if data.source != "votes":  # the votes source reads the studio's own votes file, never the hub
        sets.append("data.path=sample")
    if config.stage == "rejection":  # rounds take the place of max_steps there
        sets += ["rejection.rounds=1", "rejection.prompts_per_round=4", "rejection.samples_per_prompt=2",
                 f"rejection.response_length={min(config.rejection.response_length, TWIN_ANSWER_TOKENS)}",
                 "rejection.sft_epochs=1", "rejection.generation_batch_size=8"]
    else:
        sets.append(f"train.max_steps={TWIN_STEPS}")
    if config.stage == "ppo":
        sets += ["train.batch_size=4", "ppo.mini_batch_size=2", "ppo.ppo_epochs=1",
                 f"ppo.response_length={min(config.ppo.response_length, TWIN_ANSWER_TOKENS)}"]
    if config.stage in ("grpo", "rloo"):
        sets += ["train.batch_size=4", f"{config.stage}.num_generations=2",
                 f"{config.stage}.max_completion_length="
                 f"{min(getattr(config, config.stage).max_completion_length, TWIN_ANSWER_TOKENS)}"]
    if config.stage == "kto":
        sets.append("train.batch_size=4")  # the kto loss needs at least 2 per batch
    return sets


def pipeline_overrides(raw: dict) -> list[str]:
    """The twin of a pipeline mapping as `stages.NAME.KEY=VALUE` overrides, one set per stage."""
    from studio import pipeline

    loaded = pipeline.from_dict(raw)
    return [f"stages.{stage.name}.{text}" for stage in loaded.stages for text in offline_overrides(stage.config)]


def offline_twin(raw: dict) -> dict:
    """A run config or pipeline mapping (as `config.read_yaml` gives it) -> its offline twin, a new mapping that
    validates the same way. The input is checked first, so a broken preset fails here with its own message."""
    from studio import pipeline

    if not pipeline.is_pipeline(raw):
        return cfg.apply_overrides(raw, offline_overrides(cfg.from_dict(raw)))
    loaded = pipeline.from_dict(raw)
    twin = cfg.apply_overrides(raw, [])  # a deep copy
    entries = {entry["name"]: entry for entry in twin["stages"]}
    for stage in loaded.stages:
        # A stage's own keys win over `defaults`, so setting them on the stage entry is enough.
        entries[stage.name].update(cfg.apply_overrides(entries[stage.name], offline_overrides(stage.config)))
    if isinstance(twin.get("pipeline"), str):
        twin["pipeline"] = f"{twin['pipeline']}-offline"
    return twin


def peak_memory(config: cfg.RunConfig, model_name: str | None = None) -> int:
    """Bytes studio/estimate.py counts for the run config's stage, on a GPU (auto counted as bfloat16); `model_name`
    (a local folder holding the model's config.json) stands in for model.name, e.g. a hub id with no network."""
    from studio.estimate import run_estimate

    return run_estimate(config, model_name).total


def twin_sets(path: str | Path) -> list[str]:
    """`--set` arguments that make `rlhf-studio train PATH` run the offline twin of the preset at PATH."""
    from studio import pipeline

    raw = cfg.read_yaml(path)
    texts = pipeline_overrides(raw) if pipeline.is_pipeline(raw) else offline_overrides(cfg.from_dict(raw))
    return [part for text in texts for part in ("--set", text)]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("sets", "twin"):
        print("usage: python -m studio.presets sets|twin PRESET.yaml", file=sys.stderr)
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
