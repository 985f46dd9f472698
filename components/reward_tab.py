"""Rewards tab: what a finished reward model thinks (studio/serve/scoring.py), and how any reward sources score
answers before a run trains with them (studio/serve/reward_trial.py).

    Score two answers   a prompt and two answers -> each answer's score and the one the model prefers, with the
                        chance it gives that preference (the Bradley-Terry sigmoid of the difference, what the
                        reward trainer fits)
    Held-out pairs      the run's accuracy on the pairs its data.eval_fraction held out of training, the ones its
                        data_report.json records (the share whose chosen answer scores above the rejected one), and
                        a histogram of the chosen and rejected scores overlaid
    Evaluate on a file  the run's accuracy on a preference file (studio/eval/reward_model.py; a path, or an upload):
                        overall, per subset (a subset or category column, as RewardBench has), a histogram of the
                        margins (chosen score minus rejected), and accuracy by how much longer the chosen answer is,
                        with how often the longer answer won; the report is saved in the run's eval/ folder
    Try reward sources  sources written as YAML (as under rewards.sources in a config) with a combine rule, or the
                        rewards a ppo/grpo/rloo/rejection run is configured with (any state); answers typed (one or
                        more to one prompt, separated by a line holding only ---, with optional `column: value`
                        lines for reference_match and Python functions) or sampled from a model on prompts drawn from
                        a data source; a table of each answer's score from every source and the combined score, then
                        each source's spread (scored, unscored, min, max, mean, std) and a warning line for a source
                        that scores none of the answers or gives them all the same score

Endpoints for scripts and tests (gradio_client): /reward_runs(current pick),
/score_pair(run, prompt, answer_a, answer_b), /evaluate_reward(run, limit),
/evaluate_reward_file(run, path, limit) -> (summary, accuracy table, per-subset table, margins plot, by-length table),
/trial_lists(current run, current model) -> (online runs, sampling models), /trial_run_rewards(run) -> (its rewards
section as YAML, message), /try_rewards(sources_from, sources_yaml, combine, run, prompt, answers, columns) and
/sample_rewards(sources_from, sources_yaml, combine, run, model, data_source, data_path, count, seed, *settings), both
-> (message, scores table, spread table, warnings). sources_from is "written" (sources_yaml and combine) or "run"
(the run's configured rewards); *settings are the generation boxes in GenerationSpec's order (max_new_tokens,
temperature, top_p, repetition_penalty, seed, batch_size).
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import gradio as gr

from components import data_tab, firstopen, generation
from components.fieldwidgets import caption
from components.oneline import error_markdown
from studio import config as cfg
from studio.errors import StudioError
from studio.eval import reward_model
from studio.monitor import charts
from studio.serve import reward_trial, scoring

QUEUE = dict(concurrency_id="reward", concurrency_limit=1)  # one reward model computes at a time

WRITTEN, FROM_RUN = "written", "run"
SOURCES_FROM = [("written below (YAML)", WRITTEN), ("a run's configured rewards", FROM_RUN)]
SOURCES_PLACEHOLDER = (
    "- builtin: format\n  args: {pattern: 'The answer is \\d+'}\n- builtin: length\n  args: {target: 20}\n"
    "  weight: 0.5\n- run: RUN_ID"
)
SAMPLE_COUNT = 4  # answers sampled by default: enough to see whether a source tells them apart
EMPTY_HEADERS = ["#", "answer", "combined"]  # the scores table before any answer is scored
SPREAD_COLUMNS = ["source", "scored", "unscored", "min", "max", "mean", "std"]
NO_SCORE = "no score"


def _choices() -> list[tuple[str, str]]:
    return [(f"{r['id']} ({r['name']})" if r["name"] else r["id"], r["id"]) for r in scoring.reward_runs()]


def reward_runs(current: str | None = None):
    """The run list, current on every open; the pick stays while it is listed, else the newest reward run (the
    list's first entry) is picked."""
    choices = _choices()
    keys = [key for _label, key in choices]
    if current in keys:
        return gr.Dropdown(choices=choices)
    return gr.Dropdown(choices=choices, value=keys[0] if keys else None)


def score_pair(run_id: str | None, prompt: str, answer_a: str, answer_b: str):
    try:
        if not run_id:
            raise StudioError("pick a completed reward run")
        if not (prompt or "").strip():
            raise StudioError("type the prompt the two answers reply to")
        if not (answer_a or "").strip() or not (answer_b or "").strip():
            raise StudioError("type both answers, A and B")
        messages = [{"role": "user", "content": prompt.strip()}]
        a, b = scoring.score_batch(run_id, [messages, messages], [answer_a.strip(), answer_b.strip()])
    except Exception as err:
        return None, None, error_markdown(err)
    if a == b:
        return a, b, "The model scores both answers the same: no preference."
    better, margin = ("A", a - b) if a > b else ("B", b - a)
    chance = 1 / (1 + math.exp(-margin))
    return (
        a,
        b,
        (f"Prefers **Answer {better}** by {margin:.3f} (the model's chance that {better} is better: {chance:.0%})."),
    )


def score_boxes(score_a: float | None):
    """Show the two score boxes only while they hold scores: an empty number box reads 0."""
    shown = score_a is not None
    return gr.Number(visible=shown), gr.Number(visible=shown)


def evaluate_reward(run_id: str | None, limit):
    """(summary line, histogram of chosen and rejected scores) on the run's held-out pairs."""
    try:
        if not run_id:
            raise StudioError("pick a completed reward run")
        if limit is None or float(limit) != int(limit) or int(limit) < 1:
            raise StudioError(f"pairs to score = {limit}: a whole number of at least 1")
        result = scoring.held_out_scores(run_id, int(limit))
    except Exception as err:
        return error_markdown(err), None
    n = len(result.chosen)
    mean_chosen, mean_rejected = sum(result.chosen) / n, sum(result.rejected) / n
    of = f" (the first {n} of {result.held_out})" if n < result.held_out else ""
    line = (
        f"Accuracy **{result.accuracy:.1%}** on {n} held-out pairs{of}: the share whose chosen answer scores "
        f"above the rejected one. Mean score: chosen {mean_chosen:.3f}, rejected {mean_rejected:.3f}, margin "
        f"{mean_chosen - mean_rejected:.3f}."
    )
    return line, charts.score_histogram(result.chosen, result.rejected, f"Held-out scores of {result.run_id}")


# ---------------------------------------------------------------- evaluate on a preference file

OVERALL_COLUMNS = ["pairs", "right", "ties", "accuracy", "mean margin"]
LENGTH_COLUMNS = ["length, chosen against rejected (words)", "pairs", "accuracy"]
SUBSET_HEADERS = ["subset", "pairs", "accuracy", "mean margin"]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def evaluate_file(run_id: str | None, path: str | None, limit):
    """(summary, accuracy table, per-subset table, margins histogram, by-length table) of the run on the file."""
    try:
        if not run_id:
            raise StudioError("pick a completed reward run")
        if not (path or "").strip():
            raise StudioError("give a preference file: a path, or upload one")
        if limit is not None and (float(limit) != int(limit) or int(limit) < 1):
            raise StudioError(f"pairs to score = {limit}: a whole number of at least 1, or empty for every pair")
        report = reward_model.evaluate(run_id, path.strip(), None if limit is None else int(limit))
    except Exception as err:
        empty = {"headers": SUBSET_HEADERS, "data": []}
        return error_markdown(err), [], empty, None, []
    name = Path(report.data).name
    lines = [
        f"Accuracy **{report.accuracy:.1%}** on {report.n} pairs of {_words(name)}: the share whose chosen answer "
        "scores above the rejected one (equal scores count as wrong)."
    ]
    if report.length_pairs:
        lines.append(
            f"The longer answer scored higher in {report.longer_won:.1%} of the {report.length_pairs} pairs whose "
            f"lengths differ; the file's chosen answer is the longer one in {report.longer_chosen:.1%}."
        )
    if report.subset_column is None:
        lines.append("The file has no subset or category column: no per-subset rows.")
    lines.append(f"Saved with every pair's scores to {_words(report.saved)}.")
    overall = [[report.n, report.right, report.ties, _percent(report.accuracy), f"{report.mean_margin:.3f}"]]
    subsets = {
        "headers": [report.subset_column or "subset", *SUBSET_HEADERS[1:]],
        "data": [[s.subset, s.n, _percent(s.accuracy), f"{s.mean_margin:.3f}"] for s in report.subsets],
    }
    by_length = [[row.bin, row.n, _percent(row.accuracy)] for row in report.by_length]
    figure = margins_figure(report.margins.edges, report.margins.counts, f"Margins of {report.run_id} on {name}")
    return "\n\n".join(lines), overall, subsets, figure, by_length


def margins_figure(edges: list[float], counts: list[int], title: str):
    """The engine's margin histogram as bars: green where chosen scored higher, red where rejected did."""
    import plotly.graph_objects as go

    centres = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=[high - low for low, high in zip(edges, edges[1:])],
            marker_color=["#2ca02c" if centre > 0 else "#d62728" for centre in centres],
            name="pairs",
        )
    )
    fig.add_vline(x=0, line_dash="dot", line_color="#555")  # left of it the model prefers the rejected answer
    fig.update_layout(
        title=dict(text=title),
        xaxis_title="chosen score minus rejected score",
        yaxis_title="pairs",
        bargap=0.05,
        height=320,
        margin=dict(l=50, r=20, t=50, b=40),
        template="plotly_white",
    )
    return fig


def _build_file_eval(run: gr.Dropdown) -> None:
    """The "Evaluate a reward model on a preference file" section, scored by the tab's reward run."""
    gr.Markdown("### Evaluate a reward model on a preference file")
    gr.Markdown(
        "Scores every pair of a file with the reward run picked above: prompt, chosen and rejected columns (text or "
        "role/content messages; RewardBench's files load as they are), a subset or category column for a row per "
        "subset. .jsonl, .json, .csv or .parquet."
    )
    with gr.Row(equal_height=True):
        path = gr.Textbox(label="Preference file", info="A path on the machine running the studio", scale=3)
        limit = gr.Number(
            value=None, precision=0, label="Pairs to score (at most)", info="Empty scores every pair", scale=1
        )
    upload = gr.File(label="Or upload a file (fills the path)", file_types=data_tab.UPLOAD_TYPES, type="filepath")
    evaluate = gr.Button("Evaluate on the file", variant="primary")
    summary = gr.Markdown()
    overall = gr.Dataframe(headers=OVERALL_COLUMNS, value=[], interactive=False, label="Accuracy")
    subsets = gr.Dataframe(headers=SUBSET_HEADERS, value=[], interactive=False, label="Accuracy per subset")
    margins = gr.Plot(label="Margins", show_label=False)
    by_length = gr.Dataframe(headers=LENGTH_COLUMNS, value=[], interactive=False, label="Accuracy by length")

    upload.upload(
        data_tab.uploaded_path, inputs=upload, outputs=path, api_name="rm_eval_upload", api_visibility="private"
    )
    evaluate.click(
        evaluate_file,
        inputs=[run, path, limit],
        outputs=[summary, overall, subsets, margins, by_length],
        api_name="evaluate_reward_file",
        **QUEUE,
    )


# ---------------------------------------------------------------- try reward sources


def _label(row: dict) -> str:
    return f"{row['id']} ({row['name']})" if row.get("name") else row["id"]


def _kept(choices: list[tuple[str, str]], current: str | None) -> str | None:
    """The pick stays while it is listed, else the list's first entry."""
    keys = [key for _label, key in choices]
    return current if current in keys else (keys[0] if keys else None)


def _trial_choices() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(online runs, each labelled with its state; sampling models)."""
    runs = [(f"{_label(r)} · {r['state']}", r["id"]) for r in reward_trial.online_runs()]
    return runs, reward_trial.sampling_models()


def trial_lists(current_run: str | None = None, current_model: str | None = None):
    """(online runs, sampling models), current on every open; each pick stays while it is listed."""
    runs, models = _trial_choices()
    return (
        gr.Dropdown(choices=runs, value=_kept(runs, current_run)),
        gr.Dropdown(choices=models, value=_kept(models, current_model)),
    )


def show_sources_from(sources_from: str):
    """Show the YAML box or the run picker, whichever the sources come from."""
    return gr.Column(visible=sources_from != FROM_RUN), gr.Column(visible=sources_from == FROM_RUN)


def trial_run_rewards(run_id: str | None):
    """(the run's rewards section as YAML, "" or the one line saying why it cannot be shown)."""
    if not run_id:
        return "", ""
    try:
        return reward_trial.rewards_yaml(reward_trial.Sources(run=run_id).spec()), ""
    except Exception as err:
        return "", error_markdown(err)


def _sources(sources_from: str, sources_yaml: str, combine: str, run_id: str | None) -> reward_trial.Sources:
    if sources_from == FROM_RUN:
        return reward_trial.Sources(run=run_id or "")
    return reward_trial.Sources(text=sources_yaml or "", combine=combine or cfg.RewardsSpec().combine)


def try_rewards(
    sources_from: str, sources_yaml: str, combine: str, run_id: str | None, prompt: str, answers: str, columns: str
):
    """Typed answers to one prompt scored by the sources: (message, scores table, spread table, warnings)."""
    try:
        trial = reward_trial.try_typed(_sources(sources_from, sources_yaml, combine, run_id), prompt, answers, columns)
    except Exception as err:
        return _failed(err)
    return _shown(trial)


def sample_rewards(
    sources_from: str,
    sources_yaml: str,
    combine: str,
    run_id: str | None,
    model: str | None,
    data_source: str,
    data_path: str,
    count,
    seed,
    *settings,
):
    """Answers sampled from the model on prompts from the data, scored by the sources (as try_rewards)."""
    try:
        data = cfg.from_dict({"source": data_source, "path": (data_path or "").strip() or None}, cfg.DataSpec, "data.")
        trial = reward_trial.try_sampled(
            _sources(sources_from, sources_yaml, combine, run_id),
            model or "",
            data,
            count,
            seed,
            generation.settings(settings),
        )
    except Exception as err:
        return _failed(err)
    return _shown(trial)


def _failed(err: BaseException):
    return error_markdown(err), {"headers": EMPTY_HEADERS, "data": []}, [], ""


def _score(value: float | None) -> str:
    return NO_SCORE if value is None else f"{value:.3f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _words(text: str) -> str:
    """Text shown in Markdown as written: no HTML, and _ * ` [ ] taken literally."""
    return re.sub(r"([\\`*_\[\]])", r"\\\1", html.escape(text, quote=False))


def _shown(trial: reward_trial.Trial):
    fixed = ["#", "prompt", "answer", "combined"] if trial.model else ["#", "answer", "combined"]
    # A source named like a fixed column gets a column of its own all the same.
    columns = [f"{name} (source)" if name in fixed else name for name in trial.names]
    headers = [*fixed[:-1], *columns, "combined"]
    rows = []
    for i, answer in enumerate(trial.answers):
        prompt = [trial.prompts[i][-1]["content"]] if trial.model else []
        scores = [_score(trial.scored.per_source[name][i]) for name in trial.names]
        rows.append([i + 1, *prompt, answer, *scores, _score(trial.scored.combined[i])])
    spreads = [*zip(columns, trial.spreads().values()), ("combined", trial.combined_spread())]
    spread_rows = [
        [name, s.scored, s.unscored, _number(s.low), _number(s.high), _number(s.mean), _number(s.std)]
        for name, s in spreads
    ]
    count, sources = len(trial.answers), len(trial.names)
    by = f"answers sampled from {trial.model}" if trial.model else "typed answers"
    message = (
        f"{count} {by} scored by {sources} source{'s' if sources != 1 else ''} "
        f"({', '.join(trial.names)}), combined by {trial.spec.combine}."
    )
    warnings = "\n".join(f"- **Warning:** {_words(line)}" for line in trial.warnings())
    return _words(message), {"headers": headers, "data": rows}, spread_rows, warnings


def _build_trial(tab: gr.Tab | None) -> None:
    """The "Try reward sources" section: which sources, typed or sampled answers, the scores and their spread."""
    gr.Markdown("### Try reward sources")
    sources_from = gr.Radio(choices=SOURCES_FROM, value=WRITTEN, label="Reward sources")
    with gr.Column(visible=True) as written, gr.Row():
        sources_yaml = gr.Textbox(
            label="Sources (YAML)",
            info="A list as under rewards.sources in a config: run: RUN_ID, builtin: NAME with args, or "
            "function: FILE.py:NAME; each with an optional weight and name",
            lines=6,
            placeholder=SOURCES_PLACEHOLDER,
            scale=3,
            visible=False,
        )
        combine = gr.Dropdown(
            choices=list(cfg.REWARD_COMBINES),
            value=cfg.RewardsSpec().combine,
            **caption("rewards.combine"),
            scale=1,
        )
    run_choices, model_choices = _trial_choices()
    with gr.Column(visible=False) as from_run:
        with gr.Row():
            trial_run = gr.Dropdown(
                choices=run_choices,
                value=_kept(run_choices, None),
                label="Run whose rewards to try",
                info=f"A {', '.join(cfg.ONLINE_STAGES)} run, in any state: the reward sources its config names",
                scale=4,
            )
            refresh = gr.Button("Refresh lists", scale=1, size="sm")
        run_rewards = gr.Code(
            value=trial_run_rewards(_kept(run_choices, None))[0],
            label="Its rewards section",
            language="yaml",
            interactive=False,
        )
        run_note = gr.Markdown()

    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("**Type answers**")
            prompt = gr.Textbox(label="Prompt of the answers", lines=2, visible=False)
            answers = gr.Textbox(
                label="Answers",
                info=f"One or more; separate answers with a line holding only {reward_trial.ANSWER_SEPARATOR}",
                lines=6,
                visible=False,
            )
            columns = gr.Textbox(
                label="Data columns (optional)",
                info="column: value lines, the same for every answer: e.g. answer: 42 for reference_match",
                lines=2,
                visible=False,
            )
            score = gr.Button("Score typed answers", variant="primary")
        with gr.Column():
            gr.Markdown("**Or sample answers**")
            model = gr.Dropdown(
                choices=model_choices,
                value=_kept(model_choices, None),
                label="Sample from",
                info="A base model or a completed run",
            )
            with gr.Row():
                data_source = gr.Dropdown(
                    choices=list(cfg.DATA_SOURCES), value=cfg.DataSpec().source, **caption("data.source")
                )
                data_path = gr.Textbox(value="sample", **caption("data.path"))
            with gr.Row():
                count = gr.Number(
                    value=SAMPLE_COUNT,
                    precision=0,
                    label="Answers to sample",
                    info=f"One per prompt drawn from the data, at most {reward_trial.MAX_SAMPLES}",
                )
                seed = gr.Number(value=0, precision=0, label="Prompt seed", info="Which prompts are drawn")
            settings = generation.build()
            sample = gr.Button("Sample and score", variant="primary")
    firstopen.reveal_on_open(tab, [sources_yaml, prompt, answers, columns])

    message = gr.Markdown(elem_id="trial-message")
    table = gr.Dataframe(
        headers=EMPTY_HEADERS, value=[], interactive=False, wrap=True, label="Scores", elem_id="trial-scores"
    )
    spread = gr.Dataframe(
        headers=SPREAD_COLUMNS, value=[], interactive=False, label="Spread of each source over these answers"
    )
    warnings = gr.Markdown()

    sources_from.change(
        show_sources_from,
        inputs=sources_from,
        outputs=[written, from_run],
        api_name="show_sources_from",
        api_visibility="private",
        show_progress="hidden",
    )
    trial_run.change(trial_run_rewards, inputs=trial_run, outputs=[run_rewards, run_note], api_name="trial_run_rewards")
    # preprocess=False: a pick whose run was deleted since must reach the handler (to be replaced), not be refused.
    refresh.click(
        trial_lists, preprocess=False, inputs=[trial_run, model], outputs=[trial_run, model], api_name="trial_lists"
    )
    if tab is not None:
        tab.select(
            trial_lists,
            preprocess=False,
            inputs=[trial_run, model],
            outputs=[trial_run, model],
            api_name="trial_lists_on_open",
            api_visibility="private",
            show_progress="hidden",
        )
    picked = [sources_from, sources_yaml, combine, trial_run]
    outputs = [message, table, spread, warnings]
    score.click(
        try_rewards, inputs=[*picked, prompt, answers, columns], outputs=outputs, api_name="try_rewards", **QUEUE
    )
    sample.click(
        sample_rewards,
        inputs=[*picked, model, data_source, data_path, count, seed, *settings],
        outputs=outputs,
        api_name="sample_rewards",
        **generation.QUEUE,
    )


def build(tab: gr.Tab | None = None) -> None:
    """The tab's widgets and events; `tab` (the gr.Tab holding it) refreshes the run lists each time it is opened."""
    choices = _choices()
    with gr.Row():
        run = gr.Dropdown(
            choices=choices,
            value=choices[0][1] if choices else None,
            label="Reward run",
            info="A completed reward model run",
            scale=4,
        )
        refresh = gr.Button("Refresh list", scale=1, size="sm")

    gr.Markdown("### Score two answers")
    prompt = gr.Textbox(label="Prompt", lines=2)
    with gr.Row(equal_height=True):
        answer_a = gr.Textbox(label="Answer A", lines=4)
        answer_b = gr.Textbox(label="Answer B", lines=4)
    score = gr.Button("Score", variant="primary")
    with gr.Row():
        # Three decimals: the verdict's difference is computed from the full scores.
        score_a = gr.Number(label="Score of answer A", interactive=False, visible=False, precision=3)
        score_b = gr.Number(label="Score of answer B", interactive=False, visible=False, precision=3)
    verdict = gr.Markdown()

    gr.Markdown("### Evaluate on held-out pairs")
    with gr.Row(equal_height=True):
        limit = gr.Number(
            value=scoring.HELD_OUT_LIMIT,
            precision=0,
            label="Pairs to score (at most)",
            info="The first pairs of the run's held-out split",
            scale=1,
        )
        evaluate = gr.Button("Evaluate on held-out pairs", variant="primary", scale=1)
    summary = gr.Markdown()
    histogram = gr.Plot(label="Scores of chosen and rejected answers", show_label=False)

    # preprocess=False: a pick whose run was deleted since must reach the handler (to be replaced), not be refused.
    refresh.click(reward_runs, preprocess=False, inputs=run, outputs=run, api_name="reward_runs")
    if tab is not None:
        tab.select(
            reward_runs,
            preprocess=False,
            inputs=run,
            outputs=run,
            api_name="reward_runs_on_open",
            api_visibility="private",
            show_progress="hidden",
        )
    score.click(
        score_pair,
        inputs=[run, prompt, answer_a, answer_b],
        outputs=[score_a, score_b, verdict],
        api_name="score_pair",
        **QUEUE,
    ).then(score_boxes, inputs=score_a, outputs=[score_a, score_b], api_name="score_boxes", api_visibility="private")
    evaluate.click(
        evaluate_reward, inputs=[run, limit], outputs=[summary, histogram], api_name="evaluate_reward", **QUEUE
    )
    _build_file_eval(run)
    _build_trial(tab)
