"""The Rollouts view's engine (studio/monitor/rollout_view.py) on small hand-written rollout rows: one step's table
(columns per stage, sort, text filter), per-step quantiles, the group view, the token view's HTML (escaping, colours,
hover titles), best and worst, and the incremental feed agreeing with the whole-file functions.

    python -m pytest tests/test_rollout_view.py -q
"""

from __future__ import annotations

import html
import re

import gradio as gr
import pytest

from studio.config import RunConfig
from studio.errors import StudioError
from studio.monitor import rollout_view as rv
from studio.runs import manager, rollouts
from studio.runs.metrics import MetricsWriter
from studio.runs.rundir import RunDir


def ppo_row(step, prompt, answer, reward, kl, length, rm=None, **extra) -> dict:
    return {
        "step": step,
        "prompt": prompt,
        "answer": answer,
        "reward": reward,
        "scores": {"rm": reward if rm is None else rm, "format": 1.0},
        "kl": kl,
        "length": length,
        "ended": True,
        "penalty": 0.0,
        **extra,
    }


TOKENS = {
    "tokens": ["Hi", " <b>", " &\n", ""],
    "logprobs": [-1.0, -2.0, -0.5, -0.25],
    "ref_logprobs": [-1.5, -1.0, -0.5, -0.5],
}

PPO = [
    ppo_row(1, "Greet me", "Hi <b> &", 0.5, 0.2, 4, **TOKENS),
    ppo_row(1, "Say bye", "Bye then", -1.0, None, 2, rm=None),
    ppo_row(1, "Count to three", "one two three", 2.0, 0.1, 3),
    ppo_row(2, "Greet me", "Hello there", 1.0, 0.3, 2),
    ppo_row(2, "Say bye", "GOODBYE", "nan", 0.4, 1),
]


def grpo_row(step, group, answer, reward, advantage, prompt=None) -> dict:
    return {
        "step": step,
        "prompt": prompt or f"prompt {group}",
        "answer": answer,
        "reward": reward,
        "scores": {"math": reward},
        "kl": 0.0,
        "length": len(answer.split()),
        "ended": True,
        "group": group,
        "advantage": advantage,
    }


GRPO = [
    grpo_row(1, 0, "4", 1.0, 0.5),
    grpo_row(1, 0, "five", 0.0, -0.5),
    grpo_row(1, 0, "4 apples", 0.75, 0.25),
    grpo_row(1, 1, "7", 0.0, 0.0),
    grpo_row(1, 1, "seven", 0.0, 0.0),
]

REJECTION = [
    {**grpo_row(1, 0, "a", 0.2, 0.0), "round": 1, "best": False, "kept": False},
    {**grpo_row(1, 0, "b", 0.9, 0.0), "round": 1, "best": True, "kept": True},
]
for row in REJECTION:
    del row["advantage"]


# ---------------------------------------------------------------- one step's table


def test_a_step_table_has_one_column_per_source_and_keeps_the_written_order_unsorted():
    table = rv.step_table(PPO, step=1)
    assert table.step == 1 and table.total == 3 and table.note == ""
    assert table.headers == ["#", "prompt", "answer", "rm", "format", "reward", "KL", "length"]
    assert table.rows == [
        [1, "Greet me", "Hi <b> &", 0.5, 1.0, 0.5, 0.2, 4.0],
        [2, "Say bye", "Bye then", -1.0, 1.0, -1.0, None, 2.0],
        [3, "Count to three", "one two three", 2.0, 1.0, 2.0, 0.1, 3.0],
    ]


def test_sorting_is_high_to_low_with_missing_values_last_and_the_number_kept():
    assert [r[0] for r in rv.step_table(PPO, 1, sort="reward").rows] == [3, 1, 2]
    assert [r[0] for r in rv.step_table(PPO, 1, sort="kl").rows] == [1, 3, 2]  # no KL for #2: last
    assert [r[0] for r in rv.step_table(PPO, 1, sort="length").rows] == [1, 3, 2]
    with pytest.raises(StudioError, match="sort by 'score': answers sort by reward, kl, length"):
        rv.step_table(PPO, 1, sort="score")


def test_the_filter_matches_prompt_or_answer_in_any_case_and_says_when_nothing_matches():
    assert [r[0] for r in rv.step_table(PPO, 2, text="goodbye").rows] == [2]
    assert [r[0] for r in rv.step_table(PPO, 1, sort="reward", text="  GREET ").rows] == [1]
    empty = rv.step_table(PPO, 1, text="zebra")
    assert empty.rows == [] and empty.total == 3 and empty.note == "No answer of step 1 holds “zebra”."


def test_the_step_shown_is_the_recorded_one_nearest_and_the_latest_by_default():
    assert rv.step_table(PPO).step == 2
    assert rv.step_table(PPO, 1.4).step == 1
    assert rv.step_table(PPO, 7).step == 2
    none = rv.step_table([])
    assert none.step is None and none.rows == [] and none.note == "No answers recorded yet."
    # A score written as "nan" (not finite) shows as missing.
    assert rv.step_table(PPO, 2).rows[1][5] is None


def test_group_advantage_and_kept_columns_appear_only_for_the_stages_that_record_them():
    assert rv.step_table(GRPO, 1).headers == [
        "#",
        "prompt",
        "answer",
        "math",
        "reward",
        "KL",
        "length",
        "group",
        "advantage",
    ]
    rejection = rv.step_table(REJECTION, 1)
    assert rejection.headers[-3:] == ["length", "group", "kept"]
    assert [r[-1] for r in rejection.rows] == [False, True]


def test_a_source_named_like_a_column_gets_its_own_header():
    row = {**PPO[0], "scores": {"reward": 0.5, "length": 0.1}}
    assert rv.step_table([row]).headers[3:5] == ["score: reward", "score: length"]


# ---------------------------------------------------------------- distributions


def test_quantiles_interpolate_between_ranks():
    assert rv.quantile([1.0, 2.0, 3.0, 5.0], 0.5) == 2.5
    assert rv.quantile([1.0, 2.0, 3.0, 5.0], 0.25) == 1.75
    assert rv.quantile([1.0, 2.0, 3.0, 5.0], 1.0) == 5.0
    assert rv.quantile([7.0], 0.9) == 7.0


def test_the_reward_distribution_has_each_steps_quantiles_and_counts_missing_scores():
    found = rv.distribution(PPO, "reward", selected=1)
    assert found.steps == [1, 2] and found.selected == 1 and found.title == "Reward per step"
    assert found.counts == [3, 1] and found.missing == 1  # step 2's "nan"
    step1 = [found.bands[name][0] for name in rv.QUANTILE_NAMES]
    assert step1 == pytest.approx([-1.0, -0.7, -0.25, 0.5, 1.25, 1.7, 2.0])
    assert [found.bands[name][1] for name in rv.QUANTILE_NAMES] == [1.0] * 7
    lengths = rv.distribution(PPO, "length")
    assert lengths.bands["median"] == [3.0, 1.5] and lengths.bands["max"] == [4.0, 2.0] and lengths.missing == 0


def test_the_band_figure_nests_three_bands_under_the_median_and_marks_the_step():
    fig = rv.band_figure(rv.distribution(PPO, "reward", selected=2))
    assert [t.name for t in fig.data] == ["max", "min to max", "90%", "10% to 90%", "75%", "25% to 75%", "median"]
    assert [t.fill for t in fig.data][1::2][:3] == ["tonexty"] * 3
    assert list(fig.data[-1].y) == [0.5, 1.0]
    assert fig.layout.shapes[0].x0 == 2 and fig.layout.annotations[0].text == "step 2"
    assert fig.layout.title.subtitle.text == "1 answer without a score left out"


# ---------------------------------------------------------------- groups


def test_the_group_view_shows_one_prompts_answers_best_first_with_their_advantages():
    assert rv.group_choices(GRPO, 1) == [rv.GroupChoice(0, "prompt 0", 3), rv.GroupChoice(1, "prompt 1", 2)]
    view = rv.group_view(GRPO, 1, 0)
    assert view.prompt == "prompt 0"
    assert view.headers == ["#", "answer", "math", "reward", "advantage", "length"]
    assert view.rows == [
        [1, "4", 1.0, 1.0, 0.5, 1.0],
        [3, "4 apples", 0.75, 0.75, 0.25, 2.0],
        [2, "five", 0.0, 0.0, -0.5, 1.0],
    ]
    assert view.winner_margin == 0.25
    assert rv.group_view(GRPO, 1, 1).winner_margin == 0.0
    assert rv.group_view(GRPO, 1, 5).note == "Step 1 has no group 5."
    assert rv.group_choices(PPO, 1) == []  # ppo has no groups


def test_a_rejection_group_shows_which_candidate_was_best_and_kept():
    view = rv.group_view(REJECTION, 1, 0)
    assert view.headers == ["#", "answer", "math", "reward", "best", "kept", "length"]
    assert view.rows == [[2, "b", 0.9, 0.9, True, True, 1.0], [1, "a", 0.2, 0.2, False, False, 1.0]]


# ---------------------------------------------------------------- the token view


def test_only_answers_with_token_detail_are_offered_for_the_token_view():
    assert rv.token_choices(PPO, 1) == [rv.TokenChoice(1, "Hi <b> &", 0.5)]
    assert rv.token_choices(PPO, 2) == []
    assert rv.token_view(PPO, 1, 2).note == "Answer #2 has no token detail."
    assert rv.token_view(PPO, 1, 9).note == "Step 1 has no answer #9."


def test_token_html_escapes_every_token_and_titles_it_with_its_values():
    view = rv.token_view(PPO, 1, 1)
    assert view.scale == 1.0 and view.has_reference and view.note == ""  # the largest difference: " <b>", -1.0
    span = r'<span class="rollout-token" style="background:(#\w+)" title="([^"]*)">([^<]*)</span>'
    spans = re.findall(span, view.html)
    # A line break keeps a box to hover over (↵ before it), and so does an empty token (∅).
    assert [html.unescape(text) for _, _, text in spans] == ["Hi", " <b>", " &↵\n", "∅"]
    assert "<b>" not in view.html and "&lt;b&gt;" in view.html and " &amp;↵\n</span>" in view.html
    assert [title for _, title, _ in spans] == [
        "policy -1.0000 · reference -1.5000 · difference +0.5000",
        "policy -2.0000 · reference -1.0000 · difference -1.0000",
        "policy -0.5000 · reference -0.5000 · difference +0.0000",
        "policy -0.2500 · reference -0.5000 · difference +0.2500",
    ]
    # Likelier under the policy: blue, half way at +0.5; less likely: full red at -1.0; no change: white.
    assert [colour for colour, _, _ in spans] == ["#90b2d6", "#b2182b", "#ffffff", "#c8d9ea"]


def test_colours_diverge_by_sign_and_are_grey_without_a_reference():
    assert rv.colour(2.0, 1.0) == "#2166ac"  # beyond the scale: the full colour
    assert rv.colour(-0.05, 0.1) == rv.colour(-0.5, 1.0)
    blue, red = rv.colour(0.3, 1.0), rv.colour(-0.3, 1.0)
    assert int(blue[5:7], 16) > int(blue[1:3], 16) and int(red[1:3], 16) > int(red[5:7], 16)
    assert rv.colour(None, 1.0) == "#e0e0e0"
    no_reference = {**PPO[0], "ref_logprobs": None}
    view = rv.token_view([no_reference], 1, 1)
    assert not view.has_reference and view.html.count("background:#e0e0e0") == 4
    assert 'title="policy -1.0000 · no reference"' in view.html
    assert view.note.startswith("This run has no reference model")


def test_a_row_that_barely_moved_is_coloured_against_the_minimum_scale():
    row = {**PPO[0], "tokens": ["a"], "logprobs": [-1.0], "ref_logprobs": [-1.01]}
    view = rv.token_view([row], 1, 1)
    assert view.scale == rv.MIN_COLOUR_SCALE and rv.colour(0.01, 0.1) in view.html


# ---------------------------------------------------------------- best and worst


def test_best_and_worst_are_the_runs_extreme_scores_with_their_steps():
    found = rv.best_and_worst(PPO, k=2)
    assert found.headers == ["step", "reward", "prompt", "answer"]
    assert found.best == [[1, 2.0, "Count to three", "one two three"], [2, 1.0, "Greet me", "Hello there"]]
    assert found.worst == [[1, -1.0, "Say bye", "Bye then"], [1, 0.5, "Greet me", "Hi <b> &"]]  # "nan" left out


# ---------------------------------------------------------------- the live feed


def test_the_feed_reads_only_new_lines_and_agrees_with_the_whole_file(tmp_path):
    run = RunDir(tmp_path)
    writer = MetricsWriter(run.rollouts_path)
    feed = rv.RolloutFeed(run, k=2)
    assert not feed.has_new() and feed.refresh() == 0 and feed.steps == [] and feed.nearest(None) is None
    writer.write_many(PPO[:3])
    with open(run.rollouts_path, "a", encoding="utf-8") as f:
        f.write('{"step": 2, "prompt": "half a li')  # a step being written: left for the next refresh
    assert feed.has_new() and feed.refresh() == 3 and feed.steps == [1]
    assert feed.extremes() == rv.best_and_worst(PPO[:3], k=2)
    run.rollouts_path.write_text(run.rollouts_path.read_text().rsplit("\n", 1)[0] + "\n")  # the torn line gone
    writer.write_many(PPO[3:])
    assert feed.refresh() == 2 and feed.steps == [1, 2] and feed.nearest(1.7) == 2
    assert feed.rows(2) == PPO[3:]
    assert feed.extremes() == rv.best_and_worst(PPO, k=2)
    assert feed.distribution("reward", 2) == rv.distribution(PPO, "reward", 2)
    assert feed.distribution("length") == rv.distribution(PPO, "length")
    assert not feed.has_new()


def test_a_resumed_runs_rewritten_file_is_read_again_from_its_start(tmp_path):
    run = RunDir(tmp_path)
    MetricsWriter(run.rollouts_path).write_many(PPO)
    feed = rv.RolloutFeed(run)
    feed.refresh()
    replacement = tmp_path / "replacement.jsonl"
    MetricsWriter(replacement).write_many(GRPO)
    replacement.replace(run.rollouts_path)  # a resume truncates atomically: a new file
    assert feed.refresh() == 5 and feed.steps == [1] and feed.rows(1) == GRPO
    assert feed.extremes() == rv.best_and_worst(GRPO)


def test_only_online_runs_have_rollouts():
    sft = manager.create(RunConfig(stage="sft", name="plain"))
    with pytest.raises(StudioError, match=f"run {sft.id} trains sft: only the stages that sample answers \\(ppo, "):
        rollouts.online_run(sft.id)
    grpo = manager.create(RunConfig(stage="grpo", name="grouped"))
    run, stage = rollouts.online_run(grpo.id)
    assert run.id == grpo.id and stage.name == "grpo" and stage.x_label == "step"


def test_the_runs_tabs_refresh_tick_wakes_the_rollouts_timer_for_a_live_online_run_only():
    """A run resumed (or started from the queue) while selected gets its Rollouts view refreshing again, as its charts
    do; a live run of a stage that records no answers, a finished run or a hidden tab leave that timer alone."""
    from components import runs_tab

    grpo = manager.create(RunConfig(stage="grpo", name="grouped"))  # queued: live
    sft = manager.create(RunConfig(stage="sft", name="plain"))

    def rollouts_timer(run_id: str, shown: bool = True):
        answer = runs_tab.on_tick(run_id, [], shown, None, None, None, None)
        assert len(answer) == runs_tab.TICK_OUTPUTS
        return answer[-1]

    assert rollouts_timer(grpo.id).active is True
    assert rollouts_timer(sft.id) == gr.skip()
    assert rollouts_timer(grpo.id, shown=False).active is False
    grpo.write_status(state="completed")
    assert rollouts_timer(grpo.id) == gr.skip()
