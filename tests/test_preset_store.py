"""The preset store (studio/pipelines/presets.py): the one place that lists, finds, loads and saves presets and
recipes, for the Train and Pipelines tabs and `rlhf-studio train NAME`. A checkout reads the top-level presets/.

    python -m pytest tests/test_preset_store.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from studio import config as cfg
from studio.errors import ConfigError
from studio.paths import BUNDLED_PRESETS
from studio.pipelines import presets
from tests.conftest import REPO, run_cli

BUNDLED = sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh studio home; the store needs no model, so not the `studio_home` fixture's shared tiny one."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_checkout_lists_the_top_level_presets_as_single_runs_or_recipes():
    assert BUNDLED_PRESETS == REPO / "presets"
    runs, recipes = presets.runs(), presets.recipes()
    assert sorted([*runs, *recipes]) == BUNDLED and not set(runs) & set(recipes)
    assert {"sft-dolly-tiny", "rm-hh-tiny", "dpo-hh-tiny", "kto-hh-tiny"} <= set(runs)
    assert {"ppo-tiny", "llama2-tiny", "sft-dpo-tiny", "grpo-tiny", "rloo-tiny", "rejection-tiny"} <= set(recipes)
    tiny = runs["sft-dolly-tiny"]
    assert (tiny.path, tiny.yours, tiny.kind, tiny.needs) == (BUNDLED_PRESETS / "sft-dolly-tiny.yaml", False, "run", ())
    assert runs["sft-dolly-qwen2.5-0.5b"].needs == ("GPU", "hub")
    assert recipes["ppo-tiny"].description.startswith("InstructGPT (tiny)")


def test_a_saved_preset_keeps_only_what_differs_and_loads_back(home):
    raw = {"stage": "sft", "name": "mine", "train": {"learning_rate": 0.001}, "lora": {"r": 8}}
    path, replaced = presets.save_run(" my-sft ", raw)
    assert (path, replaced) == (home / "presets" / "my-sft.yaml", False)
    text = path.read_text()
    assert text.splitlines()[0] == "# Saved from the studio's Train tab. Run it with `rlhf-studio train my-sft`"
    assert yaml.safe_load(text) == raw
    loaded_raw, config = presets.load_run("my-sft")
    assert loaded_raw == raw and config == cfg.from_dict(raw)
    assert presets.runs()["my-sft"].yours and "my-sft" not in presets.recipes()
    assert presets.save_run("my-sft", {"stage": "dpo", "data": {"source": "hh-rlhf"}}) == (path, True)


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "Preset name '': use 1 to 64 letters, digits, - or _, starting with a letter or digit."),
        ("../x", "Preset name '../x': use 1 to 64 letters, digits, - or _, starting with a letter or digit."),
        ("sft-dolly-tiny", "'sft-dolly-tiny' is the name of a bundled preset; pick another name."),
        ("ppo-tiny", "'ppo-tiny' is the name of a bundled preset; pick another name."),  # a bundled recipe too
        ("my-pipe", "'my-pipe' is the name of your pipeline; pick another name."),
    ],
)
def test_a_preset_is_not_saved_under_a_name_it_cannot_take(home, name, message):
    presets.save_recipe("my-pipe", (REPO / "presets" / "sft-dpo-tiny.yaml").read_text())
    before = sorted(p.name for p in (home / "presets").iterdir())
    with pytest.raises(presets.NameRefused) as err:
        presets.save_run(name, {"stage": "sft"})
    assert str(err.value) == message
    assert sorted(p.name for p in (home / "presets").iterdir()) == before


def test_loading_names_what_is_wrong(home):
    with pytest.raises(ConfigError, match=r"^ppo-tiny is a pipeline \(several linked stages\); open it in the Pip"):
        presets.load_run("ppo-tiny")
    with pytest.raises(ConfigError, match=r"^No preset named '\.\./\.\./etc/passwd'; pick one from the list\.$"):
        presets.load_run("../../etc/passwd")
    (home / "presets").mkdir(parents=True)
    (home / "presets" / "odd.yaml").write_text("stage: sft\ntrain: {batch_size: 0}\n")
    with pytest.raises(ConfigError, match=r"^Preset odd: train\.batch_size = 0: must be at least 1$"):
        presets.load_run("odd")


def test_train_resolves_files_as_given_and_presets_by_name(home):
    assert presets.resolve("presets/no-such.yaml") == Path("presets/no-such.yaml")  # read_yaml says it is missing
    assert presets.resolve("no-such.yaml") == Path("no-such.yaml")
    assert presets.resolve("sft-dolly-tiny") == BUNDLED_PRESETS / "sft-dolly-tiny.yaml"
    assert presets.resolve("ppo-tiny") == BUNDLED_PRESETS / "ppo-tiny.yaml"
    path, _ = presets.save_run("my-sft", {"stage": "sft"})
    assert presets.resolve("my-sft") == path
    with pytest.raises(ConfigError) as err:
        presets.resolve("sft-dolly-tny")
    assert str(err.value) == (
        "no preset named 'sft-dolly-tny' and no such file; did you mean sft-dolly-tiny, sft-dpo-tiny or "
        "sft-dolly-qwen2.5-1.5b?"
    )
    with pytest.raises(ConfigError) as err:
        presets.resolve("zzz")
    assert str(err.value) == f"no preset named 'zzz' and no such file; the bundled ones are in {BUNDLED_PRESETS}"


def test_the_cli_says_one_line_for_an_unknown_preset_name(home):
    result = run_cli("train", "rm-hh-tiy")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "error: no preset named 'rm-hh-tiy' and no such file; did you mean rm-hh-tiny, orpo-hh-tiny or simpo-hh-tiny?\n"
    )
