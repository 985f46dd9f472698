"""Experiment trackers (train.report_to): the tiny SFT and PPO presets trained through the CLI with TensorBoard,
MLflow, Trackio and W&B (offline) at once, each read back through its own reader and compared with metrics.jsonl;
an MLflow server stopped mid-run; the refusals before a run starts.

MLflow writes to a local file store (MLFLOW_ALLOW_FILE_STORE: MLflow 3 keeps that store only on request), Trackio
to its local store ($TRACKIO_DIR), W&B to the run's wandb/ folder (WANDB_MODE=offline), TensorBoard to the run's
tensorboard/ folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studio import config as cfg
from studio.errors import ConfigError
from studio.runs import trackers
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import REPO, free_port, one_error_line, poll

pytestmark = pytest.mark.slow

ALL = "[tensorboard,mlflow,trackio,wandb]"


def tracker_env(home: Path) -> dict:
    return {
        **os.environ,
        "RLHF_STUDIO_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": (home / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "TRACKIO_DIR": str(home / "trackio"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }


def train(env: dict, *args: str) -> RunDir:
    done = subprocess.run(
        [sys.executable, "-m", "studio", "train", *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_id = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))
    return RunDir(Path(env["RLHF_STUDIO_HOME"]) / "runs" / run_id)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, shared_models) -> dict:
    """The tiny SFT preset, then PPO from it scored by the format rule of ppo-format-tiny, both with every tracker."""
    home = tmp_path_factory.mktemp("trackers-home")
    (home / "models").symlink_to(shared_models)
    env = tracker_env(home)
    sft = train(
        env,
        "presets/sft-dolly-tiny.yaml",
        "--set",
        "train.max_steps=12",
        "--set",
        "train.logging_steps=2",
        "--set",
        "train.eval_steps=4",
        "--set",
        "timeline.prompts=[]",
        "--set",
        f"train.report_to={ALL}",
        "--set",
        "train.run_name=tracked-sft",
    )
    preset = yaml.safe_load((REPO / "presets" / "ppo-format-tiny.yaml").read_text())
    ppo_stage = next(s for s in preset["stages"] if s["stage"] == "ppo")
    ppo_config = {
        "stage": "ppo",
        "name": "tracked-ppo",
        "model": preset["defaults"]["model"],
        "lora": preset["defaults"]["lora"],
        "init": {"from_run": sft.id},
        "data": ppo_stage["data"],
        "rewards": ppo_stage["rewards"],  # the format rule alone: no reward model to train first
        "ppo": ppo_stage["ppo"],
        "train": {
            **ppo_stage["train"],
            "max_steps": 6,
            "report_to": ALL.strip("[]").split(","),
            "run_name": "tracked-ppo",
        },
    }
    path = home / "ppo.yaml"
    path.write_text(yaml.safe_dump(ppo_config))
    ppo = train(env, str(path))
    return {"home": home, "sft": sft, "ppo": ppo}


def logged(run: RunDir, key: str) -> dict[int, float]:
    """step -> value of one key in metrics.jsonl."""
    return {row["step"]: float(row[key]) for row in read_all(run.metrics_path) if key in row}


def records(run: RunDir) -> dict[str, trackers.Record]:
    return {r.name: r for r in trackers.read_records(run)}


@pytest.mark.parametrize("which, key", [("sft", "loss"), ("sft", "eval_loss"), ("ppo", "reward")])
def test_each_tracker_holds_the_values_of_metrics_jsonl(tracked, which, key, monkeypatch):
    run = tracked[which]
    expected = logged(run, key)
    assert len(expected) >= 3, f"{key} was logged only {len(expected)} times"
    states = {name: (r.state, r.error) for name, r in records(run).items()}
    assert states == {name: ("finished", "") for name in ("tensorboard", "mlflow", "trackio", "wandb")}

    # TensorBoard's own event reader, on the run's tensorboard/ folder
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    from_tensorboard = {e.step: e.value for e in events.Scalars(key)}
    assert from_tensorboard.keys() == expected.keys()
    assert all(from_tensorboard[s] == pytest.approx(v, rel=1e-6) for s, v in expected.items())  # float32 there

    # MLflow's tracking client, on the local file store; the run found by the tag the studio gives it
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=(tracked["home"] / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(trackers.PROJECT)
    (found,) = client.search_runs([experiment.experiment_id], f"tags.`rlhf_studio.run_id` = '{run.id}'")
    assert found.info.run_name == f"tracked-{which}" and found.info.status == "FINISHED"
    assert found.data.params["train.learning_rate"] == str(run_config(run).train.learning_rate)
    from_mlflow = {m.step: m.value for m in client.get_metric_history(found.info.run_id, key)}
    assert from_mlflow == expected

    # Trackio's local store, read in a process of its own: trackio reads $TRACKIO_DIR once, when imported
    read = (
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
        "print(json.dumps(S.get_logs(sys.argv[1], run=sys.argv[2]), default=str))"
    )
    done = subprocess.run(
        [sys.executable, "-c", read, trackers.PROJECT, f"tracked-{which}"],
        capture_output=True,
        text=True,
        check=True,
        env=tracker_env(tracked["home"]),
    )
    from_trackio = {row["step"]: row[key] for row in json.loads(done.stdout) if key in row}
    assert from_trackio == expected


def run_config(run: RunDir) -> cfg.RunConfig:
    return cfg.load_config(run.config_path)


def test_wandb_offline_writes_its_run_folder(tracked):
    run = tracked["sft"]
    where = Path(records(run)["wandb"].where)
    assert where.parent == run.path / "wandb" and where.name.startswith("offline-run-")
    # W&B's run file (protobuf records, which `wandb sync` uploads): the run's name, project and keys are in it
    (history,) = where.glob("run-*.wandb")
    data = history.read_bytes()
    assert all(text in data for text in (b"tracked-sft", trackers.PROJECT.encode(), b"eval_loss", b"learning_rate"))


def test_a_stopped_mlflow_server_is_dropped_and_the_run_goes_on(tmp_path, shared_models):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(shared_models)
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import urllib.request

        def up():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
            except OSError:
                return False

        poll(up, "the mlflow server to answer", timeout=120)
        env = {**tracker_env(home), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        args = ["presets/sft-dolly-tiny.yaml", "--set", "train.max_steps=150", "--set", "train.logging_steps=1"]
        args += ["--set", "train.eval_steps=0", "--set", "timeline.prompts=[]", "--set", "train.report_to=[mlflow]"]
        trainer = subprocess.Popen(
            [sys.executable, "-m", "studio", "train", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=env,
        )
        run = RunDir(home / "runs" / trainer.stdout.readline().split()[1])

        def rows_sent():
            mlflow = records(run).get("mlflow")
            assert mlflow is None or mlflow.state != "failed", mlflow.error  # not before the server is stopped
            return mlflow is not None and mlflow.rows >= 3

        poll(rows_sent, "rows in mlflow", timeout=300)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        rows_at_kill = len(read_all(run.metrics_path))
        assert not run.read_status().final, "the run ended before the server was stopped"
        trainer.stdout.read()
        assert trainer.wait(timeout=600) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)

    status = run.read_status()
    assert status.state == "completed"
    rows = [row for row in read_all(run.metrics_path) if "loss" in row]
    assert [row["step"] for row in rows] == list(range(1, 151)), "metrics.jsonl lost rows"
    assert len(read_all(run.metrics_path)) > rows_at_kill
    mlflow = records(run)["mlflow"]
    assert mlflow.state == "failed" and mlflow.error and 3 <= mlflow.rows < 150
    assert run.log_path.read_text().count("tracker mlflow stopped") == 1


def test_a_tracker_without_its_package_is_refused_before_the_run(studio_home, monkeypatch):
    config = cfg.from_dict({"stage": "sft", "model": {"name": "tiny"}, "train": {"report_to": ["trackio"]}})
    monkeypatch.setitem(trackers.PACKAGES, "trackio", ("trackio_is_not_here", "trackio"))
    with pytest.raises(ConfigError) as err:
        trackers.check(config)
    assert str(err.value) == "train.report_to = trackio: its package is not installed; pip install trackio"


def test_wandb_without_a_login_is_refused_in_one_line(studio_home, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), RLHF_STUDIO_HOME=str(studio_home))  # no ~/.netrc there
    done = subprocess.run(
        [sys.executable, "-m", "studio", "train", "presets/sft-dolly-tiny.yaml", "--set", "train.report_to=[wandb]"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert done.returncode != 0
    assert one_error_line(done).endswith(
        "train.report_to = wandb: no W&B login; set WANDB_API_KEY, run `wandb login`, or set WANDB_MODE=offline "
        "to keep the run on this machine (`wandb sync` uploads it later)"
    )
    assert not (studio_home / "runs").exists() or not any((studio_home / "runs").iterdir())


def test_an_unknown_tracker_is_named():
    with pytest.raises(ConfigError, match=r"train.report_to = 'neptune': allowed values are trackio, tensorboard"):
        cfg.from_dict({"stage": "sft", "train": {"report_to": ["tensorboard", "neptune"]}})
    assert json.dumps(cfg.from_dict({"stage": "sft", "train": {"report_to": "mlflow, trackio"}}).train.report_to) == (
        '["mlflow", "trackio"]'
    )


def test_the_runs_tab_says_where_each_tracker_keeps_the_run(tracked, monkeypatch):
    from components import runs_tab

    monkeypatch.setenv("RLHF_STUDIO_HOME", str(tracked["home"]))
    run = tracked["sft"]
    line, _ = runs_tab.run_details(run.id)
    wandb_folder = records(run)["wandb"].where
    assert f"- tensorboard: `{run.tensorboard_dir}`, `tensorboard --logdir {run.tensorboard_dir}` (finished, " in line
    assert f"- wandb: `{wandb_folder}`, `wandb sync {wandb_folder}` (finished, " in line
    mlruns = (tracked["home"] / "mlruns").as_uri()
    assert f"- mlflow: `{mlruns} (run " in line and f"`mlflow ui --backend-store-uri {mlruns}` (finished, " in line
    trackio_dir = tracked["home"] / "trackio"
    assert f"- trackio: `{trackio_dir}`, `trackio show --project rlhf-studio` (finished, " in line


def test_the_train_tab_offers_the_trackers():
    from components import fieldwidgets

    widget = fieldwidgets.widget("train.report_to")
    assert widget.multiselect and [c[0] for c in widget.choices] == list(cfg.TRACKERS)
    from components.forms import to_config

    raw = to_config(["stage", "train.report_to", "train.run_name"], ["sft", ["mlflow", "tensorboard"], "my-run"])
    config = cfg.from_dict(raw)
    assert (config.train.report_to, config.train.run_name) == (["mlflow", "tensorboard"], "my-run")


def test_show_names_the_trackers(tracked):
    env = tracker_env(tracked["home"])
    run = tracked["ppo"]
    done = subprocess.run(
        [sys.executable, "-m", "studio", "show", run.id, "--json"], capture_output=True, text=True, env=env, cwd=REPO
    )
    shown = {item["name"]: item for item in json.loads(done.stdout)["trackers"]}
    assert shown["tensorboard"] == {
        "name": "tensorboard",
        "where": str(run.tensorboard_dir),
        "view": f"tensorboard --logdir {run.tensorboard_dir}",
        "state": "finished",
        "error": "",
        "rows": len(read_all(run.metrics_path)),
    }
    assert set(shown) == {"tensorboard", "mlflow", "trackio", "wandb"}
