"""The Compare, Chat and Reward models tabs through the served studio's endpoints, on the session's finished tiny runs.

The runs are copied into the module's own home, so the data caches the held-out prompts build land there and the
session's tuned home stays as it is. Expected answers and scores are computed in this process with the engine
(studio.serve.compare, studio.serve.scoring) and must equal what the tabs show. (The Vote view: test_ui_votes.py.)
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from components import reward_tab
from components.oneline import as_error
from studio.config import GenerationSpec
from studio.serve import compare, scoring

pytestmark = pytest.mark.usefixtures("in_module_home")

BASE = "base (tiny)"
POLITE = "Happy to help. A pear is usually counted as a fruit. Feel free to ask if anything is unclear."
RUDE = "Not my problem. Look it up."
# Greedy with a repetition penalty below 1: tokens already written get likelier and the end-of-turn token, never
# written, does not, so the tiny base model writes all max_new_tokens (a reply long enough to stop halfway).
ENDLESS = dict(max_new_tokens=1500, temperature=0.0, repetition_penalty=0.8)


def settings(**overrides) -> tuple:
    """The generation boxes' values, in GenerationSpec's key order (the order of the tabs' boxes)."""
    return tuple({**asdict(GenerationSpec()), **overrides}.values())


def spec(**overrides) -> GenerationSpec:
    return GenerationSpec(**{**asdict(GenerationSpec()), **overrides})


@pytest.fixture(scope="module")
def runs(tuned_runs, module_home) -> dict:
    """The tuned runs, copied into the module's home (the served studio writes votes there)."""
    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    return {**tuned_runs, "home": module_home}


@pytest.fixture(scope="module")
def client(runs, module_client):
    return module_client


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text.strip() and "Traceback" not in text


def _answer_cells(page: str) -> list[tuple[str, str]]:
    """(model, answer text) of every answer cell of the Compare table, row by row."""
    found = re.findall(r'<td class="answer" data-model="([^"]*)"><div class="text">(.*?)</div>', page, re.S)
    return [(html.unescape(model), html.unescape(text)) for model, text in found]


# ---------------------------------------------------------------- model pickers


def test_pickers_list_the_base_model_and_the_runs_that_answer(client, runs):
    compare_runs, rewards = client.predict(api_name="/compare_choices")
    sft, chained, reward = runs["sft"], runs["chained"], runs["reward"]
    assert [c[1] for c in compare_runs["choices"]] == [chained, sft]  # newest first; the reward run writes no text
    assert [c[1] for c in rewards["choices"]] == ["", reward]
    _sets, models = client.predict("default", [], api_name="/vote_choices")
    assert [c[1] for c in models["choices"]] == [BASE, chained, sft]
    assert client.predict(None, api_name="/chat_models")["choices"] == models["choices"]
    assert [c[1] for c in client.predict(None, api_name="/reward_runs")["choices"]] == [reward]


def test_an_empty_pick_gets_the_base_model_or_the_newest_reward_run_and_a_pick_stays(client, runs):
    # Opening the tab (or Refresh) with nothing picked, or a pick no longer listed, picks the first entry.
    assert client.predict(None, api_name="/chat_models")["value"] == BASE
    assert client.predict("deleted-run", api_name="/chat_models")["value"] == BASE
    assert client.predict(None, api_name="/reward_runs")["value"] == runs["reward"]
    # A listed pick is left alone: the answer carries the choices and no value (it would undo a later pick).
    from components import chat_tab

    for update in (chat_tab.chat_models(runs["sft"]), reward_tab.reward_runs(runs["reward"])):
        assert "choices" in update.constructor_args and "value" not in update.constructor_args


def test_replies_are_signed_by_their_model_and_the_signature_stays_out_of_the_prompt(client, runs):
    # Nothing picked (Send before the list's refresh on open answered): the base model, as the refresh picks.
    history, _box, stats = client.predict("Hi", [], None, "", *settings(max_new_tokens=8), api_name="/chat")
    assert stats.startswith("base (tiny) reply: ")
    history, _box, _stats = client.predict(
        "And you?", history, runs["sft"], "", *settings(max_new_tokens=8), api_name="/chat"
    )
    assert _reply(history[:2]).startswith("**base (tiny)**\n\n")
    assert _reply(history).startswith(f"**{runs['sft']} (tuned-sft)**\n\n")
    # What the model is sent: the replies without their signatures (compare: the same turn unsigned, greedy).
    from components import chat_tab

    turns = chat_tab.conversation(history)
    assert [t["content"] for t in turns] == [
        "Hi",
        _reply(history[:2]).split("\n\n", 1)[1],
        "And you?",
        _reply(history).split("\n\n", 1)[1],
    ]
    assert chat_tab.unsigned("**Answer**\n\nSee above.", {"base (tiny)"}) == "**Answer**\n\nSee above."


# ---------------------------------------------------------------- side by side


def test_compare_shows_base_and_tuned_answers_with_scores_win_rate_and_exports(client, runs):
    sft, reward = runs["sft"], runs["reward"]
    prompts = ["How do I boil an egg?", "Is a pear a fruit or a vegetable?"]
    message, page, summary = client.predict(
        [sft],
        "typed",
        "\n".join(prompts) + "\n\n",
        reward,
        *settings(max_new_tokens=24, temperature=0.0),
        api_name="/compare",
    )
    assert message == f"2 prompts answered by 2 models, scored by reward run {reward}."

    expected = compare.compare([sft], prompts, spec(max_new_tokens=24, temperature=0.0), reward)
    assert expected.labels == [BASE, sft]
    # One row per prompt, the base column first, each answer as the engine wrote it.
    assert _answer_cells(page) == [
        (label, expected.answers[label][i] or "<em>(empty answer)</em>") for i in range(2) for label in (BASE, sft)
    ]
    shown_scores = [float(s) for s in re.findall(r'class="score[^"]*">score (-?[\d.]+)</div>', page)]
    assert shown_scores == pytest.approx(
        [expected.scores[label][i] for i in range(2) for label in (BASE, sft)], abs=1e-3
    )

    assert summary["headers"] == ["model", "mean score", "win rate vs base", "tokens/s"]
    (base_row, sft_row) = summary["data"]
    want = {row["model"]: row for row in expected.summary()}
    assert base_row[0] == BASE and base_row[1] == pytest.approx(want[BASE]["mean_score"], abs=1e-3)
    assert base_row[2] == ""  # the base is what the others are measured against
    assert sft_row[0] == "tuned-sft" and sft_row[1] == pytest.approx(want[sft]["mean_score"], abs=1e-3)
    assert sft_row[2] == f"{want[sft]['win_rate']:.0%}"
    assert base_row[3] > 0 and sft_row[3] > 0  # tokens/s

    csv_button, jsonl_button = client.predict(api_name="/export_comparison")
    assert csv_button["visible"] and jsonl_button["visible"]
    with open(csv_button["value"], encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    records = [json.loads(line) for line in Path(jsonl_button["value"]).read_text(encoding="utf-8").splitlines()]
    assert csv_button["value"].endswith(".csv") and jsonl_button["value"].endswith(".jsonl")
    for rows in (table, records):
        assert [r["prompt"] for r in rows] == prompts
        assert list(rows[0]) == ["prompt", BASE, f"{BASE} score", sft, f"{sft} score"]
        for i, row in enumerate(rows):
            for label in (BASE, sft):
                assert row[label] == expected.answers[label][i]
                assert float(row[f"{label} score"]) == pytest.approx(expected.scores[label][i], abs=1e-4)


def test_compare_samples_prompts_from_the_first_runs_held_out_split(client, runs):
    sft, chained = runs["sft"], runs["chained"]
    table, source, message = client.predict([sft, chained], 3, 7, api_name="/sample_prompts")
    held_out = compare.held_out_prompts(sft, 3, 7)
    assert source == "held-out" and message.startswith(f"3 held-out prompts from run {sft}")
    assert table["data"] == [[i, compare.prompt_text(p)] for i, p in enumerate(held_out, 1)]

    message, page, summary = client.predict(
        [sft, chained],
        "held-out",
        "ignored while sampled prompts are picked",
        "",
        *settings(max_new_tokens=16, temperature=0.0),
        3,
        7,
        api_name="/compare",
    )
    assert message == "3 prompts answered by 3 models (pick a reward run to score them and get win rates)."
    prompts_shown = re.findall(r'<td class="prompt"><div class="text">(.*?)</div>', page, re.S)
    assert [html.unescape(p) for p in prompts_shown] == [compare.prompt_text(p) for p in held_out]
    assert [model for model, _ in _answer_cells(page)] == [BASE, sft, chained] * 3
    assert [row[0] for row in summary["data"]] == [BASE, "tuned-sft", "tuned-chained"]  # the runs' names
    assert all(row[1] == "" and row[2] == "" for row in summary["data"])  # no reward run, no scores


@pytest.mark.parametrize(
    "case, expected",
    [
        (dict(runs=[]), "pick at least one finished run to compare with its base model"),
        (dict(text="  \n "), "no prompts: type at least one, or sample some from a run's held-out data"),
        (dict(gen=dict(temperature=-1)), "generation.temperature = -1.0: must be at least 0.0"),
        (dict(gen=dict(max_new_tokens=0)), "generation.max_new_tokens = 0: must be at least 1"),
    ],
)
def test_compare_mistakes_get_one_line(client, runs, case, expected):
    run_ids = [runs[r] for r in case.get("runs", ["sft"])]
    reward = runs[case["reward"]] if "reward" in case else ""
    message, page, summary = client.predict(
        run_ids,
        "typed",
        case.get("text", "Name a fruit."),
        reward,
        *settings(**case.get("gen", {})),
        api_name="/compare",
    )
    assert expected in message and _one_line(message)
    assert page == "" and summary["data"] == [], summary


def test_a_run_outside_the_pickers_choices_is_refused_by_gradio(client, runs):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict([runs["reward"]], "typed", "Name a fruit.", "", *settings(), api_name="/compare")


def test_sampling_without_a_run_gets_one_line(client):
    _table, _source, message = client.predict([], 3, 0, api_name="/sample_prompts")
    assert message == "pick a run first: the prompts come from the first run's held-out data"


# ---------------------------------------------------------------- chat


def _reply(history: list[dict]) -> str:
    content = history[-1]["content"]
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def test_chat_streams_the_reply_and_keeps_the_conversation(client, runs):
    job = client.submit("Tell me a story", [], BASE, "", *settings(**ENDLESS), api_name="/chat")
    updates = list(job)  # every streamed (history, message box, stats)
    replies = [_reply(h) for h, _box, _stats in updates if h and h[-1]["role"] == "assistant"]
    grown = [r for r in dict.fromkeys(replies) if r]
    assert len(grown) > 2, len(grown)  # the reply arrived in pieces, not at once
    assert all(later.startswith(earlier[:-4]) for earlier, later in zip(grown, grown[1:]))  # it grew
    history, box, stats = job.result()
    assert box == "" and _reply(history) == grown[-1]
    assert re.fullmatch(r"base \(tiny\) reply: 1500 tokens in [\d.]+ s \([\d.]+ tokens/s\)", stats), stats

    history, _box, stats = client.predict(
        "And then?", history, runs["sft"], "You are a kind assistant.", *settings(max_new_tokens=32), api_name="/chat"
    )
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert _reply(history[:2]) == grown[-1] and _reply(history[:3]) == "And then?" and _reply(history)
    assert stats.startswith(f"{runs['sft']} reply: ") and stats.endswith("tokens/s)")


def _wait_for_text(job, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(h and h[-1]["role"] == "assistant" and _reply(h) for h, *_ in job.outputs()):
        assert time.monotonic() < deadline and not job.done(), "no text streamed"
        time.sleep(0.02)


def test_stop_ends_the_reply_and_frees_the_model(client):
    job = client.submit("Tell me a story", [], BASE, "", *settings(**ENDLESS), api_name="/chat")
    _wait_for_text(job)
    assert client.predict(api_name="/stop_chat") == "Stopped; the reply ends where it was."
    history, _box, stats = job.result(timeout=30)
    tokens = int(re.fullmatch(r"base \(tiny\) stopped after (\d+) tokens in .*", stats)[1])
    assert 0 < tokens < 1500 and _reply(history)
    assert client.predict(api_name="/stop_chat") == "Nothing is streaming."


def test_cancelling_the_stream_releases_the_model(client):
    # max_new_tokens at its ceiling: left running, this reply would hold the model for well over a minute.
    job = client.submit(
        "Tell me a story", [], BASE, "", *settings(**{**ENDLESS, "max_new_tokens": 8192}), api_name="/chat"
    )
    _wait_for_text(job)
    job.cancel()  # what the Stop and Clear buttons do to the event: gradio closes the handler
    started = time.monotonic()
    history, _box, stats = client.predict("Hi", [], BASE, "", *settings(max_new_tokens=8), api_name="/chat")
    assert time.monotonic() - started < 10  # uncancelled, the reply above runs on for half a minute
    assert stats.startswith("base (tiny) reply: ") and _reply(history) is not None

    assert client.predict(api_name="/unload_model") == "Unloaded the model; the next message loads it again."
    history, _box, stats = client.predict("Hi", [], BASE, "", *settings(max_new_tokens=8), api_name="/chat")
    assert stats.startswith("base (tiny) reply: ")


@pytest.mark.parametrize(
    "message, model, gen, expected",
    [
        ("  ", BASE, {}, "type a message first"),
        ("Hello", BASE, dict(top_p=0), "generation.top_p = 0.0: must be greater than 0.0"),
    ],
)
def test_chat_mistakes_get_one_line_and_leave_the_conversation(client, message, model, gen, expected):
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},  # the chatbot's own message format
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    ]
    shown, box, stats = client.predict(message, history, model, "", *settings(**gen), api_name="/chat")
    assert expected in stats and _one_line(stats)
    assert [(m["role"], _reply([m])) for m in shown] == [("user", "Hi"), ("assistant", "Hello!")]
    assert box == message


def test_clear_empties_the_chat(client):
    assert client.predict(api_name="/clear_chat") == ([], "", "")


# ---------------------------------------------------------------- reward models


def test_reward_workbench_prefers_the_polite_answer(client, runs):
    reward = runs["reward"]
    prompt = "Is a pear a fruit or a vegetable?"
    a, b, verdict = client.predict(reward, prompt, POLITE, RUDE, api_name="/score_pair")
    expected = scoring.score_batch(reward, [[{"role": "user", "content": prompt}]] * 2, [POLITE, RUDE])
    assert (a, b) == pytest.approx(expected, abs=5e-4) and (a, b) == tuple(round(x, 3) for x in (a, b))  # 3 digits
    assert a > b and verdict.startswith(f"Prefers **Answer A** by {expected[0] - expected[1]:.3f}")

    a, b, verdict = client.predict(reward, prompt, RUDE, POLITE, api_name="/score_pair")
    assert b > a and verdict.startswith("Prefers **Answer B**")

    # The score boxes start hidden (an empty number box reads 0), show with scores and hide again after a mistake.
    assert [box.visible for box in reward_tab.score_boxes(a)] == [True, True]
    assert [box.visible for box in reward_tab.score_boxes(None)] == [False, False]


def test_reward_evaluation_on_held_out_pairs(client, runs):
    reward = runs["reward"]
    line, plot = client.predict(reward, 500, api_name="/evaluate_reward")
    result = scoring.held_out_scores(reward)
    n = len(result.chosen)
    assert line.startswith(f"Accuracy **{result.accuracy:.1%}** on {n} held-out pairs: ")
    assert result.accuracy > 0.5
    figure = json.loads(plot["plot"])
    assert [t["type"] for t in figure["data"]] == ["histogram", "histogram"]
    assert [t["name"] for t in figure["data"]] == [f"chosen ({n})", f"rejected ({n})"]
    assert figure["data"][0]["x"] == pytest.approx(result.chosen, abs=1e-4)
    assert figure["data"][1]["x"] == pytest.approx(result.rejected, abs=1e-4)

    line, _plot = client.predict(reward, 4, api_name="/evaluate_reward")
    assert f"on 4 held-out pairs (the first 4 of {n})" in line


@pytest.mark.parametrize(
    "run, answers, expected",
    [
        (None, (POLITE, RUDE), "pick a completed reward run"),
        ("reward", (POLITE, "  "), "type both answers, A and B"),
    ],
)
def test_reward_mistakes_get_one_line(client, runs, run, answers, expected):
    run_id = runs[run] if run else None
    a, b, verdict = client.predict(run_id, "Is a pear a fruit?", *answers, api_name="/score_pair")
    assert a is None and b is None and expected in verdict and _one_line(verdict)
    line, plot = client.predict(run_id, 10, api_name="/evaluate_reward")
    if run is None:
        assert expected in line and _one_line(line) and plot is None
    assert client.predict(runs["reward"], 0, api_name="/evaluate_reward")[0] == as_error(
        "pairs to score = 0: a whole number of at least 1"
    )
