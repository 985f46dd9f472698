"""Security promises of issue 10 (items 6, 13, 14, the Share tab's export folder), checked against the real code.

    OMP_NUM_THREADS=1 python -m pytest tests/test_security.py -q

- Weights a run folder holds load only as safetensors: a pickle-only folder (adapter or whole model, harmless or
  one whose unpickling would write a marker file) is refused in one line naming the folder, by every loader; and every
  torch.load in studio/ passes weights_only=True.
- A Hub token in the environment lands nowhere: not in the CLI's output, the served app's tables or logs, the run
  files, the SQLite index, model cards or exported Spaces.
- Chat answers while one run trains and another waits in the queue.
- Others can open a studio served on another address or in a Space: its Share tab exports only inside
  <home>/spaces. The studio never opens a gradio share link, GRADIO_SHARE=True or not.
"""

from __future__ import annotations

import ast
import functools
import os
import random
import shutil
import socket
import sqlite3
import string
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from studio import access
from studio.config import DataSpec, GenerationSpec, LoraSpec, ModelSpec, RunConfig, load_config
from studio.errors import StudioError
from studio.modeling import models
from studio.runs import manager
from studio.runs.rundir import FINAL_STATES, RunDir
from tests.conftest import REPO, dolly_row, error_shown, free_port, run_cli, write_jsonl

# ---------------------------------------------------------------- 13: run weights only as safetensors


class _Bomb:
    """Unpickling this creates `marker`: what a planted pickle could do, made visible."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _pickle_only(source: Path, dest: Path, kind: str, marker: Path) -> Path:
    """A copy of a safetensors weight folder whose weights are only a pickle: the same tensors saved with torch.save
    ("plain", which transformers and peft would load), or a pickle bomb ("bomb")."""
    from safetensors.torch import load_file

    shutil.copytree(source, dest)
    renames = {"adapter_model.safetensors": "adapter_model.bin", "model.safetensors": "pytorch_model.bin"}
    for safe, pickle_name in renames.items():
        if (dest / safe).is_file():
            content = load_file(str(dest / safe)) if kind == "plain" else _Bomb(marker)
            torch.save(content, dest / pickle_name)
            (dest / safe).unlink()
    return dest


@pytest.fixture(scope="module")
def weight_folders(tmp_path_factory, shared_models) -> dict:
    """Safetensors folders as runs write them: a causal LM adapter, a reward (SEQ_CLS) adapter with its score head,
    and a whole model (the tiny model's own folder), with the tiny tokenizer beside each."""
    home = tmp_path_factory.mktemp("weights-home")
    (home / "models").symlink_to(shared_models)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(home))
        spec, lora = ModelSpec(), LoraSpec(r=4)
        tokenizer = models.load_tokenizer(spec)
        out = {"model": models.tiny_model_path()}
        for name, model, task in [
            ("adapter", models.load_causal_lm(spec), "CAUSAL_LM"),
            ("reward_adapter", models.load_reward_model(spec, pad_token_id=0), "SEQ_CLS"),
        ]:
            folder = home / name
            models.add_lora(model, lora, spec, task).save_pretrained(str(folder), safe_serialization=True)
            tokenizer.save_pretrained(str(folder))
            out[name] = folder
    return out


def _refused(folder: Path, load) -> None:
    """load() is refused in one line naming the pickle-only folder."""
    with pytest.raises(StudioError) as err:
        load()
    text = str(err.value)
    assert isinstance(err.value, StudioError), repr(err.value)
    assert "\n" not in text and text.startswith(f"{folder}: only ") and "safetensors" in text, text


KINDS = ["plain", "bomb"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pickle_only_whole_model_folder_is_refused(studio_home, weight_folders, tmp_path, kind):
    marker = tmp_path / "MARKER"
    folder = _pickle_only(weight_folders["model"], tmp_path / "run-model", kind, marker)
    _refused(folder, lambda: models.load_causal_lm(ModelSpec(), start_from=folder))
    _refused(folder, lambda: models.load_reward_model(ModelSpec(), start_from=folder, pad_token_id=0))
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_a_pickle_only_adapter_is_refused_by_every_loader(studio_home, weight_folders, tmp_path, kind):
    from studio.serve import generate

    marker = tmp_path / "MARKER"
    folder = _pickle_only(weight_folders["adapter"], tmp_path / "run-adapter", kind, marker)
    # a trainer starting from a parent run (init.from_run) and share's merged weights
    _refused(folder, lambda: models.load_causal_lm(ModelSpec(), start_from=folder))
    _refused(folder, lambda: models.merge_adapter(models.load_causal_lm(ModelSpec()), folder))
    # Compare and Chat: the adapter switched on top of the held base, and a parent merged into it (DoRA chains)
    generator, prompt = generate.Generator(), [[{"role": "user", "content": "Hi"}]]
    for target in (
        generate.Target(label="run", model=ModelSpec(), adapters=(folder,)),
        generate.Target(label="run", model=ModelSpec(), merged=(folder,)),
    ):
        _refused(folder, functools.partial(generator.generate, target, prompt, GenerationSpec(max_new_tokens=2)))
    assert not marker.exists()


def _completed_run(stage: str, weights: Path) -> RunDir:
    """A completed run of the stage whose adapter/ folder is `weights`."""
    preset = {"sft": "presets/sft-dolly-tiny.yaml", "reward": "presets/rm-hh-tiny.yaml"}[stage]
    run = manager.create(load_config(REPO / preset, [f"name=planted-{stage}"]))
    shutil.copytree(weights, run.adapter_dir)
    run.write_status(state="completed")
    return run


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_whose_adapter_is_a_pickle_cannot_score_share_or_export(studio_home, weight_folders, tmp_path, kind):
    from studio.publish import share
    from studio.serve import scoring

    marker = tmp_path / "MARKER"
    reward = _completed_run("reward", _pickle_only(weight_folders["reward_adapter"], tmp_path / "rm", kind, marker))
    _refused(reward.adapter_dir, lambda: scoring.score(reward.id, [{"role": "user", "content": "Hi"}], "Hello"))

    sft = _completed_run("sft", _pickle_only(weight_folders["adapter"], tmp_path / "sft", kind, marker))
    _refused(sft.adapter_dir, lambda: share.merged_model(sft.id, tmp_path / "merged"))
    # the Space would load the pickle as it is
    _refused(sft.adapter_dir, lambda: share.export_space(sft.id, tmp_path / "space"))
    assert not (tmp_path / "space").exists()
    assert not marker.exists()


@pytest.mark.slow
def test_a_training_started_from_a_pickle_only_run_fails_in_one_line(studio_home, weight_folders, tmp_path):
    marker = tmp_path / "MARKER"
    parent = _completed_run("sft", _pickle_only(weight_folders["adapter"], tmp_path / "sft", "bomb", marker))
    result = run_cli(
        "train",
        "presets/sft-dolly-tiny.yaml",
        "--set",
        f"init.from_run={parent.id}",
        "--set",
        "train.max_steps=1",
        timeout=300,
    )
    assert result.returncode != 0
    assert f"{parent.adapter_dir}: only adapter_model.bin" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_safetensors_run_folders_still_load(studio_home, weight_folders):
    """The refusals above are not a refusal of everything: the folders runs really write load."""
    model = models.load_causal_lm(ModelSpec(), start_from=weight_folders["adapter"])
    assert not hasattr(model, "peft_config")  # merged in
    models.load_causal_lm(ModelSpec(), start_from=weight_folders["model"])


def _calls(tree: ast.AST, module: str, name: str) -> list[ast.Call]:
    """Calls of module.name(...) (torch.load) in a parsed file."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == module
    ]


def test_every_torch_load_in_the_studio_is_weights_only():
    sources = sorted((REPO / "studio").rglob("*.py"))
    checked = 0
    for path in sources:
        text = path.read_text(encoding="utf-8")
        calls = _calls(ast.parse(text), "torch", "load")
        # Every textual torch.load( is a call the parser saw (no aliasing such as `load = torch.load`), and no
        # `from torch import load` hides one.
        assert text.count("torch.load(") == len(calls), path
        assert "from torch import load" not in text and "torch.load," not in text, path
        for call in calls:
            flags = {k.arg: k.value for k in call.keywords}
            assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, (
                f"{path.relative_to(REPO)}:{call.lineno}: torch.load without weights_only=True"
            )
            checked += 1
    assert checked >= 1  # trainers/ppo.py loads its checkpoint state: the check sees real calls


# ---------------------------------------------------------------- 14: the Hub token lands nowhere


@contextmanager
def _served_with_logs(home: Path, log: Path):
    """(gradio_client.Client) of `rlhf-studio ui` on this home, its stdout and stderr written to `log`."""
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "RLHF_STUDIO_HOME": str(home), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "studio", "ui", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                    break
                except Exception:  # not up yet
                    assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.5)
            yield client
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.mark.slow
def test_the_hub_token_lands_in_no_output_log_run_file_index_or_card(studio_home, tmp_path, monkeypatch):
    from studio.publish import share

    token = "hf_" + "".join(random.choices(string.ascii_letters + string.digits, k=30))
    monkeypatch.setenv("HF_TOKEN", token)
    outputs = []
    trained = run_cli(
        "train",
        "presets/sft-dolly-tiny.yaml",
        "--set",
        "train.max_steps=4",
        "--set",
        "train.save_steps=2",
        "--set",
        "train.eval_steps=2",
        "--set",
        "train.logging_steps=1",
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    run_id = next(line.split()[1] for line in trained.stdout.splitlines() if line.startswith("run "))
    listed, shown = run_cli("runs", "--json"), run_cli("show", run_id)
    assert run_id in listed.stdout and run_id in shown.stdout
    outputs += [trained.stdout, trained.stderr, listed.stdout, listed.stderr, shown.stdout, shown.stderr]

    with _served_with_logs(studio_home, tmp_path / "server.log") as client:
        table = client.predict(api_name="/runs_table")
        token_line = client.predict(api_name="/token_status")
        card_preview = client.predict(run_id, "me/tiny", False, api_name="/card_preview")
    assert run_id in str(table) and "HF_TOKEN is set" in token_line  # it saw the token, and says only that
    outputs += [str(table), token_line, str(card_preview), (tmp_path / "server.log").read_text()]

    outputs.append(share.model_card(run_id, repo_id="me/tiny"))
    share.stage(run_id, studio_home / "share" / run_id, repo_id="me/tiny")  # what a push would upload
    share.export_space(run_id, studio_home / "spaces" / run_id)

    leaks = [f"output {i}" for i, text in enumerate(outputs) if token in text]
    files = 0
    for folder, _dirs, names in os.walk(studio_home):  # models/ is a symlink to the shared tiny model: not followed
        for name in names:
            path = Path(folder) / name
            files += 1
            if token.encode() in path.read_bytes():
                leaks.append(str(path.relative_to(studio_home)))
    index = [p for p in studio_home.rglob("*") if p.is_file() and p.read_bytes().startswith(b"SQLite format 3")]
    assert index, "no SQLite index was read"
    with sqlite3.connect(index[0]) as db:  # its rows too, in case the index keeps a value the file does not show
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [str(row) for t in tables for row in db.execute(f"SELECT * FROM {t}")]
    assert any(run_id in r for r in rows) and not [r for r in rows if token in r]
    assert files > 20 and (studio_home / "runs" / run_id / "checkpoints").is_dir()
    assert leaks == []


# ---------------------------------------------------------------- 6: chat answers while a run trains


@pytest.mark.slow
def test_chat_answers_while_one_run_trains_and_another_waits(studio_home, monkeypatch):
    from tests.conftest import served_studio
    from tests.fake_worker import COMMAND as FAKE_WORKER

    monkeypatch.setattr(manager, "WORKER", FAKE_WORKER)
    # The Chat picker offers a base model once a completed run starts from it: one finished (fake) run of the tiny
    # model. Its adapter/ folder is only there because "base (tiny)" asks for a completed run with weights.
    done, _ = manager.start(RunConfig(name="done", data=DataSpec(path="sample")))
    (done.path / "FINISH").touch()
    deadline = time.monotonic() + 30
    while done.read_status().state != "completed":
        assert time.monotonic() < deadline, done.read_status()
        time.sleep(0.05)
    done.adapter_dir.mkdir()
    running, _ = manager.start(RunConfig(name="running", data=DataSpec(path="sample")))
    queued, _ = manager.start(RunConfig(name="queued", data=DataSpec(path="sample")))
    try:
        with served_studio(studio_home) as (_url, client):
            assert queued.read_status().state == "queued"
            assert running.read_status().state == "running"
            settings = tuple(asdict(GenerationSpec(max_new_tokens=16, temperature=0.0)).values())
            started = time.monotonic()
            job = client.submit("Name a fruit.", [], "base (tiny)", "", *settings, api_name="/chat")
            history, _box, stats = job.result(timeout=60)  # a chat that waits for the queue would wait for ever
            seconds = time.monotonic() - started
            print(f"chat answered in {seconds:.1f} s while a run trained and another waited")
            assert stats.startswith("base (tiny) reply: "), stats
            assert history[-1]["role"] == "assistant"
            assert seconds < 15, seconds  # loading the tiny model and answering: a second or two when free
            # ...and it answered while the queue stood still: one run running, the other still waiting.
            assert running.read_status().state == "running" and queued.read_status().state == "queued"
    finally:
        for run in (queued, running):
            if run.read_status().state not in FINAL_STATES:
                manager.cancel(run, timeout=10)


# ---------------------------------------------------------------- the Share tab's export folder, and no share link


def test_an_exposed_studio_exports_only_inside_home_spaces(studio_home, tmp_path, monkeypatch):
    root = studio_home / "spaces"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert access.inside(root, "mine", "export folder") == root / "mine"
    assert access.inside(root, str(root / "a" / "b"), "export folder") == root / "a" / "b"
    assert access.inside(root, "a/../b", "export folder") == root / "a/../b"  # still inside
    for text in (
        "/tmp/evil",
        str(outside),
        "../runs",
        "mine/../../runs",
        str(root / ".." / "x"),
        "link",
        "link/sub",
        "~/evil",
        ".",
        str(root),
    ):
        with pytest.raises(StudioError) as err:
            access.inside(root, text, "export folder")
        assert str(err.value).startswith(
            f"export folder '{text}': this studio can be opened by others, so it writes only inside {root}"
        ) and "\n" not in str(err.value)


@pytest.fixture
def share_tab(monkeypatch):
    """components.share_tab whose studio.publish.share records the folder an export was asked to write (the run's checks
    and copying are studio/publish/share.py's own tests')."""
    from components import share_tab

    asked = []

    def export_space(run_id, out):
        asked.append(Path(out))
        Path(out).mkdir(parents=True)
        return Path(out)

    monkeypatch.setattr(share_tab.share, "export_space", export_space)
    share_tab.asked = asked
    return share_tab


@pytest.mark.parametrize("how", ["another address", "a Space"])
def test_the_share_tab_of_an_exposed_studio_refuses_folders_outside_home_spaces(
    studio_home, share_tab, tmp_path, monkeypatch, how
):
    monkeypatch.setattr(access, "_served_host", "0.0.0.0" if how == "another address" else "127.0.0.1")
    if how == "a Space":
        monkeypatch.setenv("SPACE_ID", "me/studio")
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    assert access.exposed()
    evil = tmp_path / "evil"
    for text in (str(evil), "../evil", "../../" + str(evil)):
        folder, message, _button = share_tab.export_space("20260101-000000-sft-abcd", text)
        assert folder is None and message.startswith(f"export folder '{text}': this studio can be opened by others")
    assert share_tab.asked == [] and not evil.exists()
    folder, message, _ = share_tab.export_space("20260101-000000-sft-abcd", "my-space")
    assert Path(folder) == studio_home / "spaces" / "my-space" and share_tab.asked == [Path(folder)]
    folder, message, _ = share_tab.export_space("20260101-000000-sft-abcd", "")  # the default is inside
    assert Path(folder) == studio_home / "spaces" / "20260101-000000-sft-abcd"
    folder, message, _ = share_tab.export_space("../../../tmp/x", "")  # a run id sent to lead the default out
    assert folder is None and "writes only inside" in message


def test_the_share_tab_of_a_local_studio_exports_anywhere(studio_home, share_tab, tmp_path, monkeypatch):
    monkeypatch.setattr(access, "_served_host", "127.0.0.1")
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not access.exposed()
    # Outside the studio home, once confirmed (the Share tab asks first: test_share_ui).
    folder, _message, _ = share_tab.export_space("20260101-000000-sft-abcd", str(tmp_path / "anywhere"), True)
    assert Path(folder) == tmp_path / "anywhere" and share_tab.asked == [tmp_path / "anywhere"]


@pytest.mark.parametrize("how", ["another address", "a Space"])
def test_an_exposed_studio_reads_data_files_only_from_its_home_and_uploads(studio_home, tmp_path, monkeypatch, how):
    from components import data_tab

    monkeypatch.setattr(access, "_served_host", "0.0.0.0" if how == "another address" else "127.0.0.1")
    if how == "a Space":
        monkeypatch.setenv("SPACE_ID", "me/studio")
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    rows = [dolly_row(f"Question {i}?", f"Answer {i}.") for i in range(4)]
    outside = write_jsonl(tmp_path / "outside.jsonl", rows)
    (uploads / "0a1b").mkdir(parents=True)
    uploaded = write_jsonl(uploads / "0a1b" / "mine.jsonl", rows)
    kept = write_jsonl(studio_home / "kept.jsonl", rows)
    (studio_home / "link.jsonl").symlink_to(outside)

    for path in (str(outside), "/etc/passwd", str(studio_home / "link.jsonl"), str(uploads / ".." / "outside.jsonl")):
        refusal = f"data.path = '{path}': this studio can be opened by others, so it reads only files uploaded here"
        summary, examples = data_tab.preview_data({"stage": "sft", "data": {"path": path}})
        assert error_shown(summary).startswith(refusal) and "\n" not in summary and examples == ""
        if how == "another address":  # a Space without a GPU refuses every run first
            with pytest.raises(StudioError) as err:
                manager.start(RunConfig(data=DataSpec(path=path)))
            assert str(err.value).startswith(refusal)
    assert not list(studio_home.glob("runs/*")), "a refused start left a run folder"

    for path in (uploaded, kept):
        summary, examples = data_tab.preview_data({"stage": "sft", "data": {"path": str(path)}})
        assert "Question 0?" in examples, summary
        access.check_readable(str(path), "data.path")

    monkeypatch.setattr(access, "_served_host", "127.0.0.1")  # this machine's user alone: any file they can read
    monkeypatch.delenv("SPACE_ID", raising=False)
    summary, examples = data_tab.preview_data({"stage": "sft", "data": {"path": str(outside)}})
    assert "Question 0?" in examples, summary


@pytest.fixture
def launched(monkeypatch):
    """Run components.app.main in this process with gradio's launch kept from blocking; yields a dict that gets the
    launched Blocks ("app"), the launch keyword arguments ("kwargs") and the share links asked for ("tunnels"). Making
    a share link is replaced by a recorder, so the test never waits on the network."""
    import gradio as gr
    from gradio import networking

    seen = {"tunnels": []}
    real_launch = gr.Blocks.launch

    def launch(self, **kwargs):
        seen["app"], seen["kwargs"] = self, dict(kwargs)
        return real_launch(self, **{**kwargs, "prevent_thread_lock": True, "quiet": True})

    def setup_tunnel(**kwargs):
        seen["tunnels"].append(kwargs)
        return "https://recorded.gradio.live"

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda self: None)  # main serves until stopped; the test goes on
    monkeypatch.setattr(networking, "setup_tunnel", setup_tunnel)
    monkeypatch.setattr(access, "_served_host", None)  # whatever main records is undone after the test
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    yield seen
    if "app" in seen:
        seen["app"].close()


def test_no_share_link_even_with_gradio_share_true(studio_home, launched, monkeypatch):
    from components import app

    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.delenv("SPACE_ID", raising=False)
    app.main("127.0.0.1", free_port())
    assert launched["tunnels"] == [] and launched["app"].share is False and launched["app"].share_url is None
    assert launched["kwargs"].get("share") is False  # said outright: gradio reads GRADIO_SHARE only when it is not
    assert not access.exposed()


def test_a_studio_served_on_another_address_confines_exports(studio_home, launched, share_tab, tmp_path, monkeypatch):
    from components import app

    monkeypatch.setenv(access.AUTH_ENV, "ann:s3cret")
    monkeypatch.delenv("SPACE_ID", raising=False)
    port = free_port()
    app.main("0.0.0.0", port)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # it serves
    assert access.exposed()
    folder, message, _ = share_tab.export_space("20260101-000000-sft-abcd", str(tmp_path / "evil"))
    assert folder is None and "writes only inside" in message and not (tmp_path / "evil").exists()
