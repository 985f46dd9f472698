"""Recorded pipelines (studio.pipelines.runner) and the Pipelines tab: the state file and lineage, a failed stage or a
cancel stops the rest, the detached runner, recipes (bundled and saved), the tab's endpoints, and the Llama 2 recipe
end to end on the tiny model.

Most engine tests run stages on tests/fake_worker.py (the real worker, its stage a wait for FINISH or FAIL).

    OMP_NUM_THREADS=1 python -m pytest tests/test_pipelines.py -q
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest
import yaml

from components.pipelines_tab import graph_html
from studio import config as cfg
from studio.errors import ConfigError
from studio.pipelines import presets, recipe, runner
from studio.runs import manager
from studio.runs.rundir import RunDir
from tests.conftest import REPO, run_cli, served_studio
from tests.fake_worker import COMMAND as FAKE_WORKER

# The runner as a process whose stages run on the fake worker (argv[1] is the pipeline folder).
FAKE_RUNNER = [
    sys.executable,
    "-c",
    "import sys; from studio.runs import manager; from tests.fake_worker import "
    "COMMAND; manager.WORKER = COMMAND; from studio.pipelines import runner; "
    "sys.exit(runner.main(sys.argv))",
]


def _instructgpt() -> recipe.Pipeline:
    raw = {
        "pipeline": "igpt",
        "defaults": {"model": {"name": "tiny"}},
        "stages": [
            {"name": "sft", "stage": "sft", "data": {"path": "sample"}},
            {"name": "rm", "stage": "reward", "from": "sft", "data": {"source": "hh-rlhf", "path": "sample"}},
            {
                "name": "ppo",
                "stage": "ppo",
                "from": "sft",
                "rewards_from": "rm",
                "rewards": {"sources": [{"builtin": "format", "args": {"pattern": "[.!?]$"}, "name": "ends"}]},
                "data": {"source": "hh-rlhf", "path": "sample"},
            },
        ],
    }
    return recipe.from_dict(raw)


@pytest.fixture
def fake_worker(monkeypatch):
    monkeypatch.setattr(manager, "WORKER", FAKE_WORKER)


def _stage_run(record, name: str) -> RunDir | None:
    run_id = next(s["run_id"] for s in record.read_state()["stages"] if s["name"] == name)
    return RunDir.of(run_id) if run_id else None


def _wait_running(record, name: str, timeout: float = 60) -> RunDir:
    deadline = time.monotonic() + timeout
    while True:
        run = _stage_run(record, name)
        if run is not None and run.read_status().state == "running":
            return run
        assert time.monotonic() < deadline, f"stage {name} never ran: {record.read_state()}"
        time.sleep(0.05)


def _end(run: RunDir, how: str = "FINISH") -> None:
    """Let a fake stage end; a completed one leaves an (empty) adapter, as later stages need one to start from."""
    if how == "FINISH":
        run.adapter_dir.mkdir(exist_ok=True)
    (run.path / how).touch()


def _run_in_thread(record) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(
            runner.run(record, follow=lambda run, proc: runner.wait_for_run(record, run, proc, poll=0.05))
        ),
        daemon=True,
    )
    thread.start()
    return thread, result


@pytest.mark.usefixtures("fake_worker")
def test_a_pipeline_records_its_stages_runs_and_lineage(studio_home):
    record = runner.create(_instructgpt(), "InstructGPT, faked")
    assert record.path == studio_home / "pipelines" / record.id
    state = record.read_state()
    assert state["state"] == "queued" and state["description"] == "InstructGPT, faked"
    assert [(s["name"], s["stage"], s["parent"], s["reward_stages"], s["run_id"]) for s in state["stages"]] == [
        ("sft", "sft", None, [], None),
        ("rm", "reward", "sft", [], None),
        ("ppo", "ppo", "sft", ["rm"], None),
    ]
    # The resolved YAML reads back to the same stages, defaults applied.
    again = recipe.from_dict(yaml.safe_load(record.yaml_path.read_text()))
    assert [(s.name, s.parent, s.reward_stages, s.config.model.name) for s in again.stages] == [
        ("sft", None, [], "tiny"),
        ("rm", "sft", [], "tiny"),
        ("ppo", "sft", ["rm"], "tiny"),
    ]
    # rewards_from's stage comes first, the stage's own built-in after it, once each
    assert [(s.kind, s.label) for s in again.stages[2].config.rewards.sources] == [("run", "rm"), ("builtin", "ends")]

    thread, result = _run_in_thread(record)
    for name in ("sft", "rm", "ppo"):
        _end(_wait_running(record, name))
    thread.join(60)
    assert result["state"] == "completed" and result["error"] is None
    sft, rm, ppo = (_stage_run(record, n) for n in ("sft", "rm", "ppo"))
    assert cfg.load_config(rm.config_path).init.from_run == sft.id
    ppo_config = cfg.load_config(ppo.config_path)
    assert ppo_config.init.from_run == sft.id and ppo_config.rewards.runs == [rm.id]
    assert [s.label for s in ppo_config.rewards.sources] == [rm.id, "ends"]  # the stage name became the run's id
    assert {r.read_status().pipeline for r in (sft, rm, ppo)} == {record.id}
    listed = runner.list_pipelines()
    assert [p["id"] for p in listed] == [record.id]
    assert [(s["name"], s["state"]) for s in listed[0]["stages"]] == [
        ("sft", "completed"),
        ("rm", "completed"),
        ("ppo", "completed"),
    ]
    assert json.loads(record.state_path.read_text())["state"] == "completed"  # on disk, not only in memory


@pytest.mark.usefixtures("fake_worker")
def test_a_failed_stage_stops_the_pipeline_with_one_line_naming_it(studio_home):
    record = runner.create(_instructgpt())
    thread, result = _run_in_thread(record)
    _end(_wait_running(record, "sft"))
    _end(_wait_running(record, "rm"), "FAIL")
    thread.join(60)
    assert result["state"] == "failed"
    assert result["error"] == "stage rm failed: told to fail"
    state = runner.status(record)
    # The stage after the failed one never runs: "skipped", not "waiting" for ever.
    assert [(s["name"], s["state"]) for s in state["stages"]] == [
        ("sft", "completed"),
        ("rm", "failed"),
        ("ppo", "skipped"),
    ]
    assert state["stages"][2]["run_id"] is None and len(manager.list_runs()) == 2


@pytest.mark.usefixtures("fake_worker")
def test_cancelling_a_pipeline_cancels_its_run_and_starts_no_later_stage(studio_home):
    record = runner.create(_instructgpt())
    thread, result = _run_in_thread(record)
    _end(_wait_running(record, "sft"))
    rm = _wait_running(record, "rm")
    runner.cancel(record)
    thread.join(60)
    assert result["state"] == "cancelled" and result["error"] == "cancelled at stage rm"
    assert rm.read_status().state == "cancelled"
    time.sleep(0.5)
    assert _stage_run(record, "ppo") is None and len(manager.list_runs()) == 2
    assert runner.cancel(record)["state"] == "cancelled"  # again: nothing left to do, no error


@pytest.mark.usefixtures("fake_worker")
def test_a_stage_that_cannot_start_fails_the_pipeline_in_one_line(studio_home):
    record = runner.create(_instructgpt())
    thread, result = _run_in_thread(record)
    (_wait_running(record, "sft").path / "FINISH").touch()  # completed, but no adapter to start from
    thread.join(60)
    assert result["state"] == "failed"
    assert result["error"].startswith("stage rm could not start: init.from_run = ")
    assert "\n" not in result["error"]
    # The stage that could not start failed (it has no run); the one after it is skipped.
    assert [(s["name"], s["state"]) for s in runner.status(record)["stages"]] == [
        ("sft", "completed"),
        ("rm", "failed"),
        ("ppo", "skipped"),
    ]


def test_the_detached_runner_runs_a_recorded_pipeline_and_a_dead_one_is_seen(studio_home, monkeypatch):
    monkeypatch.setattr(runner, "RUNNER", FAKE_RUNNER)
    record = runner.create(_instructgpt())
    proc = runner.launch(record)
    assert record.read_state()["pid"] == proc.pid
    for name in ("sft", "rm", "ppo"):
        _end(_wait_running(record, name))
    assert proc.wait(60) == 0
    assert runner.status(record)["state"] == "completed"
    assert "stage 3/3: ppo (ppo)" in record.log_path.read_text()

    dead = runner.create(_instructgpt())
    proc = runner.launch(dead)
    sft = _wait_running(dead, "sft")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = runner.status(dead)
    assert state["state"] == "failed" and state["error"].startswith("the pipeline runner is gone")
    manager.cancel(sft)


def test_recipes_are_the_bundled_pipelines_and_the_users_saved_ones(studio_home):
    bundled = presets.recipes()
    assert {"ppo-tiny", "llama2-tiny", "sft-dpo-tiny"} <= set(bundled)
    assert "sft-dolly-tiny" not in bundled  # a single-run preset is no recipe
    assert bundled["ppo-tiny"].description.startswith("InstructGPT (tiny)")
    assert all(r.description for r in bundled.values()), "every bundled pipeline says what it is"

    text = (REPO / "presets" / "sft-dpo-tiny.yaml").read_text().replace("max_steps: 30", "max_steps: 3")
    path = presets.save_recipe("my-dpo", text)
    assert path == studio_home / "presets" / "my-dpo.yaml"
    text_back, loaded, description = presets.recipe("my-dpo")
    assert presets.recipes()["my-dpo"].yours and loaded.stages[1].config.train.max_steps == 3
    assert description.startswith("DPO (tiny)")

    (studio_home / "presets" / "broken.yaml").write_text("stages: [\n")
    assert presets.recipes()["broken"].yours  # listed, so that picking it says what is wrong
    with pytest.raises(ConfigError, match=r"broken.yaml line \d+: not valid YAML"):
        presets.recipe("broken")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad name!", "stages: []", "pipeline name 'bad name!': use 1 to 64 letters"),
        ("ppo-tiny", "stages: []", "pipeline name 'ppo-tiny': that is a bundled preset"),
        ("mine", "stages: [\n", "pipeline YAML line 2: not valid YAML"),
        ("mine", "stage: sft\n", "pipeline YAML: expected a pipeline, a mapping with stages:"),
        (
            "mine",
            "stages:\n  - {name: a, stage: dpo, data: {source: dolly}}\n",
            "stages.a: data.source = 'dolly' gives sft rows",
        ),
    ],
)
def test_a_bad_saved_pipeline_gets_one_line(studio_home, name, text, message):
    with pytest.raises(ConfigError) as err:
        presets.save_recipe(name, text)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (studio_home / "presets" / f"{name}.yaml").exists()


def test_a_user_single_run_preset_is_not_overwritten(studio_home):
    (studio_home / "presets").mkdir()
    (studio_home / "presets" / "mine.yaml").write_text("stage: sft\n")
    with pytest.raises(ConfigError, match="your single-run preset has that name"):
        presets.save_recipe("mine", (REPO / "presets" / "sft-dpo-tiny.yaml").read_text())


def test_the_graph_draws_a_box_per_stage_and_an_arrow_per_link():
    stages = [
        {"name": s.name, "stage": s.config.stage, "parent": s.parent, "reward_stages": s.reward_stages}
        for s in recipe.load_pipeline(REPO / "presets" / "llama2-tiny.yaml").stages
    ]
    drawn = graph_html(stages)
    assert drawn.count("<rect") == 5
    assert drawn.count("marker-end=") == 8  # 4 `from` links and 4 `rewards_from` links
    assert drawn.count(" C ") == 3  # those that skip a column (sft -> rejection, both reward models -> ppo) arc
    assert drawn.count('stroke-dasharray="5 4"') == 4
    stages[0].update(state="completed", run_id="20250101-000000-sft-abcd")
    colored = graph_html(stages)
    assert 'data-state="completed"' in colored and "20250101-000000-sft-abcd" in colored and "#dcfce7" in colored


def test_the_pipelines_tab_endpoints(studio_home):
    with served_studio(studio_home) as (_url, client):
        description, graph, text = client.predict("ppo-tiny", api_name="/show_recipe")
        assert description.startswith("InstructGPT (tiny)") and graph.count("<rect") == 3
        assert yaml.safe_load(text)["pipeline"] == "ppo-tiny"

        line, _ = client.predict(text, "train.learning_rate=-1", api_name="/preview")
        assert line.startswith("Not valid: stages.sft: train.learning_rate = -1.0: must be greater than 0")
        assert "\n" not in line
        line, _ = client.predict("stages: [\n", "", api_name="/start_pipeline")
        assert line.startswith("Not started: pipeline YAML line 2: not valid YAML (") and "\n" not in line
        assert not (studio_home / "pipelines").exists()

        line, _ = client.predict("my-instructgpt", text, api_name="/save_pipeline")
        assert line.startswith("Saved pipeline **my-instructgpt**")
        assert presets.recipes()["my-instructgpt"].yours
        line = client.predict("no such id", api_name="/cancel_pipeline")
        assert line == "no pipeline with id 'no such id'"

        dpo = (REPO / "presets" / "sft-dpo-tiny.yaml").read_text()
        line, _ = client.predict(dpo, "train.max_steps=2", api_name="/start_pipeline")
        assert line.startswith("Started pipeline **")
        [pipeline_id] = [p["id"] for p in runner.list_pipelines()]
        assert f"**{pipeline_id}**" in line
        record = runner.find(pipeline_id)
        _wait_running(record, "sft", timeout=120)
        assert client.predict(pipeline_id, api_name="/cancel_pipeline") == f"Pipeline {pipeline_id}: cancelled."
        deadline = time.monotonic() + 60
        while runner.status(record)["state"] != "cancelled":  # the runner writes its end
            assert time.monotonic() < deadline
            time.sleep(0.2)
        line, graph, table = client.predict(pipeline_id, api_name="/show_pipeline")
        assert line.startswith(f"Pipeline **{pipeline_id}** (sft-dpo-tiny): cancelled")
        assert [row[4] for row in table["data"]] == ["cancelled", "skipped"]
        assert 'data-state="cancelled"' in graph
        rows = client.predict(api_name="/pipelines_table")["data"]
        assert rows[0][:3] == [pipeline_id, "sft-dpo-tiny", "cancelled"]


@pytest.mark.slow
def test_the_llama2_recipe_runs_end_to_end_on_the_tiny_model(studio_home):
    """SFT, two reward models, rejection sampling and PPO, safety-gated (about a minute on 2 CPU cores, alone)."""
    result = run_cli("train", "presets/llama2-tiny.yaml", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "pipeline llama2-tiny completed" in result.stdout
    [state] = runner.list_pipelines()
    assert state["state"] == "completed"
    assert [(s["name"], s["state"]) for s in state["stages"]] == [
        ("sft", "completed"),
        ("helpful-rm", "completed"),
        ("safety-rm", "completed"),
        ("rejection", "completed"),
        ("ppo", "completed"),
    ]
    ids = {s["name"]: s["run_id"] for s in state["stages"]}
    configs = {name: cfg.load_config(RunDir.of(run_id).config_path) for name, run_id in ids.items()}
    assert (configs["helpful-rm"].reward.kind, configs["safety-rm"].reward.kind) == ("helpfulness", "safety")
    assert configs["helpful-rm"].init.from_run == configs["safety-rm"].init.from_run == ids["sft"]
    assert configs["rejection"].init.from_run == ids["sft"] and configs["ppo"].init.from_run == ids["rejection"]
    for name in ("rejection", "ppo"):
        assert configs[name].rewards.runs == [ids["helpful-rm"], ids["safety-rm"]]
        assert configs[name].rewards.combine == "safety_gated"
        rows = [json.loads(line) for line in RunDir.of(ids[name]).metrics_path.read_text().splitlines()]
        # Each reward model's own score is logged next to the gated one.
        assert {f"reward/{ids['helpful-rm']}", f"reward/{ids['safety-rm']}", "reward"} <= set(rows[-1])
