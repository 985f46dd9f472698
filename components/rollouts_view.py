"""Runs tab, the Rollouts accordion: every answer an online run (ppo, grpo, rloo, rejection) sampled, browsable by step,
live while the run trains. The engine (studio.monitor.rollout_view) decides what is shown; this lays it out and
formats it.

    step slider   over the recorded steps; it follows the newest step while it sits on the latest
    answers       that step's table (#, prompt, answer, each source's score, reward, KL, length, and group, advantage
                  or kept where the stage has them), sorted by the chosen column, filtered by a text
    charts        the combined score and the answer length per step over the run as quantile bands, the step marked
    group view    grpo, rloo, rejection: one prompt's answers side by side, best first (hidden for ppo)
    token view    an answer with token detail, each token coloured by policy minus reference log-probability
    best / worst  the highest and lowest scored answers of the run so far, with their steps

Each browser session keeps a RolloutFeed (RolloutSession), so a refresh reads only the lines appended since the last
one. Its timer ticks while the Runs tab is shown and the selected run is online and not finished; a tick costs one
stat of rollouts.jsonl (and the run's status) and redraws only when the file grew.

Endpoints for scripts and tests (gradio_client), each reading the run's rollouts whole:
/rollouts(run_id, step, sort, text), /rollout_group(run_id, step, group), /rollout_tokens(run_id, step, index),
/rollout_overview(run_id).
"""

from __future__ import annotations

import html
import math
import threading
from dataclasses import asdict, dataclass

import gradio as gr

from studio.errors import StudioError
from studio.monitor import rollout_view as rv
from studio.runs import rollouts
from studio.runs.rundir import RunDir

REFRESH_SECONDS = 2
WRITTEN_ORDER = "sampled"  # the sort choice that keeps the answers in the order they were sampled
SORT_CHOICES = [("as sampled", WRITTEN_ORDER), *((key.replace("kl", "KL"), key) for key in rollouts.SORT_KEYS)]
NONE_YET = "No answers recorded yet: they appear after the first step."
NONE_RECORDED = "This run recorded no answers (rollouts.record was off, or it stopped before its first step)."
PREVIEW_CHARS = 60  # of an answer or prompt, in a picker's labels
# Shares of a table's width: the texts get most of it, the numbers share the rest.
TEXT_WIDTHS = {"#": 4, "prompt": 22, "answer": 32}
EXTREME_WIDTHS = ["6%", "8%", "36%", "50%"]  # step, reward, prompt, answer


# ---------------------------------------------------------------- formatting


def cell(value) -> str:
    """A table cell: numbers to 4 significant digits, a flag as ✓, a missing value empty."""
    if value is None or value is False:
        return ""
    if value is True:
        return "✓"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cells(rows: list[list]) -> list[list[str]]:
    return [[cell(v) for v in row] for row in rows]


def widths(headers: list[str]) -> list[str]:
    """Column widths in percent: the text columns their TEXT_WIDTHS share, the others an equal part of the rest."""
    fixed = sum(TEXT_WIDTHS.get(h, 0) for h in headers)
    others = [h for h in headers if h not in TEXT_WIDTHS]
    rest = (100 - fixed) / len(others) if others else 0
    return [f"{TEXT_WIDTHS.get(h, rest):.4g}%" for h in headers]


def preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _sort(sort: str | None) -> str | None:
    return None if not sort or sort == WRITTEN_ORDER else sort


def _step(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def token_legend(view: rv.TokenView) -> str:
    if not view.has_reference:
        return f"<p>{html.escape(view.note)}</p>"
    return (
        "<p>Blue: the policy finds the token likelier than the reference does; red: less likely; "
        f"full colour at ±{view.scale:.3g} nats. Hover a token for its log-probabilities.</p>"
    )


# ---------------------------------------------------------------- one session's view


class RolloutSession:
    """One browser session's view: the feed of the run it follows, the newest step it drew (the slider follows new
    steps while it sits there) and what each output shows, so an unchanged output is not sent again."""

    def __init__(self):
        self.lock = threading.Lock()  # a tick and a person's change may arrive together
        self.run_id = ""  # as selected (a prefix is allowed), so that a tick needs no lookup
        self.run: RunDir | None = None
        self.feed: rv.RolloutFeed | None = None
        self.x_label = "step"
        self.latest: int | None = None
        self.drawn: dict[str, object] = {}

    def follow(self, run_id: str) -> None:
        """Follow this run (StudioError for one that records no rollouts); a new run starts a new feed."""
        if run_id == self.run_id and self.feed is not None:
            return
        self.run_id, self.run, self.feed, self.latest, self.drawn = run_id, None, None, None, {}
        run, stage = rollouts.online_run(run_id)
        self.run, self.feed, self.x_label = run, rv.RolloutFeed(run), stage.x_label

    def final(self) -> bool:
        """Whether the followed run can add no more answers (finished, or gone)."""
        try:
            return self.run is None or self.run.read_status().final
        except (OSError, ValueError, StudioError):
            return True

    def send(self, name: str, signature, update):
        """The update, or a skip when this output already shows what `signature` describes."""
        if self.drawn.get(name) == signature:
            return gr.skip()
        self.drawn[name] = signature
        return update


# The outputs every drawing handler answers, in this order.
OUTPUTS = (
    "note",
    "step",
    "table",
    "reward_plot",
    "length_plot",
    "group_box",
    "group_pick",
    "group_prompt",
    "group_table",
    "token_box",
    "token_pick",
    "token_html",
    "best",
    "worst",
)


def _slider(session: RolloutSession, steps: list[int], shown: int, wanted: float | None):
    """The slider, sent only when its range changed or it must move: to the newest step, or from a value between
    recorded steps to the nearest. Sent back while the person drags or presses keys, an answer arriving late would
    pull the slider back to where it was."""
    increment = math.gcd(*(s - steps[0] for s in steps)) or 1  # lands on every recorded step
    label = f"{session.x_label.capitalize()} ({len(steps)} recorded: {steps[0]} to {steps[-1]})"
    extent = (steps[0], steps[-1], increment, len(steps))
    if wanted == shown and session.drawn.get("step") == extent:
        return gr.skip()
    session.drawn["step"] = extent
    return gr.Slider(
        minimum=steps[0],
        maximum=steps[-1] if len(steps) > 1 else steps[0] + 1,
        step=increment,
        value=shown,
        visible=True,
        interactive=len(steps) > 1,
        label=label,
    )


def _table(session: RolloutSession, shown: int, sort: str | None, text: str):
    table = rv.step_table(session.feed.rows(shown), shown, _sort(sort), text or "")
    label = f"{session.x_label.capitalize()} {table.step}: {len(table.rows)} of {table.total} answers"
    if table.note:
        label += f" ({table.note})"
    rows = cells(table.rows)
    return session.send(
        "table",
        (label, tuple(table.headers), str(rows)),
        gr.Dataframe(value=rows, headers=table.headers, label=label, column_widths=widths(table.headers), visible=True),
    )


def _plots(session: RolloutSession, shown: int) -> list:
    out = []
    for key in ("reward", "length"):
        data = session.feed.distribution(key, shown, session.x_label)
        signature = (data.steps[-1] if data.steps else None, len(data.steps), data.missing, shown)
        out.append(session.send(f"{key}_plot", signature, gr.Plot(value=rv.band_figure(data), visible=True)))
    return out


def _margin(view: rv.GroupView) -> str:
    if view.winner_margin is None:
        return ""
    return ", the best tied" if view.winner_margin == 0 else f", the best {view.winner_margin:.4g} above the next"


def _group(session: RolloutSession, shown: int, group) -> list:
    rows = session.feed.rows(shown)
    choices = rv.group_choices(rows, shown)
    if not choices:
        return [
            session.send("group_box", False, gr.Column(visible=False)),
            *[gr.skip()] * 3,
        ]
    picked = group if any(c.group == group for c in choices) else choices[0].group
    view = rv.group_view(rows, shown, picked)
    labels = [(f"group {c.group} ({c.answers} answers): {preview(c.prompt)}", c.group) for c in choices]
    label = f"Group {picked} of {session.x_label} {shown}: {len(view.rows)} answers, best first{_margin(view)}"
    rows_shown = cells(view.rows)
    return [
        session.send("group_box", True, gr.Column(visible=True)),
        session.send("group_pick", (str(labels), picked), gr.Dropdown(choices=labels, value=picked)),
        session.send("group_prompt", view.prompt, gr.Textbox(value=view.prompt)),
        session.send(
            "group_table",
            (label, tuple(view.headers), str(rows_shown)),
            gr.Dataframe(value=rows_shown, headers=view.headers, label=label, column_widths=widths(view.headers)),
        ),
    ]


def _tokens(session: RolloutSession, shown: int, index) -> list:
    rows = session.feed.rows(shown)
    choices = rv.token_choices(rows, shown)
    if not choices:
        return [session.send("token_box", False, gr.Column(visible=False)), gr.skip(), gr.skip()]
    picked = index if any(c.index == index for c in choices) else choices[0].index
    view = rv.token_view(rows, shown, picked)
    labels = [(f"#{c.index} (reward {cell(c.reward) or 'none'}): {preview(c.answer)}", c.index) for c in choices]
    return [
        session.send("token_box", True, gr.Column(visible=True)),
        session.send("token_pick", (str(labels), picked), gr.Dropdown(choices=labels, value=picked)),
        session.send("token_html", token_legend(view) + view.html, gr.HTML(value=token_legend(view) + view.html)),
    ]


def _extremes(session: RolloutSession) -> list:
    found = session.feed.extremes()
    best, worst = cells(found.best), cells(found.worst)
    return [
        session.send("best", str(best), gr.Dataframe(value=best, headers=found.headers, column_widths=EXTREME_WIDTHS)),
        session.send(
            "worst", str(worst), gr.Dataframe(value=worst, headers=found.headers, column_widths=EXTREME_WIDTHS)
        ),
    ]


def _pick(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def draw(session: RolloutSession, step, sort: str | None, text: str, group, token, final: bool = False) -> list:
    """Every output of OUTPUTS for the session's run at the recorded step nearest `step` (the latest when None)."""
    feed = session.feed
    steps = feed.steps
    if not steps:
        hidden = [gr.Slider(visible=False), gr.Dataframe(visible=False), gr.Plot(visible=False)]
        session.drawn.clear()
        return [
            NONE_RECORDED if final else NONE_YET,
            *hidden,
            gr.Plot(visible=False),
            gr.Column(visible=False),
            *[gr.skip()] * 3,
            gr.Column(visible=False),
            gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.skip(),
        ]
    wanted = _step(step)
    shown = feed.nearest(wanted)
    session.latest = steps[-1]
    return [
        session.send("note", "", ""),
        _slider(session, steps, shown, wanted),
        _table(session, shown, sort, text),
        *_plots(session, shown),
        *_group(session, shown, _pick(group)),
        *_tokens(session, shown, _pick(token)),
        *_extremes(session),
    ]


def _hidden_view(message: str) -> list:
    return [gr.Accordion(visible=False), message, *[gr.skip()] * (len(OUTPUTS) - 1)]


def on_select(run_id: str, shown: bool, sort: str, text: str, session: RolloutSession | None) -> list:
    """[session, timer, accordion, *OUTPUTS] for a newly selected run: shown only for an online run, at its latest
    step; the timer runs while the tab is shown and the run can still add answers."""
    session = RolloutSession()  # a new run, a new feed: what the last one drew is no longer on the page
    if not run_id:
        return [session, gr.Timer(active=False), *_hidden_view("")]
    with session.lock:
        try:
            session.follow(run_id)
        except StudioError as err:
            return [session, gr.Timer(active=False), *_hidden_view(str(err))]
        final = session.final()  # read before the rows, so that a run finishing meanwhile is drawn whole
        session.feed.refresh()
        return [
            session,
            gr.Timer(active=bool(shown) and not final),
            gr.Accordion(visible=True),
            *draw(session, None, sort, text, None, None, final),
        ]


def on_tick(run_id: str, shown: bool, step, sort: str, text: str, group, token, session) -> list:
    """[session, timer, accordion, *OUTPUTS] on the view's timer: nothing unless rollouts.jsonl changed since the last
    draw (one stat); the slider follows the newest step while it sits on the latest one. The timer stops on a hidden
    tab and once the run is finished and drawn whole (its state is read before its rows)."""
    skipped = [gr.skip()] * (1 + len(OUTPUTS))
    if not shown or not isinstance(session, RolloutSession) or session.feed is None or session.run_id != run_id:
        return [session, gr.Timer(active=False), *skipped]
    if not session.lock.acquire(blocking=False):
        return [session, gr.skip(), *skipped]  # the draw in progress shows it
    try:
        final = session.final()
        timer = gr.Timer(active=False) if final else gr.skip()
        if not session.feed.has_new() or not session.feed.refresh():
            return [session, timer, *skipped]
        latest, wanted = session.latest, _step(step)
        follow = latest is None or wanted is None or wanted >= latest
        drawn = draw(session, None if follow else wanted, sort, text, group, token, final)
        return [session, timer, gr.skip(), *drawn]
    finally:
        session.lock.release()


def on_change(step, sort: str, text: str, group, token, session) -> list:
    """OUTPUTS after the person moves the slider, sorts, filters or picks a group or an answer."""
    if not isinstance(session, RolloutSession) or session.feed is None:
        return [gr.skip()] * len(OUTPUTS)
    with session.lock:
        return draw(session, step, sort, text, group, token)


def wake(run_id: str, shown: bool, session) -> gr.Timer:
    """The timer when the Runs tab is shown or left: it runs while shown for a followed run that is not finished."""
    live = shown and isinstance(session, RolloutSession) and session.feed is not None and session.run_id == run_id
    return gr.Timer(active=bool(live) and not session.final())


# ---------------------------------------------------------------- endpoints for scripts


def _loaded(run_id: str) -> tuple[str, str, list[dict]]:
    run, stage = rollouts.online_run(run_id)
    return run.id, stage.name, rollouts.read(run)


def rollout_rows(run_id: str, step: float | None = None, sort: str | None = None, text: str = "") -> dict:
    """The answers of the recorded step nearest `step` (the latest when empty), sorted by reward, kl or length from
    high to low (empty: as sampled), filtered by `text`: {"run_id", "stage", "steps", "step", "headers", "rows",
    "total", "note"}."""
    try:
        run_id, stage, rows = _loaded(run_id)
        table = rv.step_table(rows, _step(step), _sort(sort), text or "")
    except StudioError as err:
        return {"error": str(err)}
    return {"run_id": run_id, "stage": stage, "steps": rollouts.steps(rows), **asdict(table)}


def rollout_group(run_id: str, step: float | None = None, group: int | None = None) -> dict:
    """One group's answers at a step (the first group when empty), best first: {"run_id", "groups" ([{group,
    prompt, answers}]), "step", "group", "prompt", "headers", "rows", "winner_margin", "note"}."""
    try:
        run_id, _stage, rows = _loaded(run_id)
    except StudioError as err:
        return {"error": str(err)}
    steps = rollouts.steps(rows)
    shown = rv.nearest(steps, _step(step)) if steps else None
    choices = rv.group_choices(rows, shown)
    if group is None and choices:
        group = choices[0].group
    view = rv.group_view(rows, shown, None if group is None else int(group))
    return {"run_id": run_id, "groups": [asdict(c) for c in choices], **asdict(view)}


def rollout_tokens(run_id: str, step: float | None = None, index: int | None = None) -> dict:
    """An answer's tokens at a step (the first answer with token detail when `index` is empty): {"run_id",
    "choices" ([{index, answer, reward}]), "step", "index", "tokens" ([{text, logprob, ref_logprob, delta}]),
    "html", "scale", "has_reference", "note"}."""
    try:
        run_id, _stage, rows = _loaded(run_id)
    except StudioError as err:
        return {"error": str(err)}
    steps = rollouts.steps(rows)
    shown = rv.nearest(steps, _step(step)) if steps else None
    choices = rv.token_choices(rows, shown)
    if index is None and choices:
        index = choices[0].index
    view = rv.token_view(rows, shown, None if index is None else int(index))
    out = asdict(view)
    out["tokens"] = [{**asdict(t), "delta": t.delta} for t in view.tokens]
    return {"run_id": run_id, "choices": [asdict(c) for c in choices], **out}


def rollout_overview(run_id: str) -> dict:
    """The run as a whole: {"run_id", "steps", "reward" and "length" (per-step quantiles: steps, bands by
    quantile name, counts, missing), "best", "worst" (rows of step, reward, prompt, answer)}."""
    try:
        run_id, stage, rows = _loaded(run_id)
    except StudioError as err:
        return {"error": str(err)}
    found = rv.best_and_worst(rows)
    return {
        "run_id": run_id,
        "stage": stage,
        "steps": rollouts.steps(rows),
        **{key: asdict(rv.distribution(rows, key)) for key in rv.DISTRIBUTIONS},
        "best": found.best,
        "worst": found.worst,
    }


# ---------------------------------------------------------------- layout


@dataclass
class View:
    """The accordion's components, laid out by build and wired by wire."""

    accordion: gr.Accordion
    sort: gr.Dropdown
    text: gr.Textbox
    outputs: dict[str, gr.components.Component]
    session: gr.State
    timer: gr.Timer


def build() -> View:
    """Lay out the Rollouts accordion (hidden until an online run is selected)."""
    out: dict = {}
    with gr.Accordion("Rollouts", open=True, visible=False, elem_id="rollouts") as accordion:
        out["note"] = gr.Markdown(elem_id="rollouts-note")
        out["step"] = gr.Slider(1, 2, value=1, step=1, label="Step", visible=False, elem_id="rollouts-step")
        with gr.Row(equal_height=True):
            sort = gr.Dropdown(
                choices=SORT_CHOICES,
                value=WRITTEN_ORDER,
                label="Sort by (high to low)",
                elem_id="rollouts-sort",
                scale=1,
            )
            text = gr.Textbox(
                label="Filter",
                placeholder="text in the prompt or answer, then Enter",
                elem_id="rollouts-filter",
                scale=2,
            )
        out["table"] = gr.Dataframe(
            interactive=False, wrap=True, visible=False, elem_id="rollouts-table", max_height=560
        )
        with gr.Row():
            out["reward_plot"] = gr.Plot(visible=False, show_label=False, min_width=420)
            out["length_plot"] = gr.Plot(visible=False, show_label=False, min_width=420)
        with gr.Column(visible=False, elem_id="rollouts-group") as out["group_box"]:
            out["group_pick"] = gr.Dropdown(choices=[], label="Group (one prompt's answers)")
            out["group_prompt"] = gr.Textbox(label="Prompt", interactive=False, lines=2)
            out["group_table"] = gr.Dataframe(interactive=False, wrap=True, elem_id="rollouts-group-table")
        with gr.Column(visible=False, elem_id="rollouts-token-view") as out["token_box"]:
            out["token_pick"] = gr.Dropdown(choices=[], label="Token view (answers recorded token by token)")
            out["token_html"] = gr.HTML(elem_id="rollouts-tokens")
        # One above the other: side by side, the answers were cut to a few words.
        out["best"] = gr.Dataframe(interactive=False, wrap=True, label="Best so far", elem_id="rollouts-best")
        out["worst"] = gr.Dataframe(interactive=False, wrap=True, label="Worst so far", elem_id="rollouts-worst")
    return View(accordion, sort, text, out, gr.State(None), gr.Timer(REFRESH_SECONDS, active=False))


def wire(view: View, selected: gr.Textbox, shown: gr.State) -> None:
    """Connect the view to the tab's selected run and to whether the tab is shown, and add its endpoints."""
    private = dict(api_visibility="private", show_progress="hidden")
    outputs = [view.outputs[name] for name in OUTPUTS]
    picks = [view.outputs["step"], view.sort, view.text, view.outputs["group_pick"], view.outputs["token_pick"]]
    selected.change(
        on_select,
        inputs=[selected, shown, view.sort, view.text, view.session],
        outputs=[view.session, view.timer, view.accordion, *outputs],
        api_name="rollouts_on_select",
        **private,
    )
    view.timer.tick(
        on_tick,
        inputs=[selected, shown, *picks, view.session],
        outputs=[view.session, view.timer, view.accordion, *outputs],
        api_name="rollouts_on_tick",
        **private,
    )
    shown.change(wake, inputs=[selected, shown, view.session], outputs=view.timer, api_name="rollouts_wake", **private)
    # input, not change: only what the person does, never the updates sent from here
    for name, event in (
        ("step", view.outputs["step"].input),
        ("sort", view.sort.input),
        ("filter", view.text.submit),
        ("group", view.outputs["group_pick"].input),
        ("token", view.outputs["token_pick"].input),
    ):
        event(
            on_change,
            inputs=[*picks, view.session],
            outputs=outputs,
            api_name=f"rollouts_on_{name}",
            trigger_mode="always_last",
            **private,
        )
    gr.api(rollout_rows, api_name="rollouts")
    gr.api(rollout_group, api_name="rollout_group")
    gr.api(rollout_tokens, api_name="rollout_tokens")
    gr.api(rollout_overview, api_name="rollout_overview")
