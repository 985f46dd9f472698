"""Parameter counts and a memory estimate per stage, without loading any weights.

The model is built on PyTorch's meta device from its config (shapes only, no memory, no download of weights),
LoRA is added there exactly as training adds it, and the parameters are counted. Memory is then summed from
the terms each stage holds:

    result = estimate(ModelSpec(name="tiny"), LoraSpec())
    print(result.parameters, result.trainable, result.stages["ppo"].total)

Terms (bytes; every one is listed with its reason in StageEstimate.terms):
- weights: the frozen base at the weight dtype (auto counts as bfloat16, what a GPU picks; a CPU run uses
  float32, twice as much). With quantization the transformer's linear layers take 4bit: 0.5 byte per weight plus
  the NF4 block constants (one float32 per 64 weights = 1/16 byte, or about 1/64 byte with double_quant);
  8bit: 1 byte per weight plus one float32 scale per output row. Embeddings, norms and the output head stay at
  the weight dtype, as bitsandbytes leaves them.
- training state: with LoRA, the adapter weights (PEFT keeps them in float32), their gradients (float32) and
  AdamW's two moments (float32): 16 bytes per trainable parameter. With LoRA off, every weight trains: a
  gradient and two AdamW moments at the weight dtype (torch's AdamW keeps its moments like the parameter).
- reference (dpo, kto, ppo, grpo, rloo): with LoRA none, the policy with its adapter disabled is the reference;
  with LoRA off a frozen copy of the weights.
- value head (ppo): one Linear(hidden, 1) trained in float32, 16 bytes per parameter.
- reward models (ppo, rejection, grpo, rloo): each reward run is a frozen sequence-classification model of the
  same base at the same dtype and quantization (its adapter merged).
- activations: what autograd keeps per token per layer in 16-bit, counted from the layer's shapes: the two
  RMSNorms (each keeps its input upcast to float32 and its output: 3 hidden-sized values), the rotated queries,
  keys and values, the attention output and the output projection's input (fused SDPA or FlashAttention, so no
  sequence-squared term), and the MLP's intermediate values (a gated MLP keeps gate, activation, up and their
  product: 4 x intermediate; a plain one 2). On a 4-wide plain MLP this is about Korthikanti et al. 2022's 34
  bytes per hidden unit; a SwiGLU model with a wide MLP keeps more (checked against peak memory on an H100,
  README "Speed and memory on a GPU"). With gradient checkpointing only each layer's input (2 bytes) plus one
  layer's values and their gradients. Tokens = batch_size x max_length x the sequences a stage runs per example
  (2 for reward and dpo: chosen and rejected; 2 for kto: the answer and a mismatched pair for its KL term; 1
  otherwise).
- logits: PPO's own trainer holds a causal LM's logits at the weights' dtype and their float32 log-probabilities
  (vocabulary x (2 + 4) bytes per token); TRL's trainers (SFT, DPO, KTO, GRPO, RLOO) score through a fused head in
  tiles and never hold them, and a reward model's head is one number.
- QLoRA: preparing a quantised model for training upcasts its unquantised weights (embeddings, norms) to float32.
- generation KV cache (ppo, rejection, grpo, rloo): keys and values for batch_size x max_length tokens.

Not counted: the CUDA context and kernels (roughly 0.5 to 1 GiB per GPU), allocator fragmentation, and the
temporary reference forward, whose activations are freed at once. Counts are of logical weights; a loaded 4-bit
model reports its packed storage, about half the linear weights.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from studio import config as cfg
from studio import stages as registry
from studio.config import STAGES, LoraSpec, ModelSpec, RunConfig
from studio.errors import ConfigError

log = logging.getLogger(__name__)

GIB = 1024**3
DTYPE_BYTES = {"auto": 2, "bfloat16": 2, "float16": 2, "float32": 4}
# 16-bit values a layer keeps per token: (per hidden unit, per key/value unit, per MLP intermediate unit)
LAYER_VALUES = {"gated": (10, 2, 4), "plain": (10, 2, 2)}
NF4_BLOCK = 64
GATE_NAMES = ("gate_proj", "gate_up_proj", "w3")  # a gated MLP's gate (or its up half), as architectures name it


@dataclass(frozen=True)
class Workload:
    """What sets the activation allowance: train.batch_size, data.max_length, train.gradient_checkpointing,
    how many reward runs the online stages score with (rewards.sources that are runs), and how many prompts they answer
    together (the KV cache; None: batch_size, PPO's differs)."""

    batch_size: int = 4
    max_length: int = 512
    gradient_checkpointing: bool = False
    reward_models: int = 1
    sampled_together: int | None = None


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    why: str


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    terms: tuple[Term, ...]

    @property
    def total(self) -> int:
        return sum(t.bytes for t in self.terms)


@dataclass(frozen=True)
class Shapes:
    """What the estimate needs to know about one model: counts under LoRA and the sizes of its parts."""

    parameters: int  # total, LoRA included
    trainable: int
    linear: int  # weights of the linear layers that quantization converts (the output head excluded)
    linear_rows: int  # their output rows (8-bit keeps one scale per row)
    gated_mlp: bool  # a gate projection beside the up projection (SwiGLU and kin)


@dataclass(frozen=True)
class Estimate:
    model: str
    architecture: str
    dtype: str  # as counted: auto is counted as bfloat16
    quantization: str
    lora: bool
    parameters: int  # of the policy (causal LM), LoRA included
    trainable: int  # trainable under the LoRA spec (every weight with LoRA off)
    reward_parameters: int  # of the reward stage's model (a score head instead of the LM head)
    reward_trainable: int
    hidden_size: int
    num_layers: int
    vocab_size: int
    stages: dict[str, StageEstimate]


def estimate(
    model: ModelSpec,
    lora: LoraSpec,
    workload: Workload | None = None,
    stages: tuple[str, ...] = STAGES,
    stage_workloads: dict[str, Workload] | None = None,
) -> Estimate:
    """Counts and per-stage memory for a model and LoRA spec, each stage at `workload` or its own in
    `stage_workloads` (PPO's, see workload_of); ModelError (one line) when the model is not found, ConfigError for
    quantised weights with LoRA off (they cannot train)."""
    workload = workload or Workload()
    stage_workloads = stage_workloads or {}
    if model.quantization != "none" and not lora.enabled:
        raise ConfigError(
            f"model.quantization = '{model.quantization}': quantised weights cannot be trained "
            "directly; turn lora.enabled on (QLoRA) or set quantization to none"
        )
    config = _model_config(model)
    policy = _shapes(config, model, lora, "CAUSAL_LM")
    reward = _shapes(config, model, lora, "SEQ_CLS")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    intermediate = getattr(text, "intermediate_size", None) or 4 * hidden
    per_hidden, per_kv, per_mlp = LAYER_VALUES["gated" if policy.gated_mlp else "plain"]
    layer_bytes = 2 * (per_hidden * hidden + per_kv * kv_heads * head_dim + per_mlp * intermediate)
    dtype_bytes = DTYPE_BYTES[model.dtype]
    dtype = "bfloat16" if model.dtype == "auto" else model.dtype

    def weights(shapes: Shapes, trained: bool = True) -> int:
        base = shapes.parameters - (shapes.trainable if lora.enabled else 0)
        if model.quantization == "4bit":
            constants = (1 / NF4_BLOCK + 4 / (NF4_BLOCK * 256)) if model.double_quant else 4 / NF4_BLOCK
            quantised = shapes.linear * (0.5 + constants)
        elif model.quantization == "8bit":
            quantised = shapes.linear * 1 + shapes.linear_rows * 4
        else:
            quantised = shapes.linear * dtype_bytes
        # peft's prepare_model_for_kbit_training upcasts the rest of a quantised model it trains to float32
        rest_bytes = 4 if trained and model.quantization != "none" else dtype_bytes
        return round(quantised + (base - shapes.linear) * rest_bytes)

    def training(shapes: Shapes) -> Term:
        if lora.enabled:
            return Term(
                "LoRA training",
                shapes.trainable * 16,
                f"{shapes.trainable:,} adapter weights, gradients and 2 AdamW moments, float32",
            )
        return Term(
            "full training",
            shapes.trainable * 3 * dtype_bytes,
            f"gradients and 2 AdamW moments for all {shapes.trainable:,} weights at {dtype}",
        )

    def activations(stage: registry.Stage, workload: Workload) -> Term:
        sequences = stage.memory.sequences  # per example: a chosen / rejected pair runs 2
        tokens = workload.batch_size * workload.max_length * sequences
        scale = dtype_bytes / 2
        if workload.gradient_checkpointing:
            # while one layer is recomputed for its backward pass, its values and their gradients are held at once
            per_token = (2 * layers * hidden + 2 * layer_bytes) * scale
            how = "gradient checkpointing: each layer's input, plus one layer's values and their gradients"
        else:
            per_token = layers * layer_bytes * scale
            how = f"{layer_bytes:,} bytes per layer per token"
        # the rest use TRL's fused LM head, or a score head
        logits = (dtype_bytes + 4) * vocab if stage.memory.full_logits else 0
        return Term(
            "activations",
            round(tokens * (per_token + logits)),
            f"{tokens:,} tokens ({workload.batch_size} x {workload.max_length} x {sequences}); {how}"
            + ("; logits and float32 log-probabilities" if logits else ""),
        )

    results = {}
    for name in stages:
        stage = registry.get(name)
        load = stage_workloads.get(name, workload)
        shapes = policy if stage.writes_text else reward  # a reward model: a score head instead of the LM head
        terms = [Term("weights", weights(shapes), _weights_why(model, dtype, shapes)), training(shapes)]
        if stage.reference:
            terms.append(
                Term("reference", 0, "the policy with its adapter disabled")
                if lora.enabled
                else Term("reference", weights(policy, trained=False), "a frozen copy of the weights")
            )
        if stage.memory.value_head:
            terms.append(Term("value head", (hidden + 1) * 16, "Linear(hidden, 1) trained in float32"))
        if stage.online:
            n = load.reward_models
            terms.append(
                Term(
                    "reward models",
                    n * weights(_frozen(reward, lora), trained=False),
                    f"{n} frozen reward model{'s' if n != 1 else ''} at the weights' dtype",
                )
            )
            kv_tokens = (load.sampled_together or load.batch_size) * load.max_length
            terms.append(
                Term(
                    "generation KV cache",
                    kv_tokens * 2 * layers * kv_heads * head_dim * dtype_bytes,
                    f"keys and values of {kv_tokens:,} sampled tokens",
                )
            )
        terms.append(activations(stage, load))
        results[name] = StageEstimate(name, tuple(terms))
    return Estimate(
        model=model.name,
        architecture=(config.architectures or [type(config).__name__])[0],
        dtype=dtype,
        quantization=model.quantization,
        lora=lora.enabled,
        parameters=policy.parameters,
        trainable=policy.trainable,
        reward_parameters=reward.parameters,
        reward_trainable=reward.trainable,
        hidden_size=hidden,
        num_layers=layers,
        vocab_size=vocab,
        stages=results,
    )


def run_estimate(config: RunConfig, model_name: str | None = None) -> StageEstimate:
    """The memory of a run config's stage as its trainer runs it; `model_name` (a folder with the model's
    config.json) stands in for model.name."""
    model = dataclasses.replace(config.model, name=model_name or config.model.name)
    return estimate(model, config.lora, workload_of(config), (config.stage,)).stages[config.stage]


def workload_of(config: RunConfig) -> Workload:
    """The workload of a run config's stage. PPO samples answers to train.batch_size prompts together (the KV
    cache), while each forward and backward pass takes ppo.mini_batch_size / gradient_accumulation_steps sequences
    of prompt plus answer, and gradient checkpointing reaches its policy only through QLoRA's preparation."""
    train = config.train
    # A draft without reward sources yet (the Model tab) is counted with one reward model, the usual case.
    reward_models = len(config.rewards.runs) if config.rewards.sources else 1
    if config.stage != "ppo":
        return Workload(train.batch_size, config.data.max_length, train.gradient_checkpointing, reward_models)
    length = config.data.max_length + config.ppo.response_length
    checkpointing = train.gradient_checkpointing and config.model.quantization != "none"
    return Workload(
        max(1, config.ppo.mini_batch_size // train.gradient_accumulation_steps),
        length,
        checkpointing,
        reward_models,
        sampled_together=train.batch_size,
    )


def _weights_why(model: ModelSpec, dtype: str, shapes: Shapes) -> str:
    if model.quantization == "none":
        return f"frozen base at {dtype}"
    return f"{shapes.linear:,} linear weights at {model.quantization}, the rest at {dtype}"


def _frozen(shapes: Shapes, lora: LoraSpec) -> Shapes:
    """A reward model as the online stages hold it: its adapter merged, nothing trainable."""
    base = shapes.parameters - (shapes.trainable if lora.enabled else 0)
    return dataclasses.replace(shapes, parameters=base, trainable=0)


def _model_config(spec: ModelSpec):
    from transformers import AutoConfig

    from studio.modeling import models

    path = models.resolve(spec.name)
    try:
        return AutoConfig.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        raise models._load_error(spec, err) from None


def _shapes(config, spec: ModelSpec, lora: LoraSpec, task_type: str) -> Shapes:
    """Build the model on the meta device (no memory), add LoRA as training does, and count."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from studio.modeling import models

    config = copy.deepcopy(config)
    auto_class = AutoModelForCausalLM
    if task_type == "SEQ_CLS":
        config.num_labels = 1
        auto_class = AutoModelForSequenceClassification
    try:
        with torch.device("meta"):
            model = auto_class.from_config(config, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        raise models._load_error(spec, err) from None
    linear, rows, gated = 0, 0, False
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and full_name.rsplit(".", 1)[-1] not in ("lm_head", "score"):
            linear += module.weight.numel()
            rows += module.out_features
            gated = gated or full_name.rsplit(".", 1)[-1] in GATE_NAMES
    with torch.device("meta"):
        model = models.add_lora(model, lora, spec, task_type)
    trainable, total = models.count_parameters(model)
    return Shapes(parameters=total, trainable=trainable, linear=linear, linear_rows=rows, gated_mlp=gated)


def gib(n_bytes: float) -> str:
    """Bytes for tables, 3 significant figures: GiB, or MiB / KiB for small sizes."""
    if n_bytes >= 0.1 * GIB:
        return f"{n_bytes / GIB:.3g} GiB"
    if n_bytes >= 0.1 * 1024**2:
        return f"{n_bytes / 1024**2:.3g} MiB"
    return f"{n_bytes / 1024:.3g} KiB"


def fit_memory(config: RunConfig) -> RunConfig:
    """The config to train with: with train.gradient_checkpointing off, a one-GPU run whose estimate is over the GPU's
    free memory, and fits with checkpointing, trains with it on; one that fits neither way gets a warning naming what
    to lower."""
    import torch

    if config.train.gradient_checkpointing or not torch.cuda.is_available() or config.train.processes > 1:
        return config  # several processes may shard the weights (ZeRO-3, FSDP), which the estimate does not count
    free, _total = torch.cuda.mem_get_info()
    try:
        without = run_estimate(config).total
    except Exception as err:  # noqa: BLE001 - advice only, never a reason to stop (a hub id offline, say)
        log.info("memory estimate: not made (%s)", str(err).splitlines()[0] if str(err) else type(err).__name__)
        return config
    if without <= free:
        return config
    checkpointed = dataclasses.replace(config, train=dataclasses.replace(config.train, gradient_checkpointing=True))
    with_it = run_estimate(checkpointed).total
    if with_it < without and with_it <= free:
        log.info(
            "gradient checkpointing: on, since the estimate without it, %s, is over the GPU's free %s (with it: %s)",
            gib(without),
            gib(free),
            gib(with_it),
        )
        return checkpointed
    log.warning(
        "memory: the estimate, %s, is over the GPU's free %s; if the run runs out of memory, lower "
        "train.batch_size or data.max_length, or use model.quantization: 4bit",
        gib(min(without, with_it)),
        gib(free),
    )
    return config


@dataclass(frozen=True)
class Inspection:
    """What the Model tab's Inspect shows for a draft config: every stage's estimate, each at the workload its trainer
    runs (`workloads`; PPO's differs, see workload_of), `workload` the form's own (train.batch_size x
    data.max_length), the stage the form has picked and the LoRA spec counted."""

    estimate: Estimate
    stage: str
    workload: Workload
    workloads: dict[str, Workload]
    lora: LoraSpec


def inspect_draft(raw: dict) -> Inspection:
    """The estimate of a draft config mapping as a form gives it (sections may be missing, and the sections the
    estimate does not read are left to Start's checks); ConfigError names the field at fault, ModelError says when
    the model is out of reach."""
    sections = {
        name: cfg.from_dict(raw.get(name) or {}, spec, f"{name}.")
        for name, spec in (
            ("model", ModelSpec),
            ("lora", LoraSpec),
            ("train", cfg.TrainSpec),
            ("data", cfg.DataSpec),
            ("rewards", cfg.RewardsSpec),
            ("ppo", cfg.PPOSpec),
        )
    }
    stage = raw.get("stage") or RunConfig().stage
    if stage not in STAGES:
        raise ConfigError(f"stage = {stage!r}: allowed values are {', '.join(STAGES)}")
    config = RunConfig(**sections)
    workloads = {name: workload_of(dataclasses.replace(config, stage=name)) for name in STAGES}
    result = estimate(config.model, config.lora, stage_workloads=workloads)
    return Inspection(result, stage, workload_of(config), workloads, config.lora)
