"""studio/config.py: defaults, presets, one-line errors, --set overrides, YAML round trip, help text.

python -m pytest tests/test_config.py -q
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from studio.config import (
    DataSpec,
    LoraSpec,
    ModelSpec,
    RunConfig,
    TrainSpec,
    apply_overrides,
    field_info,
    from_dict,
    load_config,
    parse_override,
    read_yaml,
    to_dict,
    to_yaml,
)
from studio.errors import ConfigError, StudioError

ALL_PRESETS = sorted((Path(__file__).resolve().parent.parent / "presets").glob("*.yaml"))
PRESETS = [p for p in ALL_PRESETS if "stages" not in yaml.safe_load(p.read_text())]  # pipelines: test_pipeline.py


def refused(raw) -> str:
    """The message of the ConfigError that from_dict raises for `raw`."""
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults and presets


def test_default_config_validates():
    config = RunConfig()
    assert from_dict(to_dict(config)) == config
    assert from_dict({}) == config
    assert load_config() == config


def test_defaults_are_the_documented_ones():
    config = RunConfig()
    assert config.stage == "sft"
    assert config.model.name == "tiny"
    assert config.data.source == "dolly" and config.data.path is None
    assert config.train.learning_rate == 2e-4 and config.train.max_steps == -1
    assert config.lora.target_modules == ["all-linear"]
    # list defaults are not shared between instances
    assert RunConfig().lora.target_modules is not RunConfig().lora.target_modules


def test_there_are_presets():
    assert PRESETS, "presets/*.yaml is empty"


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_loads(path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    # what the preset sets is what the config holds
    for section, values in read_yaml(path).items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert same(getattr(getattr(config, section), key), value), f"{section}.{key}"
        else:
            assert same(getattr(config, section), values), section


def same(held, written) -> bool:
    """A config value equals what the YAML wrote, allowing the conversions from_dict makes."""
    if isinstance(written, str) and isinstance(held, float):
        return held == float(written)  # 2e-4 arrives from YAML as text
    if isinstance(written, str) and isinstance(held, list):
        return held == [part.strip() for part in written.split(",") if part.strip()]
    if written == "" and held is None:
        return True
    return held == written


# ---------------------------------------------------------------- error messages


def test_unknown_key_names_it_and_suggests_the_close_one():
    message = refused({"train": {"learnin_rate": 1e-4}})
    assert "unknown key 'train.learnin_rate'" in message
    assert "did you mean 'train.learning_rate'?" in message


def test_unknown_top_level_key():
    message = refused({"modle": {"name": "tiny"}})
    assert "unknown key 'modle'" in message
    assert "'model'" in message


def test_unknown_key_from_a_file(tmp_path):
    path = write(tmp_path, "train:\n  learnin_rate: 0.001\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train\.learnin_rate'.*'train\.learning_rate'"):
        load_config(path)


def test_negative_learning_rate_names_key_value_and_bound():
    message = refused({"train": {"learning_rate": -0.1}})
    assert message.startswith("train.learning_rate")
    assert "-0.1" in message
    assert "greater than 0" in message


def test_zero_learning_rate_refused():
    assert "greater than 0" in refused({"train": {"learning_rate": 0}})


@pytest.mark.parametrize(
    "raw, key, value, expected",
    [
        ({"train": {"max_steps": "ten"}}, "train.max_steps", "'ten'", "expected an integer"),
        ({"train": {"batch_size": 2.5}}, "train.batch_size", "2.5", "expected an integer"),
        ({"train": {"batch_size": True}}, "train.batch_size", "True", "expected an integer"),
        ({"model": {"name": 5}}, "model.name", "5", "expected text"),
        ({"lora": {"enabled": "yes"}}, "lora.enabled", "'yes'", "expected true or false"),
        ({"lora": {"enabled": 1}}, "lora.enabled", "1", "expected true or false"),
        ({"train": {"learning_rate": "fast"}}, "train.learning_rate", "'fast'", "expected a number"),
        ({"lora": {"target_modules": [3]}}, "lora.target_modules", "[3]", "expected a list of names"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(raw, key, value, expected):
    message = refused(raw)
    assert message == f"{key} = {value}: {expected}"


def test_quoted_yes_in_yaml_is_not_a_bool(tmp_path):
    path = write(tmp_path, 'lora:\n  enabled: "yes"\n')
    with pytest.raises(ConfigError, match=r"lora\.enabled = 'yes': expected true or false"):
        load_config(path)


def test_value_outside_choices_lists_the_allowed_ones():
    message = refused({"model": {"dtype": "fp8"}})
    assert message.startswith("model.dtype = 'fp8'")
    assert "allowed values are auto, float32, bfloat16, float16" in message


def test_choices_of_stage_and_source():
    assert "allowed values are sft" in refused({"stage": "ppo-ish"})
    assert "allowed values are dolly" in refused({"data": {"source": "imdb"}})


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({"lora": {"r": 0}}, "lora.r", "at least 1"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout", "less than 1.0"),
        ({"data": {"eval_fraction": 0.5}}, "data.eval_fraction", "less than 0.5"),
        ({"data": {"max_length": 8}}, "data.max_length", "at least 16"),
        ({"data": {"limit": 0}}, "data.limit", "at least 1"),
        ({"train": {"max_steps": -2}}, "train.max_steps", "at least -1"),
        ({"train": {"weight_decay": 1.5}}, "train.weight_decay", "at most 1.0"),
    ],
)
def test_range_errors(raw, key, words):
    message = refused(raw)
    assert message.startswith(f"{key} = ")
    assert f"must be {words}" in message


def test_non_finite_number_refused():
    assert "finite" in refused({"train": {"learning_rate": float("inf")}})
    assert "finite" in refused({"train": {"learning_rate": "nan"}})


def test_max_steps_zero_refused():
    message = refused({"train": {"max_steps": 0}})
    assert message.startswith("train.max_steps = 0")
    assert "-1" in message and "positive" in message


def test_max_steps_minus_one_and_positive_accepted():
    assert from_dict({"train": {"max_steps": -1}}).train.max_steps == -1
    assert from_dict({"train": {"max_steps": 1}}).train.max_steps == 1


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantization_without_lora_refused(bits):
    message = refused({"model": {"quantization": bits}, "lora": {"enabled": False}})
    assert f"model.quantization = '{bits}'" in message
    assert "lora.enabled" in message


def test_quantization_with_lora_accepted():
    config = from_dict({"model": {"quantization": "4bit"}, "lora": {"enabled": True}})
    assert config.model.quantization == "4bit"


@pytest.mark.parametrize("value, shown", [(5, "5"), ([1, 2], "[1, 2]"), ("fast", "'fast'")])
def test_section_that_is_not_a_mapping(value, shown):
    assert refused({"train": value}) == f"train: expected a mapping of keys, got {shown}"


def test_required_value_missing():
    assert refused({"model": {"name": None}}) == "model.name: a value is required (text)"


def test_empty_section_uses_defaults(tmp_path):
    path = write(tmp_path, "train:\nlora:\n")
    assert load_config(path) == RunConfig()


def test_empty_file_is_the_default_config(tmp_path):
    assert load_config(write(tmp_path, "")) == RunConfig()


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "stage: sft\ntrain:\n  max_steps: 5\n  bad: [1\n", name="broken.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "line " in message and "not valid YAML" in message


def test_invalid_yaml_line_number_is_the_bad_line(tmp_path):
    path = write(tmp_path, "stage: sft\nname: a: b\n", name="broken.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path} line 2: not valid YAML" in str(info.value)


def test_top_level_list_refused(tmp_path):
    path = write(tmp_path, "- stage\n- sft\n")
    with pytest.raises(ConfigError, match="expected a mapping of config keys at the top level"):
        load_config(path)


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: no such config file"


def test_config_error_is_a_studio_error():
    assert issubclass(ConfigError, StudioError)


# ---------------------------------------------------------------- overrides


def test_parse_override_reads_values_as_yaml():
    assert parse_override("train.max_steps=20") == (["train", "max_steps"], 20)
    assert parse_override("lora.enabled=false") == (["lora", "enabled"], False)
    assert parse_override("model.name=HuggingFaceTB/SmolLM2-135M-Instruct") == (
        ["model", "name"],
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    assert parse_override("data.limit=") == (["data", "limit"], None)
    assert parse_override(" train.seed = 7") == (["train", "seed"], 7)


def test_parse_override_keeps_unparseable_yaml_as_text():
    assert parse_override("name=a: b: c") == (["name"], "a: b: c")


@pytest.mark.parametrize("text", ["train.max_steps", "=5", "", "  =x"])
def test_override_without_key_value_refused(text):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    message = str(info.value)
    assert message.startswith(f"--set {text!r}")
    assert "KEY=VALUE" in message


def test_apply_overrides_does_not_touch_the_input():
    raw = {"train": {"max_steps": 5}, "lora": {"target_modules": ["q_proj"]}}
    out = apply_overrides(raw, ["train.max_steps=7", "model.name=gpt2"])
    assert out == {"train": {"max_steps": 7}, "lora": {"target_modules": ["q_proj"]}, "model": {"name": "gpt2"}}
    assert raw == {"train": {"max_steps": 5}, "lora": {"target_modules": ["q_proj"]}}
    assert out["lora"]["target_modules"] is not raw["lora"]["target_modules"]


def test_apply_overrides_into_a_non_section_refused():
    with pytest.raises(ConfigError, match="'stage' is not a section"):
        apply_overrides({"stage": "sft"}, ["stage.x=1"])


def test_load_config_with_overrides_gives_typed_values(tmp_path):
    path = write(tmp_path, "data:\n  limit: 100\n  path: sample\ntrain:\n  max_steps: 60\n")
    config = load_config(
        path, ["train.max_steps=20", "train.learning_rate=2e-4", "lora.target_modules=q_proj,v_proj", "data.limit="]
    )
    assert config.train.max_steps == 20 and type(config.train.max_steps) is int
    # YAML reads 2e-4 (no dot) as text; the config must hold the float
    assert config.train.learning_rate == 0.0002 and type(config.train.learning_rate) is float
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.data.limit is None
    assert config.data.path == "sample"  # untouched by the overrides


def test_overrides_are_validated():
    with pytest.raises(ConfigError, match=r"unknown key 'train\.learnin_rate'"):
        load_config(None, ["train.learnin_rate=1e-4"])
    with pytest.raises(ConfigError, match=r"train\.max_steps = 0"):
        load_config(None, ["train.max_steps=0"])


def test_empty_override_for_a_required_field_refused():
    with pytest.raises(ConfigError, match=r"train\.max_steps: a value is required"):
        load_config(None, ["train.max_steps="])


def test_empty_text_for_optional_field_is_none():
    assert from_dict({"model": {"revision": ""}}).model.revision is None
    assert from_dict({"data": {"limit": ""}}).data.limit is None


def test_text_list_from_a_form_is_split_and_trimmed():
    config = from_dict({"lora": {"target_modules": " q_proj , v_proj,, "}, "data": {"categories": "open_qa"}})
    assert config.lora.target_modules == ["q_proj", "v_proj"]
    assert config.data.categories == ["open_qa"]


def test_float_fields_accept_integers_as_floats():
    config = from_dict({"train": {"epochs": 2}})
    assert config.train.epochs == 2.0 and type(config.train.epochs) is float


# ---------------------------------------------------------------- YAML round trip


def test_yaml_round_trip_of_default(tmp_path):
    config = RunConfig()
    path = write(tmp_path, to_yaml(config))
    assert load_config(path) == config


def test_yaml_round_trip_of_non_defaults(tmp_path):
    config = RunConfig(
        name="my run",
        model=ModelSpec(name="HuggingFaceTB/SmolLM2-135M-Instruct", revision="main", quantization="4bit"),
        data=DataSpec(
            path="/data/dolly.jsonl.gz",
            limit=500,
            categories=["open_qa", "summarization"],
            on_bad_rows="fail",
            eval_fraction=0.1,
        ),
        lora=LoraSpec(r=8, alpha=16, target_modules=["q_proj", "v_proj"], use_dora=True),
        train=TrainSpec(max_steps=20, learning_rate=1e-5, lr_scheduler="linear", seed=0),
    )
    path = write(tmp_path, to_yaml(config))
    back = load_config(path)
    assert back == config
    assert type(back.train.learning_rate) is float


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_yaml_round_trip_of_presets(path, tmp_path):
    config = load_config(path)
    assert load_config(write(tmp_path, to_yaml(config))) == config


# ---------------------------------------------------------------- help text for the UI


def test_field_info_has_the_keys_the_ui_needs():
    info = field_info()
    for key in ("model.name", "data.source", "data.path", "data.limit", "train.max_steps", "train.learning_rate"):
        assert key in info, key
        assert isinstance(info[key]["help"], str) and info[key]["help"].strip(), key


def test_every_leaf_field_has_help_text():
    info = field_info()
    assert len(info) > 30
    missing = [key for key, meta in info.items() if not (meta.get("help") or "").strip()]
    assert missing == []


def test_field_info_defaults_types_and_choices():
    info = field_info()
    assert info["train.learning_rate"]["default"] == 2e-4
    assert info["train.learning_rate"]["gt"] == 0.0
    assert info["model.dtype"]["choices"] == ("auto", "float32", "bfloat16", "float16")
    assert info["lora.target_modules"]["default"] == ["all-linear"]
    assert info["train.max_steps"]["type"] is int


def test_field_info_covers_every_leaf_of_the_config():
    def leaves(cls, prefix=""):
        for f in dataclasses.fields(cls):
            value = getattr(cls(), f.name)
            if dataclasses.is_dataclass(value):
                yield from leaves(type(value), f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    assert set(field_info()) == set(leaves(RunConfig))


# ---------------------------------------------------------------- one line each


ONE_LINE_CASES = [
    pytest.param({"train": {"learnin_rate": 1}}, id="unknown-key"),
    pytest.param({"train": {"learning_rate": -1}}, id="range"),
    pytest.param({"model": {"name": "a\nb", "dtype": "x\ny"}}, id="choices-with-newline"),
    pytest.param({"model": {"name": ["multi\nline"]}}, id="wrong-type-with-newline"),
    pytest.param({"train": {"max_steps": "ten\neleven"}}, id="int-text-with-newline"),
    pytest.param({"lora": {"target_modules": ["a\nb", 3]}}, id="list-with-newline"),
    pytest.param({"train": "a\nb"}, id="section-text-with-newline"),
    pytest.param({"train": {"max_steps": 0}}, id="max-steps-zero"),
    pytest.param({"model": {"quantization": "8bit"}, "lora": {"enabled": False}}, id="quantization"),
    pytest.param({"model": {"name": None}}, id="required"),
    pytest.param({"train\nx": 1}, id="unknown-key-with-newline"),
]


@pytest.mark.parametrize("raw", ONE_LINE_CASES)
def test_config_errors_are_one_line(raw):
    message = refused(raw)
    assert message.strip()
    assert "\n" not in message


@pytest.mark.parametrize(
    "text",
    [
        "train:\n  max_steps: 5\n bad: [1\n",
        'name: "unclosed\n',
        "train:\n\tmax_steps: 1\n",
        "name: a: b\n",
        "{stage: sft\n",
        "name: @x\n",
        '"\\q": 1\n',
        "- a\n- b\n",
        "train:\n  learnin_rate: 1\n",
        "train:\n  learning_rate: -1\n",
    ],
)
def test_file_errors_are_one_line(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_binary_config_file_is_one_line_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01\x89PNG")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("overrides", [["nokey"], ["stage.x=1"], ["train.max_steps=ten"], ["a.b=1"]])
def test_override_errors_are_one_line(overrides):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value)


def test_every_stage_has_a_one_line_summary():
    from studio.config import STAGE_SUMMARIES, STAGES

    assert list(STAGE_SUMMARIES) == list(STAGES) and all(STAGE_SUMMARIES[s] for s in STAGES)
