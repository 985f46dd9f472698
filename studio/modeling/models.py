"""Load tokenizers and models (hub id, local folder, or the built-in tiny model), quantise, add LoRA.

    tokenizer = load_tokenizer(config.model)
    model = load_causal_lm(config.model)
    model = add_lora(model, config.lora, config.model, task_type="CAUSAL_LM")

The built-in tiny model (`model.name: tiny`) is a Llama with a few hundred thousand parameters and its own
byte-level BPE tokenizer and ChatML chat template. It is built locally on first use, with no download, from
the samples bundled with the studio, and cached under <home>/models/.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch

# bitsandbytes warns on every 8-bit matmul that fp32 inputs are cast to fp16: expected, and it floods train.log.
warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")

from studio.config import LoraSpec, ModelSpec  # noqa: E402
from studio.errors import ModelError  # noqa: E402
from studio.modeling import accel, model_files  # noqa: E402 (after the warning filter above)

TINY_NAME = model_files.TINY_NAME
TINY_PRETRAIN_STEPS = 300

# ChatML: each turn is "<|im_start|>{role}\n{content}<|im_end|>\n". The prompt rendered with the generation
# prompt is a prefix of the full conversation, which completion-only loss masking relies on.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
TINY_SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]


# ---------------------------------------------------------------- where the weights come from


def resolve(name: str) -> str:
    """'tiny' -> the built-in model's folder; a local folder -> its path; anything else is a hub id."""
    if name == TINY_NAME:
        return str(tiny_model_path())
    folder = model_files.local_folder(name)
    return name if folder is None else str(folder)


def _load_error(spec: ModelSpec, err: Exception) -> ModelError:
    """Turn a loading failure into one line that says what to do."""
    text = str(err)
    if "trust_remote_code" in text:
        return ModelError(
            f"model '{spec.name}' needs Python code from its repository to load; set "
            "model.trust_remote_code: true only if you trust that repository"
        )
    if Path(spec.name).expanduser().is_dir():
        if "no file named" in text.lower() or "does not appear to have" in text.lower():
            return ModelError(
                f"model.name = '{spec.name}': the folder has no weights (model.safetensors or pytorch_model.bin)"
            )
        return ModelError(f"model.name = '{spec.name}': could not load the folder ({text.splitlines()[0]})")
    return ModelError(
        f"could not load '{spec.name}' from the Hugging Face Hub (no connection, or no such "
        "model, or it needs a login); check the id, or download it and set model.name to the "
        "local folder"
    )


def resolve_dtype(spec: ModelSpec) -> torch.dtype:
    if spec.dtype != "auto":
        return getattr(torch, spec.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quantization_config(spec: ModelSpec):
    if spec.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if spec.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=spec.double_quant,
        bnb_4bit_compute_dtype=resolve_dtype(spec),
    )


# ---------------------------------------------------------------- loading


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    path = resolve(spec.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise _load_error(spec, err) from None
    if tokenizer.pad_token is None:
        # Padding is masked out of the loss and attention, so any token will do; eos is always there.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(spec: ModelSpec, start_from: Path | None = None):
    """The starting weights of a policy: the base model, or an earlier run's weights (`start_from`, its adapter
    folder), with frozen weights quantised when asked."""
    from transformers import AutoModelForCausalLM

    return _from_pretrained(AutoModelForCausalLM, spec, start_from)


def load_reward_model(spec: ModelSpec, start_from: Path | None = None, pad_token_id: int | None = None):
    """A causal LM body with a scalar score head on the last token (a fresh head unless `start_from` is a
    reward model run)."""
    from transformers import AutoModelForSequenceClassification

    model = _from_pretrained(AutoModelForSequenceClassification, spec, start_from, num_labels=1)
    if model.config.pad_token_id is None:
        # The score is read at the last non-pad token, so the model must know which token pads.
        model.config.pad_token_id = pad_token_id
    return model


SAFE_ADAPTER_WEIGHTS = "adapter_model.safetensors"
SAFE_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # one file, or the index of its shards


def check_safe_weights(folder: Path) -> Path:
    """The run folder (an adapter or a whole model), if its weights are safetensors; else one line naming it.

    Every weight folder a run writes is safetensors (trainers/common.save_final), and a pickle .bin can run any code
    while it loads, so a folder without safetensors is refused rather than handed to transformers or peft, which
    would fall back to the .bin (peft 0.21 load_peft_weights picks adapter_model.safetensors, else adapter_model.bin,
    and takes no use_safetensors switch)."""
    folder = Path(folder)
    adapter = (folder / "adapter_config.json").is_file()
    wanted = (SAFE_ADAPTER_WEIGHTS,) if adapter else SAFE_MODEL_WEIGHTS
    if any((folder / name).is_file() for name in wanted):
        return folder
    pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt"))
    found = f"only {', '.join(pickles)}" if pickles else "no weights"
    raise ModelError(
        f"{folder}: {found} and no {wanted[0]}; the studio loads a run's weights only as safetensors "
        "(a pickle file can run code when loaded), so it did not load this folder"
    )


def _from_pretrained(auto_class, spec: ModelSpec, start_from: Path | None = None, **extra):
    if start_from is not None:
        check_safe_weights(Path(start_from))
    kwargs = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code, dtype=resolve_dtype(spec), **extra)
    attention = accel.attention_implementation(spec, kwargs["dtype"])
    if attention:
        kwargs["attn_implementation"] = attention
    quant = quantization_config(spec)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    adapter = start_from is not None and (Path(start_from) / "adapter_config.json").is_file()
    # An earlier full fine-tune is itself the model to load; an earlier LoRA run is merged into its base below.
    whole_run = start_from is not None and not adapter
    source = str(start_from) if whole_run else resolve(spec.name)
    if whole_run:
        # A run's whole-model folder: safetensors only, even if a .bin lies beside it. The base model (hub id or the
        # user's folder) is the user's choice: transformers prefers its safetensors and loads a .bin weights-only.
        kwargs["use_safetensors"] = True
    try:
        model = auto_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise _load_error(spec, err) from None
    if adapter:
        model = merge_adapter(model, Path(start_from))
    return model


def merge_adapter(model, adapter_dir: Path):
    """Fold a saved LoRA adapter into the model's weights, so a new adapter can be trained on top of it."""
    from peft import PeftConfig, PeftModel

    check_safe_weights(adapter_dir)
    config = PeftConfig.from_pretrained(str(adapter_dir))
    # Load it as a task-agnostic adapter: a policy (causal LM) adapter may go into a reward model body, whose
    # score head it leaves untouched.
    config.task_type = None
    merged = PeftModel.from_pretrained(model, str(adapter_dir), config=config).merge_and_unload()
    # merge_and_unload leaves every weight frozen; the merged model is a starting point like any base model,
    # so make it trainable again (add_lora freezes what LoRA should not train). Quantised weights (QLoRA: packed
    # integers) can never take gradients, so only floating-point ones are unfrozen.
    for parameter in merged.parameters():
        if parameter.is_floating_point():
            parameter.requires_grad_(True)
    return merged


def linear_layer_names(model) -> list[str]:
    """Names of the linear layers LoRA can target (the output head excluded)."""
    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            leaf = full_name.rsplit(".", 1)[-1]
            if leaf not in ("lm_head", "score", "v_head"):
                names.add(leaf)
    return sorted(names)


def add_lora(model, lora: LoraSpec, spec: ModelSpec, task_type: str, gradient_checkpointing: bool = False):
    """Wrap the model with a LoRA adapter (QLoRA when quantised); with LoRA off, every weight trains."""
    if not lora.enabled:
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if spec.quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    targets = "all-linear" if lora.target_modules == ["all-linear"] else lora.target_modules
    if targets != "all-linear":
        unknown = sorted(set(targets) - set(linear_layer_names(model)))
        if unknown:
            raise ModelError(
                f"lora.target_modules: {', '.join(unknown)} not in this model; its linear layers "
                f"are {', '.join(linear_layer_names(model))} (or use all-linear)"
            )
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        use_dora=lora.use_dora,
        use_rslora=lora.use_rslora,
        task_type=task_type,
    )
    return get_peft_model(model, config)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# ---------------------------------------------------------------- the built-in tiny model


def tiny_model_path() -> Path:
    """The tiny model's folder (model_files.tiny_folder), built on first use."""
    corpus = model_files.tiny_corpus()
    path = model_files.tiny_folder(corpus)
    if not (path / "config.json").is_file():
        _build_tiny_model(path, corpus)
    return path


def _build_tiny_model(path: Path, corpus: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=2048,
            special_tokens=TINY_SPECIAL_TOKENS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    # Its own random stream: building the model on first use must not move the caller's generators, or the
    # first run in a fresh home would draw a different LoRA init than every later run of the same config.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        _pretrain_tiny(model, tokenizer, corpus)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)

    # Build in a private folder and rename: two processes building at once never see half a model.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    model.save_pretrained(tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def _pretrain_tiny(model, tokenizer, corpus: list[str], steps: int = TINY_PRETRAIN_STEPS) -> None:
    """A few seconds of next-token training on the corpus, so the tiny model starts as a base model with
    real preferences over words rather than uniform noise, which LoRA alone cannot move far."""
    generator = torch.Generator().manual_seed(0)
    ids = [tokenizer(doc + tokenizer.eos_token)["input_ids"] for doc in corpus]
    stream = torch.tensor([t for doc in ids for t in doc])
    block = 64
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(steps):
        starts = torch.randint(0, len(stream) - block - 1, (16,), generator=generator)
        batch = torch.stack([stream[s : s + block] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        for group in optimizer.param_groups:  # linear decay to 10% keeps the last steps gentle
            group["lr"] = 3e-3 * (1 - 0.9 * step / steps)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
