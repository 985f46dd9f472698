"""The generation timeline: a run answers its timeline prompts before training and at each checkpoint, step 0 is the
base model's greedy answer, recording leaves the loss curve exactly as it was, a resumed run records no step twice,
PPO and rejection sampling record too, bad configs get one line, and the Runs tab serves the answers by step.

    OMP_NUM_THREADS=1 python -m pytest tests/test_timeline.py -q

Two tiny SFT runs (with and without prompts, lora.dropout and gradient checkpointing on so that a disturbed random
generator or train mode would show in the loss) are trained once for the module through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from studio import config as cfg
from studio.errors import ConfigError
from studio.monitor import timeline
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.rundir import RunDir
from tests.conftest import REPO, polite_rude_pairs, run_cli, write_jsonl

PROMPTS = ["How many legs does a spider have?", "Classify each of the following as a fruit or a vegetable: apple, leek"]
SETTINGS = [
    "train.max_steps=20",
    "train.save_steps=8",
    "train.eval_steps=10",
    "lora.dropout=0.1",
    "train.gradient_checkpointing=true",
    "timeline.max_new_tokens=24",
]
WITH_PROMPTS = [*SETTINGS, "timeline.prompts=" + "\n".join(PROMPTS)]  # text split on new lines, as --set gives it
EXPECTED_STEPS = [0, 8, 16, 20]  # before training, each save (8, 16) and the last step (20)


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.fixture(scope="module")
def trained(module_home) -> dict:
    """{"with": run id, "without": run id} of two finished tiny SFT runs in the module's home, one with prompts."""
    env = {**os.environ, "RLHF_STUDIO_HOME": str(module_home), "OMP_NUM_THREADS": "1"}

    def train(*overrides: str) -> str:
        args = ["train", "presets/sft-dolly-tiny.yaml", *_sets(overrides)]
        done = subprocess.run(
            [sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=env
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run "))

    return {"with": train(*WITH_PROMPTS), "without": train(*SETTINGS, "timeline.prompts=[]")}


@pytest.fixture
def home(in_module_home, trained) -> dict:
    return trained


def _lines(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.timeline_path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- a real run


def test_a_run_records_step_0_each_save_and_the_last_step(home):
    run = RunDir.of(home["with"])
    found = timeline.read(run.timeline_path)
    assert found.prompts == PROMPTS and found.steps == EXPECTED_STEPS
    assert [(r["step"], r["prompt"]) for r in _lines(run)] == [(s, p) for s in EXPECTED_STEPS for p in PROMPTS]
    assert all(isinstance(a, str) for step in found.answers.values() for a in step.values())
    assert any(found.answers[20][p] != found.answers[0][p] for p in PROMPTS)  # training changed some answer
    logged = [line for line in run.log_path.read_text(encoding="utf-8").splitlines() if "timeline: step" in line]
    assert [line.split("timeline: step ")[1].split(",")[0] for line in logged] == ["0", "8", "16", "20"]
    assert all("2 answers in" in line for line in logged)
    assert not RunDir.of(home["without"]).timeline_path.exists()


def test_step_0_is_the_base_models_greedy_answer(home):
    from studio.config import GenerationSpec
    from studio.serve.generate import Generator, base_target

    run_id = home["with"]
    max_new_tokens = cfg.load_config(RunDir.of(run_id).config_path).timeline.max_new_tokens
    out = Generator().generate(
        base_target(run_id),
        [[{"role": "user", "content": p}] for p in PROMPTS],
        GenerationSpec(temperature=0, max_new_tokens=max_new_tokens),
    )
    assert dict(zip(PROMPTS, out.texts)) == timeline.read(RunDir.of(run_id).timeline_path).answers[0]


def test_recording_leaves_the_loss_curve_exactly_as_it_was(home):
    def curve(run_id: str) -> list:
        rows = read_all(RunDir.of(run_id).metrics_path)
        return [
            (r["step"], r.get("loss"), r.get("eval_loss"), r.get("grad_norm"))
            for r in rows
            if "loss" in r or "eval_loss" in r
        ]

    with_prompts, without = curve(home["with"]), curve(home["without"])
    assert len(with_prompts) >= 6 and any(r[2] is not None for r in with_prompts)
    assert with_prompts == without  # exact: same data order, dropout masks and weights


# ---------------------------------------------------------------- the Runs tab


@pytest.fixture
def client(module_client):
    return module_client


def test_the_runs_tab_endpoint_gives_the_answers_at_the_nearest_step(home, client):
    run_id = home["with"]
    answers = timeline.read(RunDir.of(run_id).timeline_path).answers
    data = client.predict(run_id, 10, api_name="/timeline")
    assert data["steps"] == EXPECTED_STEPS and data["step"] == 8 and data["note"] == ""
    assert data["headers"] == ["prompt", "step 0 (before training)", "step 8"]
    assert data["rows"] == [[p, answers[0][p], answers[8][p]] for p in PROMPTS]
    latest = client.predict(run_id, None, api_name="/timeline")
    assert latest["step"] == 20 and latest["rows"] == [[p, answers[0][p], answers[20][p]] for p in PROMPTS]

    plain = client.predict(home["without"], None, api_name="/timeline")
    assert plain["rows"] == [] and plain["note"].startswith("This run has no timeline prompts.")
    assert client.predict("no-such-run", 0, api_name="/timeline") == {
        "error": "no run with id 'no-such-run' (see `rlhf-studio runs`)"
    }


def test_the_answers_section_follows_new_steps_on_the_refresh_tick(in_module_home):
    import gradio as gr

    from components import runs_tab

    config = cfg.RunConfig(name="live", timeline=cfg.TimelineSpec(prompts=["Hi?"]))
    run = manager.create(config)
    shown, note, slider, table = runs_tab.timeline_on_select(run.id)
    assert note == "No answers recorded yet: the first are written just before step 1." and not slider.visible
    assert runs_tab.refresh_timeline(run.id, None, shown) == [gr.skip()] * 4  # nothing new: a stat only

    timeline.append(run.timeline_path, 0, {"Hi?": "hm"})
    timeline.append(run.timeline_path, 5, {"Hi?": "Hello!"})
    shown, note, slider, table = runs_tab.refresh_timeline(run.id, None, shown)
    assert note == "" and (slider.maximum, slider.value, slider.step) == (5, 5, 5)
    assert table.value["data"] == [["Hi?", "hm", "Hello!"]] and table.value["headers"][2] == "step 5"
    assert timeline.STEP_ZERO_NOTE in slider.info

    timeline.append(run.timeline_path, 10, {"Hi?": "Hello there!"})
    followed = runs_tab.refresh_timeline(run.id, 5, shown)  # the slider was on the latest step: it follows
    assert followed[2].value == 10 and followed[3].value["data"] == [["Hi?", "hm", "Hello there!"]]
    timeline.append(run.timeline_path, 15, {"Hi?": "Hi!"})
    kept = runs_tab.refresh_timeline(run.id, 5, followed[0])  # moved back to 5 by hand: it stays there
    assert (kept[2].value, kept[2].maximum) == (5, 15) and kept[3].value["data"] == [["Hi?", "hm", "Hello!"]]


# ---------------------------------------------------------------- resume, PPO, rejection


@pytest.mark.slow
def test_a_resumed_run_records_no_step_twice(studio_home, trained, module_home, monkeypatch):
    """Cancelled after step 5 (the cancel saves checkpoint-5 and records it), resumed from there: steps 0 and 5 are
    not recorded again, and the resumed run's later answers equal those of the run that was never stopped."""
    from studio.trainers import sft
    from studio.trainers.common import StudioCallback

    config = cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml", WITH_PROMPTS)
    run = manager.create(config)
    monkeypatch.setattr(StudioCallback, "STATUS_INTERVAL", -1.0)  # status (and so the cancel below) every step
    write_status = RunDir.write_status

    def cancel_after_step_5(self, **fields):
        if fields.get("step") == 5:
            self.request_cancel()
        return write_status(self, **fields)

    monkeypatch.setattr(RunDir, "write_status", cancel_after_step_5)
    sft.train(config, run)
    monkeypatch.setattr(RunDir, "write_status", write_status)
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-5"]
    assert timeline.read(run.timeline_path).steps == [0, 5]

    run.cancel_path.unlink()
    sft.train(config, run)  # resumes from checkpoint-5, as the worker does after `rlhf-studio resume`
    steps = [(r["step"], r["prompt"]) for r in _lines(run)]
    assert len(steps) == len(set(steps)) and sorted({s for s, _ in steps}) == [0, 5, 8, 16, 20]
    straight = timeline.read(RunDir(module_home / "runs" / trained["with"]).timeline_path).answers
    resumed = timeline.read(run.timeline_path).answers
    assert {s: resumed[s] for s in EXPECTED_STEPS} == straight


@pytest.mark.slow
def test_the_online_stages_record_their_answers(studio_home, tmp_path):
    """PPO (our loop) records at the start, at each checkpoint and at the end; rejection sampling before round 1 and
    after each round's fine-tuning (the rounds are its steps); GRPO through the TRL callback, as SFT does. One small
    reward model scores all three."""
    from studio.trainers import grpo, ppo, rejection
    from tests.test_grpo_rloo import online_config
    from tests.test_ppo import ppo_config
    from tests.test_rejection import rejection_config
    from tests.test_reward import reward_config, train_to_completion

    pairs = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(40, seed=1))
    reward_run = train_to_completion(reward_config(pairs, max_steps=4))
    spec = cfg.TimelineSpec(prompts=PROMPTS, max_new_tokens=12)

    config = ppo_config(pairs, reward_run.id, mini_batch_size=4, ppo_epochs=1)
    config.train = cfg.TrainSpec(max_steps=4, batch_size=8, learning_rate=3e-3, save_steps=2)
    config.timeline = spec
    run = manager.create(config)
    ppo.train(config, run)
    found = timeline.read(run.timeline_path)
    assert found.steps == [0, 2, 4] and found.prompts == PROMPTS
    assert [r["step"] for r in read_all(run.metrics_path)] == [1, 2, 3, 4]

    config = rejection_config(pairs, reward_run.id, rounds=2, prompts_per_round=8, sft_epochs=1)
    config.timeline = spec
    run = manager.create(config)
    rejection.train(config, run)
    assert timeline.read(run.timeline_path).steps == [0, 1, 2]
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()

    config = online_config("grpo", pairs, [reward_run.id], max_steps=2, batch_size=8, save_steps=1)
    config.timeline = spec
    run = manager.create(config)
    grpo.train(config, run)
    assert timeline.read(run.timeline_path).steps == [0, 1, 2]


# ---------------------------------------------------------------- files, configs and the form


def test_a_half_written_last_line_is_skipped_and_replaced(tmp_path):
    path = tmp_path / "timeline.jsonl"
    timeline.append(path, 0, {"a, b?": "yes", "c?": "no"})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"step": 5, "prompt": "a, b?", "ans')  # a writer killed mid-line
    found = timeline.read(path)
    assert found.steps == [0] and found.answers[0] == {"a, b?": "yes", "c?": "no"}
    assert found.missing(5, ["a, b?", "c?"]) == ["a, b?", "c?"] and found.missing(0, ["a, b?", "c?"]) == []
    timeline.append(path, 5, {"a, b?": "maybe"})
    assert timeline.read(path).answers == {0: {"a, b?": "yes", "c?": "no"}, 5: {"a, b?": "maybe"}}
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    assert timeline.read(tmp_path / "none.jsonl") == timeline.Timeline()


def test_nearest_step_and_slider_increment():
    assert [timeline.nearest([0, 8, 16, 20], s) for s in (None, 3, 4, 13, 19, 100)] == [20, 0, 8, 16, 20, 20]
    assert timeline.View("r", "", steps=[0, 30, 60, 75]).slider_step == 15
    assert timeline.View("r", "", steps=[0]).slider_step == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["stage=reward", "data.source=hh-rlhf", "timeline.prompts=Hi?"],
            "timeline.prompts: the reward stage trains a model that scores answers rather than writing them",
        ),
        (
            ["timeline.prompts=" + "\n".join(f"Question {i}?" for i in range(9))],
            "timeline.prompts has 9 prompts: at most 8",
        ),
        (["timeline.prompts=[]", "timeline.max_new_tokens=0"], "timeline.max_new_tokens = 0: must be at least 1"),
    ],
)
def test_bad_timeline_configs_get_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml", overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_prompts_given_as_text_are_split_on_new_lines_not_commas():
    text = "Classify: apple, leek\n\n  Name a fruit.  \n"
    assert cfg.from_dict({"timeline": {"prompts": text}}).timeline.prompts == ["Classify: apple, leek", "Name a fruit."]
    loaded = cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml", [f"timeline.prompts={text}"])
    assert loaded.timeline.prompts == ["Classify: apple, leek", "Name a fruit."]  # --set: YAML would fold the lines
    listed = cfg.load_config(REPO / "presets" / "sft-dolly-tiny.yaml", ['timeline.prompts=["a, b", "c"]'])
    assert listed.timeline.prompts == ["a, b", "c"]


def test_the_form_shows_prompts_one_per_line_and_reads_them_back():
    from components import fieldwidgets
    from components.forms import to_config

    prompts = ["Classify: apple, leek", "Name a fruit."]
    text = fieldwidgets.list_text("timeline.prompts", prompts)
    assert text == "Classify: apple, leek\nName a fruit."
    assert cfg.from_dict(to_config(["timeline.prompts"], [text])).timeline.prompts == prompts
    assert fieldwidgets.list_text("lora.target_modules", ["q_proj", "v_proj"]) == "q_proj, v_proj"


def test_the_cli_refuses_prompts_for_a_reward_run_in_one_line(studio_home):
    result = run_cli("train", "presets/rm-hh-tiny.yaml", "--set", "timeline.prompts=Hi?")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "timeline.prompts: the reward stage" in lines[0], result.stderr
