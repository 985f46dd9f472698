"""KTO on unpaired preference data: pairs become desirable and undesirable examples, and the margin grows."""

from __future__ import annotations

import pytest

from studio.config import DataSpec, KTOSpec, RunConfig, TrainSpec, from_dict
from studio.errors import ConfigError
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.trainers import kto
from tests.conftest import polite_rude_pairs, write_jsonl


def test_pairs_become_one_desirable_and_one_undesirable_example():
    prompt = [{"role": "user", "content": "Hi?"}]
    good, bad = [{"role": "assistant", "content": "Hello!"}], [{"role": "assistant", "content": "Go away."}]
    assert kto.unpaired([{"prompt": prompt, "chosen": good, "rejected": bad, "margin": 1.0}]) == [
        {"prompt": prompt, "completion": good, "label": True},
        {"prompt": prompt, "completion": bad, "label": False},
    ]


def test_kto_needs_a_batch_to_estimate_its_kl_term():
    with pytest.raises(ConfigError, match="train.batch_size = 1: the kto loss estimates its KL term"):
        from_dict({"stage": "kto", "data": {"source": "hh-rlhf"}, "train": {"batch_size": 1}})


@pytest.mark.slow
def test_kto_separates_polite_from_rude_answers(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", polite_rude_pairs(64, seed=3))
    config = RunConfig(
        stage="kto",
        data=DataSpec(source="hh-rlhf", path=str(path), eval_fraction=0.0),
        kto=KTOSpec(beta=0.1),
        train=TrainSpec(
            max_steps=24,
            learning_rate=1e-3,
            batch_size=8,
            logging_steps=1,
            save_steps=0,
            warmup_ratio=0.0,
            lr_scheduler="constant",
        ),
    )
    run = manager.create(config)
    trainer = kto.build_trainer(config, run)
    assert trainer.ref_model is None and "ref" not in trainer.model.peft_config  # the adapter-off policy
    kto.train(config, run)
    rows = [r for r in read_all(run.metrics_path) if "rewards/margins" in r and "loss" in r]
    first, last = rows[:6], rows[-6:]
    mean = lambda rs, key: sum(r[key] for r in rs) / len(rs)  # noqa: E731
    # At step 1 policy equals reference, so margins start at 0; learning must open a clear gap.
    assert abs(rows[0]["rewards/margins"]) < 1e-4
    assert mean(last, "rewards/margins") > mean(first, "rewards/margins") + 1.0
    assert mean(last, "loss") < mean(first, "loss")
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
