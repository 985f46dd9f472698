"""studio/pipelines/preview.py: what Start will run, on real presets, data files and run folders (written by hand, no
training): rows and steps as the worker counts them, the memory run_estimate gives, the run it starts from, the
reward models, and a part that cannot be worked out saying why in its own line, fast, while the rest is still given.
"""

from __future__ import annotations

import time

import pytest

from studio import config as cfg
from studio.data import sample_path
from studio.data.preflight import data_report
from studio.modeling.estimate import run_estimate
from studio.pipelines.preview import Rows, count_steps, run_summary
from studio.runs import manager, process
from tests.conftest import REPO, dolly_row, write_jsonl

PRESET = REPO / "presets" / "sft-dolly-tiny.yaml"


def _preset(name: str, *sets: str) -> cfg.RunConfig:
    return cfg.load_config(REPO / "presets" / f"{name}.yaml", list(sets))


def _completed(config: cfg.RunConfig, state: str = "completed"):
    """A run folder as a finished run leaves it (its adapter folder too), written without training."""
    run = manager.create(config)
    run.adapter_dir.mkdir()
    run.write_status(state=state)
    return run


def test_the_tiny_preset_says_what_it_runs(studio_home):
    config = cfg.load_config(PRESET)
    summary = run_summary(config)
    assert summary.problems == {} and summary.notes == ()
    assert summary.stage == "sft" and summary.stage_about == cfg.STAGE_SUMMARIES["sft"]
    assert (summary.model, summary.model_where) == ("tiny", "the built-in tiny model")
    assert (summary.source, summary.data_kind, summary.data_where) == ("dolly", "sample", "the bundled sample")
    assert summary.data_origin == str(sample_path("dolly"))
    # The bundled Dolly sample: 200 rows, none over max_length 256, eval_fraction 0.1 holds 20 out.
    assert summary.rows == Rows(format="sft", usable=200, dropped=0, train=180, held_out=20)
    report = data_report(config.data, "sft", config.model, examples=0, seed=config.train.seed)  # the Data tab's
    assert (report["rows"], report["train_rows"], report["eval_rows"]) == (200, 180, 20)
    assert (summary.steps, summary.steps_how) == (60, "train.max_steps")
    assert summary.parent is None and summary.reward_models == () and summary.reward_rules == ()
    assert summary.memory.total == run_estimate(config).total


def test_steps_from_epochs_count_as_each_trainer_counts_them(studio_home):
    # sft: ceil(180 rows / 8) = 23 batches an epoch, 2 epochs
    assert run_summary(_preset("sft-dolly-tiny", "train.max_steps=-1", "train.epochs=2")).steps == 46
    # accumulation rounds the last step up: ceil(ceil(180 / 7) / 2) = 13 steps an epoch, x 1.5 rounded up
    summary = run_summary(
        _preset(
            "sft-dolly-tiny",
            "train.max_steps=-1",
            "train.epochs=1.5",
            "train.batch_size=7",
            "train.gradient_accumulation_steps=2",
        )
    )
    assert summary.steps == 20 and summary.steps_how == "1.5 epochs x 180 rows / (7 x 2 accumulated)"
    # kto trains on both answers of each of the 135 training pairs of the HH-RLHF sample
    summary = run_summary(
        _preset("kto-hh-tiny", "train.max_steps=-1", "train.batch_size=6", "train.gradient_accumulation_steps=3")
    )
    assert summary.rows.train == 135 and summary.steps == 15  # ceil(ceil(270 / 6) / 3)

    sampled = Rows(format="sft", usable=45, dropped=0, train=45, held_out=0)
    ppo = cfg.from_dict({"stage": "ppo", "rewards": {"sources": [{"run": "r"}]}, "train": {"batch_size": 8}})
    assert count_steps(ppo, sampled)[0] == 6  # one step per 8 prompts, the last one short
    # GRPO: 6 x 2 answers a step / 3 answers a prompt = 4 prompts a step, whole steps only, each taken twice
    grpo = cfg.from_dict(
        {
            "stage": "grpo",
            "rewards": {"sources": [{"run": "r"}]},
            "data": {"eval_fraction": 0},
            "train": {"batch_size": 6, "gradient_accumulation_steps": 2, "epochs": 1.5},
            "grpo": {"num_generations": 3, "num_iterations": 2},
        }
    )
    assert count_steps(grpo, sampled)[0] == 33  # ceil(1.5 x 11 x 2)
    too_few = count_steps(grpo, Rows(format="sft", usable=3, dropped=0, train=3, held_out=0))
    assert too_few[0] is None and too_few[1].startswith("3 training prompts, fewer than a step takes (4")
    rules = {"sources": [{"builtin": "format", "args": {"pattern": "[.!?]$"}}]}  # no reward run needed either
    rejection = cfg.from_dict({"stage": "rejection", "rewards": rules, "rejection": {"rounds": 3}})
    assert count_steps(rejection, None)[0] == 3  # status.json counts rounds


@pytest.mark.slow
def test_steps_match_what_the_trainers_count(studio_home, tmp_path):
    """The counts above against transformers' and TRL's own: build the trainers (no training) and ask them."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from studio.modeling import models
    from studio.runs.rundir import RunDir
    from studio.trainers import kto, sft

    def trainer_steps(trainer) -> int:
        return trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]

    for module, config in (
        (
            sft,
            _preset(
                "sft-dolly-tiny",
                "train.max_steps=-1",
                "train.epochs=1.5",
                "train.batch_size=7",
                "train.gradient_accumulation_steps=2",
            ),
        ),
        (
            kto,
            _preset("kto-hh-tiny", "train.max_steps=-1", "train.batch_size=6", "train.gradient_accumulation_steps=3"),
        ),
    ):
        folder = tmp_path / config.stage
        folder.mkdir()
        assert trainer_steps(module.build_trainer(config, RunDir(folder))) == run_summary(config).steps

    grpo = cfg.from_dict(
        {
            "stage": "grpo",
            "rewards": {"sources": [{"run": "r"}]},
            "data": {"eval_fraction": 0},
            "train": {"batch_size": 6, "gradient_accumulation_steps": 2, "epochs": 1.5},
            "grpo": {"num_generations": 3, "num_iterations": 2},
        }
    )
    prompts = [{"prompt": [{"role": "user", "content": f"question {i}"}]} for i in range(45)]
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=6,
        gradient_accumulation_steps=2,
        num_train_epochs=1.5,
        num_generations=3,
        num_iterations=2,
        report_to=[],
        use_cpu=True,
    )
    trainer = GRPOTrainer(
        model=models.load_causal_lm(grpo.model),
        args=args,
        train_dataset=Dataset.from_list(prompts),
        reward_funcs=lambda completions, **_: [0.0] * len(completions),
        processing_class=models.load_tokenizer(grpo.model),
    )
    assert trainer_steps(trainer) == count_steps(grpo, Rows("sft", 45, 0, 45, 0))[0]


def test_rows_are_counted_once_per_version_of_the_file(studio_home, tmp_path):
    rows = [dolly_row(f"Question {i}?", f"Answer {i}.") for i in range(10)]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    config = cfg.from_dict(
        {"data": {"source": "dolly", "path": str(path), "eval_fraction": 0.2}, "train": {"max_steps": 5}}
    )
    first = run_summary(config)
    assert (first.data_kind, first.data_where, first.data_origin) == ("file", "a local file", str(path))
    assert (first.rows.usable, first.rows.train, first.rows.held_out) == (10, 8, 2)
    assert run_summary(config).rows is first.rows  # asked again: the count is remembered, not redone
    write_jsonl(path, rows + [dolly_row("One more?", "Yes."), dolly_row("Empty answer?", "")])
    again = run_summary(config)
    assert (again.rows.usable, again.rows.dropped) == (11, 1)  # the changed file is counted again


def test_hub_data_and_a_hub_model_out_of_reach_say_so_at_once(studio_home):
    began = time.monotonic()
    summary = run_summary(_preset("sft-dolly-smollm2-135m"))
    assert time.monotonic() - began < 5.0  # offline: no download tried, no wait on a timeout
    assert summary.problems["model"].startswith(
        "model.name = 'HuggingFaceTB/SmolLM2-135M-Instruct' is a Hugging Face Hub id, and the Hub cannot be reached"
    )
    assert summary.problems["data"].startswith(
        "data.path is empty, so the dolly source loads databricks/databricks-dolly-15k from the Hugging Face Hub"
    )
    assert summary.rows is None and summary.memory is None and summary.steps is None
    assert summary.stage == "sft" and summary.notes[0].startswith("This preset is sized for a GPU")


def test_a_cached_hub_dataset_is_not_read_and_its_rows_say_when_they_are(studio_home, tmp_path, monkeypatch):
    # datasets' cache layout for a prepared dataset, which loads offline (data.hub.dataset_cached)
    (tmp_path / "hf" / "databricks___databricks-dolly-15k" / "default" / "0.0.0" / "abc123").mkdir(parents=True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    began = time.monotonic()
    summary = run_summary(_preset("sft-dolly-tiny", "data.path=hub", "train.max_steps=-1"))
    assert time.monotonic() - began < 5.0
    assert "data" not in summary.problems and summary.rows is None
    assert (summary.data_kind, summary.data_where) == ("hub", "the Hugging Face Hub, in the local cache")
    assert summary.data_origin == "databricks/databricks-dolly-15k"
    assert summary.rows_note == "the hub dataset is read when the run starts, not here"
    assert summary.steps is None and summary.steps_how == "1 epoch over the rows, which are not counted yet"
    assert summary.memory is not None  # the rest is still worked out


def test_the_run_it_starts_from_gives_its_model_and_a_running_one_is_named(studio_home, sleeper):
    parent = _completed(cfg.from_dict({"name": "my-sft", "data": {"path": "sample"}}))
    summary = run_summary(_preset("sft-dolly-smollm2-135m", f"init.from_run={parent.id}", "data.path=sample"))
    assert (summary.parent.id, summary.parent.name, summary.parent.stage) == (parent.id, "my-sft", "sft")
    assert summary.model == "tiny" and "model" not in summary.problems  # the parent's base model, not the form's
    as_run = _preset("sft-dolly-smollm2-135m", f"init.from_run={parent.id}", "data.path=sample", "model.name=tiny")
    assert summary.rows.usable == 200 and summary.memory.total == run_estimate(as_run).total

    running = manager.create(cfg.from_dict({"name": "busy"}))
    running.write_status(state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid))
    summary = run_summary(_preset("sft-dolly-tiny", f"init.from_run={running.id}"))
    assert summary.problems == {
        "parent": f"init.from_run = '{running.id}': that run is running; only a completed run can be started from"
    }
    assert summary.parent is None and summary.rows.usable == 200 and summary.steps == 60


def test_an_online_stage_names_its_reward_models(studio_home):
    reward = _completed(
        cfg.from_dict(
            {
                "stage": "reward",
                "name": "my-rm",
                "data": {"source": "hh-rlhf", "path": "sample"},
                "reward": {"kind": "safety"},
            }
        )
    )
    policy = _completed(cfg.from_dict({"name": "my-sft", "data": {"path": "sample"}}))
    ppo = {
        "stage": "ppo",
        "data": {"source": "hh-rlhf", "path": "sample", "eval_fraction": 0.1},
        "train": {"batch_size": 8},
    }
    rule = {"builtin": "length", "args": {"target": 30}, "weight": 0.5}
    config = cfg.from_dict({**ppo, "rewards": {"sources": [{"run": reward.id}, rule]}})
    summary = run_summary(config)
    assert summary.problems == {}
    assert [(r.id, r.name, r.kind) for r in summary.reward_models] == [(reward.id, "my-rm", "safety")]
    assert summary.reward_rules == ("length (built-in, weight 0.5)",)
    # PPO holds out prompts, not rows: the sample's 150 pairs have 116 distinct prompts, 12 of them (a tenth) held out
    # with their 12 rows; it samples answers to the other 138 rows' prompts: ceil(138 / 8) steps an epoch
    assert (summary.rows.train, summary.rows.held_out, summary.steps) == (138, 12, 18)
    # a built-in rule loads no model: the memory is that of the policy and the one reward model
    only_run = cfg.from_dict({**ppo, "rewards": {"sources": [{"run": reward.id}]}})
    assert summary.memory.total == run_estimate(only_run).total
    # a config written before `rewards` names the same reward run
    legacy = run_summary(cfg.from_dict({**ppo, "reward_models": {"runs": [reward.id]}}))
    assert legacy.problems == {} and legacy.reward_models == summary.reward_models and legacy.reward_rules == ()

    summary = run_summary(cfg.from_dict({**ppo, "rewards": {"sources": [rule, {"run": policy.id}]}}))
    assert summary.problems == {
        "rewards": f"rewards.sources[1].run: '{policy.id}' is a sft run, not a reward "
        "model; name a completed reward run"
    }
