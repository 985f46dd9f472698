"""The Compare tab's Vote sub-tab: people judge answers as Llama 2 and InstructGPT had them judged, into a vote set.
The engine decides (studio/serve/voting.py records, studio/serve/vote_queue.py makes the next item ahead,
studio/data/votes/sets.py keeps the set); this lays it out and formats. Open it with `rlhf-studio ui`, Compare > Vote.

    set, annotator  the vote set (its guidelines show above the answers) and the person's name, which every vote
                    records (this browser remembers it; a vote without one is refused)
    models          whose answers are judged: the models the set draws from (voting_models: its models before any
                    round, then the newest round's policy and the one before), any base model or completed run
    prompts         the set's (held-out prompts of its run, or its typed prompts in turn; with neither, held-out
                    prompts of the first picked run) or typed here, one per line, in turn
    mode            Pair: answers A and B in random order; A or B is better by one of Llama 2's four levels (one
                    click, or the keys A or B then 1 to 4), or a tie, or both bad. Rank K: K answers (3 to 9, one
                    model sampled K times or several models in turn), each given a rank (1 the best, equal numbers
                    tie), then Submit ranking
    after a vote    who wrote which is revealed with the set's counts, and the next item, generated in the
                    background while this one was read, shows at once; Skip reveals and saves nothing; Undo takes
                    back the annotator's last vote in the set
    keys            A / B then 1-4 (the level), T tie, X both bad, S skip, U undo, R submit ranking, G generate;
                    ignored while typing in a box
    vote set        the set's form, summary, agreement, export and rounds (components/vote_sets_view.py) below

Endpoints for scripts and tests (gradio_client): /vote_choices(set_name, models) -> (set picker, models picker),
/vote_pick_set(set_name) -> (guidelines, models picker, status), /vote_generate(set_name, models, mode ("pair" or
"rank"), k, prompt source ("set" or "typed"), prompts, *settings) -> (answer A, answer B, status, prompt, answers 1..9,
rank pickers 1..9, guidelines), /vote_pair(set_name, annotator, choice ("a", "b", "tie" or
"both_bad"), grade (records.GRADES; None for a tie or both bad)) -> reveal, /vote_rank(set_name, annotator, rank of
answer 1, ..., rank of answer 9) -> reveal (only the shown answers' ranks are read), /vote_skip -> reveal,
/vote_undo(set_name, annotator) -> reveal. *settings are the Compare tab's generation boxes (components/
generation.py). A vote goes into the set named, on the item the session was last shown; the item and the queue
that makes the next one ahead are kept per session.
"""

from __future__ import annotations

import html
from functools import partial

import gradio as gr

from components import generation, vote_sets_view
from components.oneline import as_error, error_markdown
from studio.data.votes import records, sets
from studio.errors import StudioError
from studio.serve import compare, generate, vote_queue, voting

PAIR, RANK = vote_queue.PAIR, vote_queue.RANK
MODES = [("Pair: A or B, and by how much", PAIR), ("Rank K answers", RANK)]
SET_PROMPTS, TYPED = "set", "typed"
PROMPT_SOURCES = [("the set's prompts", SET_PROMPTS), ("typed below, one per line", TYPED)]
RANK_DEFAULT = 4  # InstructGPT showed 4 to 9 answers; 4 keeps a first ranking quick
MAX_ANSWERS = records.RANK_SIZES[-1]
LEVEL_KEYS = {grade: str(i) for i, grade in enumerate(records.GRADES, start=1)}  # "1" is significantly better
KEYS = {"tie": "T", "both_bad": "X", "skip": "S", "undo": "U", "rank": "R", "go": "G"}
NO_NAME = "type your name in the Annotator box first: every vote records who cast it"
NOTHING_SHOWN = "Nothing to vote on: press Generate (G) first."
LEGEND = (
    '<div class="vote-keys">Keys: <b>A</b> or <b>B</b> (the better answer), then <b>1</b> significantly better, '
    "<b>2</b> better, <b>3</b> slightly better, <b>4</b> negligibly better or unsure &middot; <b>T</b> tie &middot; "
    "<b>X</b> both bad &middot; <b>S</b> skip &middot; <b>U</b> undo your last vote &middot; <b>R</b> submit the "
    'ranking &middot; <b>G</b> generate. Ignored while typing in a box. <span id="vote-side"></span></div>'
)

# Installed once per page by the legend as it loads: a key clicks the button of its choice (by elem_id) while the
# Vote view shows and the focus is in no text box. A/B picks the side and 1-4 the level, so a graded vote is two
# keys; the buttons themselves take one click.
KEYS_JS = """
if (!window.studioVoteKeys) {
  window.studioVoteKeys = true;
  let side = null;
  const visible = (el) => !!el && el.getClientRects().length > 0;
  const button = (id) => {
    const el = document.getElementById(id);
    return el && el.tagName !== 'BUTTON' ? el.querySelector('button') : el;
  };
  const typing = (el) => !!el && (el.isContentEditable || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' ||
    (el.tagName === 'INPUT' && !['radio', 'checkbox', 'range', 'button', 'submit'].includes(el.type)))
    && !el.disabled && !el.readOnly;
  const press = (id) => {
    const b = button(id);
    if (!visible(b) || b.disabled) return false;
    b.click();
    return true;
  };
  const mark = () => {
    for (const s of ['a', 'b']) {
      const row = document.getElementById('vote-row-' + s);
      if (row) row.style.outline = side === s ? '2px solid var(--color-accent)' : '';
    }
    const hint = document.getElementById('vote-side');
    if (hint) hint.textContent = side ? `${side.toUpperCase()} is better: now 1 to 4 (Esc: neither).` : '';
  };
  const keys = {t: 'vote-tie', x: 'vote-both-bad', s: 'vote-skip', u: 'vote-undo', r: 'vote-rank-submit',
    g: 'vote-go'};
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || typing(event.target)) return;
    if (!visible(document.getElementById('vote-view'))) return;
    const key = event.key.toLowerCase();
    let done = false;
    if ((key === 'a' || key === 'b') && visible(document.getElementById('vote-row-a'))) {
      side = key;
      done = true;
    } else if (key === 'escape') {
      side = null;
    } else if (/^[1-4]$/.test(key)) {
      if (side) done = press(`vote-${side}-${key}`);
      side = null;
    } else if (keys[key]) {
      done = press(keys[key]);
    }
    mark();
    if (done) event.preventDefault();
  });
}
"""


# ---------------------------------------------------------------- choices and the set


def set_choices() -> list[str]:
    """Every vote set by name, "default" always among them (it is made when first used)."""
    return sorted({*sets.names(), sets.DEFAULT_SET})


def _model_keys() -> list[str]:
    return [key for _label, key in generate.answering_models()]


def vote_choices(set_name: str | None, models: list[str] | None):
    """(set picker, models picker): today's sets and answering models; picks still listed stay."""
    names = set_choices()
    answering = generate.answering_models()
    keys = {key for _label, key in answering}
    return (
        gr.Dropdown(choices=names, value=set_name if set_name in names else sets.DEFAULT_SET),
        gr.Dropdown(choices=answering, value=[m for m in models or [] if m in keys]),
    )


def guidelines_text(vote_set: sets.VoteSet) -> str:
    if not vote_set.guidelines.strip():
        return f"*The set `{vote_set.name}` has no guidelines yet; write them under Vote set below.*"
    return f"**Guidelines of `{vote_set.name}`**\n\n{vote_set.guidelines.strip()}"


def _set_models(vote_set: sets.VoteSet) -> tuple[list[str], str]:
    """(the models the set draws from that can answer now, a line naming those that cannot)."""
    from studio.pipelines import rounds  # here: the rounds' pipelines are not needed to build the page

    wanted = rounds.voting_models(vote_set)
    keys = set(_model_keys())
    gone = [m for m in wanted if m not in keys]
    line = f"Not listed now (deleted, or not completed): {', '.join(f'`{m}`' for m in gone)}." if gone else ""
    return [m for m in wanted if m in keys], line


def vote_pick_set(set_name: str | None):
    """(guidelines, models picker, status): a set picked shows its guidelines and picks the models it draws from."""
    try:
        vote_set = sets.load(set_name or sets.DEFAULT_SET)
        picked, gone = _set_models(vote_set)
    except Exception as err:
        return "", gr.skip(), error_markdown(err)
    status = f"The set draws from {', '.join(f'`{m}`' for m in picked)}." if picked else ""
    return guidelines_text(vote_set), gr.Dropdown(value=picked), f"{status} {gone}".strip()


def vote_open(annotator: str | None, remembered: str | None):
    """(set picker, models picker, annotator) as the Vote view opens: the lists read again (the picks are left as
    they are: this answer may come after the person picked), and the name this browser voted under last filled in
    while the box is empty."""
    name = remembered if remembered and not (annotator or "").strip() else gr.skip()
    return gr.Dropdown(choices=set_choices()), gr.Dropdown(choices=generate.answering_models()), name


def _default_set() -> sets.VoteSet | None:
    """The set "default" when it exists (loading it would make it)."""
    return sets.load(sets.DEFAULT_SET) if sets.DEFAULT_SET in sets.names() else None


def initial_models() -> list[str]:
    """The models picked as the page loads: those the set "default" draws from."""
    vote_set = _default_set()
    return _set_models(vote_set)[0] if vote_set else []


def initial_guidelines() -> str:
    vote_set = _default_set()
    return guidelines_text(vote_set) if vote_set else ""


# ---------------------------------------------------------------- showing an item


def _rank_outputs(answers: list[str]) -> list:
    """The nine answer boxes and the nine rank pickers: the first len(answers) shown, numbered, ranks empty."""
    k = len(answers)
    texts = [gr.Textbox(value=answers[i] if i < k else "", visible=i < k) for i in range(MAX_ANSWERS)]
    ranks = [gr.Dropdown(choices=list(range(1, k + 1)), value=None, visible=i < k) for i in range(MAX_ANSWERS)]
    return texts + ranks


def _shown(item: vote_queue.Item, guidelines: str) -> tuple:
    """What vote_generate answers for an item (everything but the two states)."""
    note = item.note[0].upper() + item.note[1:]
    if isinstance(item.shown, voting.BlindPair):
        a, b = item.shown.answers
        status, answers, is_pair = f"{note}. Which answer is better?", [], True
    else:
        k = len(item.shown.answers)
        a, b, answers, is_pair = "", "", item.shown.answers, False
        status = f"{note}. Rank the {k} answers: 1 is the best, equal numbers tie."
    panels = (gr.Column(visible=is_pair), gr.Column(visible=not is_pair))
    rows = [gr.Row(visible=i < len(answers)) for i in range(MAX_ANSWERS)]
    prompt = compare.prompt_text(item.shown.prompt)
    return (a, b, status, prompt, *_rank_outputs(answers), guidelines, *panels, *rows)


def _unchanged(status: str) -> tuple:
    """vote_generate's answer when nothing new is shown: the boxes as they are and a status line."""
    return (gr.skip(), gr.skip(), status, *[gr.skip()] * (3 * MAX_ANSWERS + 4))


def plan_from(set_name, models, mode, k, source, typed, values) -> vote_queue.Plan:
    prompts = tuple(line.strip() for line in (typed or "").splitlines() if line.strip())
    if source == TYPED and not prompts:
        raise StudioError("type at least one prompt, one per line, or pick the set's prompts")
    return vote_queue.Plan(
        set_name=set_name or sets.DEFAULT_SET,
        models=tuple(models or ()),
        mode=mode or PAIR,
        k=int(k) if k is not None else RANK_DEFAULT,
        settings=generation.settings(values),
        typed=prompts if source == TYPED else (),
    )


def vote_generate(set_name, models, mode, k, source, typed, queue, *values):
    """(queue, item, answer A, answer B, status, prompt, 9 answers, 9 rank pickers, guidelines, pair panel, rank
    panel, 9 answer rows): the next item, made ahead while the last one was read when nothing changed since."""
    queue = queue if isinstance(queue, vote_queue.VoteQueue) else vote_queue.VoteQueue()
    try:
        plan = plan_from(set_name, models, mode, k, source, typed, values)
        item = queue.next(plan)
        guidelines = guidelines_text(sets.load(plan.set_name))
    except Exception as err:
        return (queue, gr.skip(), *_unchanged(error_markdown(err)))  # what was shown can still be voted on
    return (queue, item, *_shown(item, guidelines))


def vote_next(advance: bool, set_name, models, mode, k, source, typed, queue, *values):
    """vote_generate after a vote or a skip that went through (`advance`); a refused vote leaves the item shown."""
    if not advance:
        return (gr.skip(), gr.skip(), *_unchanged(gr.skip()))
    return vote_generate(set_name, models, mode, k, source, typed, queue, *values)


# ---------------------------------------------------------------- voting


def _plain(text: str) -> str:
    return html.escape(text, quote=False).replace("*", "\\*").replace("_", "\\_")


def counts_line(set_name: str) -> str:
    """The set's counts after a vote: votes, the levels they were cast at, rankings and training pairs."""
    summary = sets.summarize(set_name)
    labels = {**records.GRADE_LABELS, **records.OUTCOME_LABELS, "ungraded": "ungraded"}
    order = [*records.GRADES, "ungraded", *records.OUTCOMES]
    counted = [level for level in order if level in summary.by_level]
    levels = ", ".join(f"{labels[level].lower()} {summary.by_level[level]}" for level in counted)
    parts = [f"{summary.votes} vote{'s' if summary.votes != 1 else ''}"]
    if levels:
        parts.append(levels)
    if summary.rankings:
        parts.append(f"{summary.rankings} ranking{'s' if summary.rankings != 1 else ''}")
    pairs = f"{summary.pairs} training pair{'s' if summary.pairs != 1 else ''}"
    return f"Set `{set_name}`: {'; '.join(parts)}; {pairs}."


def _reveal(item_shown) -> str:
    if isinstance(item_shown, voting.BlindPair):
        a, b = item_shown.models
        return f"Answer A was written by **{_plain(a)}**, answer B by **{_plain(b)}**."
    return "Written by: " + ", ".join(f"{i} **{_plain(m)}**" for i, m in enumerate(item_shown.models, start=1)) + "."


def _verdict(choice: str, grade: str | None) -> str:
    if choice in records.OUTCOMES:
        return records.OUTCOME_LABELS[choice].lower()
    return f"{choice.upper()} is better ({records.GRADE_LABELS[grade].lower()})"


def vote_pair(set_name: str | None, annotator: str | None, choice: str | None, grade: str | None, item):
    """(item, advance, reveal): save a pair's verdict under the annotator's name, then reveal who wrote which. A
    refusal is one line and leaves the pair shown."""
    try:
        if not (annotator or "").strip():
            raise StudioError(NO_NAME)
        if not isinstance(item, vote_queue.Item) or not isinstance(item.shown, voting.BlindPair):
            raise StudioError(NOTHING_SHOWN if item is None else "the answers shown are a ranking: rank them")
        choice = choice or ""
        voting.record_vote(
            set_name or sets.DEFAULT_SET,
            item.shown,
            choice,
            grade if choice in voting.WINNERS else None,
            annotator,
        )
        name = set_name or sets.DEFAULT_SET
        reveal = f"Saved: {_verdict(choice, grade)}. {_reveal(item.shown)} {counts_line(name)}"
    except Exception as err:
        return item, False, error_markdown(err)
    return None, True, reveal


def vote_rank(set_name: str | None, annotator: str | None, *values):
    """(item, advance, reveal): save the ranking the rank pickers give (values: the nine ranks, then the item)."""
    *ranks, item = values
    try:
        if not (annotator or "").strip():
            raise StudioError(NO_NAME)
        if not isinstance(item, vote_queue.Item) or not isinstance(item.shown, voting.BlindRanking):
            raise StudioError(NOTHING_SHOWN if item is None else "the answers shown are a pair: pick A or B")
        shown = ranks[: len(item.shown.answers)]
        missing = [str(i) for i, rank in enumerate(shown, start=1) if rank in (None, "")]
        if missing:
            raise StudioError(f"give every answer a rank: answer {', '.join(missing)} has none")
        name = set_name or sets.DEFAULT_SET
        voting.record_ranking(name, item.shown, [int(r) for r in shown], annotator)
        order = ", ".join(f"{i} at {int(r)}" for i, r in enumerate(shown, start=1))
        reveal = f"Saved your ranking ({order}). {_reveal(item.shown)} {counts_line(name)}"
    except Exception as err:
        return item, False, error_markdown(err)
    return None, True, reveal


def vote_skip(item):
    """(item, advance, reveal): reveal who wrote the answers shown and save nothing."""
    if not isinstance(item, vote_queue.Item):
        return None, False, as_error(NOTHING_SHOWN)
    return None, True, f"Skipped; nothing saved. {_reveal(item.shown)}"


def vote_undo(set_name: str | None, annotator: str | None) -> str:
    """Take back the annotator's newest vote in the set; the line says which."""
    try:
        if not (annotator or "").strip():
            raise StudioError(NO_NAME)
        name = set_name or sets.DEFAULT_SET
        vote = sets.undo_last(name, annotator)
    except Exception as err:
        return error_markdown(err)
    prompt = compare.prompt_text(vote["prompt"])
    prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
    what = {records.RANK: "ranking", records.PAIR: "vote"}[records.kind(vote)]
    return f"Took back your {what} on “{_plain(prompt)}”. {counts_line(name)}"


def mode_panels(mode: str | None):
    """(pair panel, rank panel, K slider): what the mode votes with."""
    rank = mode == RANK
    return gr.Column(visible=not rank), gr.Column(visible=rank), gr.Slider(visible=rank)


# ---------------------------------------------------------------- layout


def _button(text: str, elem_id: str, **kwargs) -> gr.Button:
    return gr.Button(text, elem_id=elem_id, size="sm", **kwargs)


def build(settings: list, tabs: list) -> None:
    """The view's widgets and events; `settings` are the Compare tab's generation boxes, `tabs` the tabs whose
    opening reads the lists again (the Compare tab, this sub-tab)."""
    with gr.Column(elem_id="vote-view"):
        with gr.Row():
            set_name = gr.Dropdown(
                choices=set_choices(),
                value=sets.DEFAULT_SET,
                label="Vote set",
                info="Where the votes go; make sets under Vote set below",
                elem_id="vote-set-name",
                scale=2,
            )
            annotator = gr.Textbox(
                label="Annotator",
                placeholder="your name",
                info="Recorded with every vote (agreement is measured between annotators)",
                elem_id="vote-annotator",
                scale=2,
            )
            refresh = gr.Button("Refresh lists", size="sm", scale=1)
        with gr.Row():
            models = gr.Dropdown(
                choices=generate.answering_models(),
                value=initial_models,
                multiselect=True,
                label="Models to vote between",
                info="Pair: two; Rank K: one (sampled K times) or several, in turn. Picking a set picks its models",
                elem_id="vote-models",
                scale=3,
            )
            mode = gr.Radio(choices=MODES, value=PAIR, label="Mode", elem_id="vote-mode", scale=2)
            k = gr.Slider(
                minimum=records.RANK_SIZES[0],
                maximum=MAX_ANSWERS,
                step=1,
                value=RANK_DEFAULT,
                label="K: answers to rank",
                visible=False,
                elem_id="vote-k",
                scale=1,
            )
        with gr.Row():
            source = gr.Radio(choices=PROMPT_SOURCES, value=SET_PROMPTS, label="Prompts", scale=1)
            typed = gr.Textbox(label="Typed prompts (one per line)", lines=2, scale=2)
        guidelines = gr.Markdown(initial_guidelines, elem_id="vote-guidelines")
        with gr.Row():
            go = _button(f"Generate ({KEYS['go']})", "vote-go", variant="primary")
            skip = _button(f"Skip ({KEYS['skip']})", "vote-skip")
            undo = _button(f"Undo my last vote ({KEYS['undo']})", "vote-undo")
        status = gr.Markdown(elem_id="vote-status")
        prompt_box = gr.Textbox(label="Prompt", lines=2, max_lines=12, interactive=False, elem_id="vote-prompt")

        with gr.Column(visible=True) as pair_panel:
            with gr.Row(equal_height=True):
                answer_a = gr.Textbox(label="Answer A", lines=8, interactive=False, elem_id="vote-answer-a")
                answer_b = gr.Textbox(label="Answer B", lines=8, interactive=False, elem_id="vote-answer-b")
            graded = {}
            for side in voting.WINNERS:
                with gr.Row(elem_id=f"vote-row-{side}"):
                    for grade in records.GRADES:
                        key = LEVEL_KEYS[grade]
                        graded[side, grade] = _button(
                            f"{side.upper()}: {records.GRADE_LABELS[grade]} ({side.upper()} {key})",
                            f"vote-{side}-{key}",
                        )
            with gr.Row():
                tie = _button(f"Tie ({KEYS['tie']})", "vote-tie")
                both_bad = _button(f"Both bad ({KEYS['both_bad']})", "vote-both-bad")

        with gr.Column(visible=False) as rank_panel:
            rank_texts, rank_boxes, rank_rows = [], [], []
            for i in range(1, MAX_ANSWERS + 1):
                with gr.Row(equal_height=True, visible=False) as row:
                    rank_rows.append(row)
                    rank_texts.append(
                        gr.Textbox(
                            label=f"Answer {i}",
                            lines=4,
                            interactive=False,
                            visible=False,
                            elem_id=f"vote-answer-{i}",
                            scale=5,
                        )
                    )
                    rank_boxes.append(
                        gr.Dropdown(
                            choices=[],
                            value=None,
                            label=f"Rank of answer {i}",
                            visible=False,
                            elem_id=f"vote-rank-{i}",
                            scale=1,
                            min_width=120,
                        )
                    )
            submit_rank = _button(f"Submit ranking ({KEYS['rank']})", "vote-rank-submit", variant="primary")

        reveal = gr.Markdown(elem_id="vote-reveal")
        gr.HTML(LEGEND, js_on_load=KEYS_JS, elem_id="vote-keys")

        # The public /vote_pair: the verdict buttons each send their own choice and grade through it.
        with gr.Row(visible=False):
            choice_box = gr.Dropdown(choices=list(voting.CHOICES), value=None, label="Choice")
            grade_box = gr.Dropdown(choices=list(records.GRADES), value=None, label="Grade")
            pair_api = gr.Button("Vote")

        vote_sets_view.build(set_name, annotator)

    queue = gr.State(None, delete_callback=lambda q: q.cancel() if isinstance(q, vote_queue.VoteQueue) else None)
    item = gr.State(None)
    advance = gr.State(False)
    remembered = gr.BrowserState("", storage_key="rlhf-studio-annotator")
    quiet = dict(api_visibility="private", show_progress="hidden")

    refresh.click(vote_choices, inputs=[set_name, models], outputs=[set_name, models], api_name="vote_choices")
    for number, tab in enumerate(tabs):
        tab.select(
            vote_open,
            inputs=[annotator, remembered],
            outputs=[set_name, models, annotator],
            api_name=f"vote_open_{number}",
            **quiet,
        )
    set_name.change(
        vote_pick_set,
        inputs=set_name,
        outputs=[guidelines, models, status],
        api_name="vote_pick_set",
        show_progress="hidden",
    )
    annotator.blur(lambda name: (name or "").strip(), inputs=annotator, outputs=remembered, **quiet)
    mode.change(mode_panels, inputs=mode, outputs=[pair_panel, rank_panel, k], **quiet)

    plan_inputs = [set_name, models, mode, k, source, typed, queue, *settings]
    shown_outputs = [
        queue,
        item,
        answer_a,
        answer_b,
        status,
        prompt_box,
        *rank_texts,
        *rank_boxes,
        guidelines,
        pair_panel,
        rank_panel,
        *rank_rows,
    ]
    go.click(vote_generate, inputs=plan_inputs, outputs=shown_outputs, api_name="vote_generate", **generation.QUEUE)
    next_item = dict(
        fn=vote_next, inputs=[advance, *plan_inputs], outputs=shown_outputs, show_progress="hidden", **generation.QUEUE
    )

    voted = [item, advance, reveal]
    pair_api.click(
        vote_pair, inputs=[set_name, annotator, choice_box, grade_box, item], outputs=voted, api_name="vote_pair"
    ).then(**next_item, api_name="vote_next", api_visibility="private")
    verdicts = {(side, grade): button for (side, grade), button in graded.items()}
    verdicts.update({(outcome, None): button for outcome, button in (("tie", tie), ("both_bad", both_bad))})
    for (choice, grade), button in verdicts.items():
        name = f"{choice}_{grade}" if grade else choice
        button.click(
            partial(_vote_with, choice, grade),
            inputs=[set_name, annotator, item],
            outputs=voted,
            api_name=f"vote_{name}",
            **quiet,
        ).then(**next_item, api_name=f"vote_next_{name}", api_visibility="private")
    submit_rank.click(
        vote_rank, inputs=[set_name, annotator, *rank_boxes, item], outputs=voted, api_name="vote_rank"
    ).then(**next_item, api_name="vote_next_rank", api_visibility="private")
    skip.click(vote_skip, inputs=item, outputs=voted, api_name="vote_skip").then(
        **next_item, api_name="vote_next_skip", api_visibility="private"
    )
    undo.click(vote_undo, inputs=[set_name, annotator], outputs=reveal, api_name="vote_undo")


def _vote_with(choice: str, grade: str | None, set_name, annotator, item):
    return vote_pair(set_name, annotator, choice, grade, item)
