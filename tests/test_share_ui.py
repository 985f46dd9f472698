"""The Share tab through its endpoints (gradio_client).

The wiring tests serve the tab in this process over a module home of hand-made runs, with studio.publish.share
replaced by
a recording fake, so they check what the tab sends to the engine and what it shows of the answer. The tests at the
end serve the whole studio on a copy of the session's tuned runs with the real studio.publish.share (skipped while that
module does not exist): a real card, a real Space export, and a push with no token and no network.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

import pytest

from studio import spaces
from studio.config import RunConfig
from studio.errors import StudioError
from studio.runs import manager
from tests.conftest import free_port, served_studio

pytestmark = pytest.mark.usefixtures("in_module_home")

REAL_SHARE = importlib.util.find_spec("studio.publish.share") is not None
CARD = "---\nlicense: apache-2.0\nbase_model: tiny\n---\n# tuned-sft\n\nFine-tuned with RLHF Studio.\n"
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `huggingface-cli login` on this machine"


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text.strip() and "Traceback" not in text


@pytest.fixture(scope="module")
def share_tab():
    """components.share_tab, importable even before studio.publish.share exists (a bare stand-in module until then)."""
    with pytest.MonkeyPatch.context() as mp:
        if not REAL_SHARE:
            import studio

            stand_in = types.ModuleType("studio.publish.share")
            mp.setitem(sys.modules, "studio.publish.share", stand_in)
            mp.setattr(studio, "share", stand_in, raising=False)
            mp.delitem(sys.modules, "components.share_tab", raising=False)
        from components import share_tab

        yield share_tab
        if not REAL_SHARE:
            sys.modules.pop("components.share_tab", None)


@pytest.fixture(scope="module")
def made_runs(module_home) -> dict:
    """Runs in every state but running, made by hand in the module's home: only "done" and "done_too" completed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))
        runs = {}
        for key, state in [
            ("done", "completed"),
            ("failed", "failed"),
            ("queued", "queued"),
            ("cancelled", "cancelled"),
            ("done_too", "completed"),
        ]:
            run = manager.create(RunConfig(name=f"made-{key}"))
            if state != "queued":
                run.write_status(state=state)
            runs[key] = run.id
    return runs


@pytest.fixture(scope="module")
def served_tab(share_tab, made_runs, module_home):
    """The Share tab alone, served by this process (so a test's fake share is the one it calls); its URL."""
    import gradio as gr

    with pytest.MonkeyPatch.context() as mp, gr.Blocks() as demo:
        mp.setenv("RLHF_STUDIO_HOME", str(module_home))  # the run picker's choices are the module home's runs
        share_tab.build()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


@pytest.fixture
def client(served_tab):
    from gradio_client import Client

    return Client(served_tab, verbose=False)


class FakeShare:
    """Records the calls the tab makes; `fail` makes every call raise it."""

    def __init__(self, fail: BaseException | None = None):
        self.calls, self.fail = [], fail

    def _call(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if self.fail:
            raise self.fail

    def model_card(self, run_id, merged=False, repo_id=None):
        self._call("model_card", run_id, merged=merged, repo_id=repo_id)
        return CARD

    def push(self, run_id, repo_id, merged=False, private=False, token=None):
        self._call("push", run_id, repo_id, merged=merged, private=private, token=token)
        return f"https://huggingface.co/{repo_id}"

    def export_space(self, run_id, out_dir):
        self._call("export_space", run_id, Path(out_dir))
        out = Path(out_dir)
        (out / "adapter").mkdir(parents=True, exist_ok=True)
        for name in ("app.py", "README.md", "requirements.txt", "adapter/adapter_model.safetensors"):
            (out / name).write_text(name, encoding="utf-8")
        return out

    def push_space(self, out_dir, repo_id, private, token=None):
        self._call("push_space", Path(out_dir), repo_id, private)
        return f"https://huggingface.co/spaces/{repo_id}"

    @staticmethod
    def outside_home(folder):  # a question, not an action: the real answer
        from studio.publish.share import outside_home

        return outside_home(folder)


@pytest.fixture
def fake(share_tab, monkeypatch) -> FakeShare:
    fake = FakeShare()
    monkeypatch.setattr(share_tab, "share", fake)
    return fake


# ---------------------------------------------------------------- the run list and the token line


def test_the_share_tab_lists_completed_runs_only_newest_first(client, made_runs):
    choices = client.predict(api_name="/share_runs")["choices"]
    assert [value for _label, value in choices] == [made_runs["done_too"], made_runs["done"]]
    assert all("made-done" in label and "sft" in label for label, _value in choices)


def test_the_token_line_says_where_the_token_comes_from_and_never_shows_it(client, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    line = client.predict(api_name="/token_status")
    assert "HF_TOKEN" in line and "huggingface-cli login" in line and "none found" in line

    (tmp_path / "token").write_text("hf_storedsecret123", encoding="utf-8")
    line = client.predict(api_name="/token_status")
    assert "stored" in line and "hf_storedsecret123" not in line and "none found" not in line

    monkeypatch.setenv("HF_TOKEN", "hf_envsecret456")
    line = client.predict(api_name="/token_status")
    assert "HF_TOKEN is set" in line and "hf_envsecret456" not in line
    assert spaces.token_source() == "HF_TOKEN"


# ---------------------------------------------------------------- card preview


def test_the_card_preview_renders_the_runs_model_card(client, fake, made_runs):
    card, message = client.predict(made_runs["done"], " me/tiny-sft ", True, api_name="/card_preview")
    assert fake.calls == [("model_card", (made_runs["done"],), {"merged": True, "repo_id": "me/tiny-sft"})]
    assert card.startswith("```yaml\nlicense: apache-2.0\nbase_model: tiny\n```")  # the metadata, kept readable
    assert "# tuned-sft" in card and "Fine-tuned with RLHF Studio." in card
    assert made_runs["done"] in message


def test_the_card_preview_without_a_run_is_one_line(client, fake):
    card, message = client.predict(None, "", False, api_name="/card_preview")
    assert card == "" and message == "pick a completed run to share" and fake.calls == []


def test_a_card_that_cannot_be_written_is_one_line(client, share_tab, monkeypatch, made_runs):
    monkeypatch.setattr(share_tab, "share", FakeShare(fail=StudioError(f"no run with id '{made_runs['done']}x'")))
    card, message = client.predict(made_runs["done"], "", False, api_name="/card_preview")
    assert card == "" and message == f"no run with id '{made_runs['done']}x'"


# ---------------------------------------------------------------- push


def test_push_sends_the_run_repo_and_boxes_and_says_where_it_went(client, fake, made_runs):
    message = client.predict(made_runs["done"], " me/tiny-sft ", True, True, api_name="/push")
    assert fake.calls == [
        ("push", (made_runs["done"], "me/tiny-sft"), {"merged": True, "private": True, "token": None})
    ]
    assert message == (
        f"Pushed run {made_runs['done']} (the merged full model and its model card) to "
        "https://huggingface.co/me/tiny-sft (private)."
    )


def test_push_without_a_token_or_a_network_is_one_line(client, share_tab, monkeypatch, made_runs):
    monkeypatch.setattr(share_tab, "share", FakeShare(fail=StudioError(NO_TOKEN)))
    assert client.predict(made_runs["done"], "me/tiny-sft", False, False, api_name="/push") == NO_TOKEN
    offline = ConnectionError("Max retries exceeded with url: /api/repos/create\n(Caused by NameResolutionError)")
    monkeypatch.setattr(share_tab, "share", FakeShare(fail=offline))
    message = client.predict(made_runs["done"], "me/tiny-sft", False, False, api_name="/push")
    assert message == "Unexpected ConnectionError: Max retries exceeded with url: /api/repos/create"


def test_push_without_a_repo_id_is_one_line_and_pushes_nothing(client, fake, made_runs):
    assert (
        client.predict(made_runs["done"], "  ", False, False, api_name="/push")
        == "type a repo id, such as your-name/tiny-sft"
    )
    assert client.predict(None, "me/x", False, False, api_name="/push") == "pick a completed run to share"
    assert fake.calls == []


# ---------------------------------------------------------------- Space export


def test_export_space_shows_the_folder_and_its_files_then_push_space_uploads_that_folder(
    client, fake, made_runs, tmp_path
):
    folder = tmp_path / "my-space"  # outside the studio home: exported once confirmed
    message = client.predict(made_runs["done"], str(folder), True, api_name="/export_space")
    assert fake.calls == [("export_space", (made_runs["done"], folder), {})]
    assert f"`{folder}`" in message
    for name in ("adapter/adapter_model.safetensors", "app.py", "README.md", "requirements.txt"):
        assert f"- `{name}`" in message

    message = client.predict("me/tiny-sft-chat", True, api_name="/push_space")
    assert fake.calls[-1] == ("push_space", (folder, "me/tiny-sft-chat", True), {})
    assert message == f"Pushed the Space in `{folder}` to https://huggingface.co/spaces/me/tiny-sft-chat (private)."


def test_export_space_without_a_folder_goes_under_the_home_into_a_new_folder_each_time(
    client, fake, made_runs, module_home
):
    run_id = made_runs["done_too"]
    for folder in (module_home / "spaces" / run_id, module_home / "spaces" / f"{run_id}-2"):
        message = client.predict(run_id, "", api_name="/export_space")
        assert fake.calls[-1] == ("export_space", (run_id, folder), {})
        assert (folder / "app.py").is_file() and f"`{folder}`" in message


def test_export_space_outside_the_home_asks_first_and_writes_nothing_until_confirmed(
    client, fake, made_runs, module_home, tmp_path
):
    run_id = made_runs["done"]
    for folder in (tmp_path / "elsewhere", Path("/etc/rlhf-studio-space"), module_home / ".." / "beside-home"):
        message = client.predict(run_id, str(folder), False, api_name="/export_space")
        assert message == (
            f"`{folder.expanduser()}` is outside the studio home (`{module_home}`): tick “Yes, export "
            "there” and press Export Space again to write the Space there."
        )
        assert fake.calls == [] and not folder.exists()
    assert client.predict(run_id, "", api_name="/export_space").startswith("Exported run ")  # the box left out

    inside = module_home / "spaces" / "chosen-here"  # inside the home: nothing to confirm
    client.predict(run_id, str(inside), False, api_name="/export_space")
    assert fake.calls[-1] == ("export_space", (run_id, inside), {})
    client.predict(run_id, str(tmp_path / "elsewhere"), True, api_name="/export_space")
    assert fake.calls[-1] == ("export_space", (run_id, tmp_path / "elsewhere"), {})
    assert (tmp_path / "elsewhere" / "app.py").is_file()


def test_push_space_before_an_export_is_one_line(client, fake):
    message = client.predict("me/tiny-sft-chat", False, api_name="/push_space")
    assert message == "export the Space first: Push Space uploads the folder Export Space wrote"
    assert fake.calls == []


def test_a_failed_export_is_one_line_and_leaves_nothing_to_push(client, share_tab, monkeypatch, made_runs, tmp_path):
    monkeypatch.setattr(share_tab, "share", FakeShare(fail=StudioError("out_dir: not an empty folder")))
    message = client.predict(made_runs["done"], str(tmp_path), True, api_name="/export_space")
    assert message == "out_dir: not an empty folder"
    monkeypatch.setattr(share_tab, "share", FakeShare())
    assert client.predict("me/tiny-sft-chat", False, api_name="/push_space").startswith("export the Space first")


# ---------------------------------------------------------------- the whole studio with the real studio.publish.share


@pytest.fixture(scope="module")
def real_client(tuned_runs, tmp_path_factory):
    """The whole studio on a copy of the tuned runs, with no Hub token anywhere and the Hub offline."""
    if not REAL_SHARE:
        pytest.skip("studio/publish/share.py is not written yet")
    home = tmp_path_factory.mktemp("share-home")
    (home / "models").symlink_to((tuned_runs["home"] / "models").resolve())
    shutil.copytree(tuned_runs["home"] / "runs", home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("HF_HOME", str(home / "hf-home"))  # no stored login
        mp.setenv("HF_HUB_OFFLINE", "1")
        with served_studio(home) as (_url, client):
            yield client, home


def test_real_share_tab_lists_the_completed_runs(real_client, tuned_runs):
    client, _home = real_client
    listed = [value for _label, value in client.predict(api_name="/share_runs")["choices"]]
    assert listed == [tuned_runs["reward"], tuned_runs["chained"], tuned_runs["sft"]]
    assert "none found" in client.predict(api_name="/token_status")


def test_real_card_preview_shows_the_runs_card(real_client, tuned_runs):
    client, _home = real_client
    card, message = client.predict(tuned_runs["sft"], "me/tiny-sft", False, api_name="/card_preview")
    assert card.startswith("```yaml\n") and "me/tiny-sft" in card and tuned_runs["sft"] in message


def test_real_export_space_writes_the_folder_it_lists(real_client, tuned_runs, tmp_path):
    client, _home = real_client
    folder = tmp_path / "space"
    message = client.predict(tuned_runs["sft"], str(folder), True, api_name="/export_space")
    assert f"`{folder}`" in message, message
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert "app.py" in written and all(f"- `{name}`" in message for name in written)


def test_real_push_without_a_token_or_network_is_one_line(real_client, tuned_runs):
    client, _home = real_client
    from studio.publish import share

    message = client.predict(tuned_runs["sft"], "me/tiny-sft", False, False, api_name="/push")
    assert message == share.NO_TOKEN
    message = client.predict(tuned_runs["sft"], "not a repo id", False, False, api_name="/push")
    assert _one_line(message) and message.startswith("repo id 'not a repo id'"), message


# ---------------------------------------------------------------- GGUF


class FakeGGUF:
    """studio.publish.gguf as the tab calls it: records the call and writes the two files (or raises `fail`)."""

    def __init__(self, fail: BaseException | None = None):
        self.calls, self.fail = [], fail

    def export_gguf(self, run_id, out_dir, type="f16"):
        from studio.publish.gguf import Exported

        self.calls.append((run_id, Path(out_dir), type))
        if self.fail:
            raise self.fail
        out = Path(out_dir)
        out.mkdir(parents=True)
        (out / f"{run_id}-{type}.gguf").write_bytes(b"GGUF" + bytes(3 * 2**20))
        (out / "Modelfile").write_text(f"FROM ./{run_id}-{type}.gguf\n", encoding="utf-8")
        return Exported(out / f"{run_id}-{type}.gguf", out / "Modelfile", None)


def test_export_gguf_offers_the_gguf_and_its_modelfile_for_download(client, share_tab, monkeypatch, made_runs):
    fake = FakeGGUF()
    monkeypatch.setattr(share_tab, "gguf", fake)
    run_id = made_runs["done"]
    message, gguf_file, modelfile = client.predict(run_id, "q8_0", api_name="/export_gguf")
    [(called_run, folder, type)] = fake.calls
    assert (called_run, folder.name, type) == (run_id, f"{run_id}-q8_0", "q8_0")
    assert message == (
        f"Exported run {run_id} as GGUF (q8_0) to `{folder}`:\n- `{run_id}-q8_0.gguf` (3.0 MB)\n- `Modelfile`\n\n"
        "With both in one folder: `ollama create NAME -f Modelfile`, or load the GGUF in llama.cpp."
    )
    assert gguf_file["visible"] is True and modelfile["visible"] is True
    assert Path(gguf_file["value"]).read_bytes()[:4] == b"GGUF"
    assert Path(modelfile["value"]).read_text(encoding="utf-8") == f"FROM ./{run_id}-q8_0.gguf\n"


def test_export_gguf_that_is_refused_is_one_line_and_leaves_no_folder(client, share_tab, monkeypatch, made_runs):
    fake = FakeGGUF(fail=StudioError("run 'x' is a rm run: it scores answers and writes none"))
    monkeypatch.setattr(share_tab, "gguf", fake)
    message, gguf_file, modelfile = client.predict(made_runs["done"], "f16", api_name="/export_gguf")
    assert message == "run 'x' is a rm run: it scores answers and writes none"
    assert gguf_file["visible"] is False and modelfile["visible"] is False
    assert not fake.calls[0][1].parent.exists()  # the temporary folder went with the refusal

    message, *_ = client.predict(None, "f16", api_name="/export_gguf")
    assert message == "pick a completed run to share" and len(fake.calls) == 1
