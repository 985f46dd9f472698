"""Sharing a finished run: merged weights, the model card and its charts, pushing (token hygiene, a fake Hub),
and the exported Space, launched on its own and asked through gradio_client."""

from __future__ import annotations

import ast
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from studio.config import GenerationSpec
from studio.errors import StudioError
from studio.publish import share
from tests.conftest import free_port, one_error_line, run_cli, served_app

PROMPTS = [
    "How many legs does a spider have?",
    "Write a short two-line poem about a lighthouse.",
    "What is a good name for a cat?",
]
GREEDY = GenerationSpec(temperature=0.0, max_new_tokens=24)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def copied_home(tmp_path, tuned_runs, monkeypatch) -> dict:
    """A fresh studio home holding copies of the tuned runs, for tests that write into the home (pushes stage
    under <home>/share/), so the session's tuned home stays read-only."""
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    (home / "models").symlink_to(tuned_runs["home"] / "models")
    for key in ("sft", "chained", "reward"):
        shutil.copytree(tuned_runs["home"] / "runs" / tuned_runs[key], home / "runs" / tuned_runs[key])
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    return {**tuned_runs, "home": home}


def _greedy(target, prompts=PROMPTS, settings=GREEDY) -> list[str]:
    from studio.serve.generate import Generator

    return Generator().generate(target, [[{"role": "user", "content": p}] for p in prompts], settings).texts


# ---------------------------------------------------------------- merged weights


@pytest.mark.slow
@pytest.mark.parametrize("which", ["sft", "chained"])
def test_merged_weights_load_with_plain_transformers_and_answer_as_base_plus_adapters(copied_home, tmp_path, which):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.serve.generate import run_target

    run_id = copied_home[which]
    folder = share.stage(run_id, tmp_path / "staged", merged=True, repo_id="me/tuned")
    assert (folder / "model.safetensors").is_file() and not (folder / "adapter_config.json").exists()
    assert (folder / "README.md").is_file() and list((folder / "charts").glob("*.png"))

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template
    plain = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        out = model.generate(
            ids,
            attention_mask=ids.new_ones(ids.shape),
            max_new_tokens=GREEDY.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        plain.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert plain == _greedy(run_target(run_id))
    assert any(plain)


def test_merging_a_reward_run_is_refused(in_tuned_home, tmp_path):
    with pytest.raises(StudioError, match="is a reward run: merged, it would be a sequence-classification model"):
        share.merged_model(in_tuned_home["reward"], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


# ---------------------------------------------------------------- model card


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_model_card_names_lineage_hyperparameters_metrics_and_charts(in_tuned_home, tmp_path):
    from studio.runs.metrics import read_all
    from studio.runs.rundir import RunDir

    run_id, parent = in_tuned_home["chained"], in_tuned_home["sft"]
    charts = share.write_charts(run_id, tmp_path / "charts")
    assert charts and all(p.read_bytes().startswith(PNG_MAGIC) and p.stat().st_size > 1000 for p in charts)
    assert {p.name for p in charts} >= {"loss.png"}
    card = share.model_card(run_id, merged=True, repo_id="me/tuned", charts=[p.relative_to(tmp_path) for p in charts])

    front = _front_matter(card)
    assert front["tags"][:2] == ["rlhf-studio", "sft"]
    assert front["library_name"] == "transformers"  # merged weights
    assert "base_model" not in front  # the tiny model is not on the hub: no id to point at
    assert "license" not in front
    lineage = card.split("## Lineage", 1)[1].split("##", 1)[0]
    assert f"| `{parent}` | sft | tuned-sft | started from (by {run_id}) |" in lineage
    assert f"| `{run_id}` | sft | tuned-chained | this run |" in lineage
    assert "| train.max_steps | 10 |" in card and "| lora.r | 16 |" in card and "| sft.completion_only_loss |" in card
    last_loss = [row["loss"] for row in read_all(RunDir.of(run_id).metrics_path) if "loss" in row][-1]
    assert f"| loss | {last_loss:.6g} |" in card
    for path in charts:
        assert f"(charts/{path.name})" in card
    assert 'AutoModelForCausalLM.from_pretrained("me/tuned")' in card


def test_model_card_of_a_hub_base_names_it_and_the_dataset(copied_home):
    run_dir = copied_home["home"] / "runs" / copied_home["sft"]
    raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    raw["model"]["name"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    raw["data"]["path"] = None  # loaded from the hub
    (run_dir / "config.yaml").write_text(yaml.safe_dump(raw))
    card = share.model_card(copied_home["sft"])
    front = _front_matter(card)
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert front["library_name"] == "peft" and "lora" in front["tags"]
    assert front["datasets"] == ["databricks/databricks-dolly-15k"]
    assert "AutoPeftModelForCausalLM" in card


def _data_section(card: str) -> str:
    return card.split("## Data", 1)[1].split("##", 1)[0]


def test_model_card_lists_only_the_data_options_of_the_runs_source(in_tuned_home):
    reward_data = _data_section(share.model_card(in_tuned_home["reward"]))  # HH-RLHF data
    assert "| data.source | hh-rlhf |" in reward_data and "| data.eval_fraction |" in reward_data
    for other in ("min_score_ratio", "domains", "languages", "categories", "columns"):
        assert f"| data.{other}" not in reward_data, other
    sft_data = _data_section(share.model_card(in_tuned_home["sft"]))  # Dolly data
    assert "| data.source | dolly |" in sft_data and "| data.languages" not in sft_data


@pytest.mark.parametrize(
    "source, own",
    [
        ("dolly", {"categories"}),
        ("alpaca", set()),
        ("shp", {"domains", "min_score_ratio"}),
        ("hh-rlhf", set()),
        ("oasst", {"languages"}),
        ("file", {"columns"}),
        ("votes", {"votes"}),
    ],
)
def test_data_options_keep_what_every_source_reads_and_the_sources_own(source, own):
    from studio.config import DATA_SOURCES, DataSpec

    assert source in DATA_SOURCES
    common = {"source", "path", "subset", "limit", "on_bad_rows", "eval_fraction", "max_length"}
    assert set(share.data_options(DataSpec(source=source))) == common | own


def test_each_source_only_option_is_read_by_its_sources_alone():
    """SOURCE_OPTIONS says which sources read an option: the source modules are the truth it must match."""
    import inspect

    from studio import data
    from studio.config import DATA_SOURCES, DataSpec

    fields = set(share.cfg.to_dict(DataSpec()))
    for option, sources in share.SOURCE_OPTIONS.items():
        assert option in fields
        reads = re.compile(rf'spec\.{option}\b|getattr\(spec, "{option}"')
        readers = {s for s in DATA_SOURCES if reads.search(inspect.getsource(data.source_module(s)))}
        assert readers == set(sources), option


def test_outside_home_follows_links_and_dots(studio_home, tmp_path):
    assert not share.outside_home(studio_home / "spaces" / "mine")
    assert not share.outside_home(studio_home / "spaces" / ".." / "elsewhere")
    assert share.outside_home(studio_home / ".." / "elsewhere")
    assert share.outside_home("/etc/my-space") and share.outside_home(tmp_path / "space")
    (studio_home / "link").symlink_to(tmp_path)
    assert share.outside_home(studio_home / "link" / "space")


# ---------------------------------------------------------------- pushing


class FakeHfApi:
    """Records what a push asks of the Hub, and what the folder it uploads holds at that moment."""

    calls: list = []

    def __init__(self, *args, **kwargs):
        FakeHfApi.calls.append(("init", args, kwargs))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", (repo_id,), kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        FakeHfApi.calls.append(("upload_folder", (), {**kwargs, "files": files}))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


def _check_token_only_as_argument(calls, token):
    init = [c for c in calls if c[0] == "init"]
    assert init and all(not args and "token" not in kwargs for _, args, kwargs in init)
    for name, args, kwargs in calls:
        if name != "init":
            assert kwargs["token"] == token
            assert token not in repr(args) + repr({k: v for k, v in kwargs.items() if k != "token"})


def test_push_uploads_adapter_card_and_charts_privately(copied_home, fake_hub, monkeypatch):
    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    url = share.push(copied_home["sft"], "me/tuned-sft", private=True)
    assert url == "https://huggingface.co/me/tuned-sft"
    _check_token_only_as_argument(fake_hub.calls, token)
    ((_, (repo,), create),) = [c for c in fake_hub.calls if c[0] == "create_repo"]
    assert repo == "me/tuned-sft" and create["private"] is True and create["repo_type"] == "model"
    ((_, _, upload),) = [c for c in fake_hub.calls if c[0] == "upload_folder"]
    assert upload["repo_id"] == "me/tuned-sft" and upload["repo_type"] == "model"
    files = upload["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "charts/loss.png"} <= set(files)
    assert "model.safetensors" not in files
    staged = Path(upload["folder_path"])
    assert staged == copied_home["home"] / "share" / copied_home["sft"]
    assert "(charts/loss.png)" in (staged / "README.md").read_text()


@pytest.mark.slow
def test_push_merged_uploads_full_weights(copied_home, fake_hub, monkeypatch):
    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    share.push(copied_home["chained"], "me/tuned-chained", merged=True)
    _check_token_only_as_argument(fake_hub.calls, token)
    ((_, _, create),) = [c for c in fake_hub.calls if c[0] == "create_repo"]
    assert create["private"] is False
    ((_, _, upload),) = [c for c in fake_hub.calls if c[0] == "upload_folder"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "charts/loss.png"} <= set(
        upload["files"]
    )
    assert not any(f.startswith("adapter") for f in upload["files"])


def test_push_of_a_chained_run_without_merging_is_refused(copied_home, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + secrets.token_hex(16))
    with pytest.raises(StudioError, match=f"starts from run '{copied_home['sft']}'.*push it with --merged"):
        share.push(copied_home["chained"], "me/x")
    assert not [c for c in fake_hub.calls if c[0] != "init"]


def test_push_space_uploads_to_a_space(tmp_path, fake_hub, monkeypatch):
    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "app.py").write_text("print('hi')\n")
    (folder / share.SPACE_SETTINGS).write_text("{}\n")
    assert share.push_space(folder, "me/space", private=True) == "https://huggingface.co/spaces/me/space"
    _check_token_only_as_argument(fake_hub.calls, token)
    ((_, _, create),) = [c for c in fake_hub.calls if c[0] == "create_repo"]
    assert create["repo_type"] == "space" and create["space_sdk"] == "gradio" and create["private"] is True
    ((_, _, upload),) = [c for c in fake_hub.calls if c[0] == "upload_folder"]
    assert upload["repo_type"] == "space" and upload["files"] == ["app.py", share.SPACE_SETTINGS]


@pytest.mark.slow
def test_the_token_never_leaves_the_hub_calls(copied_home, tmp_path, monkeypatch):
    token = "hf_" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", token)
    pushed = run_cli("push", copied_home["sft"], "me/tuned-sft")  # offline (HF_HUB_OFFLINE=1): fails at the hub
    line = one_error_line(pushed)
    assert "could not reach the Hugging Face Hub" in line
    space = tmp_path / "space"
    exported = run_cli("export-space", copied_home["sft"], str(space))
    assert exported.returncode == 0, exported.stderr
    staged = copied_home["home"] / "share" / copied_home["sft"]
    assert (staged / "README.md").is_file() and (space / "app.py").is_file()
    for done in (pushed, exported):
        assert token not in done.stdout + done.stderr
    scanned = 0
    for root in (copied_home["home"], space):
        for path in root.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
                scanned += 1
    assert scanned > 20


# ---------------------------------------------------------------- bad input, one line each


def test_push_bad_input_is_one_line(copied_home, sleeper, no_stored_login, monkeypatch):
    from studio.config import RunConfig
    from studio.runs import manager, process

    line = one_error_line(run_cli("push", "nosuchrun", "me/x"))
    assert line == "error: no run with id 'nosuchrun' (see `rlhf-studio runs`)"
    assert one_error_line(run_cli("push", copied_home["sft"], "me/x")) == f"error: {share.NO_TOKEN}"
    monkeypatch.setenv("HF_TOKEN", "hf_" + secrets.token_hex(16))
    for bad in ("not-a-repo", "a/b/c", "me/", "/x", "me/bad name"):
        line = one_error_line(run_cli("push", copied_home["sft"], bad))
        assert line.startswith(f"error: repo id '{bad.strip()}' is not owner/name")
    busy = manager.create(RunConfig(name="busy"))
    busy.write_status(state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid))
    line = one_error_line(run_cli("push", busy.id, "me/x"))
    assert line == f"error: run '{busy.id}' is running; only a completed run can be shared"
    assert not (copied_home["home"] / "share").exists()


def test_export_space_bad_input_is_one_line(in_tuned_home, tmp_path, no_stored_login):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    line = one_error_line(run_cli("export-space", in_tuned_home["sft"], str(full)))
    assert line == f"error: '{full}' already exists and is not empty; give a new or empty folder"
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    line = one_error_line(run_cli("export-space", in_tuned_home["reward"], str(tmp_path / "rm")))
    assert "is a reward run" in line and not (tmp_path / "rm").exists()
    line = one_error_line(run_cli("export-space", in_tuned_home["sft"], str(tmp_path / "s"), "--push", "nope"))
    assert line.startswith("error: repo id 'nope' is not owner/name") and not (tmp_path / "s").exists()
    line = one_error_line(run_cli("export-space", in_tuned_home["sft"], str(tmp_path / "s"), "--push", "me/s"))
    assert line == f"error: {share.NO_TOKEN}" and not (tmp_path / "s").exists()


def test_there_is_no_token_option():
    from studio.cli import build_parser

    for command in ("push", "export-space"):
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        assert not any("--token" in a.option_strings for a in sub._actions)


# ---------------------------------------------------------------- the Space


@pytest.mark.slow
@pytest.mark.parametrize("which", ["sft", "chained"])
def test_exported_space_runs_alone_and_answers_like_the_studio(in_tuned_home, tmp_path, which):
    from studio.serve.generate import base_target, run_target

    run_id = in_tuned_home[which]
    space = tmp_path / "space"
    done = run_cli("export-space", run_id, str(space))
    assert done.returncode == 0, done.stderr
    assert {p.name for p in space.iterdir()} >= {
        "app.py",
        "space_settings.json",
        "requirements.txt",
        "README.md",
        "base",
        "adapters",
    }
    assert len(list((space / "adapters").iterdir())) == (2 if which == "chained" else 1)  # the chain, oldest first
    readme = (space / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---\n", 2)[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["suggested_hardware"] == "cpu-basic"
    requirements = (space / "requirements.txt").read_text().split()
    assert [r.split(">=")[0] for r in requirements] == ["gradio", "torch", "transformers", "peft", "accelerate"]
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse((space / "app.py").read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in getattr(node, "names", [])
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse((space / "app.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "gradio" in imported and "studio" not in imported

    port = free_port()
    # Importing the studio is made impossible: the Space must run on its own files alone.
    launcher = (
        "import runpy, sys; sys.modules['studio'] = None; sys.argv = ['app.py', '--port', sys.argv[1]]; "
        "runpy.run_path('app.py', run_name='__main__')"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RLHF_STUDIO_HOME": str(tmp_path / "nowhere")}
    with served_app([sys.executable, "-c", launcher, str(port)], port, space, env, start_timeout=120) as client:
        replies = [client.predict(p, GREEDY.max_new_tokens, 0.0, 1.0, 0, api_name="/chat") for p in PROMPTS]
        base, tuned = client.predict(PROMPTS[0], GREEDY.max_new_tokens, 0.0, 1.0, 0, api_name="/compare")
    assert all(replies)
    assert replies == _greedy(run_target(run_id))
    assert tuned == replies[0]
    assert base == _greedy(base_target(run_id), PROMPTS[:1])[0]
