"""The studio as a Hugging Face Space: its README front matter and requirements, the run home on persistent storage,
the address it serves on, and training refused on CPU-only Space hardware while scoring and comparing still work."""

from __future__ import annotations

import re
import sys

import pytest
import yaml

from studio import config as cfg
from studio import paths, spaces
from studio.errors import StudioError
from studio.paths import studio_home
from studio.pipelines import recipe, runner
from studio.runs import manager
from tests.conftest import REPO, run_cli


@pytest.fixture
def on_cpu_space(monkeypatch):
    """Inside a Space (SPACE_ID set) whose hardware has no GPU."""
    import torch

    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# ---------------------------------------------------------------- the Space's files


def _front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def test_readme_front_matter_declares_a_gradio_space_running_app_py():
    import gradio

    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert str(meta["sdk_version"]) == gradio.__version__
    assert {"title", "emoji", "colorFrom", "colorTo", "pinned", "short_description"} <= set(meta)
    assert len(meta["short_description"]) <= 60  # the Hub refuses longer ones
    assert (REPO / meta["app_file"]).is_file()


def test_requirements_are_pyprojects_dependencies_less_gradio():
    import tomllib

    wanted = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    listed = [line for line in lines if line and not line.startswith("#")]
    assert listed == [d for d in wanted if not re.match(r"gradio\b", d)]


# ---------------------------------------------------------------- where runs live


def test_on_spaces_the_home_is_the_persistent_storage(tmp_path, monkeypatch):
    monkeypatch.delenv("RLHF_STUDIO_HOME")
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.setattr(paths, "PERSISTENT_STORAGE", tmp_path)
    assert studio_home() == tmp_path / "rlhf-studio"
    assert manager.runs_root() == tmp_path / "rlhf-studio" / "runs"


def test_without_writable_persistent_storage_or_off_spaces_the_home_is_the_usual_one(tmp_path, monkeypatch):
    usual = tmp_path / "user" / ".rlhf-studio"
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("RLHF_STUDIO_HOME")
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.setattr(paths, "PERSISTENT_STORAGE", tmp_path / "no-data")  # no storage attached
    assert studio_home() == usual
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    monkeypatch.setattr(paths, "PERSISTENT_STORAGE", read_only)
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)  # root may write anywhere; say it may not
    assert studio_home() == usual
    monkeypatch.setattr(paths, "PERSISTENT_STORAGE", tmp_path)
    monkeypatch.delenv("SPACE_ID")
    assert studio_home() == usual


def test_rlhf_studio_home_still_wins_on_spaces(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.setattr(paths, "PERSISTENT_STORAGE", tmp_path)
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path / "mine"))
    assert studio_home() == tmp_path / "mine"


# ---------------------------------------------------------------- serving


def test_serve_address_binds_everything_on_spaces_and_honours_the_environment(monkeypatch):
    for name in ("SPACE_ID", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PORT"):
        monkeypatch.delenv(name, raising=False)
    assert spaces.serve_address() == ("127.0.0.1", 7860)
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    assert spaces.serve_address() == ("0.0.0.0", 7860)
    monkeypatch.setenv("PORT", "8080")
    assert spaces.serve_address() == ("0.0.0.0", 8080)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "10.0.0.5")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert spaces.serve_address() == ("10.0.0.5", 7861)
    assert spaces.serve_address("127.0.0.1", 9000) == ("127.0.0.1", 9000)  # `rlhf-studio ui --host --port`


# ---------------------------------------------------------------- training refused on a CPU-only Space


def test_a_cpu_only_space_refuses_to_create_or_start_a_run_in_one_line(on_cpu_space):
    for create in (manager.create, manager.start, manager.check_inputs):
        with pytest.raises(StudioError) as caught:
            create(cfg.RunConfig(name="refused"))
        assert str(caught.value) == spaces.CPU_SPACE and "\n" not in spaces.CPU_SPACE
    assert not manager.runs_root().exists() or not list(manager.runs_root().iterdir())
    assert manager.list_runs() == []


def test_a_cpu_only_space_refuses_a_pipeline_before_it_writes_anything(on_cpu_space):
    with pytest.raises(StudioError, match="CPU-only hardware"):
        runner.create(recipe.load_pipeline(REPO / "presets" / "sft-dpo-tiny.yaml"))
    assert not (studio_home() / "pipelines").exists()


def test_off_spaces_a_cpu_machine_still_creates_runs(monkeypatch):
    import torch

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = manager.create(cfg.RunConfig(name="allowed"))
    assert manager.status(run).state == "queued"


def test_a_space_with_a_gpu_creates_runs(monkeypatch):
    import torch

    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert manager.create(cfg.RunConfig(name="on-gpu")).exists()


def test_cli_train_on_a_cpu_only_space_prints_the_one_line(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the CLI's own process would see it")
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    done = run_cli("train", "presets/sft-dolly-tiny.yaml", timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip() == f"error: {spaces.CPU_SPACE}"
    assert "run " not in done.stdout


def test_scoring_and_comparing_still_work_on_a_cpu_only_space(on_cpu_space, in_tuned_home):
    from studio.config import GenerationSpec
    from studio.serve import compare, generate, scoring

    assert [r["id"] for r in scoring.reward_runs()] == [in_tuned_home["reward"]]
    messages = [{"role": "user", "content": "How do I boil an egg?"}]
    scores = scoring.score_batch(
        in_tuned_home["reward"],
        [messages, messages],
        ["Of course! Put it in boiling water for nine minutes.", "Go away, I am busy."],
    )
    assert len(scores) == 2
    assert in_tuned_home["sft"] in [r["id"] for r in generate.generating_runs()]
    result = compare.compare(
        [in_tuned_home["sft"]], ["Name a fruit."], GenerationSpec(max_new_tokens=4, temperature=0.0), None
    )
    assert len(result.labels) == 2 and all(len(result.answers[label]) == 1 for label in result.labels)


def test_the_check_costs_nothing_off_spaces(monkeypatch):
    """Off Spaces the check never imports torch: starting a run from the CLI stays light (see test_layering)."""
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch now would raise ImportError
    spaces.refuse_cpu_space()


def test_publishing_from_a_space_needs_the_owners_opt_in(monkeypatch):
    """In a Space the Hub token is the owner's and the page is anyone's: no push without RLHF_STUDIO_ALLOW_PUSH=1."""
    from studio.errors import StudioError
    from studio.publish import share

    monkeypatch.setenv("HF_TOKEN", "hf_owner_secret")
    monkeypatch.setenv("SPACE_ID", "someone/rlhf-studio")
    monkeypatch.delenv(share.SPACE_PUSH_OPT_IN, raising=False)
    with pytest.raises(StudioError) as refused:
        share.hub_token(None)
    assert str(refused.value) == share.SPACE_PUSH_REFUSED and "hf_owner_secret" not in str(refused.value)
    monkeypatch.setenv(share.SPACE_PUSH_OPT_IN, "1")
    assert share.hub_token(None) == "hf_owner_secret"
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.delenv(share.SPACE_PUSH_OPT_IN)
    assert share.hub_token(None) == "hf_owner_secret"  # off Spaces the machine's token is its user's
