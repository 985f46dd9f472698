"""A reward model evaluated on a preference file (studio/eval/reward_model.py, `rlhf-studio eval-rm`, the Rewards tab's
"Evaluate a reward model on a preference file"), on the session's tiny reward run, which prefers polite answers.

The hand-made file has three subsets: "polite" (a polite answer chosen over a rude one), "flipped" (the rude one
chosen) and "length" (pairs whose answers differ in length by known word counts). The expected accuracies come from
scoring.score, one answer at a time, never from the report under test. The runs are copied into the module's own
home, so the reports saved in the reward run's eval/ folder stay out of the session's tuned home.

    .venv/bin/python -m pytest -q tests/test_eval_rm.py
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from studio.errors import ConfigError, DataError, StudioError
from studio.eval import reward_model
from studio.eval.reward_model import ABOUT_EQUAL, LONGER, MUCH_LONGER, MUCH_SHORTER, SHORTER
from studio.serve import scoring
from tests.conftest import ANSWERS, QUESTIONS, error_shown, run_cli, served_studio, write_csv, write_jsonl

pytestmark = pytest.mark.usefixtures("in_module_home")

# Rude answers in the style of the rejected answers the tiny reward model was trained on.
RUDE = [
    "No. Go away.",
    "Not my problem. Look it up.",
    "Ugh, I am not doing that.",
    "Stop bothering me with this.",
    "Figure it out yourself.",
    "I have better things to do.",
]


def polite(i: int) -> str:  # 17 to 21 words
    return f"Happy to help. {ANSWERS[i]} Feel free to ask if anything is unclear."


def brief(i: int) -> str:  # polite(i) without its closing sentence: 9 to 11 words
    return f"Happy to help. {ANSWERS[i]}"


def grumpy(i: int) -> str:  # one word shorter than polite(i)
    return f"Not my problem. {ANSWERS[i]} Figure it out yourself next time, okay?"


def preference_rows() -> list[dict]:
    rows = [{"prompt": QUESTIONS[i], "chosen": polite(i), "rejected": RUDE[i], "subset": "polite"} for i in range(6)]
    rows += [
        {"prompt": QUESTIONS[6 + i], "chosen": RUDE[i], "rejected": polite(6 + i), "subset": "flipped"}
        for i in range(6)
    ]
    pairs = [(0, polite(0), brief(0)), (2, polite(2), brief(2))]  # chosen longer (19 words against 11)
    pairs += [(1, brief(1), polite(1)), (3, brief(3), polite(3))]  # chosen shorter (9 against 17, 10 against 18)
    pairs += [(4, polite(4), grumpy(4)), (5, grumpy(5), polite(5))]  # about equal (18 against 17, 18 against 19)
    rows += [
        {"prompt": [{"role": "user", "content": QUESTIONS[i]}], "chosen": c, "rejected": r, "subset": "length"}
        for i, c, r in pairs
    ]
    return rows


# Row indexes (from 0) of each length bin, by the word counts above.
BINS = {
    MUCH_SHORTER: range(6, 12),
    SHORTER: (14, 15),
    ABOUT_EQUAL: (16, 17),
    LONGER: (12, 13),
    MUCH_LONGER: range(0, 6),
}


@pytest.fixture(scope="module")
def runs(tuned_runs, module_home) -> dict:
    """The tuned runs, copied into the module's home (evaluations write to the reward run's folder)."""
    shutil.copytree(tuned_runs["home"] / "runs", module_home / "runs", ignore=shutil.ignore_patterns("checkpoints"))
    return {**tuned_runs, "home": module_home}


@pytest.fixture(scope="module")
def prefs(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("rm-eval") / "prefs.jsonl", preference_rows())


@pytest.fixture(scope="module")
def in_home(runs):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHF_STUDIO_HOME", str(runs["home"]))
        yield runs


@pytest.fixture(scope="module")
def expected(in_home) -> list[tuple[float, float]]:
    """(chosen score, rejected score) of every row, each answer scored on its own."""
    scores = []
    for row in preference_rows():
        prompt = row["prompt"] if isinstance(row["prompt"], list) else [{"role": "user", "content": row["prompt"]}]
        scores.append(tuple(scoring.score(in_home["reward"], prompt, row[side]) for side in ("chosen", "rejected")))
    return scores


@pytest.fixture(scope="module")
def report(in_home, prefs) -> reward_model.RewardModelReport:
    return reward_model.evaluate(in_home["reward"], prefs)


def accuracy(scores: list[tuple[float, float]]) -> float:
    return sum(c > r for c, r in scores) / len(scores)


def test_accuracy_per_subset_is_the_share_of_pairs_whose_chosen_answer_scores_higher(report, expected):
    assert report.subset_column == "subset"
    assert [(s.subset, s.n) for s in report.subsets] == [("polite", 6), ("flipped", 6), ("length", 6)]
    by_subset = {s.subset: s for s in report.subsets}
    for name, rows in (("polite", range(0, 6)), ("flipped", range(6, 12)), ("length", range(12, 18))):
        assert by_subset[name].accuracy == accuracy([expected[i] for i in rows]), name
        mean = sum(expected[i][0] - expected[i][1] for i in rows) / 6
        assert by_subset[name].mean_margin == pytest.approx(mean, abs=1e-4)
    # A wrong sign anywhere (chosen and rejected swapped) turns these around.
    assert by_subset["polite"].accuracy >= 5 / 6 and by_subset["flipped"].accuracy <= 1 / 6

    assert report.n == 18 and report.ties == 0
    assert report.right == sum(c > r for c, r in expected) and report.accuracy == accuracy(expected)
    assert report.mean_margin == pytest.approx(sum(c - r for c, r in expected) / 18, abs=1e-4)
    assert [p.row for p in report.pairs] == list(range(1, 19))
    assert [(p.chosen, p.rejected) for p in report.pairs] == [pytest.approx(s, abs=1e-4) for s in expected]


def test_accuracy_by_length_difference_and_how_often_the_longer_answer_won(report, expected):
    assert [(b.bin, b.n) for b in report.by_length] == [(name, len(rows)) for name, rows in BINS.items()]
    for row in report.by_length:
        assert row.accuracy == accuracy([expected[i] for i in BINS[row.bin]]), row.bin
    # Every pair differs in length; the chosen answer is the longer one in polite, and in 3 of the length pairs.
    assert report.length_pairs == 18 and report.longer_chosen == 9 / 18
    longer = [c if i in (*range(6), 12, 13, 16) else r for i, (c, r) in enumerate(expected)]
    shorter = [r if i in (*range(6), 12, 13, 16) else c for i, (c, r) in enumerate(expected)]
    assert report.longer_won == sum(a > b for a, b in zip(longer, shorter)) / 18


def test_margins_histogram_counts_every_pair_in_its_bin(report):
    margins = [p.margin for p in report.pairs]
    edges, counts = report.margins.edges, report.margins.counts
    assert len(edges) == reward_model.MARGIN_BINS + 1 and len(counts) == reward_model.MARGIN_BINS
    assert (edges[0], edges[-1]) == (min(margins), max(margins)) and edges == sorted(edges)
    inside = [sum(low <= m < high for m in margins) for low, high in zip(edges, edges[1:])]
    inside[-1] += margins.count(edges[-1])  # the last bin holds the largest margin
    assert counts == inside and sum(counts) == 18


def test_histogram_and_length_bins_on_known_values():
    assert reward_model.histogram([0.0, 1.0, 2.0, 3.0, 4.0], bins=4) == reward_model.Histogram(
        edges=[0.0, 1.0, 2.0, 3.0, 4.0], counts=[1, 1, 1, 2]
    )
    assert reward_model.histogram([2.0, 2.0], bins=2) == reward_model.Histogram(edges=[1.5, 2.0, 2.5], counts=[0, 2])
    words = [(10, 10), (11, 10), (10, 11), (12, 10), (19, 10), (20, 10), (10, 19), (10, 20)]
    assert [reward_model.length_bin(c, r) for c, r in words] == [
        ABOUT_EQUAL,
        ABOUT_EQUAL,
        ABOUT_EQUAL,
        LONGER,
        LONGER,
        MUCH_LONGER,
        SHORTER,
        MUCH_SHORTER,
    ]


def test_the_report_is_saved_with_every_pairs_scores_in_the_runs_eval_folder(report, in_home):
    saved = Path(report.saved)
    assert saved.parent == in_home["home"] / "runs" / in_home["reward"] / "eval"
    assert re.fullmatch(r"\d{8}-\d{6}-rm-prefs(-\d+)?\.json", saved.name)
    data = json.loads(saved.read_text())
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["pairs"][0] == {
        "row": 1,
        "subset": "polite",
        "chosen": report.pairs[0].chosen,
        "rejected": report.pairs[0].rejected,
        "chosen_words": 19,
        "rejected_words": 3,
    }


def test_eval_rm_prints_the_report_as_json_or_as_tables(in_home, prefs, report):
    done = run_cli("eval-rm", in_home["reward"], "--data", str(prefs), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [(s["subset"], s["n"], s["accuracy"]) for s in data["subsets"]] == [
        (s.subset, s.n, s.accuracy) for s in report.subsets
    ]
    assert (data["n"], data["right"], data["accuracy"], data["longer_chosen"]) == (
        18,
        report.right,
        report.accuracy,
        0.5,
    )
    assert data["saved"] != report.saved and json.loads(Path(data["saved"]).read_text()) == data

    done = run_cli("eval-rm", in_home["reward"][:20], "--data", str(prefs), "--limit", "12")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    polite, flipped = report.subsets[0], report.subsets[1]
    right = sum(p.right for p in report.pairs[:12])
    assert lines[1].startswith(f"accuracy {right / 12:.1%} ({right} of 12 pairs), mean margin ")
    assert re.search(rf"^polite +6 +{re.escape(f'{polite.accuracy:.1%}')} ", done.stdout, re.M)
    assert re.search(rf"^flipped +6 +{re.escape(f'{flipped.accuracy:.1%}')} ", done.stdout, re.M)
    assert len(done.stdout.split("\n\n")[1].splitlines()) == 3  # a header, polite, flipped: --limit 12 stops there
    assert re.search(r"^chosen shorter +0 +-$", done.stdout, re.M)
    assert lines[-1].startswith(f"saved {in_home['home']}/runs/{in_home['reward']}/eval/")

    done = run_cli("eval-rm", in_home["reward"], "--data", str(prefs), "--limit", "0")
    assert (done.returncode, done.stderr) == (2, "error: --limit 0: give at least 1\n")


def test_a_run_that_is_not_a_completed_reward_run_is_refused_in_one_line(in_home, prefs):
    line = (
        f"run '{in_home['sft']}' is not a reward model (its stage is sft); pick a completed reward run to score answers"
    )
    with pytest.raises(StudioError) as caught:
        reward_model.evaluate(in_home["sft"], prefs)
    assert str(caught.value) == line
    done = run_cli("eval-rm", in_home["sft"], "--data", str(prefs))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {line}"
    with pytest.raises(ConfigError, match=re.escape("limit = 0: score at least 1 pair")):
        reward_model.evaluate(in_home["reward"], prefs, limit=0)


@pytest.mark.parametrize(
    "row, change, message",
    [
        (3, {"rejected": "  "}, "bad.jsonl row 3: column 'rejected': empty"),
        (2, {"chosen": None}, "bad.jsonl row 2: column 'chosen': missing"),
        (4, {"subset": None}, "bad.jsonl row 4: column 'subset': missing (every row needs one when any row has it)"),
        (5, {"subset": ["a"]}, "bad.jsonl row 5: column 'subset': expected text, got list"),
    ],
)
def test_a_bad_row_stops_the_evaluation_in_one_line_naming_file_row_and_column(in_home, tmp_path, row, change, message):
    rows = preference_rows()[:6]
    rows[row - 1] = {k: v for k, v in {**rows[row - 1], **change}.items() if v is not None}
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as caught:
        reward_model.evaluate(in_home["reward"], path)
    assert str(caught.value) == message


def test_rewardbench_parquet_and_a_category_column_in_csv(in_home, tmp_path, expected):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = preference_rows()
    # RewardBench's layout: prompt and answers as text, the subset, the models that wrote the answers, an id.
    picked = [0, 6, 1, 7, 2, 8]
    bench = [
        {
            "prompt": rows[i]["prompt"],
            "chosen": rows[i]["chosen"],
            "chosen_model": "human",
            "rejected": rows[i]["rejected"],
            "rejected_model": "tiny",
            "subset": "chat" if i < 6 else "chat-hard",
            "id": n,
        }
        for n, i in enumerate(picked)
    ]
    path = tmp_path / "bench.parquet"
    pq.write_table(pa.Table.from_pylist(bench), path)
    report = reward_model.evaluate(in_home["reward"], path, limit=4)
    assert report.n == 4 and Path(report.saved).name.endswith("-rm-bench.json")
    assert [(s.subset, s.n, s.accuracy) for s in report.subsets] == [
        ("chat", 2, accuracy([expected[0], expected[1]])),
        ("chat-hard", 2, accuracy([expected[6], expected[7]])),
    ]

    table = [
        {**{k: rows[i][k] for k in ("prompt", "chosen", "rejected")}, "category": rows[i]["subset"]} for i in (0, 6, 7)
    ]
    report = reward_model.evaluate(in_home["reward"], write_csv(tmp_path / "pairs.csv", table))
    assert report.subset_column == "category"
    assert [(s.subset, s.n) for s in report.subsets] == [("polite", 1), ("flipped", 2)]


@pytest.fixture(scope="module")
def client(runs):
    with served_studio(runs["home"]) as (_url, client):
        yield client


def test_the_rewards_tab_shows_the_tables_and_the_margins_histogram(client, in_home, prefs, report, expected, tmp_path):
    summary, overall, subsets, plot, by_length = client.predict(
        in_home["reward"], str(prefs), None, api_name="/evaluate_reward_file"
    )
    assert summary.startswith(f"Accuracy **{report.accuracy:.1%}** on 18 pairs of prefs.jsonl: ")
    assert f"in {report.longer_won:.1%} of the 18 pairs whose lengths differ" in summary
    assert overall["data"] == [[18, report.right, 0, f"{report.accuracy:.1%}", f"{report.mean_margin:.3f}"]]
    assert subsets["headers"] == ["subset", "pairs", "accuracy", "mean margin"]
    assert [row[:3] for row in subsets["data"]] == [[s.subset, 6, f"{s.accuracy:.1%}"] for s in report.subsets]
    assert by_length["data"] == [
        [name, len(rows), f"{accuracy([expected[i] for i in rows]):.1%}"] for name, rows in BINS.items()
    ]
    figure = json.loads(plot["plot"])
    assert [t["type"] for t in figure["data"]] == ["bar"] and sum(figure["data"][0]["y"]) == 18

    summary, *_ = client.predict(in_home["reward"], str(prefs), 0, api_name="/evaluate_reward_file")
    assert "pairs to score = 0: a whole number of at least 1, or empty for every pair" in summary
    summary, *_ = client.predict(None, str(prefs), None, api_name="/evaluate_reward_file")
    assert "pick a completed reward run" in summary

    rows = preference_rows()[:3]
    del rows[1]["rejected"]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    summary, overall, subsets, plot, by_length = client.predict(
        in_home["reward"], str(bad), None, api_name="/evaluate_reward_file"
    )
    assert error_shown(summary) == "bad.jsonl row 2: column 'rejected': missing"
    assert (overall["data"], subsets["data"], plot, by_length["data"]) == ([], [], None, [])
