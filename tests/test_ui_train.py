"""The Train tab through the served studio's endpoints: presets fill the form, Start queues a real tiny run, a bad
value gets its one line and starts nothing, a saved preset loads back, and the summary above Start says what it will
run (in a real browser too, which saves test-artifacts/train-summary.png, the picture in docs/). The reward rows of
the online stages: what they hold reaches the run's config.yaml, a preset's sources fill them back, a bad built-in
argument is refused in one line, and in a real browser a person adds a built-in source and starts a GRPO run.

One server (and one studio home) serves the whole module; `python -m pytest tests/test_ui_train.py -m "not slow"`
skips the real training.
"""

from __future__ import annotations

import re
import time

import pytest

from components import reward_rows
from components.forms import to_config
from studio import config as cfg
from studio.config import DataSpec, RunConfig
from studio.modeling.estimate import gib, run_estimate
from studio.rewards.builtins import BUILTINS
from studio.runs import manager
from studio.runs.rundir import RunDir
from tests.conftest import REPO, device_held, error_shown
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

PRESET = "sft-dolly-tiny"


pytestmark = pytest.mark.usefixtures("in_module_home")


@pytest.fixture
def client(module_client):
    return module_client


@pytest.fixture
def home(module_home):
    return module_home


@pytest.fixture(scope="module")
def keys(module_client) -> list[str]:
    return module_client.predict(api_name="/form_keys")


@pytest.fixture(scope="module")
def row_keys(module_client) -> list[str]:
    return module_client.predict(api_name="/reward_row_keys")


def _load(client, keys, name: str) -> tuple[str, dict]:
    message, *values = client.predict(name, api_name="/load_preset")
    assert len(values) == len(keys)
    return message, dict(zip(keys, values))


def _rows(client, row_keys, text: str) -> tuple[dict, list[str], str]:
    """What the page does after a preset loads: the reward rows filled from rewards.sources' YAML. (row input name ->
    value, each row's help line, the YAML left in rewards.sources)."""
    out = client.predict(text, api_name="/reward_rows")
    values = [update["value"] for update in out[: len(row_keys)]]
    about = [update["value"] for update in out[len(row_keys) : len(row_keys) + reward_rows.SLOTS]]
    return dict(zip(row_keys, values)), about, out[-1]


def _grpo_form(client, keys) -> dict:
    """The tiny SFT preset's form with the stage set to grpo (its prompts are the Dolly sample's)."""
    _, form = _load(client, keys, PRESET)
    return {**form, "stage": "grpo", "name": "grpo-rows"}


@pytest.fixture
def reward_run(in_module_home) -> str:
    """A completed reward run in the served home, as a person who trained one has."""
    run = manager.create(RunConfig(stage="reward", name="judge", data=DataSpec(source="hh-rlhf", path="sample")))
    run.write_status(state="completed")
    run.adapter_dir.mkdir()
    return run.id


@pytest.fixture
def busy_device(in_module_home, sleeper):
    """The served studio's device held by a sleeping run (conftest.device_held): what Start queues waits."""
    with device_held(sleeper):
        yield


def test_the_form_has_every_train_key_once(keys):
    info = cfg.field_info()
    assert len(keys) == len(set(keys)) and set(keys) <= set(info)
    assert {k for k in info if not k.startswith(("model.", "data."))} <= set(keys)


def test_loading_a_preset_fills_the_form_with_its_values(client, keys):
    message, form = _load(client, keys, PRESET)
    assert PRESET in message
    assert cfg.from_dict(to_config(keys, list(form.values()))) == cfg.load_config(REPO / "presets" / f"{PRESET}.yaml")
    assert form["stage"] == "sft" and form["data.path"] == "sample" and form["train.learning_rate"] == 0.003
    assert form["train.max_steps"] == 60 and form["lora.dropout"] == 0.0 and form["lora.target_modules"] == "all-linear"


def test_every_config_key_has_a_field_and_every_bundled_preset_loads_whole(client, keys):
    assert sorted(keys) == sorted(cfg.field_info())  # the Model, Data and Train tabs together cover the config
    for path in sorted((REPO / "presets").glob("*.yaml")):
        if "stages" in cfg.read_yaml(path):
            continue  # pipelines run from the Pipelines tab
        message, form = _load(client, keys, path.stem)
        assert message.startswith("Loaded") and "left out" not in message, (path.name, message)
        assert cfg.from_dict(to_config(keys, list(form.values()))) == cfg.load_config(path), path.name


def test_pipelines_are_not_offered_and_unknown_presets_say_so(client, keys):
    message, _ = _load(client, keys, "ppo-tiny")
    assert message == "ppo-tiny is a pipeline (several linked stages); open it in the Pipelines tab."
    message, _ = _load(client, keys, "../../etc/passwd")
    assert message.startswith("No preset named")


def test_a_bad_value_gets_one_line_and_starts_nothing(client, keys):
    _, form = _load(client, keys, PRESET)
    before = len(manager.list_runs())
    message = client.predict(*{**form, "train.learning_rate": -1}.values(), api_name="/start_run")
    assert error_shown(message) == "Not started: train.learning_rate = -1.0: must be greater than 0.0"
    # a bound the input itself knows (ge=1) is judged by the config too, so the line still names the key
    message = client.predict(*{**form, "lora.r": 0}.values(), api_name="/start_run")
    assert error_shown(message) == "Not started: lora.r = 0: must be at least 1"
    message = client.predict(*{**form, "stage": "dpo"}.values(), api_name="/start_run")
    assert error_shown(message).startswith("Not started: data.source = 'dolly' gives sft rows") and "\n" not in message
    assert len(manager.list_runs()) == before


def test_a_saved_preset_loads_back(client, keys, home):
    _, form = _load(client, keys, PRESET)
    changed = {
        **form,
        "train.learning_rate": 0.001,
        "lora.r": 8,
        "name": "mine",
        "lora.target_modules": "q_proj, v_proj",
    }
    message, _dropdown = client.predict("my-sft", *changed.values(), api_name="/save_preset")
    assert "Saved preset **my-sft**" in message
    saved = home / "presets" / "my-sft.yaml"
    assert cfg.load_config(saved) == cfg.from_dict(to_config(keys, list(changed.values())))
    message, loaded = _load(client, keys, "my-sft")
    assert "my-sft" in message and loaded == changed


def test_bad_preset_names_and_bad_forms_are_not_saved(client, keys, home):
    _, form = _load(client, keys, PRESET)
    for name, start in (
        ("", "Preset name ''"),
        ("a/b", "Preset name 'a/b'"),
        ("../x", "Preset name '../x'"),
        (PRESET, f"'{PRESET}' is the name of a bundled preset"),
    ):
        message, _ = client.predict(name, *form.values(), api_name="/save_preset")
        assert message.startswith(start) and "\n" not in message
    message, _ = client.predict("broken", *{**form, "train.batch_size": 0}.values(), api_name="/save_preset")
    assert message == "Not saved: train.batch_size = 0: must be at least 1"
    assert not (home / "presets" / "broken.yaml").exists()


def test_the_summary_says_what_start_will_run(client, keys):
    _, form = _load(client, keys, PRESET)
    summary = client.predict(*form.values(), api_name="/run_summary")
    memory = gib(run_estimate(cfg.load_config(REPO / "presets" / f"{PRESET}.yaml")).total)
    lines = summary.splitlines()
    assert lines[:8] == [
        "**What Start will run**",
        "",
        "- **Stage:** sft: supervised fine-tuning on prompt -&gt; response rows",
        "- **Model:** tiny, the built-in tiny model",
        "- **Data:** dolly, from the bundled sample (dolly.jsonl)",
        "- **Rows:** 200 sft rows: 180 to train on, 20 held out; none dropped",
        "- **Steps:** 60 optimizer steps (train.max\\_steps)",
        "- **Starts from:** the base model (no earlier run)",
    ]
    assert lines[8].startswith(f"- **Memory:** about {memory} at bfloat16 (auto, as on a GPU): weights ")
    assert len(lines) == 9  # no reward models for sft, no note: the tiny model needs no GPU
    summary = client.predict(*{**form, "train.max_steps": -1, "train.epochs": 2}.values(), api_name="/run_summary")
    assert "- **Steps:** 46 optimizer steps (2 epochs x 180 rows / (8 x 1 accumulated))" in summary.splitlines()


def test_a_refused_form_shows_its_one_line_in_the_summary(client, keys):
    _, form = _load(client, keys, PRESET)
    summary = client.predict(*{**form, "train.learning_rate": -1}.values(), api_name="/run_summary")
    assert error_shown(summary) == "train.learning_rate = -1.0: must be greater than 0.0"
    summary = client.predict(*{**form, "data.path": "/no/such/rows.jsonl"}.values(), api_name="/run_summary")
    assert (
        "- **Data:** dolly, from a local file <span class=\"studio-error\">data.path = '/no/such/rows.jsonl': no "
        "such file</span>"
    ) in summary.splitlines()
    assert "- **Steps:** 60 optimizer steps (train.max\\_steps)" in summary.splitlines()  # the rest is still said


def test_the_summary_first_says_that_the_tiny_model_is_being_built(tmp_path, monkeypatch):
    import gradio as gr

    from components.model_tab import BUILDING_TINY
    from components.train_tab import summary_steps

    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tmp_path))  # a fresh home: no tiny model yet
    fields = {"stage": gr.Dropdown(choices=list(cfg.STAGES)), "model.name": gr.Textbox()}
    steps = summary_steps(fields, ["sft", "tiny"])
    assert next(steps) == BUILDING_TINY  # said at once; building it is the next step's work
    steps.close()
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
def test_a_person_reads_the_summary_before_starting(client):
    """Load the preset in a real browser: the summary appears above Start; a changed field updates it when the
    person leaves the box. The picture of it is docs/train-summary.png."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(client.src)
            page.get_by_role("tab", name="Train").click()
            preset = page.get_by_label("Preset", exact=True)
            preset.click()
            page.get_by_role("option", name=re.compile(f"^{PRESET}")).click()
            time.sleep(2)  # the list's refresh on focus answers after the pick
            expect(preset).to_have_value(PRESET)
            page.get_by_role("button", name="Load", exact=True).click()
            summary = page.locator("#run-summary")
            expect(summary).to_contain_text("200 sft rows: 180 to train on, 20 held out", timeout=60_000)
            expect(summary).to_contain_text("60 optimizer steps (train.max_steps)")
            time.sleep(1)  # the progress bar of the last refresh fades
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#run-summary-box").screenshot(path=str(ARTIFACTS / "train-summary.png"))

            steps = page.locator("#field-train-max_steps input")
            steps.fill("-1")
            steps.press("Tab")  # leaving the box refreshes the summary
            expect(summary).to_contain_text("23 optimizer steps (1 epoch x 180 rows", timeout=30_000)
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (scripts/setup.sh installs it)")
@pytest.mark.usefixtures("busy_device")
def test_in_the_browser_a_person_adds_a_builtin_reward_and_starts_grpo(client):
    """The Data tab's file set to the sample, stage grpo: two sources added, the second a format built-in with a
    pattern, the first removed (the second moves up); Start queues the run with that one source."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(client.src)
            page.get_by_role("tab", name="Data").click(timeout=30_000)
            page.get_by_label(re.compile(r"^\s*Data file\s+data\.path · ")).locator("visible=true").fill("sample")
            page.get_by_role("tab", name="Train").click()
            page.locator("#field-stage input").click()
            page.get_by_role("option", name=re.compile(r"^grpo:")).click()
            add = page.locator("#reward-source-add")
            add.click(timeout=30_000)
            expect(page.locator("#reward-source-0-kind")).to_be_visible(timeout=30_000)
            add.click()
            second = page.locator("#reward-source-1-kind")
            expect(second).to_be_visible(timeout=30_000)
            second.get_by_label("Built-in", exact=True).check()
            expect(page.locator("#reward-source-1-about")).to_contain_text(
                "1 when the answer matches the regular expression pattern", timeout=30_000
            )
            page.locator("#reward-source-1-args-format-pattern").get_by_role("textbox").fill(r"\d+")

            page.locator("#reward-source-0-remove").click()
            expect(second).to_be_hidden(timeout=30_000)  # the built-in moved up into the first row
            pattern = page.locator("#reward-source-0-args-format-pattern").get_by_role("textbox")
            expect(pattern).to_have_value(r"\d+")

            page.get_by_role("button", name="Start", exact=True).locator("visible=true").click()
            queued = page.get_by_text(re.compile(r"^Queued \S+-grpo-"))
            expect(queued).to_be_visible(timeout=30_000)
            run_id = queued.inner_text().split()[1]
            sources = cfg.read_yaml(RunDir.of(run_id).config_path)["rewards"]["sources"]
            assert sources == [
                {
                    "builtin": "format",
                    "args": {"pattern": r"\d+", "match": "search", "dotall": True, "ignore_case": False},
                    "weight": 1.0,
                }
            ]
            assert errors == []
        finally:
            browser.close()


@pytest.mark.slow
def test_starting_a_preset_trains_a_run_with_charts(client, keys):
    _, form = _load(client, keys, PRESET)
    message = client.predict(*form.values(), api_name="/start_run")
    assert message.startswith("Started **") and "Runs tab" in message
    run_id = message.split("**")[1]
    deadline = time.monotonic() + 300
    while (state := manager.status(manager.find(run_id)).state) not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"run still {state} after 300 s"
        time.sleep(2)
    run = RunDir.of(run_id)
    assert state == "completed", run.log_tail(40)
    assert cfg.load_config(run.config_path) == cfg.from_dict(to_config(keys, list(form.values())))
    assert any(row[0] == run_id for row in client.predict(api_name="/runs_table")["data"])
    charts = client.predict(run_id, 0.0, [], False, api_name="/chart_data")
    series = {s["key"]: s for panel in charts["panels"] for s in panel["series"]}
    assert series["loss"]["points"] > 0 and series["loss"]["last_step"] == 60

    # The finished SFT run is now a starting point for the stages that start from policies, not a reward model.
    parents, *rewards = client.predict("dpo", run_id, api_name="/stage_runs")
    assert parents["value"] == run_id and [value for _, value in parents["choices"]] == ["", run_id]
    assert len(rewards) == reward_rows.SLOTS
    assert all(run_id not in {value for _, value in row["choices"]} for row in rewards)


# ---------------------------------------------------------------- the reward rows


@pytest.mark.usefixtures("busy_device")
def test_sources_built_from_the_rows_reach_the_runs_config_exactly(client, keys, row_keys, reward_run):
    blank, _, _ = _rows(client, row_keys, "")
    assert blank["rewards.sources[0].kind"] == "" and blank["rewards.sources[5].kind"] == ""  # no row in use
    rows = {
        **blank,
        "rewards.sources[0].kind": "run",
        "rewards.sources[0].run": reward_run,
        "rewards.sources[1].kind": "builtin",
        "rewards.sources[1].builtin": "format",
        "rewards.sources[1].args.format.pattern": r"\d+$",
        "rewards.sources[1].weight": 0.5,
        "rewards.sources[2].kind": "builtin",  # added, never filled in: left out
        "rewards.sources[2].builtin": "",
    }
    form = _grpo_form(client, keys)
    summary = client.predict(*form.values(), *rows.values(), api_name="/run_summary")
    assert f"- **Rewards:** {reward_run} (judge), helpfulness; format (built-in, weight 0.5)" in summary.splitlines()

    message = client.predict(*form.values(), *rows.values(), api_name="/start_run")
    assert message.startswith("Queued **"), message
    config = cfg.read_yaml(RunDir.of(message.split("**")[1]).config_path)
    assert config["stage"] == "grpo"
    assert config["rewards"] == {
        "sources": [
            {"run": reward_run, "weight": 1.0},
            {
                "builtin": "format",
                "args": {"pattern": r"\d+$", "match": "search", "dotall": True, "ignore_case": False},
                "weight": 0.5,
            },
        ],
        "combine": "sum",
        "safety_threshold": 0.15,
        "time_limit": 60.0,
    }


@pytest.mark.usefixtures("busy_device")
def test_sources_given_as_yaml_come_after_the_rows(client, keys, row_keys):
    blank, _, _ = _rows(client, row_keys, "")
    rows = {**blank, "rewards.sources[0].kind": "builtin", "rewards.sources[0].builtin": "no_repetition"}
    rows["rewards.sources[0].args.no_repetition.n"] = 2
    form = {**_grpo_form(client, keys), "rewards.sources": "- builtin: length\n  args: {target: 20}\n  name: short"}
    message = client.predict(*form.values(), *rows.values(), api_name="/start_run")
    assert message.startswith("Queued **"), message
    sources = cfg.read_yaml(RunDir.of(message.split("**")[1]).config_path)["rewards"]["sources"]
    assert sources == [
        {"builtin": "no_repetition", "args": {"n": 2}, "weight": 1.0},
        {
            "builtin": "length",
            "args": {"target": 20, "unit": "words", "tolerance": 0, "falloff": 20},
            "weight": 1.0,
            "name": "short",
        },
    ]


def test_a_presets_sources_fill_the_rows_back(client, keys, row_keys, home):
    presets = home / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "grpo-rows.yaml").write_text(
        "stage: grpo\n"
        "data: {source: dolly, path: sample}\n"
        "rewards:\n"
        "  sources:\n"
        "    - run: rm-abc\n"
        "    - builtin: contains\n"
        "      args: {keywords: [cat, dog], match: any}\n"
        "      weight: 0.5\n"
        "      name: pets\n"
        "    - function: my_rewards.py:score\n"
        "      weight: -1\n",
        encoding="utf-8",
    )
    message, form = _load(client, keys, "grpo-rows")
    assert message == "Loaded preset **grpo-rows**."
    rows, about, left = _rows(client, row_keys, form["rewards.sources"])
    assert left == ""  # all three are in the rows, so none stays in the YAML box
    assert (rows["rewards.sources[0].kind"], rows["rewards.sources[0].run"]) == ("run", "rm-abc")
    assert [rows[f"rewards.sources[1].{key}"] for key in ("kind", "builtin", "weight", "name")] == [
        "builtin",
        "contains",
        0.5,
        "pets",
    ]
    assert rows["rewards.sources[1].args.contains.keywords"] == "cat\ndog"  # one keyword a line
    assert rows["rewards.sources[1].args.contains.match"] == "any"
    assert rows["rewards.sources[1].args.contains.case_sensitive"] is False
    assert [rows[f"rewards.sources[2].{key}"] for key in ("kind", "function", "weight")] == [
        "function",
        "my_rewards.py:score",
        -1,
    ]
    assert rows["rewards.sources[3].kind"] == ""
    assert about[:3] == ["", BUILTINS["contains"].help, ""]
    # What Start reads from these rows (the YAML box emptied, as the page leaves it) is the preset again.
    raw = to_config(keys, list({**form, "rewards.sources": ""}.values()))
    raw["rewards"] = {**raw.get("rewards", {}), "sources": reward_rows.sources(list(rows.values()))}
    assert cfg.from_dict(raw) == cfg.load_config(presets / "grpo-rows.yaml")

    # A preset written before `rewards` names its reward runs under reward_models: they fill the rows too.
    (presets / "ppo-legacy.yaml").write_text(
        "stage: ppo\ndata: {source: hh-rlhf, path: sample}\nreward_models: {runs: [rm-1, rm-2], weights: [1, 0.25]}\n",
        encoding="utf-8",
    )
    message, form = _load(client, keys, "ppo-legacy")
    assert message == "Loaded preset **ppo-legacy**."  # nothing left out: reward_models is read as rewards
    rows, _, left = _rows(client, row_keys, form["rewards.sources"])
    assert [(rows[f"rewards.sources[{i}].kind"], rows[f"rewards.sources[{i}].run"]) for i in range(3)] == [
        ("run", "rm-1"),
        ("run", "rm-2"),
        ("", ""),
    ]
    assert (rows["rewards.sources[0].weight"], rows["rewards.sources[1].weight"], left) == (1, 0.25, "")


def test_a_bad_builtin_argument_is_refused_in_one_line(client, keys, row_keys):
    blank, _, _ = _rows(client, row_keys, "")
    form = _grpo_form(client, keys)
    before = len(manager.list_runs())
    bad = {
        **blank,
        "rewards.sources[0].kind": "builtin",
        "rewards.sources[0].builtin": "format",
        "rewards.sources[0].args.format.pattern": "(x",
    }
    message = client.predict(*form.values(), *bad.values(), api_name="/start_run")
    assert error_shown(message) == (
        "Not started: rewards.sources[0].args.pattern = '(x': not a valid regular expression (missing ), "
        "unterminated subpattern at position 0)"
    )
    summary = client.predict(*form.values(), *bad.values(), api_name="/run_summary")  # Check says the same
    assert error_shown(summary) == error_shown(message).removeprefix("Not started: ")
    bad = {
        **blank,
        "rewards.sources[0].kind": "builtin",
        "rewards.sources[0].builtin": "length",
        "rewards.sources[0].args.length.target": "ten",
    }
    message = client.predict(*form.values(), *bad.values(), api_name="/start_run")
    assert error_shown(message) == "Not started: rewards.sources[0].args.target = 'ten': expected an integer"
    message = client.predict(*form.values(), *blank.values(), api_name="/start_run")
    assert error_shown(message).startswith("Not started: rewards.sources is empty: the grpo stage scores its answers")
    assert len(manager.list_runs()) == before
