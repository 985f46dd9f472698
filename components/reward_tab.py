"""Reward models tab: what a finished reward model thinks (studio/serve/scoring.py).

    Score two answers   a prompt and two answers -> each answer's score and the one the model prefers, with the
                        chance it gives that preference (the Bradley-Terry sigmoid of the difference, what the
                        reward trainer fits)
    Held-out pairs      the run's accuracy on the pairs its data.eval_fraction held out of training, the ones its
                        data_report.json records (the share whose chosen answer scores above the rejected one), and
                        a histogram of the chosen and rejected scores overlaid

Endpoints for scripts and tests (gradio_client): /reward_runs(current pick),
/score_pair(run, prompt, answer_a, answer_b), /evaluate_reward(run, limit).
"""

from __future__ import annotations

import math

import gradio as gr

from components.oneline import error_markdown
from studio.errors import StudioError
from studio.monitor import charts
from studio.serve import scoring

QUEUE = dict(concurrency_id="reward", concurrency_limit=1)  # one reward model computes at a time


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


def build(tab: gr.Tab | None = None) -> None:
    """The tab's widgets and events; `tab` (the gr.Tab holding it) refreshes the run list each time it is opened."""
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
