"""Python reward functions (FILE.py:NAME) beside reward runs and built-ins: a function written as TRL's documentation
shapes one trains GRPO and PPO unchanged with an extra data column; each way a function can be wrong is refused
before the policy loads, in one line naming the source and the answer; the same failure mid-run fails the run with
that line and keeps its metrics and checkpoints, so it resumes once the function is fixed; a studio open to others
refuses Python files but takes built-ins.

    python -m pytest tests/test_reward_functions.py -q
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from studio import access
from studio import config as cfg
from studio.errors import ConfigError, RewardError
from studio.modeling import models
from studio.publish import share
from studio.rewards import functions
from studio.runs import manager
from studio.runs.metrics import read_all
from studio.runs.status import State
from studio.serve.rewards import PROBE_ANSWERS, RewardSet
from studio.trainers.rewards import stage_rewards
from tests.conftest import run_cli, write_jsonl

# As TRL's documentation writes a reward function for conversational data: module level, prompts and completions
# by keyword, the dataset's other columns as keyword lists, one float per completion.
TRL_SHAPED = '''
import re


def keyword_reward(prompts, completions, keyword, **kwargs):
    """1.0 when the answer holds the row's keyword, else 0.0."""
    contents = [completion[0]["content"] for completion in completions]
    return [1.0 if k.lower() in c.lower() else 0.0 for c, k in zip(contents, keyword)]
'''

KEYWORDS = ["blue", "green", "red", "cat", "dog", "sun"]


def keyword_rows(n: int) -> list[dict]:
    """prompt/completion rows (the file source's TRL layout) with an extra `keyword` column."""
    return [
        {
            "prompt": f"Name something {KEYWORDS[i % len(KEYWORDS)]}.",
            "completion": f"Here is something {KEYWORDS[i % len(KEYWORDS)]}.",
            "keyword": KEYWORDS[i % len(KEYWORDS)],
        }
        for i in range(n)
    ]


def write_function(folder: Path, body: str, name: str = "rewards.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def online(stage: str, data: Path, sources: list[dict], **train) -> cfg.RunConfig:
    """A few steps of an online stage on the tiny model, every step logged."""
    settings = {"max_steps": 4, "batch_size": 8, "logging_steps": 1, "save_steps": 0, "eval_steps": 0, **train}
    section = {"grpo": {"max_completion_length": 8}, "ppo": {"response_length": 8, "mini_batch_size": 4}}[stage]
    return cfg.from_dict(
        {
            "stage": stage,
            "data": {"source": "file", "path": str(data), "eval_fraction": 0.0, "max_length": 64},
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            "train": {"learning_rate": 1e-3, "warmup_ratio": 0.0, **settings},
            stage: section,
            "rewards": {"sources": sources},
        }
    )


def wait_final(run, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = manager.status(run)
        if status.final:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run.id} did not end in {timeout} s")


# ---------------------------------------------------------------- a TRL reward function, unchanged


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_a_trl_shaped_function_trains_unchanged_with_an_extra_column(stage, studio_home, tmp_path):
    data = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(24))
    fn = write_function(tmp_path, TRL_SHAPED)
    sources = [{"function": f"{fn}:keyword_reward"}, {"builtin": "length", "args": {"target": 6, "tolerance": 2}}]
    run, _ = manager.start(online(stage, data, sources))
    status = wait_final(run)
    assert status.state is State.COMPLETED, status.error
    rows = [row for row in read_all(run.metrics_path) if "kl" in row]
    assert len(rows) == 4
    # Each source has its series; the keyword reward is a share of answers holding their row's own keyword
    # (it would raise a TypeError without the column), so it lies in [0, 1]; every answer got a score.
    for row in rows:
        assert 0.0 <= row["reward/keyword_reward"] <= 1.0 and 0.0 <= row["reward/length"] <= 1.0
        assert row["scored/keyword_reward"] == 1.0 and row["scored/length"] == 1.0
    saved = cfg.load_config(run.config_path).rewards.sources[0]
    assert saved.function == f"{fn}:keyword_reward" and saved.label == "keyword_reward"
    card = share.model_card(run.id)  # the Hub's README names the sources, the function by its file's name only
    assert "| keyword_reward | function | `rewards.py:keyword_reward` | 1 |" in card
    assert "| length | builtin | target=6, unit='words', tolerance=2, falloff=6 | 1 |" in card
    assert str(tmp_path) not in card


def test_the_function_gets_every_column_and_trl_keywords(studio_home, tmp_path):
    """Columns arrive as keyword lists in the answers' order; TRL's completion_ids and trainer_state pass through."""
    seen = tmp_path / "seen.json"
    fn = write_function(
        tmp_path,
        f"""
        import json

        def spy(prompts, completions, **kwargs):
            with open({str(seen)!r}, "w") as f:
                json.dump({{"prompts": prompts, "completions": completions, "kwargs": sorted(kwargs),
                            "keyword": kwargs.get("keyword")}}, f)
            return [None, 0.5]
        """,
    )
    rewards = RewardSet(cfg.RewardsSpec(sources=[cfg.RewardSource(function=f"{fn}:spy", weight=2.0)]))
    prompt = [{"role": "user", "content": "Name a colour."}]
    scored = rewards.score(
        [prompt, prompt], ["blue", "red"], {"keyword": ["blue", "green"]}, extra={"completion_ids": [[1], [2]]}
    )
    assert json.loads(seen.read_text()) == {
        "prompts": [prompt, prompt],
        "completions": [[{"role": "assistant", "content": "blue"}], [{"role": "assistant", "content": "red"}]],
        "kwargs": ["completion_ids", "keyword"],
        "keyword": ["blue", "green"],
    }
    assert scored.per_source == {"spy": [None, 0.5]}
    assert scored.combined == [0.0, 1.0]  # None counts 0, the weight doubles the rest
    assert scored.means() == {"spy": 0.5}  # None left out of the mean


# ---------------------------------------------------------------- each way a function is wrong, refused early

BAD_FUNCTIONS = [
    (
        "def f(prompts, completions, **kw):\n    return [1.0]\n",
        "reward 'f' returned 1 scores for 3 answers; return one per answer",
    ),
    (
        "def f(prompts, completions, **kw):\n    return [float('nan')] * len(completions)\n",
        "reward 'f' gave answer 1 of 3 ('The answer is 4.') nan, not a finite number; return a float, or None for "
        "no score",
    ),
    (
        "def f(prompts, completions, **kw):\n    return [1.0, 'good', 0.0]\n",
        "reward 'f' gave answer 2 of 3 ('I am not sure.') str 'good', not a number; return a float, or None for no "
        "score",
    ),
    (
        "def f(prompts, completions, **kw):\n    return 1.0\n",
        "reward 'f' returned float, not a list of scores (one number or None per answer)",
    ),
    (
        "def f(prompts, completions, **kw):\n    return [len(c[0]['content']) / len(c[0]['content']) for c in "
        "completions]\n",
        "reward 'f' failed on 3 answers (first: 'The answer is 4.'): ZeroDivisionError: division by zero (bad.py "
        "line 2)",
    ),
    (
        "def f(prompts, completions, answer, **kw):\n    return [1.0] * len(completions)\n",
        "reward 'f' failed on 3 answers (first: 'The answer is 4.'): TypeError: f() missing 1 required positional "
        "argument: 'answer'",
    ),
    (
        "import time\n\ndef f(prompts, completions, **kw):\n    time.sleep(5)\n    return [1.0] * len(completions)\n",
        "reward 'f' took longer than 0.5 s for 3 answers (rewards.time_limit); make it faster or raise the limit",
    ),
    (
        "import no_such_module_here\n\ndef f(prompts, completions, **kw):\n    return []\n",
        "rewards.sources[0].function: importing bad.py failed: ModuleNotFoundError: No module named "
        "'no_such_module_here' (bad.py line 1)",
    ),
    (
        "def g(prompts, completions, **kw):\n    return []\n",
        "rewards.sources[0].function: bad.py has no function 'f' (its functions: g)",
    ),
]


@pytest.mark.parametrize("body, message", BAD_FUNCTIONS)
def test_a_bad_function_is_refused_in_one_line_before_the_policy_loads(body, message, studio_home, tmp_path):
    fn = write_function(tmp_path, body, "bad.py")
    data = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(6))
    config = online("grpo", data, [{"function": f"{fn}:f"}])
    config.rewards.time_limit = 0.5
    tokenizer = models.load_tokenizer(config.model)
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}], "keyword": r["keyword"]} for r in keyword_rows(3)]
    with pytest.raises(RewardError) as caught:
        stage_rewards(config, tokenizer).dry_run(rows)
    assert str(caught.value) == message
    assert "\n" not in message and len(PROBE_ANSWERS) == 3


def test_a_missing_file_is_refused_before_a_run_exists(studio_home, tmp_path):
    data = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(6))
    with pytest.raises(ConfigError) as caught:
        manager.create(online("grpo", data, [{"function": f"{tmp_path}/nowhere.py:f"}]))
    assert str(caught.value) == (
        f"rewards.sources[0].function = '{tmp_path}/nowhere.py:f': no such file {tmp_path}/nowhere.py"
    )
    assert manager.list_runs() == []


def test_a_bad_function_fails_the_run_before_the_policy_loads(studio_home, tmp_path):
    """Through the worker: the run ends failed with the one line, having trained nothing."""
    fn = write_function(tmp_path, "def f(prompts, completions, **kw):\n    return [1.0]\n", "bad.py")
    data = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(6))
    run, _ = manager.start(online("grpo", data, [{"function": f"{fn}:f"}]))
    status = wait_final(run)
    assert status.state is State.FAILED
    assert status.error == "reward 'f' returned 1 scores for 3 answers; return one per answer"
    assert not run.metrics_path.exists() or read_all(run.metrics_path) == []
    assert "policy:" not in run.log_path.read_text()  # the policy never loaded


# ---------------------------------------------------------------- failing mid-run keeps the work


@pytest.mark.slow
def test_a_function_that_fails_mid_run_keeps_metrics_and_checkpoints_and_resumes(studio_home, tmp_path):
    """The function fails on its 6th call (the dry run is the first): the run ends failed with the line, its metrics
    and its complete checkpoint stay, and once the file is fixed `resume` finishes the run from that checkpoint."""
    counter = tmp_path / "calls.txt"
    body = f"""
        from pathlib import Path

        def flaky(prompts, completions, **kw):
            calls = Path({str(counter)!r})
            n = int(calls.read_text()) + 1 if calls.exists() else 1
            calls.write_text(str(n))
            if n >= 6:
                raise RuntimeError("the scoring server went away")
            return [0.5] * len(completions)
        """
    fn = write_function(tmp_path, body, "flaky.py")
    data = write_jsonl(tmp_path / "keywords.jsonl", keyword_rows(24))
    run, _ = manager.start(online("grpo", data, [{"function": f"{fn}:flaky"}], max_steps=8, save_steps=2))
    status = wait_final(run)
    assert status.state is State.FAILED
    assert status.error.startswith("reward 'flaky' failed on 8 answers (first: ")
    assert status.error.endswith("): RuntimeError: the scoring server went away (flaky.py line 9)")
    kept = [row["step"] for row in read_all(run.metrics_path) if "kl" in row]
    assert kept and kept == list(range(1, len(kept) + 1))
    checkpoints = run.complete_checkpoints()
    assert checkpoints, "a complete checkpoint was saved before the failure"

    fixed = "def flaky(prompts, completions, **kw):\n    return [0.5] * len(completions)\n"
    write_function(tmp_path, fixed, "flaky.py")
    result = run_cli("resume", run.id, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert manager.status(run).state is State.COMPLETED
    steps = [row["step"] for row in read_all(run.metrics_path) if "kl" in row]
    assert steps == list(range(1, 9))  # no gap and no repeat: the rows after the checkpoint were dropped


# ---------------------------------------------------------------- a studio open to others


def test_a_studio_served_to_others_refuses_python_files_but_takes_built_ins(studio_home, sleeper, monkeypatch):
    """`python -m components --host 0.0.0.0` behind a login: Start with a Python function source is refused in one
    line and creates nothing; with a built-in the run is created (queued behind a run that holds the device)."""
    from gradio_client import Client

    from tests.conftest import device_held, error_shown, free_port
    from tests.test_access import _serving

    fn = write_function(studio_home, TRL_SHAPED)
    monkeypatch.setenv(access.AUTH_ENV, "ann:s3cret")
    monkeypatch.delenv(functions.ALLOW_ENV, raising=False)
    port = free_port()
    argv = [sys.executable, "-m", "components", "--host", "0.0.0.0", "--port", str(port)]
    with device_held(sleeper), _serving(argv, port, {**os.environ, "OMP_NUM_THREADS": "1"}) as url:
        client = Client(url, auth=("ann", "s3cret"), verbose=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/start_run"]["parameters"]

        def start(sources: str) -> str:
            labels = {"Stage": "grpo", "Data file": "sample", "Reward sources": sources, "Max steps": "2"}
            values = [labels.get(p["label"], p.get("parameter_default")) for p in params]
            return client.predict(*values, api_name="/start_run")

        before = len(manager.list_runs())
        refused = start(f"- function: {fn}:keyword_reward")
        assert error_shown(refused) == (
            f"Not started: rewards.sources[0].function = '{fn}:keyword_reward': this studio can be opened by "
            "others, and a reward function runs as Python on this server; use a built-in reward, or have the "
            f"studio's owner set {functions.ALLOW_ENV}=1"
        )
        assert len(manager.list_runs()) == before
        started = start("- builtin: format\n  args: {pattern: blue}")
        assert error_shown(started) is None and len(manager.list_runs()) == before + 1, started


def test_a_studio_open_to_others_refuses_python_files_but_takes_built_ins(studio_home, monkeypatch):
    fn = write_function(studio_home, TRL_SHAPED)
    data = write_jsonl(studio_home / "keywords.jsonl", keyword_rows(6))  # an open studio reads files in its home
    monkeypatch.delenv("RLHF_STUDIO_ALLOW_REWARD_CODE", raising=False)
    access.serve("0.0.0.0", ("user", "password"))
    try:
        with pytest.raises(ConfigError) as caught:
            manager.create(online("grpo", data, [{"function": f"{fn}:keyword_reward"}]))
        assert str(caught.value) == (
            f"rewards.sources[0].function = '{fn}:keyword_reward': this studio can be opened by others, and a "
            "reward function runs as Python on this server; use a built-in reward, or have the studio's owner set "
            "RLHF_STUDIO_ALLOW_REWARD_CODE=1"
        )
        run = manager.create(online("grpo", data, [{"builtin": "format", "args": {"pattern": "blue"}}]))
        assert cfg.load_config(run.config_path).rewards.sources[0].builtin == "format"
    finally:
        access.serve("127.0.0.1", None)
