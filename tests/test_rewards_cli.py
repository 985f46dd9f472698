"""`rlhf-studio rewards try`: a config's (or a pipeline's, or a run's) reward sources score answers typed on the
command line, each source's score printed, and the combined one.

    python -m pytest tests/test_rewards_cli.py -q
"""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_cli

SOURCES = [
    {"builtin": "format", "args": {"pattern": r"The answer is -?\d+\.$"}, "weight": 0.5},
    {"builtin": "length", "args": {"target": 5, "tolerance": 1}},
    {"builtin": "reference_match", "args": {"mode": "last_number"}, "name": "correct"},
]


def write(path, raw: dict):
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_each_source_scores_each_answer(tmp_path):
    config = write(tmp_path / "grpo.yaml", {"stage": "grpo", "rewards": {"sources": SOURCES}})
    done = run_cli(
        "rewards",
        "try",
        str(config),
        "--answer",
        "The answer is 42.",
        "--answer",
        "I think 41",
        "--column",
        "answer=42",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sources: format (weight 0.5), length (weight 1), correct (weight 1); combine sum",
        "=== answer 1: The answer is 42.",
        "  format               1",
        "  length               1",
        "  correct              1",
        "  combined             2.5",
        "=== answer 2: I think 41",
        "  format               0",
        "  length               0.8",
        "  correct              0",
        "  combined             0.8",
    ]
    as_json = json.loads(
        run_cli("rewards", "try", str(config), "--answer", "The answer is 7.", "--column", "answer=7", "--json").stdout
    )
    assert as_json == {
        "combine": "sum",
        "left_out": [],
        "answers": [
            {"answer": "The answer is 7.", "combined": 2.5, "sources": {"format": 1.0, "length": 1.0, "correct": 1.0}}
        ],
    }


def test_a_pipeline_leaves_out_its_reward_stages_that_have_not_run(tmp_path):
    pipeline = {
        "pipeline": "mixed",
        "defaults": {"model": {"name": "tiny"}},
        "stages": [
            {"name": "sft", "stage": "sft", "data": {"source": "dolly", "path": "sample"}},
            {"name": "rm", "stage": "reward", "from": "sft", "data": {"source": "hh-rlhf", "path": "sample"}},
            {
                "name": "ppo",
                "stage": "ppo",
                "from": "sft",
                "rewards_from": "rm",
                "rewards": {"sources": SOURCES[:1]},
                "data": {"source": "hh-rlhf", "path": "sample"},
            },
        ],
    }
    done = run_cli("rewards", "try", str(write(tmp_path / "p.yaml", pipeline)), "--answer", "The answer is 3.")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "note: rm: the pipeline's reward stage, which has not run yet"
    assert done.stdout.splitlines()[0] == "sources: format (weight 0.5); combine sum"
    assert done.stdout.splitlines()[-1] == "  combined             0.5"


def test_mistakes_are_one_line(tmp_path):
    sft = write(tmp_path / "sft.yaml", {"stage": "sft"})
    done = run_cli("rewards", "try", str(sft), "--answer", "x")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"error: {sft}: a sft config has no reward sources; give a ppo, grpo, rloo or rejection config",
    )
    config = write(tmp_path / "grpo.yaml", {"stage": "grpo", "rewards": {"sources": SOURCES}})
    done = run_cli("rewards", "try", str(config), "--answer", "The answer is 4.")
    assert done.stderr.strip() == (
        "error: reward 'correct' (reference_match): the data has no column 'answer'; its columns are none"
    )
    done = run_cli("rewards", "try", str(config), "--answer", "x", "--column", "answer")
    assert done.stderr.strip() == "error: --column 'answer': expected NAME=VALUE, e.g. answer=42"
    done = run_cli("rewards", "try", "no-such-run", "--answer", "x")
    assert done.stderr.strip() == "error: no run with id 'no-such-run' (see `rlhf-studio runs`)"
