"""The Compare tab's Judge sub-tab and the Runs tab's Evaluations section through the served studio's endpoints, on the
session's finished tiny runs (conftest.tuned_runs, copied into the module's home: evaluations and judges.yaml are
written there). What the tabs show must be what the engine saved (studio/eval/evaluate.py), formatted.

    .venv/bin/python -m pytest -q tests/test_ui_eval.py
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components import eval_view
from components.oneline import as_error
from studio import config as cfg
from studio.eval import evaluate as evaluation
from studio.eval import judges
from studio.serve import compare

pytestmark = pytest.mark.usefixtures("in_module_home")

BASE = "base (tiny)"


def judge_fields(**given) -> list:
    """The judge form's values in JUDGE_FIELDS order, as a person leaves them unless `given`."""
    form = {
        "kind": "reward_run",
        "name": "",
        "run": None,
        "builtin": None,
        "args": "",
        "model": "",
        "prompt": cfg.DEFAULT_JUDGE_PROMPT,
        "base_url": "",
        "api_key_env": "",
        "timeout_s": 60,
        "retries": 3,
        **given,
    }
    return [form[key] for key in eval_view.JUDGE_FIELDS]


def evaluate(client, run_ids, judge="", baseline="base", source="held-out", count=4, typed="", **fields):
    """/evaluate as the Evaluate button sends it, greedy with 32 new tokens: (progress, message, table, rows)."""
    return client.predict(
        run_ids, baseline, judge, *judge_fields(**fields), source, count, typed, 32, 0, 0, api_name="/evaluate"
    )


@pytest.fixture(scope="module")
def runs(tuned_runs, module_home) -> dict:
    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    return {**tuned_runs, "home": module_home}


@pytest.fixture(scope="module")
def client(runs, module_client):
    return module_client


@pytest.fixture(scope="module")
def evaluated(client, runs) -> tuple:
    """The tuned SFT run against its base model, judged by the reward run on 4 held-out prompts, through /evaluate."""
    return evaluate(client, [runs["sft"]], run=runs["reward"])


def _rate(cell: str) -> tuple[float, float, float]:
    rate, low, high = (float(n) / 100 for n in re.fullmatch(r"(\d+)% \[(\d+)%, (\d+)%\]", cell).groups())
    return rate, low, high


def test_the_sft_run_is_judged_by_the_reward_run_and_the_table_shows_what_was_saved(evaluated, runs):
    sft, reward = runs["sft"], runs["reward"]
    progress, message, table, rows = evaluated
    assert progress.splitlines() == [
        f"{sft}: answering 4 prompts",
        f"{BASE}: answering the same prompts",
        f"{sft}: judge {reward} compares 4 pairs",
        f"{sft}: judged 4 of 4",
    ]
    (saved,) = evaluation.evaluations(sft)
    assert message == (
        f"tuned-sft ({sft}) judged by {reward} against {BASE} on 4 prompts; saved in the run's eval/ folder (the Runs "
        "tab lists it)."
    ).replace("_", "\\_")
    s = saved["summary"]
    assert table["headers"] == eval_view.TABLE_COLUMNS
    (row,) = table["data"]
    assert row[:4] == [f"tuned-sft ({sft})", BASE, reward, "4"]
    wins, ties, losses = (int(n) for n in row[4].split(" / "))
    assert (wins, ties, losses) == (s["wins"], s["ties"], s["losses"]) and wins + ties + losses == 4
    assert row[5] == f"{s['win_rate']:.0%} [{s['ci_low']:.0%}, {s['ci_high']:.0%}]"
    rate, low, high = _rate(row[5])
    assert low <= rate <= high and rate == pytest.approx(round((wins + ties / 2) / 4, 2))
    assert row[6] == f"{s['length_controlled_win_rate']:.0%}"
    assert row[7] == f"{s['mean_length']:.1f} vs {s['baseline_mean_length']:.1f}"
    assert row[8] == ""  # a score judge sees one answer at a time: no position bias
    assert row[9] == saved["created"].replace("T", " ")

    # The prompts are the run's own held-out rows, each with both answers and the outcome with both scores.
    asked = [compare.prompt_text(compare.as_messages(r["prompt"])) for r in compare.held_out_sample(sft, 4)]
    assert rows["headers"] == eval_view.ROW_COLUMNS
    assert [r[1] for r in rows["data"]] == asked == [r["prompt"] for r in saved["rows"]]
    for shown, kept in zip(rows["data"], saved["rows"]):
        word = {1.0: "win", 0.5: "tie", 0.0: "loss"}[kept["outcome"]]
        detail = kept["detail"]
        assert shown == [
            f"tuned-sft ({sft})",
            kept["prompt"],
            kept["answer"],
            kept["baseline_answer"],
            f"{word} (score {detail['score']:.3f} vs {detail['baseline_score']:.3f})",
        ]


def test_the_downloads_hold_the_summary_csv_and_the_full_results(evaluated, client, runs):
    csv_button, json_button = client.predict(api_name="/export_evaluation")
    assert csv_button["visible"] and json_button["visible"]
    saved = evaluation.evaluations(runs["sft"])
    assert Path(csv_button["value"]).read_bytes().decode("utf-8") == evaluation.summary_csv(saved)
    (row,) = list(csv.DictReader(io.StringIO(Path(csv_button["value"]).read_text(encoding="utf-8"))))
    assert row["run"] == runs["sft"] and row["judge"] == runs["reward"] and row["prompts"] == "4"
    assert json.loads(Path(json_button["value"]).read_text(encoding="utf-8")) == saved


def test_the_runs_tab_lists_the_runs_evaluations(evaluated, client, runs):
    # The section's table and download are updates (shown or hidden): their values sit under "value".
    note, table, csv_button = client.predict(runs["sft"], api_name="/run_evaluations")
    saved = evaluation.evaluations(runs["sft"])
    assert note == "1 evaluation, newest first."
    assert table["visible"] and table["value"]["headers"] == eval_view.TABLE_COLUMNS
    assert table["value"]["data"] == eval_view.table_rows(saved) == evaluated[2]["data"]
    assert csv_button["visible"]
    assert Path(csv_button["value"]).read_bytes().decode("utf-8") == evaluation.summary_csv(saved)
    note, table, csv_button = client.predict(runs["chained"], api_name="/run_evaluations")
    assert note == eval_view.NO_EVALUATIONS and table["visible"] is False and csv_button["visible"] is False
    assert client.predict("", api_name="/run_evaluations")[0] == ""


def test_a_saved_judge_appears_in_the_picker_and_evaluates_typed_prompts(client, runs):
    fields = judge_fields(kind="builtin", name="short", builtin="length", args="target: 5")
    picker, line = client.predict(*fields, api_name="/save_judge")
    path = judges.judges_file()
    assert line == f"Saved judge short in {path}."
    assert ["short (builtin)", "short"] in picker["choices"] and picker["value"] == "short"
    (spec,) = judges.saved_judges()
    assert (spec.label, spec.kind, spec.builtin, spec.args["target"]) == ("short", "builtin", "length", 5)
    # Opening the tab (or Refresh) lists it again, and keeps the pick.
    _runs, _baseline, picker, _rewards = client.predict("short", api_name="/eval_choices")
    assert [c[1] for c in picker["choices"]] == [eval_view.NEW_JUDGE, "short"] and picker["value"] == "short"
    about = client.predict("short", api_name="/pick_judge")
    assert about == (
        '**short**: a built-in rule scores each answer.\n- builtin: length\n- args: {"target": 5, "unit": "words", '
        '"tolerance": 0, "falloff": 5}'
    )
    assert eval_view.pick_judge("short")[1]["visible"] is False  # the new-judge form hides
    assert eval_view.pick_judge(eval_view.NEW_JUDGE) == ("", {"__type__": "update", "visible": True})

    # Picked, the saved judge is used as saved: the form's fields (an endpoint here) are not read.
    typed = "Name a fruit.\n\nHow do I boil an egg?\n"
    _progress, _message, table, rows = evaluate(
        client, [runs["sft"]], judge="short", source="typed", typed=typed, kind="endpoint"
    )
    (row,) = table["data"]
    assert row[2:4] == ["short", "2"]
    assert [r[1] for r in rows["data"]] == ["Name a fruit.", "How do I boil an egg?"]
    latest = evaluation.evaluations(runs["sft"])[0]
    assert latest["judge"]["label"] == "short" and latest["settings"]["max_new_tokens"] == 32


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"kind": "endpoint", "model": "judge"}, "judge.base_url: an endpoint judge needs one"),
        (
            {"kind": "endpoint", "model": "judge", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "sk-12 34"},
            "judge.api_key_env = 'sk-12 34': give the name of an environment variable (letters, digits and _), not "
            "the key itself",
        ),
        ({"kind": "builtin", "builtin": "length", "args": "target 20"}, None),
        ({"kind": "reward_run"}, "judge.run: a reward_run judge needs one"),
    ],
)
def test_a_bad_judge_is_one_line_and_nothing_runs(client, runs, given, expected):
    if expected is None:
        expected = "judge.args = 'target 20': expected a mapping of names to values, e.g. target: 20"
    progress, message, table, rows = evaluate(client, [runs["sft"]], **given)
    assert message == as_error(expected)
    assert progress == "" and table["data"] in ([], [[""] * len(eval_view.TABLE_COLUMNS)])
    assert client.predict(*judge_fields(**given), api_name="/save_judge")[1] == as_error(expected)


def test_other_mistakes_are_one_line(client, runs):
    assert evaluate(client, [])[1] == as_error("pick at least one completed run to evaluate")
    assert evaluate(client, [runs["sft"]], count=0, run=runs["reward"])[1] == as_error(
        "Held-out prompts = 0: a whole number of at least 1"
    )
    assert evaluate(client, [runs["sft"]], source="typed", typed=" \n", run=runs["reward"])[1] == as_error(
        "type at least one prompt, one per line, or pick the held-out prompts"
    )
    # The engine's own refusals come through as they are.
    assert evaluate(client, [runs["sft"]], baseline=runs["sft"], run=runs["reward"])[1] == as_error(
        f"--baseline {runs['sft']}: a run cannot be its own baseline"
    )


class _FailingJudgeServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that answers "A" twice (one pair, both orders), then fails."""

    answered = 0

    def do_POST(self):  # noqa: N802 (the name http.server calls)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).answered += 1
        if type(self).answered > 2:
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"content": "A"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_judge_that_stops_part_way_shows_the_partial_result_and_its_error(client, runs):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingJudgeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        _progress, message, table, rows = evaluate(
            client,
            [runs["chained"]],
            source="typed",
            typed="Name a fruit.\nHow do I boil an egg?",
            kind="endpoint",
            model="judge",
            base_url=url,
            retries=0,
        )
    finally:
        server.shutdown()
    saved = evaluation.evaluations(runs["chained"])[0]
    assert saved["partial"] is True and saved["judge"]["label"] == "endpoint-judge"
    first, second = message.split("\n\n")
    assert first.startswith(f"tuned-chained ({runs['chained']}) judged by endpoint-judge against {BASE} on 2 prompts")
    assert second == as_error(
        f"judge endpoint-judge: {url}/chat/completions: HTTP 500, 1 try; the verdicts given so far are kept"
    )
    (row,) = table["data"]
    # The run's answer shown first got "A" both times: the orders disagree, a tie, and every pick went first.
    assert row[3:6] == ["2 (partial)", "0 / 1 / 0, 1 no verdict", "50% [50%, 50%]"]
    assert row[8] == "100% of picks went first; orders disagreed on 1"
    assert [r[4] for r in rows["data"]] == ["tie (picked A with the run as A, A with it as B)", "no verdict"]


def test_each_judge_kind_shows_only_its_fields():
    shown = {
        kind: [key for key, update in zip(eval_view.FIELD_KINDS, eval_view.judge_kind(kind)) if update["visible"]]
        for kind in cfg.JUDGE_KINDS
    }
    assert shown == {
        "reward_run": ["run"],
        "builtin": ["builtin", "args"],
        "llm": ["model", "prompt"],
        "endpoint": ["model", "prompt", "base_url", "api_key_env", "timeout_s", "retries"],
    }
    assert [u["visible"] for u in eval_view.judge_kind("builtin")][-1] is True  # the rule's help


def test_the_judging_prompt_left_as_the_default_is_not_saved_and_an_edited_one_is():
    spec = eval_view.judge_from_form(*judge_fields(kind="llm", model="tiny"))
    assert (spec.kind, spec.model, spec.prompt, spec.label) == ("llm", "tiny", None, "llm-tiny")
    edited = "Which is kinder? {prompt} A: {answer_a} B: {answer_b}"
    assert eval_view.judge_from_form(*judge_fields(kind="llm", model="tiny", prompt=edited)).prompt == edited
    # Fields of other kinds left filled in are not sent: the reward run picked before switching to llm.
    assert eval_view.judge_from_form(*judge_fields(kind="llm", model="tiny", run="r1")).run is None


def test_the_win_rate_cell_reads_as_a_rate_and_its_interval():
    assert eval_view.win_rate_cell({"win_rate": 0.62, "ci_low": 0.41, "ci_high": 0.8}) == "62% [41%, 80%]"
    assert eval_view.win_rate_cell({"win_rate": None, "ci_low": None, "ci_high": None}) == "no verdicts"
