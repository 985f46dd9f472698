"""Model loading: the built-in tiny model, LoRA, QLoRA (4-bit and 8-bit on CPU) and clear load errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from studio.config import LoraSpec, ModelSpec
from studio.errors import ModelError
from studio.modeling import models

TEXT = "The opposite of loud is quiet. The opposite of wet is dry. Asterby has 4,300 people."


def test_tiny_model_is_a_small_base_model_with_a_chat_template(studio_home):
    tokenizer = models.load_tokenizer(ModelSpec())
    model = models.load_causal_lm(ModelSpec())
    _, total = models.count_parameters(model)
    assert 100_000 < total < 1_000_000
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|pad|>"
    # Pretrained on the bundled samples: far better than guessing uniformly over the vocabulary.
    batch = tokenizer(["Elmford is a town on the river Wend. It was founded in 1721 by Ada Venn."], return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss.item()
    assert loss < math.log(len(tokenizer)) / 2


def _loss_after_training(model, tokenizer, steps: int = 20) -> tuple[float, float]:
    batch = tokenizer([TEXT], return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize(
    "quantization, layer_type", [("none", "Linear"), ("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")]
)
def test_lora_and_qlora_train_on_cpu(studio_home, quantization, layer_type):
    spec = ModelSpec(quantization=quantization)
    tokenizer = models.load_tokenizer(spec)
    torch.manual_seed(0)
    model = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=8, dropout=0.0), spec, "CAUSAL_LM")
    q_proj = next(m for name, m in model.named_modules() if name.endswith("q_proj.base_layer"))
    assert type(q_proj).__name__ == layer_type
    trainable, total = models.count_parameters(model)
    assert 0 < trainable < total / 5
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    first, last = _loss_after_training(model, tokenizer)
    assert last < first / 2, f"{quantization}: loss {first:.3f} -> {last:.3f}"


def test_qlora_starts_from_an_earlier_runs_adapter(studio_home, tmp_path):
    """A DPO or reward run with quantization 4bit started from an SFT run (init.from_run): the parent's adapter is
    merged into the 4-bit base, then a new adapter trains. Found on a GPU: unfreezing the merged model touched the
    packed 4-bit weights, which cannot take gradients."""
    spec, quantized = ModelSpec(), ModelSpec(quantization="4bit")
    tokenizer = models.load_tokenizer(spec)
    parent = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=8, dropout=0.0), spec, "CAUSAL_LM")
    parent.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    torch.manual_seed(0)
    model = models.load_causal_lm(quantized, start_from=tmp_path / "adapter")
    model = models.add_lora(model, LoraSpec(r=8, dropout=0.0), quantized, "CAUSAL_LM")
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    first, last = _loss_after_training(model, tokenizer)
    assert last < first / 2, f"loss {first:.3f} -> {last:.3f}"


def test_lora_targets_named_layers_and_refuses_unknown_ones(studio_home):
    spec = ModelSpec()
    model = models.load_causal_lm(spec)
    assert models.linear_layer_names(model) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    adapted = models.add_lora(model, LoraSpec(target_modules=["q_proj", "v_proj"]), spec, "CAUSAL_LM")
    lora_layers = {
        name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in adapted.named_parameters() if ".lora_A." in name
    }
    assert lora_layers == {"q_proj", "v_proj"}
    with pytest.raises(
        ModelError,
        match=r"lora.target_modules: qkv not in this model; its linear layers are "
        r"down_proj, gate_proj",
    ):
        models.add_lora(models.load_causal_lm(spec), LoraSpec(target_modules=["qkv"]), spec, "CAUSAL_LM")


def test_full_fine_tuning_trains_every_weight(studio_home):
    spec = ModelSpec()
    model = models.add_lora(models.load_causal_lm(spec), LoraSpec(enabled=False), spec, "CAUSAL_LM")
    trainable, total = models.count_parameters(model)
    assert trainable == total


def test_load_errors_are_one_clear_line(studio_home, tmp_path):
    with pytest.raises(ModelError, match=r"^model.name = '\./nowhere': no such folder$"):
        models.load_causal_lm(ModelSpec(name="./nowhere"))

    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        models.load_tokenizer(ModelSpec(name=str(empty)))

    no_weights = tmp_path / "no-weights"
    models.load_causal_lm(ModelSpec()).config.save_pretrained(no_weights)
    with pytest.raises(ModelError, match="the folder has no weights"):
        models.load_causal_lm(ModelSpec(name=str(no_weights)))

    with pytest.raises(ModelError, match=r"could not load 'someone/no-such-model' from the Hugging Face Hub"):
        models.load_causal_lm(ModelSpec(name="someone/no-such-model"))


def test_remote_code_needs_the_explicit_opt_in(studio_home, tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "studio-custom-arch",
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForCausalLM": "modeling_custom.CustomModel",
                },
            }
        )
    )
    with pytest.raises(ModelError, match="needs Python code from its repository.*model.trust_remote_code: true"):
        models.load_causal_lm(ModelSpec(name=str(folder)))


def test_dora_and_rslora_change_the_adapter(studio_home):
    spec = ModelSpec()
    plain = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=4, alpha=8), spec, "CAUSAL_LM")
    dora = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=4, alpha=8, use_dora=True), spec, "CAUSAL_LM")
    rslora = models.add_lora(models.load_causal_lm(spec), LoraSpec(r=4, alpha=8, use_rslora=True), spec, "CAUSAL_LM")
    assert not any("magnitude" in n for n, _ in plain.named_parameters())
    assert any("lora_magnitude_vector" in n for n, p in dora.named_parameters() if p.requires_grad)
    q_plain = plain.base_model.model.model.layers[0].self_attn.q_proj
    q_rs = rslora.base_model.model.model.layers[0].self_attn.q_proj
    assert q_plain.scaling["default"] == 8 / 4
    assert q_rs.scaling["default"] == pytest.approx(8 / 4**0.5)
