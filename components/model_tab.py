"""Model tab: which base model to train (hub id, local folder or the built-in tiny model), its dtype and
quantisation, and an Inspect button that counts its parameters under the chosen LoRA and estimates the memory
each stage needs, without loading any weights: one call, studio.modeling.estimate.inspect_draft, with the form's
values; this tab only formats its answer.

    fields = model_tab.build()        # {"model.name": Textbox, ...}
    model_tab.attach(all_fields)      # Inspect reads model.*, lora.*, stage and the workload keys if present

Inspect says which model it inspects when model.name is empty (the default, the built-in tiny model), and says first
that the tiny model is being built when it is not yet (about 15 s, once per studio home).
"""

from __future__ import annotations

import gradio as gr

from components.fieldwidgets import home_of, widget
from components.forms import Fields, to_config
from components.oneline import error_markdown
from studio import config as cfg
from studio.modeling import model_files
from studio.modeling.estimate import gib, inspect_draft

KEYS = (
    "model.name",
    "model.revision",
    "model.dtype",
    "model.quantization",
    "model.double_quant",
    "model.attention",
    "model.trust_remote_code",
)
TRUST_WARNING = (
    "**Warning:** with trust_remote_code on, loading this model runs Python code from the model's "
    "repository on this machine. Turn it on only for repositories you trust."
)
# Term columns of the memory table, in the order studio/modeling/estimate.py adds them.
TERMS = ("weights", "training", "reference", "value head", "reward models", "generation KV cache", "activations")
COLUMNS = ["stage", "total", *TERMS]


def build() -> Fields:
    with gr.Row():
        name = widget("model.name", scale=3)
        revision = widget("model.revision", scale=1)
    with gr.Row():
        dtype = widget("model.dtype")
        quantization = widget("model.quantization")
        double_quant = widget("model.double_quant")
        attention = widget("model.attention")
    trust = widget("model.trust_remote_code")
    warning = gr.Markdown(TRUST_WARNING, visible=False)
    trust.change(trust_warning, inputs=trust, outputs=warning, api_name="trust_warning")
    return dict(zip(KEYS, (name, revision, dtype, quantization, double_quant, attention, trust)))


def attach(fields: Fields) -> None:
    """The Inspect button, reading every field (the Train tab's stage, lora.* and train.* too, where present)."""
    keys = list(fields)
    inspect = gr.Button("Inspect", variant="secondary", render=False)
    summary = gr.Markdown(render=False)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Memory per stage (estimate)", render=False)
    # attach runs after every tab is built: render the outputs back inside the Model tab's column.
    with home_of(fields["model.name"]):
        inspect.render()
        summary.render()
        table.render()

    def on_inspect(*values):
        yield from inspect_steps(to_config(keys, values))

    inspect.click(on_inspect, inputs=list(fields.values()), outputs=[summary, table], api_name="inspect_model")


def trust_warning(on: bool):
    return gr.Markdown(visible=bool(on))


BUILDING_TINY = "Building the tiny model (first time only, about 15 seconds)..."


def default_model_note(raw: dict) -> str:
    """The line saying which model an empty model.name stands for, or '' when a name is given."""
    if (raw.get("model") or {}).get("name"):
        return ""
    return (
        f"model.name is empty, so this is the default, the built-in **{cfg.ModelSpec().name}** model; type a hub "
        "id or a local folder to inspect another."
    )


def inspect_steps(raw: dict):
    """What Inspect shows, in turn: a line saying the tiny model is being built, when it is not yet, then the
    summary and memory table (inspect_model)."""
    name = (raw.get("model") or {}).get("name") or cfg.ModelSpec().name
    if name == model_files.TINY_NAME and not model_files.tiny_built():
        yield "\n\n".join(line for line in (default_model_note(raw), BUILDING_TINY) if line), []
    yield inspect_model(raw)


def inspect_model(raw: dict) -> tuple[str, list[list]]:
    """(summary Markdown, memory table rows) for a draft config, or (one line, no rows) when it cannot."""
    try:
        summary, rows = _inspect(raw)
        note = default_model_note(raw)
        return (f"{note}\n\n{summary}" if note else summary), rows
    except Exception as err:  # a mistake (StudioError) or a bug: one line in the UI, never a traceback
        return error_markdown(err), []


def _inspect(raw: dict) -> tuple[str, list[list]]:
    """The estimate for the form (studio.modeling.estimate.inspect_draft) as Markdown and table rows."""
    inspection = inspect_draft(raw)
    result, workload, lora = inspection.estimate, inspection.workload, inspection.lora
    share = result.trainable / result.parameters if result.parameters else 0
    how = (
        f"LoRA r={lora.r} on {', '.join(lora.target_modules)}" + (" (DoRA)" if lora.use_dora else "")
        if lora.enabled
        else "LoRA off: every weight trains"
    )
    own = [  # the stages whose trainers sample and train in batches of their own (PPO: ppo.mini_batch_size)
        f"{name.upper()}: {load.sampled_together} answers sampled together, {load.batch_size} per training pass"
        for name, load in inspection.workloads.items()
        if load != workload and load.sampled_together
    ]
    chosen = result.stages[inspection.stage]
    lines = [
        f"**{result.model}** ({result.architecture}, {result.num_layers} layers, hidden {result.hidden_size}, "
        f"vocabulary {result.vocab_size:,})",
        f"- parameters: **{result.parameters:,}**; trainable: **{result.trainable:,}** ({share:.2%}), {how}",
        f"- as a reward model (score head): {result.reward_parameters:,} parameters, "
        f"{result.reward_trainable:,} trainable",
        f"- memory counted at {result.dtype}"
        + (f", base linear layers at {result.quantization}" if result.quantization != "none" else "")
        + f"; batch {workload.batch_size} x {workload.max_length} tokens"
        + (", gradient checkpointing" if workload.gradient_checkpointing else "")
        + (f" ({'; '.join(own)})" if own else ""),
        f"- **{inspection.stage}** needs about **{gib(chosen.total)}**: "
        + "; ".join(f"{t.name} {gib(t.bytes)} ({t.why})" for t in chosen.terms),
        "",
        "Not counted: the CUDA context (0.5 to 1 GiB per GPU) and allocator slack. Batches are counted at "
        "data.max_length; shorter data needs less.",
    ]
    rows = []
    for name, est in result.stages.items():
        cells = {("training" if t.name.endswith("training") else t.name): _cell(t) for t in est.terms}
        rows.append([name, gib(est.total), *(cells.get(term, "") for term in TERMS)])
    return "\n".join(lines), rows


def _cell(term) -> str:
    return "shared (adapter off)" if term.name == "reference" and term.bytes == 0 else gib(term.bytes)
