"""The "Start here" strip at the top of the page: what the studio does in one line, the path through its tabs, and a
button that runs the offline demo (studio/demo.py: SFT, a reward model, PPO and DPO on the built-in tiny model),
shows its runs training in the Runs tab, and once they are done its comparison in the Compare tab.

Shown when the page opens on a studio home with no runs yet, and while a demo started here runs; Hide puts it away.

    strip = start_strip.build()                      # before the tabs, inside the Blocks
    start_strip.attach(strip, demo, tabs, compare_panel, runs)

Endpoints: /start_demo, /follow_demo(pipeline id).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from components import compare_tab, generation, runs_tab
from components.oneline import error_markdown
from studio import demo as offline_demo
from studio.runs import manager
from studio.runs.status import State

POLL_SECONDS = 2.0
RUNS_SHOWN = 4  # runs_tab.restore's answer: the selected run, whether the tab shows, its two timers
SHOWN_QUESTIONS = 8  # of the demo's held-out questions, compared in the Compare tab (all 24 take a while on a CPU)
INTRO = (
    "**Start here.** RLHF Studio tunes a language model on your feedback: supervised fine-tuning, a reward model, "
    "then PPO, DPO or GRPO, every run charted live. The path: **Model** (pick one) -> **Data** (check it) -> "
    "**Train** (a stage) -> **Runs** (watch it) -> **Compare** (base and tuned answers side by side). No GPU or "
    "internet needed for the demo: it teaches the built-in tiny model to answer in a polite format, in a few "
    "minutes on a CPU."
)


@dataclass
class Strip:
    group: gr.Column
    start: gr.Button
    hide: gr.Button
    message: gr.Markdown
    pipeline: gr.State
    timer: gr.Timer


def build() -> Strip:
    with gr.Column(visible=False, elem_id="start-here", variant="panel") as group:
        with gr.Row(equal_height=True):
            gr.Markdown(INTRO)
            with gr.Column(scale=0, min_width=220):
                start = gr.Button("Run the offline demo", variant="primary")
                hide = gr.Button("Hide", size="sm")
        message = gr.Markdown(elem_id="demo-progress")
    return Strip(
        group=group,
        start=start,
        hide=hide,
        message=message,
        pipeline=gr.State(""),
        timer=gr.Timer(POLL_SECONDS, active=False),
    )


def first_open():
    """Show the strip on a home with no runs yet (checked each time the page loads)."""
    return gr.Column(visible=not manager.list_runs())


def start_demo():
    """(message, pipeline id, timer, tabs, *the Runs tab's shown state): start the demo's pipeline and move to the
    Runs tab to watch it (a tab picked from here is not picked by the person, so the Runs tab is told it shows)."""
    try:
        record = offline_demo.start()
    except Exception as err:
        return error_markdown(err), "", gr.Timer(active=False), gr.skip(), *[gr.skip()] * RUNS_SHOWN
    return (
        f"Started the demo (pipeline {record.id}): its runs train in the Runs tab, and the Compare tab shows "
        "base and tuned answers once they are done.",
        record.id,
        gr.Timer(active=True),
        gr.Tabs(selected="runs"),
        *runs_tab.restore("", True),
    )


def follow_demo(pipeline_id: str):
    """(message, timer, *the Compare tab's fills, done): the stages' progress; when the demo completes, the Compare
    tab gets its runs, its reward model and held-out questions, and `done` asks for the comparison."""
    unchanged = (gr.skip(),) * 4
    if not pipeline_id:
        return gr.skip(), gr.Timer(active=False), *unchanged, False
    try:
        where = offline_demo.progress(pipeline_id)
    except Exception as err:
        return error_markdown(err), gr.Timer(active=False), *unchanged, False
    line = f"Demo {where.state}: " + "; ".join(where.lines) + "."
    if where.state == State.COMPLETED:
        fills = compare_tab.filled_with(
            [where.runs[name] for name in offline_demo.policy_steps()],
            where.runs["rm"],
            offline_demo.held_out_questions()[:SHOWN_QUESTIONS],
        )
        return (
            line + " The Compare tab shows the base model and the tuned ones on held-out questions, scored by "
            "the demo's reward model.",
            gr.Timer(active=False),
            *fills,
            True,
        )
    if where.state in (State.FAILED, State.CANCELLED):
        return line + " See the Pipelines tab for why.", gr.Timer(active=False), *unchanged, False
    return line, gr.skip(), *unchanged, False


def compare_when_done(done: bool, *values):
    """The Compare tab's comparison of the demo, once follow_demo says it is done (else nothing changes)."""
    if not done:
        return (gr.skip(),) * 5
    return compare_tab.run_compare(*values)


def attach(strip: Strip, blocks: gr.Blocks, tabs: gr.Tabs, panel: compare_tab.Panel, runs: list) -> None:
    """Wire the strip: `runs` are what runs_tab.restore answers for (the Runs tab's selection, shown state and
    timers), `panel` what the Compare tab lets others fill in and run."""
    assert len(runs) == RUNS_SHOWN
    done = gr.State(False)
    blocks.load(first_open, outputs=strip.group, api_visibility="private", show_progress="hidden")
    strip.hide.click(None, js="() => ({__type__: 'update', visible: false})", outputs=strip.group)
    strip.start.click(
        start_demo, outputs=[strip.message, strip.pipeline, strip.timer, tabs, *runs], api_name="start_demo"
    )
    strip.timer.tick(
        follow_demo,
        inputs=strip.pipeline,
        outputs=[strip.message, strip.timer, *panel.fills, done],
        api_name="follow_demo",
        show_progress="hidden",
    ).then(
        compare_when_done,
        inputs=[done, *panel.inputs],
        outputs=panel.outputs,
        api_name="compare_demo",
        api_visibility="private",
        show_progress="hidden",
        **generation.QUEUE,
    )
