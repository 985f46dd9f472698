"""Data tab: which dataset to train on (a named source from the hub, a local or uploaded file, or the bundled
sample), how much of it, and a Preview button that loads it as the run would: counts, rows dropped by reason with
the first problems (file, row, column), and the first examples with the model's chat template applied and the
trained part marked (studio/data/preflight.py).

    fields = data_tab.build()         # {"data.source": Dropdown, "data.path": Textbox, ...}
    data_tab.attach(all_fields)       # Preview reads data.*, model.name (its tokenizer) and the Train tab's stage
"""

from __future__ import annotations

import gradio as gr

from components.fieldwidgets import home_of, widget
from components.forms import Fields, to_config
from components.oneline import error_markdown
from studio import access
from studio import config as cfg
from studio.errors import StudioError

KEYS = (
    "data.source",
    "data.path",
    "data.subset",
    "data.limit",
    "data.eval_fraction",
    "data.max_length",
    "data.on_bad_rows",
)
COLUMN_KEYS = tuple(
    f"data.columns.{role}" for role in ("prompt", "response", "chosen", "rejected", "system", "messages")
)
FILTER_KEYS = ("data.categories", "data.domains", "data.min_score_ratio", "data.languages")
VOTES_KEYS = ("data.votes.set", "data.votes.margin_scale", "data.votes.group_rankings")
UPLOAD_TYPES = [".jsonl", ".gz", ".json", ".csv", ".parquet"]  # the formats studio/data/files.py reads
EXAMPLES = 3


def build() -> Fields:
    with gr.Row():
        source = widget("data.source", scale=1)
        path = widget("data.path", scale=3)
    upload = gr.File(label="Or upload a file (fills data.path)", file_types=UPLOAD_TYPES, type="filepath")
    upload.upload(uploaded_path, inputs=upload, outputs=path, api_name="use_upload")
    with gr.Row():
        subset = widget("data.subset")
        limit = widget("data.limit")
        eval_fraction = widget("data.eval_fraction")
    with gr.Row():
        max_length = widget("data.max_length")
        on_bad_rows = widget("data.on_bad_rows")
    with gr.Accordion(
        "Source filters (Dolly categories, SHP domains and score ratio, OpenAssistant languages)", open=False
    ):
        filters = [widget(key) for key in FILTER_KEYS]
    with gr.Accordion("Column mapping (data.source: file)", open=False):
        gr.Markdown(cfg.ColumnMap.__doc__.strip().replace("\n", " ").replace("  ", " "))
        columns = [widget(key) for key in COLUMN_KEYS]
    with gr.Accordion("Vote set (data.source: votes)", open=False):
        gr.Markdown(cfg.VotesSpec.__doc__.strip().replace("\n", " ").replace("  ", " "))
        votes = [widget(key) for key in VOTES_KEYS]
    return dict(
        zip(
            KEYS + FILTER_KEYS + COLUMN_KEYS + VOTES_KEYS,
            (source, path, subset, limit, eval_fraction, max_length, on_bad_rows, *filters, *columns, *votes),
        )
    )


def attach(fields: Fields) -> None:
    """The Preview button, reading every field (model.name for its tokenizer, the Train tab's stage for the
    format, train.seed for the split, where present)."""
    keys = list(fields)
    button = gr.Button("Preview", variant="secondary", render=False)
    summary = gr.Markdown(render=False)
    examples = gr.Textbox(
        label="First examples as training sees them (the trained part is between >>> and <<<)",
        lines=14,
        interactive=False,
        render=False,
    )
    with home_of(fields["data.source"]):
        button.render()
        summary.render()
        examples.render()

    def on_preview(*values):
        yield from preview_steps(to_config(keys, values))

    button.click(on_preview, inputs=list(fields.values()), outputs=[summary, examples], api_name="preview_data")


def uploaded_path(file: str | None) -> str:
    return file or ""


def preview_steps(raw: dict):
    """What Preview shows, in turn: a line saying the tiny model is being built for its tokenizer, when it is not
    yet, then the preview itself (preview_data)."""
    from components.model_tab import BUILDING_TINY
    from studio.modeling import model_files

    name = (raw.get("model") or {}).get("name") or cfg.ModelSpec().name
    if name == model_files.TINY_NAME and not model_files.tiny_built():
        yield BUILDING_TINY, ""
    yield preview_data(raw)


def preview_format(raw: dict, source: str) -> tuple[str, str]:
    """(the row format Preview reads, the line saying why): the Train tab's stage decides, as it does for the run."""
    stage = raw.get("stage") or cfg.RunConfig().stage
    fmt = cfg.STAGE_FORMATS.get(stage, cfg.PROMPT_ONLY)
    if fmt == cfg.PROMPT_ONLY:  # the online stages take only prompts: any format gives them
        fmt = cfg.SOURCE_FORMATS[source][0]
        return fmt, f"read as **{fmt}** rows: the Train tab's stage, {stage}, takes only their prompts"
    if fmt not in cfg.SOURCE_FORMATS[source]:
        raise StudioError(
            f"data.source = '{source}' gives {' and '.join(cfg.SOURCE_FORMATS[source])} rows, not "
            f"{fmt} rows, which the Train tab's stage, {stage}, trains on; pick another stage there "
            "or another source"
        )
    return fmt, f"read as **{fmt}** rows, for the Train tab's stage, {stage}"


def preview_data(raw: dict) -> tuple[str, str]:
    """(summary Markdown, marked examples) for a draft config, or (one line, "") when it cannot load."""
    try:
        return _preview(raw)
    except Exception as err:  # a mistake (StudioError) or a bug: one line in the UI, never a traceback
        return error_markdown(err), ""


def _preview(raw: dict) -> tuple[str, str]:
    from studio.data import HUB, SAMPLE
    from studio.data.preflight import data_report, marked

    spec = cfg.from_dict(raw.get("data", {}), cfg.DataSpec, "data.")
    if spec.path and spec.path not in (SAMPLE, HUB):
        access.check_readable(spec.path, "data.path")
    model = cfg.from_dict(raw.get("model", {}), cfg.ModelSpec, "model.")
    seed = cfg.from_dict(raw.get("train", {}), cfg.TrainSpec, "train.").seed
    fmt, why = preview_format(raw, spec.source)
    stage = raw.get("stage") or cfg.RunConfig().stage
    report = data_report(spec, fmt, model, examples=EXAMPLES, seed=seed, stage=stage)

    dropped = report["dropped"]
    lines = [
        f"**{report['rows']:,}** {report['format']} rows from `{report['origin']}` "
        f"({report['train_rows']:,} train, {report['eval_rows']:,} eval); "
        f"chat template of `{model.name}`, data.max_length {spec.max_length}",
        f"- {why}",
        f"- dropped: {sum(dropped.values()):,}"
        + (
            " ("
            + ", ".join(f"{reason}: {count:,}" for reason, count in sorted(dropped.items(), key=lambda kv: -kv[1]))
            + ")"
            if dropped
            else ""
        ),
    ]
    lines += [f"- `{problem}`" for problem in report["problems"]]
    text = "\n\n".join(f"--- example {i}\n{marked(example)}" for i, example in enumerate(report["previews"], 1))
    return "\n".join(lines), text
