"""Start checks up front what it can in about a second, and refuses in one line before a run folder exists: a data
file that is not there, a hub dataset or hub model out of reach and not cached; a second Start of the same config
within seconds is refused naming the first run; GPU recipes say so, come last on a machine without a GPU and name
their tiny twin; a pipeline's stages after a failed one read "skipped" (test_pipelines.py) and a running stage shows
its step and time left.

The served-studio tests share one server; the machine is told it has no GPU (CUDA_VISIBLE_DEVICES empty), and the
Hub is offline, as conftest sets for every test.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time

import pytest

from components import data_tab, model_tab, pipelines_tab, train_tab
from studio import config as cfg
from studio import hub_reach
from studio.config import DataSpec, ModelSpec, RunConfig
from studio.errors import DataError, ModelError, StudioError
from studio.modeling import model_files
from studio.paths import runs_root
from studio.pipelines import recipe, runner, twins
from studio.runs import manager
from studio.runs.metrics import MetricsWriter
from tests.conftest import REPO, device_held, error_shown, free_port, served_studio
from tests.fake_worker import COMMAND as FAKE_WORKER
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

DOLLY_OFFLINE = (
    "data.path is empty, so the dolly source loads databricks/databricks-dolly-15k from the Hugging Face "
    "Hub, which cannot be reached (offline mode is on: HF_DATASETS_OFFLINE=1), and it is not in the local "
    "cache; set data.path to sample for the bundled sample, or to a local file in the source's raw "
    "schema"
)
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def fake_worker(monkeypatch):
    monkeypatch.setattr(manager, "WORKER", FAKE_WORKER)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def online(monkeypatch):
    """Offline mode off, as on a machine of the user's: the Hub is then asked over the network (HF_ENDPOINT)."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def _run_folders() -> list:
    root = runs_root()
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []


def _refused(config: RunConfig, error=StudioError) -> str:
    began = time.monotonic()
    with pytest.raises(error) as err:
        manager.start(config)
    assert time.monotonic() - began < 3.0  # about a second on a busy machine; the worker took 31 s to fail
    assert _run_folders() == []
    assert "\n" not in str(err.value)
    return str(err.value)


# ---------------------------------------------------------------- data and model, before a run folder exists


def test_a_missing_data_file_is_refused_before_any_run_folder_exists(tmp_path):
    message = _refused(RunConfig(data=DataSpec(path=str(tmp_path / "nope.jsonl"))))
    assert message == f"data.path = '{tmp_path / 'nope.jsonl'}': no such file"


def test_a_hub_dataset_offline_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    assert _refused(RunConfig(), DataError) == DOLLY_OFFLINE  # the Data tab untouched: dolly from the hub
    message = _refused(RunConfig(stage="reward", data=DataSpec(source="hh-rlhf", path="hub")), DataError)
    assert message.startswith(
        "data.path = hub, so the hh-rlhf source loads Anthropic/hh-rlhf from the Hugging Face "
        "Hub, which cannot be reached"
    )


def test_a_hub_model_offline_is_refused_and_a_cached_one_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    config = RunConfig(model=ModelSpec(name=SMOLLM), data=DataSpec(path="sample"))
    assert _refused(config, ModelError) == (
        f"model.name = '{SMOLLM}' is a Hugging Face Hub id, and the Hub cannot be reached (offline mode is on: "
        "HF_HUB_OFFLINE=1) and the model is not in the local cache; download it and set model.name to its folder, "
        "or use tiny (the built-in model)"
    )
    # What huggingface_hub leaves after a download: refs/main names the snapshot holding config.json.
    repo = tmp_path / "hf" / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    manager.check_inputs(config)  # loads offline from the cache: accepted
    config.model.revision = "v2"  # a revision that is not in the cache
    with pytest.raises(ModelError, match="not in the local cache"):
        manager.check_inputs(config)


def test_a_dataset_in_the_datasets_cache_passes_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # The folder datasets' offline fallback looks for: <owner>___<name>/<config>/<version>/<hash>
    (tmp_path / "hf" / "datasets" / "databricks___databricks-dolly-15k" / "default" / "0.0.0" / "f1e2").mkdir(
        parents=True
    )
    manager.check_inputs(RunConfig())
    with pytest.raises(DataError, match="Anthropic/hh-rlhf from the Hugging Face Hub"):
        manager.check_inputs(RunConfig(stage="reward", data=DataSpec(source="hh-rlhf")))


def test_a_hub_that_does_not_answer_is_refused_quickly(online, monkeypatch):
    # Nothing listens on this port: refused at once.
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    assert _refused(RunConfig(), DataError).startswith(
        f"data.path is empty, so the dolly source loads databricks/databricks-dolly-15k from the Hugging Face Hub, "
        f"which cannot be reached ({closed} could not be reached: "
    )
    # A host that takes the connection and never answers: given REACH_TIMEOUT seconds, not the loader's minutes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", url)
        began = time.monotonic()
        assert hub_reach.reach_problem("models") == f"no answer from {url} within {hub_reach.REACH_TIMEOUT:g} s"
        assert time.monotonic() - began < hub_reach.REACH_TIMEOUT + 1.0
        began = time.monotonic()
        assert hub_reach.reach_problem("datasets") == f"no answer from {url} within {hub_reach.REACH_TIMEOUT:g} s"
        assert time.monotonic() - began < 0.5  # the answer is reused for the other checks of the same Start


def test_a_hub_that_answers_is_left_to_the_loader(online, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        manager.check_inputs(RunConfig(model=ModelSpec(name=SMOLLM)))  # any answer: reachable
    finally:
        server.shutdown()
        server.server_close()


def test_a_pipeline_with_a_hub_stage_is_refused_before_it_is_recorded(studio_home):
    text = (REPO / "presets" / "ppo-hh-smollm2-135m.yaml").read_text()
    began = time.monotonic()
    with pytest.raises(StudioError) as err:
        runner.start_text(text)
    assert time.monotonic() - began < 3.0
    assert str(err.value).startswith(
        "stage sft: data.path is empty, so the dolly source loads "
        "databricks/databricks-dolly-15k from the Hugging Face Hub"
    )
    assert not (studio_home / "pipelines").exists() and _run_folders() == []


# ---------------------------------------------------------------- a second click


@pytest.mark.usefixtures("fake_worker")
def test_the_same_config_started_twice_within_seconds_is_refused_naming_the_first(studio_home):
    config = cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml")
    first, _ = manager.start(config, refuse_repeats=True)
    time.sleep(1.5)  # the two clicks of the issue
    with pytest.raises(StudioError) as err:
        manager.start(cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml"), refuse_repeats=True)
    assert re.match(
        f"run {first.id} with this same config was started \\d+\\.\\d s ago \\(a second click\\?\\)", str(err.value)
    ), str(err.value)
    assert str(err.value).endswith(f"press Start again after {manager.REPEAT_SECONDS:g} s")
    assert [p.name for p in _run_folders()] == [first.id]
    # Another config is no repeat, and the terminal (no refuse_repeats) starts what it is told to.
    other, _ = manager.start(
        cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml", ["train.seed=7"]), refuse_repeats=True
    )
    again, _ = manager.start(cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml"))
    assert len({first.id, other.id, again.id}) == 3
    for run in (again, other, first):
        manager.cancel(run)


def test_the_same_pipeline_started_twice_within_seconds_is_refused(studio_home):
    text = (REPO / "presets" / "sft-dpo-tiny.yaml").read_text()
    first = runner.create(runner.validate(text)[0], refuse_repeats=True)
    with pytest.raises(StudioError, match=f"^pipeline {first.id} with this same config was started"):
        runner.create(runner.validate(text)[0], refuse_repeats=True)
    other = runner.create(runner.validate(text, ["train.max_steps=3"])[0], refuse_repeats=True)
    assert sorted(p.name for p in (studio_home / "pipelines").iterdir() if p.is_dir()) == sorted([first.id, other.id])


# ---------------------------------------------------------------- GPU recipes on a machine without a GPU


@pytest.mark.usefixtures("no_gpu")
def test_gpu_recipes_say_so_and_come_after_the_offline_ones(studio_home):
    assert not twins.has_gpu()
    labels = [label for label, _name in pipelines_tab.recipe_choices()]
    gpu = [i for i, label in enumerate(labels) if "needs a GPU" in label]
    assert gpu and gpu == list(range(len(labels) - len(gpu), len(labels)))  # all of them last
    assert all("(tiny)" in label for label in labels[: len(labels) - len(gpu)])  # the offline recipes first
    assert "GRPO on arithmetic (tiny) · grpo-math-tiny" in labels
    assert "InstructGPT (SmolLM2-135M) · ppo-hh-smollm2-135m · needs a GPU and the Hugging Face Hub" in labels
    first_instructgpt = next(label for label in labels if label.startswith("InstructGPT"))
    assert "needs a GPU" not in first_instructgpt  # the first InstructGPT entry is one this machine can run

    choices = train_tab.preset_choices()
    needing = [i for i, (label, _name) in enumerate(choices) if "needs a GPU" in label]
    assert needing == list(range(len(choices) - len(needing), len(choices)))
    assert ("sft-dolly-qwen2.5-0.5b · needs a GPU and the Hugging Face Hub", "sft-dolly-qwen2.5-0.5b") in choices
    assert ("sft-dolly-tiny", "sft-dolly-tiny") in choices


@pytest.mark.usefixtures("no_gpu")
def test_a_gpu_recipe_names_its_tiny_twin(studio_home):
    loaded = recipe.load_pipeline(REPO / "presets" / "ppo-hh-smollm2-135m.yaml")
    assert runner.gpu_warning(loaded) == (
        f"This recipe is sized for a GPU ({SMOLLM}) and this machine has none, so it would take hours here; its tiny "
        "twin, the recipe ppo-tiny, runs the same stages offline here in a few minutes."
    )
    single = cfg.load_config(REPO / "presets" / "rm-shp-qwen2.5-0.5b.yaml")
    assert twins.gpu_warning([single]).endswith(
        "its tiny twin, the preset rm-hh-tiny, trains the same stage offline here in about a minute."
    )
    assert twins.gpu_warning([cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml")]) is None


# ---------------------------------------------------------------- a running stage's step and time left


@pytest.mark.usefixtures("fake_worker")
def test_a_running_stage_shows_its_step_and_time_left(studio_home):
    text = (REPO / "presets" / "sft-dpo-tiny.yaml").read_text()
    record = runner.create(runner.validate(text)[0])
    thread = threading.Thread(
        target=lambda: runner.run(record, follow=lambda run, proc: runner.wait_for_run(record, run, proc, poll=0.05)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 60
    while (
        not (run_id := record.read_state()["stages"][0]["run_id"])
        or manager.find(run_id).read_status().state != "running"
    ):
        assert time.monotonic() < deadline, record.read_state()
        time.sleep(0.05)
    run = manager.find(run_id)
    # Both the supervisor (the training child's pid) and the fake stage (its total) have written their start.
    while (current := run.read_status()).total_steps != 1 or current.pid == current.supervisor:
        assert time.monotonic() < deadline, current
        time.sleep(0.05)
    # As a trainer logs: step 1 eight seconds ago, step 5 now, of 20.
    run.write_status(step=1, total_steps=20)
    line, _graph, table = pipelines_tab.show_pipeline(record.id)
    assert table[0][4:7] == ["running", "1/20", "estimating"]  # no step timed yet
    assert ", stage sft at step 1/20, estimating the time left" in line
    first = time.time() - 8.0
    MetricsWriter(run.metrics_path).write({"step": 1, "loss": 2.0, "epoch": 0.1, "time": first})
    run.write_status(step=5)
    [sft, dpo] = runner.status(record)["stages"]
    assert (sft["state"], sft["step"], sft["total_steps"]) == ("running", 5, 20)
    # The Runs tab's rate (manager.time_left): 15 steps left at 4 steps per (now - first).
    assert sft["time_left"] == pytest.approx(15 * (time.time() - first) / 4, abs=1.0) and dpo["time_left"] is None
    line, graph, table = pipelines_tab.show_pipeline(record.id)
    assert table[0][4:6] == ["running", "5/20"] and re.fullmatch(r"\d+s", table[0][6])
    assert f", stage sft at step 5/20, about {table[0][6]} left" in line
    assert table[1][4:7] == ["waiting", "", ""]
    assert "running 5/20" in graph
    runner.cancel(record)
    thread.join(30)


# ---------------------------------------------------------------- Model and Data tabs say what they choose


def test_inspect_says_first_that_the_tiny_model_is_being_built():
    assert not model_files.tiny_built()  # this test's home is fresh
    steps = model_tab.inspect_steps({})
    summary, rows = next(steps)  # what the page shows at once; the build itself is not waited for
    assert (
        summary
        == (
            "model.name is empty, so this is the default, the built-in **tiny** model; type a hub id or "
            "a local folder to inspect another.\n\n" + model_tab.BUILDING_TINY
        )
        and rows == []
    )
    steps.close()
    summary, _ = next(data_tab.preview_steps({"data": {"path": "sample"}}))
    assert summary == model_tab.BUILDING_TINY


@pytest.mark.usefixtures("studio_home")
def test_inspect_with_an_empty_name_says_which_model_it_is():
    steps = list(model_tab.inspect_steps({}))  # the tiny model is built: no building line
    assert len(steps) == 1
    summary, rows = steps[0]
    assert summary.startswith("model.name is empty, so this is the default, the built-in **tiny** model")
    assert "parameters: **260,928**" in summary and rows
    summary, _ = model_tab.inspect_model({"model": {"name": "tiny"}})
    assert not summary.startswith("model.name is empty")


# ---------------------------------------------------------------- the served studio


@pytest.fixture(scope="module")
def ui(module_home):
    """(client, call, home, url): one studio without a GPU; `call(api, **{config key: value})` fills every other input
    with its initial value."""
    import os

    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the served studio sees no GPU, as on this machine
    try:
        with served_studio(module_home) as (url, client):
            endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]

            def call(api: str, **values):
                params = endpoints[api]["parameters"]
                by_label = labelled(api, params, values)
                return client.predict(
                    *[by_label.get(p["label"], p.get("parameter_default")) for p in params], api_name=api
                )

            yield client, call, module_home, url
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def labelled(api: str, params: list[dict], values: dict) -> dict:
    """Values keyed by config key, keyed instead by the label of the endpoint's input ("Data source" for data.source):
    the API names an input by its label. Each key's label must name exactly one input."""
    labels = [p["label"] for p in params]
    by_label = {}
    for key, value in values.items():
        label = cfg.field_info()[key]["label"]
        assert labels.count(label) == 1, f"{api} has {labels.count(label)} inputs labelled {label!r} ({key})"
        by_label[label] = value
    return by_label


@pytest.fixture
def busy_device(ui, sleeper, monkeypatch):
    """A run holding the device in the served studio's home (its worker a sleeping process), so what Start queues
    waits rather than trains; the queued runs are cancelled after, and the holder marked cancelled (a cancel would
    kill the sleeper's process group, which is pytest's)."""
    _client, _call, home, _url = ui
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    with device_held(sleeper):
        yield


def test_ppo_with_the_data_tab_untouched_is_refused_at_once(ui, monkeypatch):
    _client, call, home, _url = ui
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    reward = manager.create(RunConfig(stage="reward", data=DataSpec(source="hh-rlhf", path="sample")))
    reward.write_status(state="completed")
    reward.adapter_dir.mkdir()  # a finished reward model to score the answers, as the person had
    before = len(manager.list_runs())
    began = time.monotonic()
    # a script names the sources as rewards.sources YAML (the page's reward rows are left empty)
    message = call("/start_run", **{"stage": "ppo", "rewards.sources": f"- run: {reward.id}"})
    assert time.monotonic() - began < 5.0  # the served round trip included; the worker failed after 31 s
    assert error_shown(message) == f"Not started: {DOLLY_OFFLINE}"
    assert len(manager.list_runs()) == before


@pytest.mark.usefixtures("busy_device")
def test_a_second_click_on_start_is_refused_naming_the_first_run(ui):
    _client, call, _home, _url = ui
    values = {"stage": "sft", "data.path": "sample", "name": "double-click"}
    first = call("/start_run", **values)
    assert first.startswith("Queued **") and "behind" in first
    run_id = first.split("**")[1]
    time.sleep(1.5)
    second = call("/start_run", **values)
    assert error_shown(second).startswith(f"Not started: run {run_id} with this same config was started ")
    assert len([r for r in manager.list_runs() if r["name"] == "double-click"]) == 1


def test_the_pipelines_tab_names_gpu_recipes_and_refuses_one_offline(ui):
    client, _call, home, _url = ui
    description, _graph, text = client.predict("ppo-hh-smollm2-135m", api_name="/show_recipe")
    assert description.startswith("InstructGPT (SmolLM2-135M): ")
    assert "**Note:** This recipe is sized for a GPU" in description and "the recipe ppo-tiny" in description
    line, _ = client.predict(text, "", api_name="/start_pipeline")
    assert line.startswith("Not started: stage sft: data.path is empty, so the dolly source loads") and "\n" not in line
    assert not (home / "pipelines").exists()
    message, *_ = client.predict("sft-dolly-qwen2.5-0.5b", api_name="/load_preset")
    assert message.startswith("Loaded preset **sft-dolly-qwen2.5-0.5b**.")
    assert message.endswith(
        "its tiny twin, the preset sft-dolly-tiny, trains the same stage offline here in about a minute."
    )
    message, *_ = client.predict("ppo-tiny", api_name="/load_preset")
    assert message == "ppo-tiny is a pipeline (several linked stages); open it in the Pipelines tab."


def test_preview_says_the_train_tabs_stage_decides_the_rows(ui):
    _client, call, _home, _url = ui
    summary, _ = call("/preview_data", **{"data.source": "oasst", "data.path": "sample", "stage": "dpo"})
    assert "- read as **preference** rows, for the Train tab's stage, dpo" in summary
    summary, _ = call("/preview_data", **{"data.source": "hh-rlhf", "data.path": "sample", "stage": "ppo"})
    assert "- read as **preference** rows: the Train tab's stage, ppo, takes only their prompts" in summary


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
@pytest.mark.usefixtures("busy_device")
def test_in_the_browser_start_refuses_what_would_fail_and_a_second_click(ui):
    """Where a person meets it: Start with the Data tab untouched is refused in one line and no run folder appears;
    two clicks on Start 1.5 s apart queue one run; the first InstructGPT recipe offered is the one this machine runs."""
    from playwright.sync_api import expect, sync_playwright

    _client, _call, home, url = ui
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            page.get_by_role("tab", name="Train").click(timeout=30_000)
            before = {p.name for p in (home / "runs").iterdir()}
            start = page.get_by_role("button", name="Start", exact=True).locator("visible=true")
            start.click()
            refusal = page.get_by_text(re.compile(r"^Not started: data\.path is empty, so the dolly source loads"))
            expect(refusal).to_be_visible(timeout=30_000)
            assert "\n" not in refusal.inner_text()
            assert {p.name for p in (home / "runs").iterdir()} == before

            preset = page.get_by_label("Preset", exact=True)
            preset.click()
            page.get_by_role("option", name=re.compile(r"^sft-dolly-tiny$")).click()
            time.sleep(2)  # the list's refresh on focus answers after the pick
            page.get_by_role("button", name="Load", exact=True).click()
            expect(page.get_by_text(re.compile(r"^Loaded preset"))).to_be_visible(timeout=30_000)
            start.click()
            expect(page.get_by_text(re.compile(r"^Queued"))).to_be_visible(timeout=30_000)
            [queued] = [r["id"] for r in manager.list_runs() if r["state"] == "queued"]
            time.sleep(1.5)
            start.click()
            expect(
                page.get_by_text(re.compile(f"^Not started: run {queued} with this same config was started"))
            ).to_be_visible(timeout=30_000)
            assert [r["id"] for r in manager.list_runs() if r["state"] == "queued"] == [queued]

            page.get_by_role("tab", name="Pipelines").click()
            page.get_by_label("Recipe", exact=True).click()
            options = page.get_by_role("option").all_inner_texts()
            first = next(text for text in options if text.startswith("InstructGPT"))
            assert "(tiny)" in first and "needs a GPU" not in first  # an offline recipe, before the GPU ones
            assert options[-1].strip().endswith("needs a GPU and the Hugging Face Hub")
        finally:
            browser.close()
