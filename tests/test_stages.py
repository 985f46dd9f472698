"""studio/stages.py: one record per stage, and every stage-keyed table of the engine and the UI read from it.

A throwaway stage registered in this process shows up in config validation, the CLI's help, the Train tab's stage
picker, the charts and the memory estimate, with no other file edited; and no source file outside the registry
holds a table keyed by (or listing) stage names.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json

import pytest

from studio import cli, stages
from studio import config as cfg
from studio.errors import ConfigError
from studio.modeling.estimate import run_estimate
from studio.monitor import charts, health
from studio.runs.metrics import read_all
from tests.conftest import REPO

BUILT_IN = ("sft", "reward", "dpo", "kto", "orpo", "simpo", "cpo", "ppo", "rejection", "grpo", "rloo")
FIXTURES = REPO / "tests" / "data" / "metrics"

# A stage the tree does not know: SFT's trainer and config section, its own summary, panels, checks and memory.
SFT2 = dataclasses.replace(
    stages.get("sft"),
    name="sft2",
    summary="a second supervised fine-tuning, registered by a test",
    panels=(
        stages.Panel("Loss", ("loss", "eval_loss")),
        stages.Panel("Token accuracy", ("mean_token_accuracy",)),
    ),
    health=stages.Health(("loss_diverging",)),
    memory=stages.Memory(sequences=3),
)


@pytest.fixture
def sft2():
    stages.register(SFT2)
    try:
        yield SFT2
    finally:
        stages.unregister("sft2")
    assert "sft2" not in cfg.STAGES  # gone again for the tests after this one


# ---------------------------------------------------------------- the records


def test_the_built_in_stages_and_their_facts():
    assert stages.names() == BUILT_IN
    assert stages.names(lambda s: s.online) == ("ppo", "rejection", "grpo", "rloo")
    assert stages.names(lambda s: not s.writes_text) == ("reward",)
    assert stages.names(lambda s: s.reference) == ("dpo", "kto", "ppo", "grpo", "rloo")
    assert stages.names(lambda s: s.own_loop) == ("ppo", "rejection")
    assert {s.name: s.key_metric for s in stages.all_stages()} == {
        **dict.fromkeys(("sft", "reward", "dpo", "kto", "orpo", "simpo", "cpo"), "loss"),
        **dict.fromkeys(("ppo", "rejection", "grpo", "rloo"), "reward"),
    }
    assert stages.get("ppo").sections == ("ppo", "rewards") and stages.get("dpo").sections == ("dpo",)
    assert [s.x_label for s in stages.all_stages()] == ["step"] * 8 + ["round"] + ["step"] * 2
    policies = ("sft", "dpo", "kto", "orpo", "simpo", "cpo", "ppo", "rejection", "grpo", "rloo")
    assert stages.starts_from("reward") == (*policies, "reward")


def test_every_trainer_module_exists_and_every_check_name_is_a_health_check():
    for stage in stages.all_stages():
        assert importlib.util.find_spec(stage.trainer) is not None, stage.trainer
        assert stage.trainer == f"studio.trainers.{stage.name}"
        assert set(stage.health.checks) <= set(health.CHECKS), stage.name


def test_an_unknown_stage_is_refused_by_name_and_a_taken_name_cannot_be_registered_twice():
    with pytest.raises(ConfigError) as err:
        stages.get("sft3")
    assert str(err.value) == f"stage = 'sft3': allowed values are {', '.join(BUILT_IN)}"
    with pytest.raises(ValueError, match="'sft' is registered already"):
        stages.register(stages.get("sft"))
    with pytest.raises(ValueError, match="steps 'epochs' is not one of batches, prompts, groups, rounds"):
        dataclasses.replace(stages.get("sft"), steps="epochs")


def test_prompt_steps_counts_one_step_per_batch_of_prompts():
    assert stages.prompt_steps(cfg.TrainSpec(max_steps=-1, epochs=2.0, batch_size=8), 100) == 25
    assert stages.prompt_steps(cfg.TrainSpec(max_steps=-1, epochs=1.0, batch_size=8), 100, processes=2) == 7
    assert stages.prompt_steps(cfg.TrainSpec(max_steps=12), 100) == 12


# ---------------------------------------------------------------- a stage registered in a test


def test_a_registered_stage_validates_and_an_unknown_one_lists_it(sft2):
    config = cfg.from_dict({"stage": "sft2", "data": {"source": "dolly"}})
    assert config.stage == "sft2" and cfg.STAGE_SUMMARIES["sft2"] == sft2.summary
    with pytest.raises(ConfigError) as err:
        cfg.from_dict({"stage": "sft3"})
    assert str(err.value) == f"stage = 'sft3': allowed values are {', '.join(BUILT_IN)}, sft2"
    # its data format is SFT's: a preference-only source is refused as for sft
    with pytest.raises(ConfigError, match="the sft2 stage trains on sft rows"):
        cfg.from_dict({"stage": "sft2", "data": {"source": "hh-rlhf"}})


def test_a_registered_stage_is_in_the_cli_help(sft2, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  sft2       a second supervised fine-tuning, registered by a test" in lines
    assert lines[-1] == "  sft2       a second supervised fine-tuning, registered by a test"


def test_a_registered_stage_is_in_the_train_tabs_stage_picker(sft2):
    from components import train_tab

    choices = train_tab.stage_choices()
    assert [value for _, value in choices] == [*BUILT_IN, "sft2"]
    assert choices[-1] == ("sft2: a second supervised fine-tuning, registered by a test", "sft2")
    # picked, it shows SFT's own settings (its config section) and no reward models
    shown = [update["visible"] for update in train_tab.stage_sections("sft2")]
    assert shown == [False, *(section == "sft" for section in train_tab.own_sections())]


def test_a_registered_stage_has_its_charts_and_health_checks(sft2):
    rows = read_all(FIXTURES / "sft-dolly-tiny.jsonl")
    assert [p.panel.title for p in charts.panels_from_rows("sft2", rows)] == ["Loss", "Token accuracy"]
    assert charts.x_label("sft2") == "step"
    # a learning rate far too high: the loss triples; sft2 runs the divergence check it lists
    diverging = [{"step": i, "loss": 3.0 if i < 5 else 10.0} for i in range(1, 16)]
    assert [w.check for w in health.check_rows("sft2", diverging)] == ["loss_diverging"]


def test_a_registered_stage_has_a_memory_estimate(sft2, tmp_path):
    folder = tmp_path / "config-only"
    folder.mkdir()
    shape = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256}
    shape |= {"intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000}
    (folder / "config.json").write_text(json.dumps(shape), encoding="utf-8")
    raw = {"stage": "sft2", "model": {"name": str(folder)}, "train": {"batch_size": 2}, "data": {"max_length": 64}}
    own = {t.name: t for t in run_estimate(cfg.from_dict(raw)).terms}
    sft = {t.name: t for t in run_estimate(cfg.from_dict({**raw, "stage": "sft"})).terms}
    assert list(own) == list(sft) == ["weights", "LoRA training", "activations"]
    assert own["activations"].bytes == 3 * sft["activations"].bytes  # its record says 3 sequences per example
    assert "2 x 64 x 3" in own["activations"].why


def test_the_config_views_follow_the_registry(sft2):
    assert tuple(cfg.STAGES) == (*BUILT_IN, "sft2") and "sft2" in cfg.GENERATING_STAGES
    assert "sft2" not in cfg.ONLINE_STAGES and cfg.STAGE_FORMATS["sft2"] == "sft"
    assert stages.starts_from("dpo")[-1] == "sft2"  # a policy: later stages may start from it


# ---------------------------------------------------------------- no stage table outside the registry

STAGE_NAMES = frozenset(BUILT_IN)


def _stage_names(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and n.value in STAGE_NAMES]


def stage_tables(source: str) -> list[tuple[int, str]]:
    """(line, what) of each literal that is a stage table: a tuple, list or set listing two or more stage names, a
    dict with two or more of them as keys, or a module- or class-level constant that is a dict with one as a key or a
    tuple, list or set of nothing but stage names (`X = {"rejection": ...}`, `FULL = ("ppo",)`). A single quoted name
    elsewhere is left alone: "sft" is also a row format, "reward" a metric, "ppo" a config section, "grpo" a loss."""
    tree = ast.parse(source)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(_stage_names(node.elts)) >= 2:
            found[node.lineno] = f"lists {', '.join(_stage_names(node.elts))}"
        elif isinstance(node, ast.Dict) and len(_stage_names(node.keys)) >= 2:
            found[node.lineno] = f"is keyed by {', '.join(_stage_names(node.keys))}"
    top_level = [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]
    values = [s.value for s in top_level if isinstance(s, (ast.Assign, ast.AnnAssign)) and s.value is not None]
    while values:
        value = values.pop()
        if isinstance(value, ast.BinOp):  # {...} | {"reward": ...}
            values += [value.left, value.right]
        elif isinstance(value, ast.Dict) and _stage_names(value.keys):
            found.setdefault(value.lineno, f"is a constant keyed by {', '.join(_stage_names(value.keys))}")
        elif isinstance(value, (ast.Tuple, ast.List, ast.Set)) and 0 < len(_stage_names(value.elts)) == len(value.elts):
            found.setdefault(value.lineno, f"is a constant of {', '.join(_stage_names(value.elts))}")
    return sorted(found.items())


def test_the_table_finder_finds_stage_tables_and_leaves_single_names_in_functions():
    source = (
        'X_LABEL = {"rejection": "round"}\n'
        "FULL = ('ppo',)\n"
        "NONE = () + []\n"
        "STARTS = {s: () for s in 'ab'} | {'reward': ()}\n"
        "SOURCE_FORMATS = {'dolly': ('sft',)}; SFT, PREFERENCE = 'sft', 'preference'\n"
        "def f(stage, loss):\n"
        "    if stage in ('grpo', 'rloo'):\n"
        "        return {'reward': loss, 'kl': 0.1}, {'stage': 'ppo', 'ppo': {'kl_coef': 0.1}}\n"
        "    return {'sft': 1, 'dpo': 2}\n"
    )
    assert stage_tables(source) == [
        (1, "is a constant keyed by rejection"),
        (2, "is a constant of ppo"),
        (4, "is a constant keyed by reward"),
        (7, "lists grpo, rloo"),
        (9, "is keyed by sft, dpo"),
    ]


def test_no_stage_table_outside_the_registry():
    sources = [*(REPO / "studio").rglob("*.py"), *(REPO / "components").rglob("*.py"), REPO / "app.py"]
    assert len(sources) > 80
    offenders = [
        f"{path.relative_to(REPO)}:{line} {what}"
        for path in sources
        if path != REPO / "studio" / "stages.py"
        for line, what in stage_tables(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, "stage facts belong in studio/stages.py:\n" + "\n".join(offenders)
