"""Trying reward sources on answers (studio/serve/reward_trial.py): sources written as YAML or taken from an online
run's config, typed answers with their data columns, answers sampled from the tiny model on the dolly sample, exact
scores, spreads and warnings, and the one-line errors. `.venv/bin/pytest -q tests/test_reward_trial.py`."""

from __future__ import annotations

import random
import re

import pytest

from studio import config as cfg
from studio.config import DataSpec, GenerationSpec, ModelSpec
from studio.data import load
from studio.errors import ConfigError, RewardError, StudioError
from studio.runs import manager
from studio.serve import generate
from studio.serve.reward_trial import (
    MAX_SAMPLES,
    Sources,
    online_runs,
    parse_columns,
    parse_sources,
    rewards_yaml,
    sample_answers,
    sampling_models,
    split_answers,
    try_sampled,
    try_typed,
)
from studio.serve.rewards import Spread

FORMAT_AND_LENGTH = """
- builtin: format
  args: {pattern: 'answer is \\d+'}
- builtin: length
  args: {target: 4}
  weight: 0.5
"""
PROMPT = "What is 2 + 2?"
ANSWERS = "The answer is 4\n---\nI would say it is four, probably"
DOLLY = DataSpec(source="dolly", path="sample")
GREEDY = GenerationSpec(max_new_tokens=8, temperature=0.0)


def refused(kind: type, message: str):
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


# ---------------------------------------------------------------- writing sources


def test_written_sources_are_checked_as_a_config_and_get_the_builtins_defaults():
    spec = parse_sources(FORMAT_AND_LENGTH, "sum")
    assert [(s.builtin, s.weight, s.label) for s in spec.sources] == [
        ("format", 1.0, "format"),
        ("length", 0.5, "length"),
    ]
    assert spec.sources[0].args == {
        "pattern": r"answer is \d+",
        "match": "search",
        "dotall": True,
        "ignore_case": False,
    }
    assert spec.sources[1].args == {"target": 4, "unit": "words", "tolerance": 0, "falloff": 4}
    assert spec.combine == "sum"
    # One source written without its leading "- " is still one source.
    assert parse_sources("builtin: no_repetition", "sum").sources[0].args == {"n": 3}
    assert rewards_yaml(parse_sources("- builtin: no_repetition\n  name: loops", "sum")) == (
        "sources:\n- builtin: no_repetition\n  args:\n    n: 3\n  weight: 1.0\n  name: loops\n"
        "combine: sum\nsafety_threshold: 0.15\ntime_limit: 60.0\n"
    )


@pytest.mark.parametrize(
    ("text", "combine", "message"),
    [
        (
            "  ",
            "sum",
            "reward sources: write at least one, e.g. `- builtin: format` with `args: {pattern: ...}` below it, "
            "`- run: RUN_ID` or `- function: FILE.py:NAME`",
        ),
        (
            "- builtin: format\n  args: {pattern: [",
            "sum",
            "reward sources: not valid YAML at line 2 (expected the node content, but found '<stream end>')",
        ),
        ("just words", "sum", "reward sources: expected a list of sources, each line starting with '- ' (got text)"),
        (
            "sources: []",
            "sum",
            "reward sources: expected a list of sources, each line starting with '- ' (got a mapping)",
        ),
        (
            "- builtin: format\n  args: {patern: x}",
            "sum",
            "rewards.sources[0].args: unknown argument 'patern'; did you mean 'pattern'? "
            "(format takes pattern, match, dotall, ignore_case)",
        ),
        ("- builtin: length\n  args: {target: 0}", "sum", "rewards.sources[0].args.target = 0: must be at least 1"),
        (
            "- builtin: format\n  args: {pattern: x}\n  run: abc",
            "sum",
            "rewards.sources[0]: give exactly one of run, builtin or function (it has run and builtin)",
        ),
        ("- builtin: no_repetition", "mean", "rewards.combine = 'mean': allowed values are sum, safety_gated"),
    ],
)
def test_bad_sources_are_refused_in_one_line(text, combine, message):
    with refused(ConfigError, message):
        parse_sources(text, combine)


# ---------------------------------------------------------------- typed answers


def test_typed_answers_are_split_on_dash_lines_and_columns_read_as_text():
    assert split_answers("one\n---\n two \nlines \n  ---  \n\n---\n") == ["one", "two \nlines"]
    assert split_answers("") == []
    assert parse_columns("answer: 4\n\ncategory: a: b \n") == {"answer": "4", "category": "a: b"}
    with refused(ConfigError, "data columns line 2 'just text': write it as column: value"):
        parse_columns("answer: 4\njust text")
    with refused(
        ConfigError,
        "data columns line 1: 'prompt' is passed to reward functions by TRL itself; name a column of the data",
    ):
        parse_columns("prompt: hi")
    with refused(ConfigError, "data columns line 2: column 'answer' is given twice"):
        parse_columns("answer: 4\nanswer: 5")


def test_typed_answers_get_each_sources_score_the_combined_score_and_the_spreads():
    trial = try_typed(Sources(text=FORMAT_AND_LENGTH), PROMPT, ANSWERS)
    assert trial.answers == ["The answer is 4", "I would say it is four, probably"]
    assert trial.prompts == [[{"role": "user", "content": PROMPT}]] * 2
    assert trial.model is None
    # length: 4 words scores 1; 7 words is 3 past the target, falling over 4 words: 1 - 3/4.
    assert trial.scored.per_source == {"format": [1.0, 0.0], "length": [1.0, 0.25]}
    assert trial.scored.combined == [1.5, 0.125]
    assert trial.spreads() == {
        "format": Spread(2, 0, 0.0, 1.0, 0.5, 0.5),
        "length": Spread(2, 0, 0.25, 1.0, 0.625, 0.375),
    }
    assert trial.combined_spread() == Spread(2, 0, 0.125, 1.5, 0.8125, 0.6875)
    assert trial.warnings() == []


def test_a_source_with_no_signal_or_no_score_is_warned_about_in_one_line():
    sources = Sources(
        text="- builtin: contains\n  args: {keywords: [four, '4']}\n  name: says-four\n- builtin: reference_match"
    )
    trial = try_typed(sources, PROMPT, "It is 4\n---\nfour", "answer:  ")
    assert trial.scored.per_source == {"says-four": [0.5, 0.5], "reference_match": [None, None]}
    assert trial.spreads()["reference_match"] == Spread(0, 2, None, None, None, None)
    assert trial.warnings() == [
        "source 'says-four' gives every answer the same score, 0.5: no signal to tell them apart",
        "source 'reference_match' scores none of the 2 answers: it adds nothing to the combined score",
        "the combined score gives every answer the same score, 0.5: no signal to tell them apart",
    ]
    # With the reference column given, the same answers are told apart.
    trial = try_typed(sources, PROMPT, "It is 4\n---\nfour", "answer: four")
    assert trial.scored.per_source["reference_match"] == [0.0, 1.0]
    assert trial.warnings() == [
        "source 'says-four' gives every answer the same score, 0.5: no signal to tell them apart"
    ]
    # One answer: nothing to tell apart, so nothing to warn about.
    assert try_typed(sources, PROMPT, "four", "answer: four").warnings() == []


def test_typed_answers_refuse_what_they_cannot_score():
    sources = Sources(text=FORMAT_AND_LENGTH)
    with refused(ConfigError, "type the prompt the answers reply to"):
        try_typed(sources, "  ", ANSWERS)
    with refused(ConfigError, "type at least one answer (separate several with a line holding only ---)"):
        try_typed(sources, PROMPT, "\n---\n")
    with refused(
        RewardError, "reward 'reference_match' (reference_match): the data has no column 'answer'; its columns are none"
    ):
        try_typed(Sources(text="- builtin: reference_match"), PROMPT, "4")
    tokens = Sources(text="- builtin: length\n  args: {target: 4, unit: tokens}")
    with pytest.raises(RewardError, match="unit tokens counts the policy's tokens, and typed answers tried with "):
        try_typed(tokens, PROMPT, "4")
    with refused(ConfigError, f"pick a run whose configured rewards to try ({', '.join(cfg.ONLINE_STAGES)})"):
        try_typed(Sources(run=""), PROMPT, "4")


# ---------------------------------------------------------------- a run's configured rewards, sampled answers


@pytest.fixture
def grpo_run(studio_home) -> str:
    """A grpo run on the tiny model, created and never started (queued), with two built-in sources."""
    raw = {
        "stage": "grpo",
        "model": {"name": "tiny"},
        "data": {"source": "dolly", "path": "sample"},
        "rewards": {
            "sources": [
                {"builtin": "length", "args": {"target": 4, "unit": "tokens"}},
                {"builtin": "reference_match", "args": {"column": "category", "mode": "exact"}, "name": "category"},
            ]
        },
    }
    return manager.create(cfg.from_dict(raw)).id


def test_a_runs_configured_rewards_count_tokens_with_its_model(grpo_run):
    sft = manager.create(cfg.from_dict({"stage": "sft", "model": {"name": "tiny"}})).id
    assert [(r["id"], r["stage"], r["state"]) for r in online_runs()] == [(grpo_run, "grpo", "queued")]
    assert sampling_models() == [("base (tiny)", "base (tiny)")]
    trial = try_typed(Sources(run=grpo_run), PROMPT, "four\n---\nfour four four four", "category: four")
    tokenizer = generate.shared().tokenizer(generate.model_target(ModelSpec(name="tiny")))
    sizes = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in trial.answers]
    assert sizes != [1, 4]  # tokens, not words
    assert trial.scored.per_source["length"] == [max(0.0, 1 - abs(n - 4) / 4) for n in sizes]
    assert trial.scored.per_source["category"] == [1.0, 0.0]
    with refused(
        ConfigError, f"run '{sft}' is a sft run, which has no reward sources; pick a {', '.join(cfg.ONLINE_STAGES)} run"
    ):
        try_typed(Sources(run=sft), PROMPT, "4")


def test_sampled_answers_are_scored_with_their_rows_columns(grpo_run):
    trial = try_sampled(Sources(run=grpo_run), "base (tiny)", DOLLY, 3, 7, GREEDY)
    loaded = load(DOLLY, "sft")
    picked = sorted(random.Random(7).sample(range(len(loaded.rows)), 3))
    prompts = [loaded.rows[i]["prompt"] for i in picked]
    target = generate.model_target(ModelSpec(name="tiny"))
    expected = generate.shared().generate(target, prompts, GREEDY).texts
    assert trial.model == "base (tiny)"
    assert trial.prompts == prompts
    assert trial.answers == expected
    tokenizer = generate.shared().tokenizer(target)
    sizes = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in expected]
    assert trial.scored.per_source["length"] == [max(0.0, 1 - abs(n - 4) / 4) for n in sizes]
    categories = [loaded.columns[i]["category"] for i in picked]
    assert trial.scored.per_source["category"] == [1.0 if a == c else 0.0 for a, c in zip(expected, categories)]


def test_sampling_refuses_bad_counts_and_a_bad_source_before_any_model_loads(grpo_run):
    loads = generate.shared().loads
    with refused(ConfigError, f"answers to sample = 0: a whole number from 1 to {MAX_SAMPLES}"):
        sample_answers("base (tiny)", DOLLY, 0, 0, GREEDY)
    with refused(ConfigError, f"answers to sample = 2.5: a whole number from 1 to {MAX_SAMPLES}"):
        sample_answers("base (tiny)", DOLLY, 2.5, 0, GREEDY)
    with refused(ConfigError, "seed = -1: a whole number of at least 0"):
        sample_answers("base (tiny)", DOLLY, 2, -1, GREEDY)
    with refused(StudioError, "pick a model to sample answers from: a base model or a completed run"):
        sample_answers("", DOLLY, 2, 0, GREEDY)
    with refused(
        ConfigError,
        "rewards.sources[0].builtin: unknown built-in reward 'size'; built-ins are format, "
        "length, contains, excludes, reference_match, json_valid, no_repetition",
    ):
        try_sampled(Sources(text="- builtin: size"), "base (tiny)", DOLLY, 2, 0, GREEDY)
    assert generate.shared().loads == loads
