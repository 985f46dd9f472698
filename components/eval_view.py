"""Evaluation in the UI: the Compare tab's Judge sub-tab, which judges finished runs against a baseline, and the Runs
tab's Evaluations section, which lists the evaluations saved in the selected run's folder. The engine
(studio/eval/evaluate.py, studio/eval/judges.py) decides everything; this lays it out and formats it.

    runs, baseline   completed runs that answer; the baseline is each run's base model or another completed run
    judge            a saved judge (<home>/judges.yaml) or a new one: its kind, then only the fields that kind needs
                     (a reward run; a built-in rule and its parameters; a model and the judging prompt, prefilled
                     with the default one; a server's URL, its model, the NAME of the environment variable holding
                     its key, never the key, its timeout and retries); "Save judge" adds it to judges.yaml and picks it
    prompts          N held-out rows of each run (its own recorded split, sampled with a fixed seed), or typed ones
    settings         max new tokens, temperature (0: greedy, the same answers every time) and seed, for every model
    Evaluate         progress lines while it runs, then one row per run: model, baseline, judge, prompts, wins / ties
                     / losses, win rate with its 95% interval ("62% [41%, 80%]"), length-controlled win rate, mean
                     answer length against the baseline's, position bias (pairwise judges); warning lines; a partial
                     result's error line; the summary CSV and the full results JSON; one row per prompt and run
    Runs tab         the selected run's saved evaluations as the same table, newest first, with a CSV download;
                     read when a run is selected, the Runs tab is opened or Refresh is pressed

Endpoints for scripts and tests (gradio_client): /eval_choices -> (runs, baseline, judge, reward run pickers),
/pick_judge(judge) -> description (and hides the new-judge form for a saved one), /judge_kind(kind),
/builtin_help(rule), /save_judge(*judge fields) -> (judge picker, message), /evaluate(run_ids, baseline, judge,
*judge fields, prompt source ("held-out" or "typed"), count, prompts, max_new_tokens, temperature, seed) ->
(progress, message, win-rate table, per-prompt table), /export_evaluation -> (summary CSV, results JSON), and on the
Runs tab /run_evaluations(run_id) -> (note, table, CSV). The judge fields are JUDGE_FIELDS in order; a picked saved
judge (not NEW_JUDGE) is used as saved, and its fields are ignored. The last evaluation is kept per session.
"""

from __future__ import annotations

import html
import json
import queue
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import yaml

from components import generation
from components.fieldwidgets import caption
from components.oneline import as_error, error_line, error_markdown
from studio import config as cfg
from studio.errors import ConfigError, StudioError
from studio.eval import evaluate as evaluation
from studio.eval import judges
from studio.rewards import builtins
from studio.serve import generate, scoring

NEW_JUDGE = ""  # the judge picker's entry for a judge described in the form below it
BASE = "base"  # the baseline picker's entry for each run's own base model
HELD_OUT, TYPED = "held-out", "typed"
PROMPT_SOURCES = [("held-out prompts of each run", HELD_OUT), ("typed below, one per line", TYPED)]
# Fewer than the command line's 32: a first look in the browser answers within a minute on a CPU; the interval shows
# how much more a decision needs.
HELD_OUT_COUNT = 16
KIND_WORDS = {
    "reward_run": "a reward run scores each answer",
    "builtin": "a built-in rule scores each answer",
    "llm": "a local chat model compares two answers",
    "endpoint": "an OpenAI-compatible server compares two answers",
}
# The form's judge fields in the order of the endpoints' arguments, and the kinds each is shown (and sent) for.
JUDGE_FIELDS = (
    "kind",
    "name",
    "run",
    "builtin",
    "args",
    "model",
    "prompt",
    "base_url",
    "api_key_env",
    "timeout_s",
    "retries",
)
FIELD_KINDS = cfg.JUDGE_FIELD_KINDS  # the kinds that read each field: the form shows and sends it for those
GENERATION_KEYS = ("max_new_tokens", "temperature", "seed")
TABLE_COLUMNS = [
    "model",
    "baseline",
    "judge",
    "prompts",
    "wins / ties / losses",
    "win rate [95% interval]",
    "length-controlled",
    "mean length vs baseline (words)",
    "position bias",
    "when",
]
# Fixed shares of the tables' widths: left to the browser, the long names took the row and the short columns'
# headers broke into a letter a line.
TABLE_WIDTHS = ["15%", "9%", "13%", "7%", "9%", "11%", "8%", "9%", "11%", "8%"]
ROW_COLUMNS = ["model", "prompt", "run answer", "baseline answer", "outcome"]
ROW_WIDTHS = ["13%", "23%", "26%", "26%", "12%"]
OUTCOMES = {1.0: "win", 0.5: "tie", 0.0: "loss", None: "no verdict"}
NO_EVALUATIONS = (
    "No evaluations of this run yet: Compare > Judge (or `rlhf-studio eval RUN --judge NAME`) judges a finished run "
    "against its base model."
)


# ---------------------------------------------------------------- formatting


def percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def win_rate_cell(summary: dict) -> str:
    """The win rate with its 95% interval, "62% [41%, 80%]"; "no verdicts" when the judge gave none."""
    if summary.get("win_rate") is None:
        return "no verdicts"
    return f"{percent(summary['win_rate'])} [{percent(summary['ci_low'])}, {percent(summary['ci_high'])}]"


def _model(name: str | None, run_id: str) -> str:
    return f"{name} ({run_id})" if name and name != run_id else run_id


def _bias_cell(result: dict) -> str:
    bias = result.get("position_bias") or {}
    if bias.get("first_position_share") is None:
        return ""  # a score judge sees one answer at a time: it has no positions to prefer
    return (
        f"{percent(bias['first_position_share'])} of picks went first; orders disagreed on {bias['orders_disagreed']}"
    )


def table_rows(results: list[dict]) -> list[list]:
    """One row per evaluation, TABLE_COLUMNS, from the engine's summary_row (what the CSV export holds)."""
    rows = []
    for result in results:
        row = evaluation.summary_row(result)
        counts = f"{row['wins']} / {row['ties']} / {row['losses']}"
        if row["no_verdict"]:
            counts += f", {row['no_verdict']} no verdict"
        rows.append(
            [
                _model(row["run_name"], row["run"]),
                result.get("baseline_name") or row["baseline"],
                row["judge"],
                f"{row['prompts']} (partial)" if row["partial"] else str(row["prompts"]),
                counts,
                win_rate_cell(row),
                percent(row["length_controlled_win_rate"]),
                f"{row['mean_length']:.1f} vs {row['baseline_mean_length']:.1f}",
                _bias_cell(result),
                (row.get("created") or "").replace("T", " "),
            ]
        )
    return rows


def _outcome_cell(row: dict) -> str:
    """The outcome, with what it was decided from: both scores for a score judge, both orders' picks for a pairwise
    one."""
    word = OUTCOMES.get(row.get("outcome"), str(row.get("outcome")))
    detail = row.get("detail") or {}
    if "score" in detail:
        mine, theirs = detail.get("score"), detail.get("baseline_score")
        if mine is not None and theirs is not None:
            return f"{word} (score {mine:.3f} vs {theirs:.3f})"
    orders = [o for o in row.get("orders") or [] if o]
    if len(orders) == 2:
        return f"{word} (picked {orders[0]} with the run as A, {orders[1]} with it as B)"
    return word


def prompt_rows(results: list[dict]) -> list[list]:
    """One row per prompt of every evaluation, ROW_COLUMNS."""
    return [
        [_model(result.get("run_name"), result["run"]), row["prompt"], row["answer"], row["baseline_answer"]]
        + [_outcome_cell(row)]
        for result in results
        for row in result["rows"]
    ]


def _plain(text: str) -> str:
    # Markdown would eat `<column>` as a tag and turn reward_run's underscore into italics.
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", html.escape(text, quote=False))


def outcome_message(results: list[dict], stopped: BaseException | None) -> str:
    """What the table sits under: what was judged and where it was saved, each warning, and a stop's error line."""
    parts = []
    if results:
        first = results[0]
        asked = first["summary"]["prompts"]
        names = ", ".join(_model(r.get("run_name"), r["run"]) for r in results)
        parts.append(
            _plain(
                f"{names} judged by {first['judge']['label']} against {first.get('baseline_name')} on {asked} "
                f"prompt{'s' if asked != 1 else ''}; saved in the run's eval/ folder (the Runs tab lists it)."
            )
        )
    parts += [f"⚠️ {_plain(w)}" for r in results for w in r.get("warnings") or []]
    if stopped is not None:  # the engine's line says whether the verdicts given before it are kept
        parts.append(as_error(error_line(stopped)))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- choices


def _run_label(row: dict) -> str:
    return f"{row['id']} ({row['name']})" if row.get("name") else row["id"]


def saved_judge_choices() -> tuple[list, str]:
    """(the judge picker's choices, a problem line): NEW_JUDGE first, then each judge in judges.yaml by its label.
    A judges.yaml that does not read leaves only NEW_JUDGE and says why."""
    try:
        saved = judges.saved_judges()
    except StudioError as err:
        return [("a new judge, described below", NEW_JUDGE)], error_line(err)
    return [("a new judge, described below", NEW_JUDGE), *((f"{j.label} ({j.kind})", j.label) for j in saved)], ""


def eval_choices(picked: str | None = None):
    """The pickers' choices now: runs that answer, the baselines, the judges (the pick stays while it is saved) and
    the reward runs a reward_run judge may be."""
    runs = [(_run_label(r), r["id"]) for r in generate.generating_runs()]
    judge_choices, _problem = saved_judge_choices()
    keep = picked if picked in {key for _label, key in judge_choices} else NEW_JUDGE
    return (
        gr.Dropdown(choices=runs),
        gr.Dropdown(choices=[("each run's base model", BASE), *runs]),
        gr.Dropdown(choices=judge_choices, value=keep),
        gr.Dropdown(choices=[(_run_label(r), r["id"]) for r in scoring.reward_runs()]),
    )


def describe_judge(spec: cfg.JudgeSpec) -> str:
    """A saved judge as the lines it was saved with (key: value), its kind in words first."""
    lines = [f"**{_plain(spec.label)}**: {KIND_WORDS[spec.kind]}."]
    for key, value in judges.plain(spec).items():
        if key in ("kind", "name"):
            continue
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        if key == "prompt":
            shown = shown if len(shown) <= 80 else shown[:79] + "…"
        lines.append(f"- {key}: {_plain(shown)}")
    return "\n".join(lines)


def pick_judge(picked: str | None):
    """(description, the new-judge form): a saved judge is described and the form hidden; NEW_JUDGE shows the form."""
    if not picked:
        _choices, problem = saved_judge_choices()
        return (as_error(problem) if problem else ""), gr.update(visible=True)
    try:
        spec = judges.resolve(picked)
    except Exception as err:
        return error_markdown(err), gr.update(visible=True)
    return describe_judge(spec), gr.update(visible=False)


def judge_kind(kind: str | None) -> list:
    """The visibility of each judge field in FIELD_KINDS' order (only those the kind needs are shown), then of the
    built-in rule's help."""
    return [gr.update(visible=kind in kinds) for kinds in FIELD_KINDS.values()] + [gr.update(visible=kind == "builtin")]


def builtin_help(name: str | None) -> str:
    """What a built-in rule scores and its parameters, as the hint under its picker."""
    if not name:
        return ""
    try:
        rule = builtins.get(name, "judge.builtin")
    except StudioError as err:
        return error_markdown(err)
    params = []
    for p in rule.params:
        default = "required" if p.default is builtins.REQUIRED else f"default {p.default!r}"
        params.append(f"- `{p.name}` ({default}): {_plain(p.help)}")
    return "\n".join([_plain(rule.help), *params])


# ---------------------------------------------------------------- reading the form


def _args(text: str | None) -> dict:
    """The builtin judge's parameters, typed as a YAML mapping ("target: 20"); empty is none."""
    if not (text or "").strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"judge.args: not YAML ({str(err).splitlines()[0]}); write e.g. target: 20") from None
    if not isinstance(value, dict):
        raise ConfigError(f"judge.args = {text.strip()!r}: expected a mapping of names to values, e.g. target: 20")
    return value


def judge_from_form(*values) -> cfg.JudgeSpec:
    """The judge the form describes (JUDGE_FIELDS' values), checked: only the fields its kind needs are read, and a
    judging prompt left as the default is saved as none (the default then follows the studio's)."""
    form = dict(zip(JUDGE_FIELDS, values))
    kind = form["kind"]
    if kind not in cfg.JUDGE_KINDS:
        raise ConfigError(f"judge.kind = {kind!r}: pick one of {', '.join(cfg.JUDGE_KINDS)}")
    raw: dict = {"kind": kind}
    if (form.get("name") or "").strip():
        raw["name"] = form["name"].strip()
    for key, kinds in FIELD_KINDS.items():
        value = form.get(key)
        if kind not in kinds:
            continue
        if key == "args":
            value = _args(value)
        elif isinstance(value, str):
            value = value.strip() if key != "prompt" else value
        if key == "prompt" and (not (value or "").strip() or value.strip() == cfg.DEFAULT_JUDGE_PROMPT.strip()):
            continue
        if isinstance(value, float) and key == "retries" and value.is_integer():
            value = int(value)
        if value is None or value == "" or value == {}:
            continue
        raw[key] = value
    return cfg.check_judge(cfg.from_dict(raw, cfg.JudgeSpec, "judge."), "judge")


def save_judge(*values):
    """(the judge picker, message): save the form's judge in judges.yaml and pick it."""
    try:
        spec = judge_from_form(*values)
        path = judges.save_judge(spec)
    except Exception as err:
        return gr.skip(), error_markdown(err)
    choices, _problem = saved_judge_choices()
    return gr.Dropdown(choices=choices, value=spec.label), _plain(f"Saved judge {spec.label} in {path}.")


def _count(value) -> int:
    if value is None or float(value) != int(value) or int(value) < 1:
        raise StudioError(f"Held-out prompts = {value}: a whole number of at least 1")
    return int(value)


def eval_settings(values) -> cfg.GenerationSpec:
    """The generation boxes (GENERATION_KEYS) on top of the evaluation defaults; an empty box keeps its default."""
    raw = cfg.to_dict(cfg.EVAL_GENERATION)
    for key, value in zip(GENERATION_KEYS, values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        raw[key] = int(value) if key != "temperature" and isinstance(value, float) and value.is_integer() else value
    return cfg.from_dict(raw, cfg.GenerationSpec, generation.PREFIX)


@dataclass
class Job:
    """One evaluation as the form asks for it, checked before anything is loaded."""

    run_ids: list[str]
    judge: cfg.JudgeSpec
    baseline: str
    held_out: int
    settings: cfg.GenerationSpec
    prompts: list[str] | None


def read_job(run_ids, baseline, picked, *values) -> Job:
    """The form (run_evaluation's arguments) as a Job; one-line errors name the box at fault."""
    form, (source, count, typed, *boxes) = values[: len(JUDGE_FIELDS)], values[len(JUDGE_FIELDS) :]
    if not run_ids:
        raise StudioError("pick at least one completed run to evaluate")
    judge = judges.resolve(picked) if picked else judge_from_form(*form)
    settings = eval_settings(boxes)
    if source == TYPED:
        prompts = [line.strip() for line in (typed or "").splitlines() if line.strip()]
        if not prompts:
            raise StudioError("type at least one prompt, one per line, or pick the held-out prompts")
        return Job(list(run_ids), judge, baseline or BASE, len(prompts), settings, prompts)
    return Job(list(run_ids), judge, baseline or BASE, _count(count), settings, None)


# ---------------------------------------------------------------- evaluating


def _work(job: Job, events: queue.Queue) -> None:
    """Runs in its own thread, so the handler can show each progress line as the engine says it."""

    def say(line: str) -> None:
        events.put(("line", line))

    try:
        results = evaluation.evaluate(
            job.run_ids, job.judge, job.baseline, job.held_out, job.settings, progress=say, prompts=job.prompts
        )
        events.put(("done", (results, None)))
    except evaluation.EvaluationStopped as stopped:  # what was judged is saved: show it with the reason
        events.put(("done", (stopped.results, stopped)))
    except Exception as err:
        events.put(("done", ([], err)))


def run_evaluation(run_ids, baseline, picked, *values):
    """Yields (results, progress, message, win-rate table, per-prompt table): first the progress lines as the
    engine says them, then the results. `values` are the judge fields (JUDGE_FIELDS), the prompt source, the count,
    the typed prompts and the generation boxes (GENERATION_KEYS)."""
    try:
        job = read_job(run_ids, baseline, picked, *values)
    except Exception as err:
        yield None, "", error_markdown(err), [], []
        return
    events: queue.Queue = queue.Queue()
    # A daemon thread: a closed browser ends this handler, not the evaluation, which finishes and saves its result.
    threading.Thread(target=_work, args=(job, events), daemon=True, name="evaluate").start()
    lines: list[str] = []
    yield None, "", f"Evaluating {len(job.run_ids)} run{'s' if len(job.run_ids) != 1 else ''}…", [], []
    while True:
        kind, value = events.get()
        if kind == "done":
            break
        lines.append(value)
        yield gr.skip(), "\n".join(lines), gr.skip(), gr.skip(), gr.skip()
    results, stopped = value
    shown = "\n".join(lines)
    yield results or None, shown, outcome_message(results, stopped), table_rows(results), prompt_rows(results)


def _download_files(results: list[dict], stem: str) -> tuple[Path, Path]:
    folder = Path(tempfile.mkdtemp(prefix="rlhf-studio-eval-"))
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    csv_path.write_text(evaluation.summary_csv(results), encoding="utf-8")
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return csv_path, json_path


def export_evaluation(results: list[dict] | None):
    """(summary CSV download, full results JSON download) of the last evaluation, hidden while there is none."""
    if not results:
        return gr.DownloadButton(value=None, visible=False), gr.DownloadButton(value=None, visible=False)
    csv_path, json_path = _download_files(results, f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}")
    return gr.DownloadButton(value=str(csv_path), visible=True), gr.DownloadButton(value=str(json_path), visible=True)


# ---------------------------------------------------------------- the Judge sub-tab


def build(opened: list[gr.Tab] | None = None) -> None:
    """The Judge sub-tab's widgets and events (inside a gr.Tab); each tab in `opened` refreshes the pickers when it
    is opened."""
    runs_now = [(_run_label(r), r["id"]) for r in generate.generating_runs()]
    judge_choices, problem = saved_judge_choices()
    judge_meta = cfg.field_info(cfg.JudgeSpec, "judge.")
    gen_meta = cfg.field_info(cfg.GenerationSpec, generation.PREFIX)

    with gr.Row():
        runs = gr.Dropdown(
            choices=runs_now,
            value=[],
            multiselect=True,
            label="Runs to evaluate",
            elem_id="eval-runs",
            info="Completed runs that answer; each is judged against the baseline on the same prompts",
            scale=3,
        )
        baseline = gr.Dropdown(
            choices=[("each run's base model", BASE), *runs_now],
            value=BASE,
            label="Baseline",
            elem_id="eval-baseline",
            info="What each run's answers are compared with",
            scale=2,
        )
        refresh = gr.Button("Refresh lists", scale=1, size="sm")
    judge = gr.Dropdown(
        choices=judge_choices,
        value=NEW_JUDGE,
        label="Judge",
        info="A judge saved in judges.yaml, or a new one described below",
        elem_id="eval-judge",
    )
    about = gr.Markdown(as_error(problem) if problem else "", elem_id="eval-judge-about")
    with gr.Group(visible=True) as form:
        kind = gr.Radio(
            choices=[(f"{k}: {words}", k) for k, words in KIND_WORDS.items()],
            value="reward_run",
            elem_id="eval-kind",
            **caption("judge.kind", judge_meta["judge.kind"]),
        )
        name = gr.Textbox(**caption("judge.name", judge_meta["judge.name"]), placeholder="empty: named after it")
        reward_run = gr.Dropdown(
            choices=[(_run_label(r), r["id"]) for r in scoring.reward_runs()],
            elem_id="eval-reward-run",
            **caption("judge.run", judge_meta["judge.run"]),
        )
        rule = gr.Dropdown(
            choices=list(builtins.BUILTINS), visible=False, **caption("judge.builtin", judge_meta["judge.builtin"])
        )
        args = gr.Textbox(
            visible=False,
            lines=2,
            placeholder="a YAML mapping, e.g. target: 20",
            **caption("judge.args", judge_meta["judge.args"]),
        )
        model = gr.Textbox(
            visible=False,
            placeholder="tiny, a hub id, a local folder or a finished run's id",
            **caption("judge.model", judge_meta["judge.model"]),
        )
        prompt = gr.Textbox(
            value=cfg.DEFAULT_JUDGE_PROMPT,
            lines=6,
            visible=False,
            **caption("judge.prompt", judge_meta["judge.prompt"]),
        )
        base_url = gr.Textbox(
            visible=False,
            placeholder="http://127.0.0.1:8000/v1",
            **caption("judge.base_url", judge_meta["judge.base_url"]),
        )
        api_key_env = gr.Textbox(
            visible=False,
            placeholder="OPENAI_API_KEY (the variable's name, not the key)",
            **caption("judge.api_key_env", judge_meta["judge.api_key_env"]),
        )
        timeout_s = gr.Number(
            value=judge_meta["judge.timeout_s"]["default"],
            visible=False,
            **caption("judge.timeout_s", judge_meta["judge.timeout_s"]),
        )
        retries = gr.Number(
            value=judge_meta["judge.retries"]["default"],
            precision=0,
            visible=False,
            **caption("judge.retries", judge_meta["judge.retries"]),
        )
        rule_help = gr.Markdown(visible=False)
        with gr.Row():
            save = gr.Button("Save judge", size="sm", scale=0)
            saved_line = gr.Markdown()

    with gr.Row():
        source = gr.Radio(choices=PROMPT_SOURCES, value=HELD_OUT, label="Prompts", scale=2)
        count = gr.Number(value=HELD_OUT_COUNT, precision=0, label="Held-out prompts", scale=1, elem_id="eval-count")
    typed = gr.Textbox(label="Prompts (one per line)", lines=3, placeholder="Name a fruit.\nHow do I boil an egg?")
    with gr.Row():
        boxes = [
            gr.Number(
                value=getattr(cfg.EVAL_GENERATION, key),
                precision=0 if gen_meta[generation.PREFIX + key]["type"] is int else None,
                **caption(generation.PREFIX + key, gen_meta[generation.PREFIX + key]),
            )
            for key in GENERATION_KEYS
        ]
    go = gr.Button("Evaluate", variant="primary", elem_id="eval-go")
    progress = gr.Textbox(
        label="Progress", lines=3, max_lines=8, interactive=False, autoscroll=True, elem_id="eval-progress"
    )
    message = gr.Markdown(elem_id="eval-message")
    table = gr.Dataframe(
        headers=TABLE_COLUMNS,
        value=[],
        interactive=False,
        wrap=True,
        column_widths=TABLE_WIDTHS,
        label="Win rate",
        elem_id="eval-table",
    )
    with gr.Row():
        csv_file = gr.DownloadButton("Download summary CSV", visible=False)
        json_file = gr.DownloadButton("Download results JSON", visible=False)
    per_prompt = gr.Dataframe(
        headers=ROW_COLUMNS,
        value=[],
        interactive=False,
        wrap=True,
        label="Per prompt",
        column_widths=ROW_WIDTHS,
        max_height=480,
        elem_id="eval-rows",
    )
    results = gr.State(None)

    fields = [kind, name, reward_run, rule, args, model, prompt, base_url, api_key_env, timeout_s, retries]
    pickers = [runs, baseline, judge, reward_run]
    private = dict(api_visibility="private", show_progress="hidden")
    refresh.click(eval_choices, inputs=judge, outputs=pickers, api_name="eval_choices")
    for i, tab in enumerate(opened or ()):
        tab.select(eval_choices, inputs=judge, outputs=pickers, api_name=f"eval_choices_on_open_{i}", **private)
    judge.change(pick_judge, inputs=judge, outputs=[about, form], api_name="pick_judge", show_progress="hidden")
    kind.change(
        judge_kind, inputs=kind, outputs=[*fields[2:], rule_help], api_name="judge_kind", show_progress="hidden"
    )
    rule.change(builtin_help, inputs=rule, outputs=rule_help, api_name="builtin_help", show_progress="hidden")
    save.click(save_judge, inputs=fields, outputs=[judge, saved_line], api_name="save_judge")
    typed.input(lambda: TYPED, outputs=source, api_name="typed_eval_prompts", **private)
    done = go.click(
        run_evaluation,
        inputs=[runs, baseline, judge, *fields, source, count, typed, *boxes],
        outputs=[results, progress, message, table, per_prompt],
        api_name="evaluate",
        **generation.QUEUE,
    )
    done.then(export_evaluation, inputs=results, outputs=[csv_file, json_file], api_name="export_evaluation")


# ---------------------------------------------------------------- the Runs tab's Evaluations section


@dataclass
class RunSection:
    """The Runs tab's Evaluations section: the note (why it is empty), the table and the CSV download."""

    note: gr.Markdown
    table: gr.Dataframe
    csv: gr.DownloadButton
    refresh: gr.Button

    @property
    def outputs(self) -> list:
        return [self.note, self.table, self.csv]


def run_evaluations(run_id: str | None) -> list:
    """[note, table, CSV download] of a run's saved evaluations, newest first; the note says why there are none."""
    hidden = [gr.Dataframe(value=[], visible=False), gr.DownloadButton(value=None, visible=False)]
    if not run_id:
        return ["", *hidden]
    try:
        found = evaluation.evaluations(run_id)
    except Exception as err:
        return [error_markdown(err), *hidden]
    if not found:
        return [NO_EVALUATIONS, *hidden]
    csv_path, _json = _download_files(found, f"evaluations-{found[0]['run']}")
    count = f"{len(found)} evaluation{'s' if len(found) != 1 else ''}, newest first."
    return [
        count,
        gr.Dataframe(value=table_rows(found), headers=TABLE_COLUMNS, visible=True),
        gr.DownloadButton(value=str(csv_path), visible=True),
    ]


def build_run_section() -> RunSection:
    """The section's widgets, laid out where it is called (inside the Runs tab)."""
    with gr.Accordion("Evaluations", open=True):
        note = gr.Markdown(elem_id="runs-evaluations-note")
        table = gr.Dataframe(
            headers=TABLE_COLUMNS,
            value=[],
            interactive=False,
            wrap=True,
            visible=False,
            column_widths=TABLE_WIDTHS,
            elem_id="runs-evaluations",
        )
        with gr.Row():
            csv_file = gr.DownloadButton("Download evaluations CSV", visible=False, size="sm")
            refresh = gr.Button("Refresh evaluations", size="sm", scale=0)
    return RunSection(note, table, csv_file, refresh)


def wire_run_section(section: RunSection, selected: gr.Textbox, tabs: gr.Tabs | None = None, label: str = "") -> None:
    """Read the selected run's evaluations when it is selected, on Refresh, and when the tab labelled `label` of
    `tabs` is opened (an evaluation made meanwhile in the Compare tab then shows)."""
    quiet = dict(api_visibility="private", show_progress="hidden")
    selected.change(run_evaluations, inputs=selected, outputs=section.outputs, api_name="run_evaluations")
    section.refresh.click(
        run_evaluations, inputs=selected, outputs=section.outputs, api_name="run_evaluations_refresh", **quiet
    )

    def on_tab(run_id: str, evt: gr.SelectData) -> list:
        return run_evaluations(run_id) if evt.value == label else [gr.skip()] * 3

    if tabs is not None:
        tabs.select(on_tab, inputs=selected, outputs=section.outputs, api_name="run_evaluations_on_tab", **quiet)
