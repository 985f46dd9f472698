"""studio/modeling/estimate.py: parameter counts on the meta device match the loaded model; memory per stage adds up."""

from __future__ import annotations

import json

import pytest

from studio.config import STAGES, LoraSpec, ModelSpec
from studio.errors import ModelError
from studio.modeling import models
from studio.modeling.estimate import Workload, estimate

# A Llama-2-7B-shaped config with no weights: the estimate needs only config.json.
LLAMA_7B = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
}


@pytest.fixture
def llama_7b(tmp_path):
    folder = tmp_path / "llama-7b-config-only"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_7B), encoding="utf-8")
    return str(folder)


@pytest.mark.parametrize(
    "lora",
    [LoraSpec(), LoraSpec(enabled=False), LoraSpec(r=4, target_modules=["q_proj", "v_proj"])],
    ids=["all-linear", "off", "q-v"],
)
def test_tiny_counts_equal_the_loaded_model(studio_home, lora):
    spec = ModelSpec(name="tiny")
    result = estimate(spec, lora)
    policy = models.add_lora(models.load_causal_lm(spec), lora, spec, "CAUSAL_LM")
    assert (result.trainable, result.parameters) == models.count_parameters(policy)
    reward = models.add_lora(models.load_reward_model(spec, pad_token_id=0), lora, spec, "SEQ_CLS")
    assert (result.reward_trainable, result.reward_parameters) == models.count_parameters(reward)


def test_tiny_numbers(studio_home):
    result = estimate(ModelSpec(name="tiny"), LoraSpec())
    assert (result.parameters, result.trainable) == (260_928, 37_376)
    assert (result.architecture, result.num_layers, result.hidden_size) == ("LlamaForCausalLM", 2, 64)
    assert set(result.stages) == set(STAGES)


def test_memory_grows_with_stage_and_shrinks_with_quantization(llama_7b):
    full = estimate(ModelSpec(name=llama_7b), LoraSpec())
    assert full.parameters == 6_738_415_616 + full.trainable  # Llama 2 7B plus the LoRA weights
    total = {stage: est.total for stage, est in full.stages.items()}
    assert total["ppo"] > total["dpo"] > total["sft"]
    eight = estimate(ModelSpec(name=llama_7b, quantization="8bit"), LoraSpec())
    four = estimate(ModelSpec(name=llama_7b, quantization="4bit"), LoraSpec())
    for stage in STAGES:
        assert four.stages[stage].total < eight.stages[stage].total < total[stage]
    weights = {
        name: {t.name: t.bytes for t in est.stages["sft"].terms}["weights"]
        for name, est in (("bf16", full), ("8bit", eight), ("4bit", four))
    }
    assert 12.5e9 < weights["bf16"] < 13.7e9  # 2 bytes per weight
    assert 4.2e9 < weights["4bit"] < 4.6e9  # about 0.5 byte per linear weight, embeddings and head in float32


def test_terms_follow_lora_and_workload(llama_7b):
    spec = ModelSpec(name=llama_7b)
    lora = {t.name: t.bytes for t in estimate(spec, LoraSpec()).stages["dpo"].terms}
    assert lora["reference"] == 0  # the adapter-disabled policy is the reference
    full = estimate(spec, LoraSpec(enabled=False))
    assert full.trainable == full.parameters
    terms = {t.name: t.bytes for t in full.stages["dpo"].terms}
    assert terms["reference"] == terms["weights"] and terms["full training"] == 3 * terms["weights"]
    ppo = {t.name: t.bytes for t in estimate(spec, LoraSpec(), Workload(reward_models=2)).stages["ppo"].terms}
    one = {t.name: t.bytes for t in estimate(spec, LoraSpec()).stages["ppo"].terms}
    assert ppo["reward models"] == 2 * one["reward models"] and ppo["value head"] == (4096 + 1) * 16
    checkpointed = estimate(spec, LoraSpec(), Workload(gradient_checkpointing=True)).stages["sft"].total
    assert checkpointed < estimate(spec, LoraSpec()).stages["sft"].total


def test_bad_model_names_give_one_line(tmp_path):
    with pytest.raises(ModelError) as err:
        estimate(ModelSpec(name=str(tmp_path / "missing")), LoraSpec())
    assert str(err.value) == f"model.name = '{tmp_path / 'missing'}': no such folder"
    with pytest.raises(ModelError) as err:
        estimate(ModelSpec(name=str(tmp_path)), LoraSpec())
    assert str(err.value) == f"model.name = '{tmp_path}': the folder has no config.json, so it is not a model folder"
    with pytest.raises(ModelError) as err:
        estimate(ModelSpec(name="no-such-owner/no-such-model"), LoraSpec())
    assert str(err.value) == (
        "could not load 'no-such-owner/no-such-model' from the Hugging Face Hub (no connection, or "
        "no such model, or it needs a login); check the id, or download it and set model.name to "
        "the local folder"
    )


def test_unknown_lora_target_names_the_layers(studio_home):
    with pytest.raises(
        ModelError,
        match=r"lora.target_modules: qq_proj not in this model; its linear layers are "
        r"down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj",
    ):
        estimate(ModelSpec(name="tiny"), LoraSpec(target_modules=["qq_proj"]))


def test_quantised_weights_need_lora(llama_7b):
    from studio.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        estimate(ModelSpec(name=llama_7b, quantization="4bit"), LoraSpec(enabled=False))
    assert str(err.value) == (
        "model.quantization = '4bit': quantised weights cannot be trained directly; turn "
        "lora.enabled on (QLoRA) or set quantization to none"
    )


def test_activations_are_counted_from_the_layer_shapes(llama_7b, tmp_path):
    workload = Workload(batch_size=2, max_length=100)
    result = estimate(ModelSpec(name=llama_7b), LoraSpec(), workload)
    acts = {stage: {t.name: t.bytes for t in est.terms}["activations"] for stage, est in result.stages.items()}
    # per layer per token, 16-bit: norms and attention 10 x hidden, keys and values 2 x 4096, a gated MLP 4 x 11008
    layer = 2 * (10 * 4096 + 2 * 4096 + 4 * 11008)
    assert acts["sft"] == 200 * 32 * layer  # TRL's fused LM head holds no logits
    assert acts["reward"] == acts["dpo"] == 2 * acts["sft"]  # chosen and rejected
    assert acts["ppo"] == 200 * (32 * layer + (2 + 4) * 32000)  # PPO's own logits and float32 log-probs

    plain = tmp_path / "plain-mlp"
    plain.mkdir()
    (plain / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gpt_neox",
                "architectures": ["GPTNeoXForCausalLM"],
                "hidden_size": 512,
                "intermediate_size": 2048,
                "num_hidden_layers": 2,
                "num_attention_heads": 8,
                "vocab_size": 1000,
            }
        ),
        encoding="utf-8",
    )
    sft = {
        t.name: t.bytes
        for t in estimate(ModelSpec(name=str(plain)), LoraSpec(target_modules=["query_key_value"]), workload)
        .stages["sft"]
        .terms
    }
    assert sft["activations"] == 200 * 2 * 2 * (10 * 512 + 2 * 512 + 2 * 2048)  # no gate: 2 x intermediate

    checkpointed = estimate(ModelSpec(name=llama_7b), LoraSpec(), Workload(2, 100, gradient_checkpointing=True))
    assert {t.name: t.bytes for t in checkpointed.stages["sft"].terms}["activations"] == 200 * (
        32 * 2 * 4096 + 2 * layer
    )


def test_qlora_training_upcasts_the_unquantised_weights(llama_7b):
    four = estimate(ModelSpec(name=llama_7b, quantization="4bit"), LoraSpec())
    weights = {stage: {t.name: t.bytes for t in est.terms} for stage, est in four.stages.items()}
    embeddings_and_head = 2 * 32000 * 4096
    # the trained policy's embeddings and head in float32, a frozen reward model's left at 16-bit
    assert weights["ppo"]["weights"] - weights["ppo"]["reward models"] == pytest.approx(
        embeddings_and_head * 4 - 32000 * 4096 * 2, rel=0.01
    )


def test_a_draft_from_the_form_is_estimated_as_each_trainer_runs(llama_7b):
    """The Model tab's Inspect: one call with the form's sections (some missing); PPO at its own batch sizes."""
    from studio.config import PPOSpec, RunConfig, TrainSpec
    from studio.errors import ConfigError
    from studio.modeling.estimate import inspect_draft, run_estimate, workload_of

    raw = {
        "stage": "ppo",
        "model": {"name": llama_7b},
        "train": {"batch_size": 8, "gradient_accumulation_steps": 2},
        "ppo": {"mini_batch_size": 4},
        "dpo": {"beta": "left to Start's checks"},
    }
    draft = inspect_draft(raw)
    assert draft.stage == "ppo" and draft.lora == LoraSpec()
    assert draft.workload == Workload(batch_size=8, max_length=512)
    answer = PPOSpec().response_length
    assert draft.workloads["ppo"] == Workload(2, 512 + answer, False, 1, sampled_together=8) != draft.workload
    train, ppo = TrainSpec(batch_size=8, gradient_accumulation_steps=2), PPOSpec(mini_batch_size=4)
    for stage in STAGES:
        config = RunConfig(stage=stage, model=ModelSpec(name=llama_7b), train=train, ppo=ppo)
        assert draft.workloads[stage] == workload_of(config)
        assert draft.estimate.stages[stage].total == run_estimate(config).total
    assert inspect_draft({"model": {"name": llama_7b}}).stage == "sft"  # the Model tab alone: no stage field
    with pytest.raises(ConfigError, match=r"^stage = 'sfx': allowed values are sft, reward, dpo"):
        inspect_draft({"stage": "sfx", "model": {"name": llama_7b}})
    with pytest.raises(ConfigError, match=r"^train\.batch_size = 0: must be at least 1$"):
        inspect_draft({"model": {"name": llama_7b}, "train": {"batch_size": 0}})
