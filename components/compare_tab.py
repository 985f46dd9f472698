"""Compare tab: base and tuned answers to the same prompts side by side, scored by a reward model, human votes on
blind answers that become preference data, and win rates from a judge (studio/serve/compare.py,
studio/serve/voting.py, studio/eval/evaluate.py).

    Side by side  pick completed runs (their base model is the first column), type prompts (one per line) or sample
                  N from the rows the first run held out (picking that source samples them; Generate samples them
                  itself when the runs, the count or the seed changed since), optionally a completed reward run;
                  Generate shows one row per prompt with one column per model, headed by the run's name with its
                  id small below (the reward score under each answer, 3 decimals), a summary per model (mean
                  score, win rate against the base, tokens/s), and CSV and JSONL downloads (full precision)
    Vote          blind answers judged into a vote set: a pair graded by Llama 2's four levels (or a tie, or both
                  bad), or K answers ranked; keyboard shortcuts, the next item generated while this one is read,
                  undo; the set's form, summary, agreement, export and rounds below (components/vote_view.py and
                  components/vote_sets_view.py, which list their own endpoints, /vote_generate and /vote_pair among
                  them)
    Judge         completed runs judged against their base model (or another run) on held-out or typed prompts by
                  a saved or new judge: a win-rate table with 95% intervals, per-prompt outcomes, CSV and JSON
                  downloads (components/eval_view.py, which lists its own endpoints, /evaluate among them)
The generation settings at the top apply to Side by side and Vote, to every model alike (same settings; Vote moves
the seed on for each item); Judge has its own runs, baseline and settings (greedy by default, so an evaluation
repeats exactly).

Endpoints for scripts and tests (gradio_client): /compare_choices -> (runs picker, reward picker),
/sample_prompts(run_ids, count, seed), /pick_source(prompt_source, run_ids, count, seed) -> (table, message),
/compare(run_ids, prompt_source ("typed" or "held-out"), prompts, reward_run, *settings, count, seed) -> (message,
answers HTML, summary) (count and seed: the held-out sampling boxes, 8 and 0 when left out), /export_comparison ->
(CSV, JSONL); of the Vote sub-tab: /vote_choices, /vote_pick_set, /vote_generate, /vote_pair, /vote_rank,
/vote_skip, /vote_undo (see components/vote_view.py) and the set's /vote_set_* and /vote_round* (see
components/vote_sets_view.py); of the Judge sub-tab: /eval_choices, /pick_judge, /judge_kind, /builtin_help,
/save_judge, /evaluate, /export_evaluation (see components/eval_view.py). *settings are the generation boxes in
GenerationSpec's order (max_new_tokens, temperature, top_p, repetition_penalty, seed, batch_size). The sampled
prompts and the last comparison are kept per session.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components import eval_view, generation, vote_view
from components.oneline import error_line
from studio.errors import StudioError
from studio.serve import compare, generate, scoring

TYPED, HELD_OUT = "typed", "held-out"
PROMPT_SOURCES = [("typed below, one per line", TYPED), ("sampled from the first run's held-out data", HELD_OUT)]
SAMPLE_COUNT = 8  # held-out prompts drawn by default: a screenful of rows to read side by side
NO_REWARD = ""
SUMMARY_COLUMNS = ["model", "mean score", "win rate vs base", "tokens/s"]

TABLE_CSS = """
table.answers { width: 100%; border-collapse: collapse; table-layout: fixed; font-size: 14px; }
table.answers th, table.answers td { border: 1px solid #ddd; padding: 8px; vertical-align: top; text-align: left; }
table.answers th.num, table.answers td.num { width: 2.5em; }
table.answers .text { white-space: pre-wrap; overflow-wrap: anywhere; }
table.answers .score { margin-top: 6px; color: #555; font-size: 12px; }
table.answers .best { color: #1a7f37; font-weight: 600; }
table.answers .run-id { margin-top: 2px; color: #777; font-size: 11px; font-weight: normal; }
"""


# ---------------------------------------------------------------- choices


def _run_label(row: dict) -> str:
    return f"{row['id']} ({row['name']})" if row.get("name") else row["id"]


def _choices() -> tuple[list, list]:
    runs = [(_run_label(r), r["id"]) for r in generate.generating_runs()]
    rewards = [("(none: no scores)", NO_REWARD), *((_run_label(r), r["id"]) for r in scoring.reward_runs())]
    return runs, rewards


@dataclass
class Panel:
    """What another part of the page may fill in and run here (the Start here strip shows the demo's comparison):
    `fills` are the run picker, the reward picker, the prompt source and the prompts box (filled_with gives their
    values), `inputs` and `outputs` those of run_compare."""

    fills: list
    inputs: list
    outputs: list


def filled_with(run_ids: list[str], reward_run: str, prompts: list[str]) -> tuple:
    """The updates of Panel.fills that pick these runs and this reward run, with these prompts typed in."""
    runs, rewards = _choices()
    return (
        gr.Dropdown(choices=runs, value=list(run_ids)),
        gr.Dropdown(choices=rewards, value=reward_run),
        TYPED,
        "\n".join(prompts),
    )


def compare_choices():
    """The pickers' choices now: completed runs that answer, and completed reward runs."""
    runs, rewards = _choices()
    return gr.Dropdown(choices=runs), gr.Dropdown(choices=rewards)


# ---------------------------------------------------------------- side by side


def typed_prompts(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _count(value, what: str) -> int:
    if value is None or float(value) != int(value) or int(value) < 1:
        raise StudioError(f"{what} = {value}: a whole number of at least 1")
    return int(value)


def _held_out(run_ids: list[str] | None, count, seed, sampled=None) -> dict:
    """{"key": (run, count, seed), "prompts": [...]}: `count` prompts from the first run's held-out split, seeded;
    the ones sampled before when nothing changed since."""
    if not run_ids:
        raise StudioError("pick a run first: the prompts come from the first run's held-out data")
    key = (run_ids[0], _count(count, "prompts to sample"), int(seed) if seed is not None else 0)
    if isinstance(sampled, dict) and tuple(sampled["key"]) == key:
        return sampled
    return {"key": key, "prompts": compare.held_out_prompts(*key)}


def sampled_rows(sampled) -> list[list]:
    """The sampled prompts as the table under Sample shows them."""
    prompts = sampled["prompts"] if isinstance(sampled, dict) else []
    return [[i, compare.prompt_text(p)] for i, p in enumerate(prompts, 1)]


def _sampled_line(sampled: dict) -> str:
    return f"{len(sampled['prompts'])} held-out prompts from run {sampled['key'][0]}; Generate answers them."


def sample_prompts(run_ids: list[str] | None, count, seed):
    """(sampled prompts, their table, the prompt source, message): `count` prompts from the first run's held-out
    split, seeded."""
    try:
        sampled = _held_out(run_ids, count, seed)
    except Exception as err:
        return gr.skip(), gr.skip(), gr.skip(), error_line(err)
    return sampled, sampled_rows(sampled), HELD_OUT, _sampled_line(sampled)


def pick_source(prompt_source: str, run_ids: list[str] | None, count, seed):
    """(sampled prompts, their table, message, the sampling accordion): picking the held-out source samples at once
    and opens the accordion that shows them, so nobody has to find the Sample button first."""
    if prompt_source != HELD_OUT:
        return gr.skip(), gr.skip(), "", gr.skip()
    try:
        sampled = _held_out(run_ids, count, seed)
    except Exception as err:
        return gr.skip(), gr.skip(), error_line(err), gr.skip()
    return sampled, sampled_rows(sampled), _sampled_line(sampled), gr.Accordion(open=True)


def run_compare(run_ids: list[str] | None, prompt_source: str, prompts: str, reward_run: str | None, sampled, *values):
    """(comparison, message, answers table, summary rows, sampled prompts); values are the generation boxes, then
    the held-out count and seed. A mistake gives (None, one line, "", [], the sampled prompts unchanged)."""
    *boxes, count, seed = values
    try:
        settings = generation.settings(boxes)
        if prompt_source == HELD_OUT and run_ids:  # without runs, compare() says to pick one
            sampled = _held_out(run_ids, count, seed, sampled)
            asked = sampled["prompts"]
        else:
            asked = [] if prompt_source == HELD_OUT else typed_prompts(prompts)
        result = compare.compare(list(run_ids or []), asked, settings, reward_run or None)
    except Exception as err:
        return None, error_line(err), "", [], gr.skip()
    scored = (
        f", scored by reward run {result.reward_run}"
        if result.reward_run
        else " (pick a reward run to score them and get win rates)"
    )
    n = len(result.prompts)
    message = f"{n} prompt{'s' if n != 1 else ''} answered by {len(result.labels)} models{scored}."
    return (
        result,
        message,
        answers_html(result),
        summary_rows(result),
        sampled if prompt_source == HELD_OUT else gr.skip(),
    )


def _header(result: compare.Comparison, label: str) -> str:
    """A column's head: the run's name, its id small below (ids tell apart runs of one name); the base as it is."""
    e = html.escape
    name = result.name(label)
    below = f'<div class="run-id">{e(label)}</div>' if name != label else ""
    return f'<th data-model="{e(label)}">{e(name)}{below}</th>'


def answers_html(result: compare.Comparison) -> str:
    """One row per prompt, one column per model (the base first), the score under each answer; the best score of
    a row is marked."""
    e = html.escape
    head = "".join(_header(result, label) for label in result.labels)
    rows = []
    for i, prompt in enumerate(result.prompts):
        best = max((result.scores[label][i] for label in result.labels), default=None) if result.scores else None
        cells = []
        for label in result.labels:
            answer = result.answers[label][i]
            text = e(answer) if answer.strip() else "<em>(empty answer)</em>"
            score = ""
            if result.scores:
                value = result.scores[label][i]
                mark = " best" if value == best and len(result.labels) > 1 else ""
                score = f'<div class="score{mark}">score {value:.3f}</div>'
            cells.append(f'<td class="answer" data-model="{e(label)}"><div class="text">{text}</div>{score}</td>')
        rows.append(
            f'<tr><td class="num">{i + 1}</td><td class="prompt"><div class="text">'
            f"{e(compare.prompt_text(prompt))}</div></td>{''.join(cells)}</tr>"
        )
    return (
        f'<table class="answers"><thead><tr><th class="num">#</th><th>prompt</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def summary_rows(result: compare.Comparison) -> list[list]:
    rows = []
    for row in result.summary():
        mean = round(row["mean_score"], 3) if "mean_score" in row else ""  # as the table shows scores
        win = f"{row['win_rate']:.0%}" if "win_rate" in row else ""
        rows.append([result.title(row["model"]), mean, win, row["tokens_per_second"]])
    return rows


def export_comparison(result: compare.Comparison | None):
    """(CSV download, JSONL download) of the last comparison, hidden while there is none."""
    if not isinstance(result, compare.Comparison):
        return gr.DownloadButton(value=None, visible=False), gr.DownloadButton(value=None, visible=False)
    folder = Path(tempfile.mkdtemp(prefix="rlhf-studio-compare-"))
    stem = f"comparison-{time.strftime('%Y%m%d-%H%M%S')}"
    csv_path, jsonl_path = folder / f"{stem}.csv", folder / f"{stem}.jsonl"
    csv_path.write_text(compare.to_csv(result), encoding="utf-8")
    jsonl_path.write_text(compare.to_jsonl(result), encoding="utf-8")
    return (
        gr.DownloadButton(value=str(csv_path), visible=True),
        gr.DownloadButton(value=str(jsonl_path), visible=True),
    )


# ---------------------------------------------------------------- layout


def build(tab: gr.Tab | None = None) -> Panel:
    """The tab's widgets and events; `tab` (the gr.Tab holding it) refreshes the pickers each time it is opened.
    Returns what other parts of the page may fill in and run (Panel)."""
    run_choices, reward_choices = _choices()
    with gr.Row():
        runs = gr.Dropdown(
            choices=run_choices,
            value=[],
            multiselect=True,
            label="Runs to compare",
            info="Completed runs; the first run's base model is the base column",
            scale=4,
        )
        reward = gr.Dropdown(
            choices=reward_choices,
            value=NO_REWARD,
            label="Reward run",
            info="A completed reward model scores every answer",
            scale=3,
        )
        refresh = gr.Button("Refresh lists", scale=1, size="sm")
    settings = generation.build()

    with gr.Tab("Side by side"):
        source = gr.Radio(choices=PROMPT_SOURCES, value=TYPED, label="Prompts")
        prompts = gr.Textbox(
            label="Prompts (one per line)", lines=4, placeholder="Name a fruit.\nHow do I boil an egg?"
        )
        with gr.Accordion("Sample prompts from the first run's held-out data", open=False) as sampling:
            with gr.Row():
                count = gr.Number(value=SAMPLE_COUNT, precision=0, label="Held-out prompts to sample", scale=1)
                seed = gr.Number(value=0, precision=0, label="Sampling seed", scale=1)
                sample = gr.Button("Sample", scale=1, size="sm")
            sampled_table = gr.Dataframe(
                headers=["#", "held-out prompt"],
                value=[],
                interactive=False,
                wrap=True,
                label="Sampled held-out prompts",
                max_height=240,
            )
        go = gr.Button("Generate", variant="primary")
        message = gr.Markdown()
        answers = gr.HTML(css_template=TABLE_CSS, elem_id="compare-answers")
        summary = gr.Dataframe(headers=SUMMARY_COLUMNS, value=[], interactive=False, label="Summary per model")
        with gr.Row():
            csv_file = gr.DownloadButton("Download CSV", visible=False)
            jsonl_file = gr.DownloadButton("Download JSONL", visible=False)

    with gr.Tab("Vote", elem_id="compare-vote") as vote_tab:
        vote_view.build(settings, [t for t in (tab, vote_tab) if t is not None])

    with gr.Tab("Judge", elem_id="compare-judge") as judge_tab:
        eval_view.build([t for t in (tab, judge_tab) if t is not None])

    sampled = gr.State(None)
    comparison = gr.State(None)

    pickers = [runs, reward]
    refresh.click(compare_choices, outputs=pickers, api_name="compare_choices")
    if tab is not None:
        tab.select(
            compare_choices,
            outputs=pickers,
            api_name="compare_choices_on_open",
            api_visibility="private",
            show_progress="hidden",
        )

    sample.click(
        sample_prompts,
        inputs=[runs, count, seed],
        outputs=[sampled, sampled_table, source, message],
        api_name="sample_prompts",
    )
    source.input(
        pick_source,
        inputs=[source, runs, count, seed],
        outputs=[sampled, sampled_table, message, sampling],
        api_name="pick_source",
    )
    prompts.input(
        lambda: TYPED, outputs=source, api_name="typed_prompts", api_visibility="private", show_progress="hidden"
    )
    compare_inputs = [runs, source, prompts, reward, sampled, *settings, count, seed]
    compare_outputs = [comparison, message, answers, summary, sampled]
    generated = go.click(
        run_compare, inputs=compare_inputs, outputs=compare_outputs, api_name="compare", **generation.QUEUE
    )
    generated.then(export_comparison, inputs=comparison, outputs=[csv_file, jsonl_file], api_name="export_comparison")
    generated.then(
        sampled_rows,
        inputs=sampled,
        outputs=sampled_table,
        api_name="sampled_rows",
        api_visibility="private",
        show_progress="hidden",
    )

    return Panel(fills=[runs, reward, source, prompts], inputs=compare_inputs, outputs=compare_outputs)
