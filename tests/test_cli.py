"""The `rlhf-studio` command end to end: train a preset, list and show runs, refuse bad input cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from studio.paths import runs_root
from studio.runs import manager
from studio.runs.rundir import RunDir
from tests.conftest import REPO, free_port, run_cli


@pytest.mark.slow
def test_train_tiny_preset_then_list_and_show(studio_home):
    result = run_cli("train", "presets/sft-dolly-tiny.yaml")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[1]
    run = RunDir.of(run_id)
    assert f"dir {run.path}" in result.stdout
    # The terminal says it is loading, then a bar that starts with training (its ETA leaves loading out) ends full.
    progress = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert progress[0] == f"{run_id}: loading the model and data"
    assert progress[1].startswith(f"{run_id}:") and "/60 [" in progress[1]
    assert " 60/60 [" in progress[-1]

    status = run.read_status()
    assert status.state == "completed" and status.step == status.total_steps == 60
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    loss_steps = [r["step"] for r in rows if "loss" in r]
    assert loss_steps == [1] + list(range(5, 61, 5))  # a loss on every logging step (and the first)
    assert any("eval_loss" in r for r in rows)
    assert all({"step", "epoch", "time"} <= r.keys() for r in rows)
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert [p.name for p in run.complete_checkpoints()] == ["checkpoint-30", "checkpoint-60"]

    listed = json.loads(run_cli("runs", "--json").stdout)
    assert [(r["id"], r["stage"], r["state"], r["step"]) for r in listed] == [(run_id, "sft", "completed", 60)]
    first_loss = next(r["loss"] for r in rows if "loss" in r)
    assert listed[0]["last_loss"] < 0.7 * first_loss  # it learned: the last logged loss is well below the first

    shown = json.loads(run_cli("show", run_id[:20], "--json").stdout)
    assert shown["status"]["state"] == "completed"
    assert shown["config"]["model"]["name"] == "tiny"
    assert "loss" in shown["metrics"] and "eval_loss" in shown["metrics"]
    text = run_cli("runs").stdout
    assert run_id in text and "completed" in text


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.learnin_rate=0.1", "unknown key 'train.learnin_rate'; did you mean 'train.learning_rate'?"),
        ("train.learning_rate=-0.001", "train.learning_rate = -0.001: must be greater than 0"),
        ("data.path=/no/such/dolly.jsonl", "data.path = '/no/such/dolly.jsonl': no such file"),
        ("model.name=./no-such-model", "model.name = './no-such-model': no such folder"),
        ("train.batch_size=many", "train.batch_size = 'many': expected an integer"),
    ],
)
def test_bad_input_gets_one_clear_line_and_starts_nothing(studio_home, override, message):
    result = run_cli("train", "presets/sft-dolly-tiny.yaml", "--set", override)
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert not runs_root().exists() or not any(runs_root().iterdir())


def test_missing_config_file_and_unknown_run(studio_home):
    result = run_cli("train", "presets/no-such.yaml")
    assert result.returncode != 0 and result.stderr.strip() == "error: presets/no-such.yaml: no such config file"
    result = run_cli("show", "nope")
    assert result.returncode != 0 and result.stderr.strip().startswith("error: no run with id 'nope'")


@pytest.mark.slow
def test_a_run_that_fails_in_the_worker_exits_nonzero_with_its_reason(studio_home):
    # A broken file is refused before the run exists (tests/test_bad_input.py); rows too long for data.max_length
    # are only found by the worker, which has the tokenizer.
    result = run_cli(
        "train", "presets/sft-dolly-tiny.yaml", "--set", "data.max_length=16", "--set", "data.on_bad_rows=fail"
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: dolly.jsonl row 1: ") and "over data.max_length = 16" in last
    assert "Traceback" not in result.stderr
    run = RunDir.of(result.stdout.split()[1])
    assert run.read_status().state == "failed"


@pytest.mark.slow
def test_killing_the_cli_keeps_the_index_whole(studio_home):
    """kill -9 the foreground CLI at random moments, also while it writes the index: every run stays listed."""
    rng = random.Random(7)
    started = []
    for attempt in range(6):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "studio",
                "train",
                "presets/sft-dolly-tiny.yaml",
                "--set",
                "train.max_steps=400",
                "--set",
                "train.save_steps=0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        if attempt % 2:
            time.sleep(rng.uniform(0.2, 1.5))  # somewhere in start-up, possibly mid index write
        else:
            started.append(proc.stdout.readline().split()[1])  # after the run was recorded
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lister = subprocess.Popen([sys.executable, "-m", "studio", "runs"], stdout=subprocess.DEVNULL, cwd=REPO)
        time.sleep(rng.uniform(0.3, 1.0))
        lister.send_signal(signal.SIGKILL)
        lister.wait()

    result = run_cli("runs", "--json")
    assert result.returncode == 0, result.stderr
    listed = {r["id"] for r in json.loads(result.stdout)}
    on_disk = {p.name for p in runs_root().iterdir() if (p / "status.json").is_file()}
    assert set(started) <= listed and listed == on_disk

    # The worker outlives the CLI; stop everything so the test leaves nothing behind. Newest first: the queued runs
    # leave the queue before the running one could end and hand the device to one of them.
    for run_id in sorted(listed, key=lambda i: RunDir.of(i).read_status().requested or 0, reverse=True):
        status = RunDir.of(run_id).read_status()
        if status.state == "queued" and not status.pid:
            manager.cancel(RunDir.of(run_id))
        elif status.pid:
            try:
                os.killpg(status.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_ui_says_it_is_starting_then_ready_when_the_page_answers_and_refuses_a_busy_port():
    """`rlhf-studio ui` takes seconds (gradio and the tabs load): it says so at once, then prints its address and
    "ready" when the page answers, in place of gradio's banner. A second studio on the same port gets one line."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen(
        [sys.executable, "-m", "studio", "ui", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:  # each line as it comes, so that the test sees "ready" the moment it is printed
        for line in server.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not any("ready" in line for line in lines):
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.05)
        with urllib.request.urlopen(url + "/", timeout=5) as page:  # at the moment it says ready
            assert page.status == 200
        assert lines[0] == f"RLHF Studio is starting on {url} ...\n", lines
        assert lines[-1] == f"RLHF Studio is ready on {url}\n", lines
        assert not any("Running on" in line or "share=True" in line for line in lines), lines

        busy = run_cli("ui", "--port", str(port), timeout=120)
        assert busy.returncode == 2 and "Traceback" not in busy.stdout + busy.stderr, busy.stderr[-3000:]
        assert busy.stderr == (
            f"error: cannot serve on 127.0.0.1:{port}: the port is in use (another studio?); pick another with --port\n"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_train_warns_about_a_gpu_recipe_naming_its_tiny_twin_then_refuses_the_hub_in_one_line(studio_home):
    from studio.pipelines import twins

    done = run_cli("train", "presets/ppo-hh-smollm2-135m.yaml", timeout=120)
    *warning, error = done.stderr.splitlines()
    if twins.has_gpu():  # nothing to warn about where the recipe fits
        assert warning == []
    else:
        [warning] = warning
        assert warning.startswith("warning: This recipe is sized for a GPU (HuggingFaceTB/SmolLM2-135M-Instruct)")
        assert "its tiny twin, the recipe ppo-tiny" in warning
    assert error.startswith("error: stage sft: data.path is empty, so the dolly source loads")
    assert done.returncode != 0
    assert not list(studio_home.glob("runs/*"))  # refused before a run folder exists
