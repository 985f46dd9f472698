"""The Compare tab's "Vote set" section, under the voting area (components/vote_view.py places it): make and edit
vote sets, read what a set holds and how far its annotators agree, export or push it as a dataset, and train the
next RLHF round on its votes. The engine (studio/data/votes: sets, agreement; studio/publish/vote_sets.py;
studio/pipelines/rounds.py) decides; this lays out and formats.

    set form     name (for a new set), guidelines (shown above the answers while voting), the models votes draw
                 from, the prompts: a completed run whose held-out prompts are drawn, or typed ones (one per line;
                 used when no run is picked), the policy the rounds start from (a completed run or a base model)
                 and the judges of each round's win rate. Create makes a new set from the form and selects it;
                 Save writes the form into the selected set (its votes are untouched). Selecting a set fills the
                 form with its settings
    summary      votes, training pairs, rankings, undone votes, annotators with their counts, each broken line of
                 the votes file (named, skipped); a table of every level (the four grades, ungraded, tie, both bad)
                 with its count and share; agreement between every two annotators on the pairs both judged
                 (percent and Cohen's kappa, pooled when more than two people overlap)
    export       writes the set as a dataset folder (Parquet and a dataset card) and offers it as a zip download
    push         pushes that dataset to the Hub (repo id, private); the token is never typed here: as for model
                 pushes (the Share tab) it comes from HF_TOKEN or `huggingface-cli login` on the studio's machine
    next round   "Train on these votes" with PPO or rejection sampling starts the set's next round as a recorded
                 pipeline (a reward model on all votes so far, the policy step, a compare with the round before);
                 the rounds table lists RLHF-V1, V2, ... with their lineage and win rates against the round before
The summary and the rounds table are read again when the set changes and on Refresh.

Endpoints for scripts and tests (gradio_client), each one handler:
/vote_set_create(name, *form) -> (set picker, message), /vote_set_load(set_name) -> (*form, message),
/vote_set_save(set_name, *form) -> message, /vote_set_summary(set_name, annotator) -> (summary, levels table,
agreement table), /vote_set_pickers(models, prompts_from, policy, judges) -> (the four pickers, Hub token line),
/vote_set_export(set_name) -> (message, zip download), /vote_set_push(set_name, repo_id, private) -> message,
/vote_round_start(set_name, stage ("ppo" or "rejection")) -> message, /vote_rounds(set_name) -> (note, rounds
table). *form is (guidelines, models, prompts_from, prompts, policy, judges): prompts_from and policy "" for none,
prompts the typed text (one prompt per line), models and judges lists. Messages are Markdown; a refusal is one
error line (components/oneline.py).
"""

from __future__ import annotations

import html
import re
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import gradio as gr

from components.oneline import error_markdown
from studio import config as cfg
from studio import spaces
from studio.data.votes import records, sets
from studio.errors import StudioError
from studio.runs import manager
from studio.runs.status import State
from studio.serve import generate

NO_RUN = ""  # the prompts-from picker's entry for "typed prompts" and the policy picker's for "not picked"
LEVELS = [
    *records.GRADES,
    "ungraded",
    *records.OUTCOMES,
]  # Summary.by_level's keys, in the order the table lists them
LEVEL_LABELS = {**records.GRADE_LABELS, "ungraded": "Ungraded (before grades)", **records.OUTCOME_LABELS}
LEVEL_COLUMNS = ["level", "votes", "share"]
AGREEMENT_COLUMNS = ["annotators", "pairs both judged", "agreed", "agreement", "Cohen's kappa"]
ROUND_COLUMNS = [
    "round",
    "stage",
    "state",
    "lineage (policy before -> after)",
    "reward run",
    "votes / pairs",
    "win rate vs round before [95% interval]",
    "judge",
    "started",
]
NO_ROUNDS = "No rounds yet: Train on these votes starts RLHF-V1 (or `rlhf-studio votes next-round SET --stage ppo`)."
ROUND_WIDTHS = ["8%", "9%", "12%", "20%", "13%", "8%", "12%", "10%", "8%"]


def set_choices() -> list[str]:
    """Every vote set by name, "default" always among them (it is made when first used)."""
    return sorted({*sets.names(), sets.DEFAULT_SET})


# ---------------------------------------------------------------- pickers


def _completed_runs() -> list[tuple[str, str]]:
    """(label, id) of every completed run, newest first: any of them held prompts out of training."""
    rows = [r for r in manager.list_runs() if r["state"] == State.COMPLETED]
    return [(f"{r['id']} ({r['name']})" if r["name"] else r["id"], r["id"]) for r in reversed(rows)]


def _saved_judges() -> list[tuple[str, str]]:
    """The judges of <home>/judges.yaml by label; none when it does not read (the Judge view says why)."""
    from studio.eval import judges

    try:
        return [(f"{j.label} ({j.kind})", j.label) for j in judges.saved_judges()]
    except StudioError:
        return []


def _with(choices: list[tuple[str, str]], values) -> list[tuple[str, str]]:
    """The choices, with any value a set names that is not among them (a deleted run) added as itself, so that the
    set still shows what it says."""
    known = {value for _label, value in choices}
    extra = [v for v in ([values] if isinstance(values, str) else values or []) if v and v not in known]
    return choices + [(v, v) for v in extra]


def picker_choices(models=None, prompts_from=None, policy=None, judges=None) -> tuple[list, list, list, list]:
    """Today's choices of the models, prompts-from, policy and judges pickers, the given values kept listed."""
    answering = generate.answering_models()
    return (
        _with(answering, models),
        _with([("(none: the typed prompts)", NO_RUN), *_completed_runs()], prompts_from),
        _with([("(not picked: the first base model of Models)", NO_RUN), *answering], policy),
        _with(_saved_judges(), judges),
    )


def vote_set_pickers(models=None, prompts_from=None, policy=None, judges=None):
    """The form's pickers listed again (runs finish meanwhile) and the Hub token line."""
    return (
        *(gr.Dropdown(choices=c) for c in picker_choices(models, prompts_from, policy, judges)),
        spaces.token_line(),
    )


# ---------------------------------------------------------------- the set form


def typed_prompts(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _settings(guidelines, models, prompts_from, prompts, policy, judges) -> dict:
    """The form's boxes as VoteSet fields."""
    return {
        "guidelines": (guidelines or "").strip(),
        "models": list(models or []),
        "prompts_from": prompts_from or None,
        "prompts": typed_prompts(prompts),
        "policy": policy or None,
        "judges": [j.strip() for j in judges or [] if j.strip()],
    }


def vote_set_create(name: str | None, guidelines, models, prompts_from, prompts, policy, judges=None):
    """(set picker with the new set selected, message); a used or bad name gives (unchanged, one line)."""
    try:
        made = sets.create(
            sets.VoteSet(name=name or "", **_settings(guidelines, models, prompts_from, prompts, policy, judges))
        )
    except Exception as err:
        return gr.skip(), error_markdown(err)
    return (
        gr.Dropdown(choices=set_choices(), value=made.name),
        f"Created the vote set `{made.name}` and selected it: votes now go into it.",
    )


def vote_set_load(set_name: str | None):
    """(guidelines, models, prompts_from, prompts, policy, judges, message): the selected set's settings in the
    form."""
    try:
        if not set_name:
            raise StudioError("pick a vote set, or create one")
        chosen = sets.load(set_name)
    except Exception as err:
        return (*[gr.skip()] * 6, error_markdown(err))
    models, prompts_from, policy, judges = picker_choices(
        chosen.models, chosen.prompts_from, chosen.policy, chosen.judges
    )
    return (
        chosen.guidelines,
        gr.Dropdown(choices=models, value=list(chosen.models), multiselect=True),
        gr.Dropdown(choices=prompts_from, value=chosen.prompts_from or NO_RUN),
        "\n".join(chosen.prompts),
        gr.Dropdown(choices=policy, value=chosen.policy or NO_RUN),
        gr.Dropdown(choices=judges, value=list(chosen.judges), multiselect=True),
        "",
    )


def vote_set_save(set_name: str | None, guidelines, models, prompts_from, prompts, policy, judges=None) -> str:
    """One line: what was saved into the selected set (its votes, name and creation time kept), or why not."""
    try:
        if not set_name:
            raise StudioError("pick the vote set to save into, or create one")
        edited = replace(sets.load(set_name), **_settings(guidelines, models, prompts_from, prompts, policy, judges))
        sets.save(edited)
    except Exception as err:
        return error_markdown(err)
    return f"Saved the settings of the vote set `{edited.name}`; its votes are kept."


# ---------------------------------------------------------------- summary


def _plain(text: str) -> str:
    """Text shown as written in Markdown: `<column>` would be a tag, an underscore italics."""
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", html.escape(text, quote=False))


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def level_rows(summary: sets.Summary) -> list[list]:
    """Every level with its votes and its share of the set's pair votes (rankings are counted apart)."""
    return [[LEVEL_LABELS[level], summary.by_level.get(level, 0), f"{summary.share(level):.1%}"] for level in LEVELS]


def _kappa_cell(kappa: float | None) -> str:
    return "undefined (both always said the same)" if kappa is None else f"{kappa:.3f}"


def agreement_rows(measured) -> list[list]:
    """One row per two annotators who judged a pair in common, then the pooled row when there are several."""
    rows = [
        [" & ".join(p.annotators), p.items, p.agreed, f"{p.percent:.1%}", _kappa_cell(p.kappa)] for p in measured.pairs
    ]
    if measured.overall is not None:
        o = measured.overall
        everyone = f"all ({', '.join(o.annotators)})"
        rows.append([everyone, o.items, o.agreed, f"{o.percent:.1%}", _kappa_cell(o.kappa)])
    return rows


def summary_text(summary: sets.Summary, annotator: str | None, agreeing: int) -> str:
    """The lines above the tables: counts, annotators, agreement's reach, and each broken line skipped."""
    lines = [
        f"**`{summary.name}`**: {_count(summary.votes, 'vote')} ({_count(summary.rankings, 'ranking')}) giving "
        f"{_count(summary.pairs, 'training pair')}; {_count(summary.undone, 'vote')} undone."
    ]
    if summary.annotators:
        people = ", ".join(f"{_plain(name)} {n}" for name, n in sorted(summary.annotators.items()))
        lines.append(f"Annotators: {people}.")
    me = (annotator or "").strip()
    if me:
        lines.append(f"Yours ({_plain(me)}): {_count(summary.annotators.get(me, 0), 'vote')}.")
    if not agreeing:
        lines.append("Agreement: no answer pair has been judged by two annotators yet.")
    text = "\n\n".join(lines)
    if summary.problems:
        skipped = "\n".join(f"- {_plain(problem)}" for problem in summary.problems)
        text += f"\n\nSkipped {_count(len(summary.problems), 'broken line')} of the votes file:\n{skipped}"
    return text


def vote_set_summary(set_name: str | None, annotator: str | None = None):
    """(summary, levels table, agreement table) of the selected set."""
    try:
        if not set_name:
            raise StudioError("pick a vote set, or create one")
        summary = sets.summarize(set_name)
    except Exception as err:
        return error_markdown(err), [], []
    agreeing = agreement_rows(summary.agreement)
    return summary_text(summary, annotator, len(agreeing)), level_rows(summary), agreeing


# ---------------------------------------------------------------- export and push


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _zipped(folder: Path, archive: Path) -> Path:
    """The folder's files in a zip, paths relative to it (README.md, pairs/train.parquet, ...)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for name in _files(folder):
            out.write(folder / name, name)
    return archive


def vote_set_export(set_name: str | None):
    """(message naming the folder and its files, zip download): the set written as a dataset folder in a fresh
    temporary folder, and zipped."""
    hidden = gr.DownloadButton(value=None, visible=False)
    try:
        from studio.publish import vote_sets

        if not set_name:
            raise StudioError("pick the vote set to export")
        where = Path(tempfile.mkdtemp(prefix="rlhf-studio-votes-"))
        folder = Path(vote_sets.export(set_name, where / set_name))
        archive = _zipped(folder, where / f"{set_name}-{time.strftime('%Y%m%d-%H%M%S')}.zip")
    except Exception as err:
        return error_markdown(err), hidden
    files = "\n".join(f"- `{name}`" for name in _files(folder))
    message = f"Exported the vote set `{set_name}` as a dataset to `{folder}`:\n{files}"
    return message, gr.DownloadButton(value=str(archive), visible=True)


def vote_set_push(set_name: str | None, repo_id: str | None, private: bool) -> str:
    """One line: where the set's dataset went, or why it did not."""
    try:
        from studio.publish import vote_sets

        if not set_name:
            raise StudioError("pick the vote set to push")
        if not (repo_id or "").strip():
            raise StudioError("type a dataset repo id, such as your-name/helpful-votes")
        url = vote_sets.push(set_name, repo_id.strip(), token=None, private=bool(private))
    except Exception as err:
        return error_markdown(err)
    return f"Pushed the vote set `{set_name}` as a dataset to {url}" + (" (private)." if private else ".")


# ---------------------------------------------------------------- rounds


def _stage_label(stage: str) -> str:
    """A stage as its summary names it: "PPO", "Rejection sampling"."""
    name = cfg.STAGE_SUMMARIES.get(stage, stage).split(":")[0]
    return name[:1].upper() + name[1:]


def _round_stages() -> list[tuple[str, str]]:
    return [(_stage_label(stage), stage) for stage in cfg.ROUND_STAGES]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def win_rate_cell(result: dict) -> str:
    """ "62% [41%, 80%] on 8 prompts"; the judge's error when it could not finish; "no verdicts" when it gave none."""
    if result.get("error"):
        return f"not measured: {result['error']}"
    if result.get("win_rate") is None:
        return "no verdicts"
    rate = f"{_percent(result['win_rate'])} [{_percent(result.get('ci_low'))}, {_percent(result.get('ci_high'))}]"
    return f"{rate} on {result['n']} prompts" if result.get("n") else rate


def round_rows(found: list) -> list[list]:
    """One row per round, oldest first, ROUND_COLUMNS; a round measured by several judges lists one per line."""
    rows = []
    for r in found:
        judged = sorted((r.win_rate or {}).items())
        rows.append(
            [
                r.label,
                _stage_label(r.stage),
                f"{r.state}: {r.error}" if r.error else r.state,
                f"{r.previous_policy} -> {r.policy_run or ('(training)' if r.state == 'running' else '(none)')}",
                r.reward_run or "",
                f"{r.votes} / {r.pairs}",
                "\n".join(win_rate_cell(result) for _key, result in judged),
                "\n".join(key for key, _result in judged),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)),
            ]
        )
    return rows


def vote_rounds(set_name: str | None):
    """(note, rounds table) of the selected set: RLHF-V1, V2, ... oldest first; the note says why there are none."""
    try:
        from studio.pipelines import rounds

        if not set_name:
            raise StudioError("pick a vote set, or create one")
        found = rounds.rounds(set_name)
    except Exception as err:
        return error_markdown(err), []
    if not found:
        return NO_ROUNDS, []
    return f"{_count(len(found), 'round')}, oldest first.", round_rows(found)


def vote_round_start(set_name: str | None, stage: str | None) -> str:
    """One line: the round started and where to follow it, or why not (too few pairs, a round still running ...)."""
    try:
        from studio.pipelines import rounds

        if not set_name:
            raise StudioError("pick the vote set whose votes the round trains on")
        started = rounds.start(set_name, stage or "")
    except Exception as err:
        return error_markdown(err)
    return (
        f"Started {started.label} of `{set_name}`: a reward model on {_count(started.pairs, 'training pair')} from "
        f"{_count(started.votes, 'vote')}, then {_stage_label(started.stage)} from `{started.previous_policy}`, as "
        f"pipeline `{started.pipeline_id}`; follow it in the Pipelines tab."
    )


# ---------------------------------------------------------------- layout


def build(set_name: gr.Dropdown, annotator: gr.Textbox) -> None:
    """The section's widgets and events, laid out where it is called (under the voting area); `set_name` is the
    voting area's set picker, which Create updates, and `annotator` its annotator box."""
    models_now, prompts_now, policy_now, judges_now = picker_choices()
    with gr.Accordion("Vote set", open=False, elem_id="vote-set"):
        with gr.Accordion("Settings: create a set, or edit the selected one", open=False):
            new_name = gr.Textbox(
                label="New set name",
                placeholder="helpful-v1",
                info="For Create: letters, digits, '-', '_' or '.'. Save writes the boxes below into the selected set",
            )
            guidelines = gr.Textbox(label="Guidelines", lines=4, info="Shown above the answers while voting in the set")
            models = gr.Dropdown(
                choices=models_now,
                value=[],
                multiselect=True,
                label="Models",
                info="Whose answers are voted on: base models and completed runs (after a round, its newest policies)",
            )
            with gr.Row():
                prompts_from = gr.Dropdown(
                    choices=prompts_now,
                    value=NO_RUN,
                    label="Prompts from run",
                    info="A completed run whose held-out prompts are drawn",
                )
                prompts = gr.Textbox(
                    label="Typed prompts", lines=3, info="One per line, drawn in turn when no run is picked"
                )
            with gr.Row():
                policy = gr.Dropdown(
                    choices=policy_now,
                    value=NO_RUN,
                    label="Policy the rounds start from",
                    info="RLHF-V1 trains from it: a completed run or a base model",
                )
                judges = gr.Dropdown(
                    choices=judges_now,
                    value=[],
                    multiselect=True,
                    allow_custom_value=True,
                    label="Judges of each round",
                    info="Saved judges (Compare > Judge), or reward_run:RUN_ID, builtin:RULE; none: the round's own "
                    "reward model",
                )
            with gr.Row():
                create = gr.Button("Create set", variant="primary")
                save = gr.Button("Save into the selected set")
            form_message = gr.Markdown()

        with gr.Row():
            gr.Markdown("**What the set holds**")
            refresh = gr.Button("Refresh", size="sm", scale=0)
        summary = gr.Markdown(elem_id="vote-set-summary")
        with gr.Row():
            levels = gr.Dataframe(
                headers=LEVEL_COLUMNS,
                value=[],
                interactive=False,
                column_widths=["56%", "18%", "26%"],
                label="Share per level",
                scale=2,
            )
            agreeing = gr.Dataframe(
                headers=AGREEMENT_COLUMNS,
                value=[],
                interactive=False,
                wrap=True,
                label="Agreement between annotators, on the answer pairs both judged",
                scale=3,
            )

        with gr.Accordion("Export, or push to the Hub as a dataset", open=False):
            with gr.Row():
                export_button = gr.Button("Export as a dataset (zip)")
                download = gr.DownloadButton("Download the zip", visible=False)
            export_message = gr.Markdown()
            token = gr.Markdown(spaces.token_line())
            with gr.Row():
                repo_id = gr.Textbox(label="Dataset repo id", placeholder="your-name/helpful-votes", scale=3)
                private = gr.Checkbox(label="Private", info="Create the dataset repo private", scale=1)
                push_button = gr.Button("Push to the Hub", scale=1)
            push_message = gr.Markdown()

        gr.Markdown(
            "**Train on these votes**: a reward model (margin loss) on every vote of the set so far, then the policy "
            "learns against it from the newest round's policy, then a compare with the round before."
        )
        with gr.Row():
            stage = gr.Radio(choices=_round_stages(), value=cfg.ROUND_STAGES[0], label="How the policy learns", scale=2)
            start = gr.Button("Train on these votes", variant="primary", scale=1)
        start_message = gr.Markdown()
        rounds_note = gr.Markdown()
        rounds_table = gr.Dataframe(
            headers=ROUND_COLUMNS,
            value=[],
            interactive=False,
            wrap=True,
            column_widths=ROUND_WIDTHS,
            label="Rounds",
            elem_id="vote-rounds",
        )

    form = [guidelines, models, prompts_from, prompts, policy, judges]
    read = dict(inputs=[set_name, annotator], outputs=[summary, levels, agreeing])
    quiet = dict(api_visibility="private", show_progress="hidden")
    create.click(
        vote_set_create, inputs=[new_name, *form], outputs=[set_name, form_message], api_name="vote_set_create"
    )
    save.click(vote_set_save, inputs=[set_name, *form], outputs=form_message, api_name="vote_set_save")
    # A set picked (or just created) fills the form, and what it holds is read.
    set_name.change(
        vote_set_load, inputs=set_name, outputs=[*form, form_message], api_name="vote_set_load", show_progress="hidden"
    ).then(vote_set_summary, **read, api_name="vote_set_summary").then(
        vote_rounds, inputs=set_name, outputs=[rounds_note, rounds_table], api_name="vote_rounds"
    )
    refresh.click(
        vote_set_pickers,
        inputs=[models, prompts_from, policy, judges],
        outputs=[models, prompts_from, policy, judges, token],
        api_name="vote_set_pickers",
    ).then(vote_set_summary, **read, api_name="vote_set_summary_refresh", **quiet).then(
        vote_rounds, inputs=set_name, outputs=[rounds_note, rounds_table], api_name="vote_rounds_refresh", **quiet
    )
    export_button.click(
        vote_set_export, inputs=set_name, outputs=[export_message, download], api_name="vote_set_export"
    )
    push_button.click(
        vote_set_push, inputs=[set_name, repo_id, private], outputs=push_message, api_name="vote_set_push"
    )
    start.click(vote_round_start, inputs=[set_name, stage], outputs=start_message, api_name="vote_round_start").then(
        vote_rounds, inputs=set_name, outputs=[rounds_note, rounds_table], api_name="vote_rounds_after_start", **quiet
    )
