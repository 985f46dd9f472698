"""presets/: every file opens with a comment; the GPU presets fit a 24 GB card by studio/modeling/estimate.py and say
so; each
GPU preset's offline twin (studio/pipelines/twins.py) validates, matches its --set form, and trains for real (slow).

Loading and validating every preset and pipeline is in test_config.py and test_pipeline.py (they glob presets/).

    python -m pytest tests/test_presets.py -q             # quick checks
    python -m pytest tests/test_presets.py -q -m slow     # every twin trained in this process, about 2 minutes
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from studio import config as cfg
from studio.modeling.estimate import GIB
from studio.pipelines import recipe
from studio.pipelines.twins import TWIN_STEPS, is_offline, offline_twin, peak_memory, twin_sets
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.worker import run_stage

REPO = Path(__file__).resolve().parent.parent
ALL_PRESETS = sorted((REPO / "presets").glob("*.yaml"))

# Budget for a 24 GB card: the estimate leaves out the CUDA context (0.5 to 1 GiB) and allocator fragmentation.
BUDGET_GIB = 22.0

# The published config.json shapes of the hub models the presets name (nothing here can download them; the
# estimate needs only shapes). From each repository's config.json on the Hugging Face Hub.
HUB_CONFIGS = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "rope_theta": 100000,
        "tie_word_embeddings": True,
    },
    "HuggingFaceTB/SmolLM2-360M-Instruct": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "head_dim": 64,
        "vocab_size": 49152,
        "max_position_embeddings": 8192,
        "rope_theta": 100000,
        "tie_word_embeddings": True,
    },
    "Qwen/Qwen2.5-0.5B-Instruct": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
    "Qwen/Qwen2.5-1.5B-Instruct": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
}


def read_raw(path: Path) -> dict:
    return cfg.read_yaml(path)


def stage_configs(raw: dict) -> list[recipe.Stage]:
    """A preset's stages: a pipeline's, or one stage named 'run' for a single run config."""
    if recipe.is_pipeline(raw):
        return recipe.from_dict(raw).stages
    return [recipe.Stage("run", None, cfg.from_dict(raw))]


GPU_PRESETS = [p for p in ALL_PRESETS if not all(is_offline(s.config) for s in stage_configs(read_raw(p)))]
IDS = [p.stem for p in GPU_PRESETS]


def test_there_are_gpu_presets_for_each_model_and_stage():
    covered = {
        (s.config.model.name, s.config.stage, s.config.data.source)
        for p in GPU_PRESETS
        for s in stage_configs(read_raw(p))
    }
    for model in HUB_CONFIGS:
        assert any(m == model for m, _, _ in covered), model
    for stage, source in (
        ("sft", "dolly"),
        ("reward", "shp"),
        ("reward", "hh-rlhf"),
        ("dpo", "hh-rlhf"),
        ("ppo", "hh-rlhf"),
    ):
        assert any((st, so) == (stage, source) for _, st, so in covered), (stage, source)


@pytest.mark.parametrize("path", ALL_PRESETS, ids=[p.stem for p in ALL_PRESETS])
def test_every_preset_opens_with_a_comment_saying_what_it_does(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines and lines[0].startswith("# ") and len(lines[0]) > 20, f"{path.name}: first line is not a comment"


@pytest.mark.parametrize("path", GPU_PRESETS, ids=IDS)
def test_gpu_preset_names_follow_stage_data_model(path):
    stages = stage_configs(read_raw(path))
    last = stages[-1].config
    short = {"sft": "sft", "reward": "rm", "dpo": "dpo", "ppo": "ppo"}[last.stage]
    data = {"dolly": "dolly", "shp": "shp", "hh-rlhf": "hh"}[last.data.source]
    assert path.stem.startswith(f"{short}-{data}-"), path.stem


# ---------------------------------------------------------------- memory on a 24 GB card


@pytest.fixture(scope="module")
def hub_shapes(tmp_path_factory) -> dict[str, str]:
    """Each hub model as a local folder holding only its config.json, which is all the estimate reads."""
    root = tmp_path_factory.mktemp("hub-shapes")
    folders = {}
    for name, shape in HUB_CONFIGS.items():
        folder = root / name.replace("/", "--")
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(shape), encoding="utf-8")
        folders[name] = str(folder)
    return folders


STATED = re.compile(r"estimated peak memory ([0-9.]+) GiB")


@pytest.mark.parametrize("path", GPU_PRESETS, ids=IDS)
def test_gpu_preset_fits_24gb_and_its_comment_says_the_estimate(path, hub_shapes):
    stages = stage_configs(read_raw(path))
    peak = 0
    for stage in stages:
        used = peak_memory(stage.config, hub_shapes[stage.config.model.name])
        assert used < BUDGET_GIB * GIB, f"{path.name} {stage.name}: estimated {used / GIB:.1f} GiB"
        peak = max(peak, used)
    comment = " ".join(line[2:] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# "))
    stated = STATED.search(comment)
    assert stated, f"{path.name}: its comment should say 'estimated peak memory N GiB'"
    assert float(stated.group(1)) == pytest.approx(peak / GIB, abs=0.15), (
        f"{path.name}: the comment says {stated.group(1)} GiB, the estimate is {peak / GIB:.1f} GiB"
    )
    assert re.search(r"\b(minutes?|hours?)\b", comment), f"{path.name}: its comment should say roughly how long"


# ---------------------------------------------------------------- offline twins


@pytest.mark.parametrize("path", GPU_PRESETS, ids=IDS)
def test_twin_validates_offline_and_short(path):
    raw = read_raw(path)
    twin = offline_twin(raw)
    assert raw == read_raw(path), "offline_twin must not change its input"
    original, stages = stage_configs(raw), stage_configs(twin)
    assert [s.name for s in stages] == [s.name for s in original]
    assert [(s.parent, s.reward_stages) for s in stages] == [(s.parent, s.reward_stages) for s in original]
    for before, after in zip(original, stages):
        config = after.config
        assert is_offline(config) and config.model.name == "tiny" and config.data.path == "sample"
        assert (config.stage, config.data.source, config.lora) == (
            before.config.stage,
            before.config.data.source,
            before.config.lora,
        )
        assert config.train.max_steps in (-1, TWIN_STEPS) and config.data.limit <= 32
        assert config.train.batch_size <= 4 and config.data.max_length <= 256


@pytest.mark.parametrize("path", GPU_PRESETS, ids=IDS)
def test_twin_is_the_preset_with_set_overrides(path):
    """`rlhf-studio train PRESET $(python -m studio.pipelines.twins sets PRESET)` trains the same twin."""
    args = twin_sets(path)
    assert args[::2] == ["--set"] * (len(args) // 2) and all(" " not in a for a in args)
    raw = read_raw(path)
    sets = args[1::2]
    if recipe.is_pipeline(raw):
        via_sets = [s.config for s in recipe.from_dict(raw, sets).stages]
    else:
        via_sets = [cfg.from_dict(cfg.apply_overrides(raw, sets))]
    assert via_sets == [s.config for s in stage_configs(offline_twin(raw))]


def test_the_module_prints_sets_and_twins(capsys):
    from studio.pipelines.twins import main

    path = str(GPU_PRESETS[0])
    assert main(["sets", path]) == 0 and "--set " in capsys.readouterr().out
    assert main(["twin", path]) == 0 and "name: tiny" in capsys.readouterr().out
    assert main(["twin", "presets/no-such.yaml"]) == 1
    assert "no such config file" in capsys.readouterr().err
    assert main([]) == 2


def train_in_process(raw: dict) -> list:
    """Each stage as a real run through the worker's code path (`run_stage`), in this process to save the imports
    per run; pipeline links resolved as `rlhf-studio train` does."""
    run_ids, runs = {}, []
    for stage in stage_configs(raw):
        config = stage.config
        if stage.parent:
            config.init.from_run = run_ids[stage.parent]
        for source, name in zip(config.rewards.sources, stage.reward_stages):  # rewards_from: the first sources
            source.run = run_ids[name]
        run = manager.create(config)
        run_stage(run)
        run.write_status(state="completed", error=None)  # what the worker records after run_stage returns
        run_ids[stage.name] = run.id
        runs.append(run)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("path", GPU_PRESETS, ids=IDS)
def test_twin_trains(path, studio_home):
    for run in train_in_process(offline_twin(read_raw(path))):
        rows = read_all(run.metrics_path)
        values = [row[key] for row in rows for key in ("loss", "reward") if isinstance(row.get(key), (int, float))]
        assert values and all(math.isfinite(v) for v in values), f"{run.id}: no finite loss or reward in {rows}"
        assert run.adapter_dir.is_dir(), f"{run.id}: no adapter written"
