"""`rlhf-studio eval` on the demo's runs: a local model judging pairs in both orders, a reward run scoring each
answer, results saved in each run's folder; and the reward-hacking alarm firing on a PPO run trained for length.
Run: .venv/bin/python -m pytest -q tests/test_eval.py (the demo trains once per session, conftest.demo_runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studio import demo
from studio.eval import evaluate
from studio.monitor import health
from studio.runs import manager
from studio.runs.metrics import read_all
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def held_out_file(home) -> str:
    return str(home / "demo" / "data" / "held_out.jsonl")


def check_result(result: dict, prompts: int) -> dict:
    """What every result holds, whatever the judge: counts that add up, a rate inside its interval."""
    s = result["summary"]
    assert s["prompts"] == prompts == len(result["rows"])
    assert s["wins"] + s["ties"] + s["losses"] + s["no_verdict"] == prompts
    assert s["no_verdict"] == 0
    assert s["win_rate"] == pytest.approx((s["wins"] + s["ties"] / 2) / prompts)
    assert s["ci_low"] <= s["win_rate"] <= s["ci_high"]
    assert s["ci_low"] >= 0 and s["ci_high"] <= 1
    assert 0 <= s["length_controlled_win_rate"] <= 1
    assert s["mean_length"] > 0 and s["baseline_mean_length"] > 0
    return s


def eval_ppo_and_dpo(demo_runs: dict, judge: str, *more: str):
    """`rlhf-studio eval` of the demo's PPO and DPO runs on 12 of its held-out questions."""
    runs = demo_runs["runs"]
    return run_cli(
        "eval",
        runs["ppo"],
        runs["dpo"],
        "--judge",
        judge,
        "--prompts",
        held_out_file(demo_runs["home"]),
        "--held-out",
        "12",
        "--max-new-tokens",
        str(demo.EVAL_TOKENS),
        *more,
    )


def test_the_llm_judge_compares_each_pair_in_both_orders(in_demo_home):
    runs = in_demo_home["runs"]
    done = eval_ppo_and_dpo(in_demo_home, "llm:tiny", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert [r["run"] for r in results] == [runs["ppo"], runs["dpo"]]
    for result in results:
        check_result(result, 12)
        assert result["baseline"] == "base (tiny)"
        assert result["judge"] == {"label": "llm-tiny", "kind": "llm", "model": "tiny"}
        for row in result["rows"]:  # both orders judged, each from the label probabilities
            assert row["orders"][0] in ("A", "B") and row["orders"][1] in ("A", "B")
            assert 0 <= row["detail"]["run_as_a"]["p_a"] <= 1 and 0 <= row["detail"]["run_as_b"]["p_a"] <= 1
            expected = {("A", "B"): 1.0, ("B", "A"): 0.0}.get(tuple(row["orders"]), 0.5)
            assert row["outcome"] == expected
        bias = result["position_bias"]
        assert bias["judgements"] == 24 and 0 <= bias["first_position_share"] <= 1
        # the same prompts, answered by the same models with the same settings, for both runs
        assert [r["prompt"] for r in result["rows"]] == [r["prompt"] for r in results[0]["rows"]]
        assert [r["baseline_answer"] for r in result["rows"]] == [r["baseline_answer"] for r in results[0]["rows"]]
        saved = json.loads(Path(result["path"]).read_text(encoding="utf-8"))
        assert saved["summary"] == result["summary"] and saved["rows"] == result["rows"]
    assert evaluate.evaluations(runs["ppo"])[0]["path"] == results[0]["path"]


def test_a_reward_run_judge_scores_answers_and_is_named_when_the_run_trained_against_it(in_demo_home):
    runs = in_demo_home["runs"]
    done = eval_ppo_and_dpo(in_demo_home, f"reward_run:{runs['rm']}")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # PPO optimised this reward model: one warning line, for PPO only
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and runs["ppo"] in warnings[0] and "trained against" in warnings[0]
    ppo, dpo = (evaluate.evaluations(runs[name])[0] for name in ("ppo", "dpo"))
    for result in (ppo, dpo):
        s = check_result(result, 12)
        assert result["position_bias"] is None  # a score judge has no order to prefer
        for row in result["rows"]:
            score, base = row["detail"]["score"], row["detail"]["baseline_score"]
            assert row["outcome"] == (1.0 if score > base else 0.0 if score < base else 0.5)
        # both policies learned the format the reward model prefers, which the base model never writes
        assert s["win_rate"] > 0.7, s
    assert ppo["warnings"] and not dpo["warnings"]
    assert any(line.startswith("ppo vs base (tiny) (judge ") and "win rate" in line for line in lines)


def test_eval_refuses_in_one_line(in_demo_home):
    runs = in_demo_home["runs"]
    for args, message in (
        ((runs["ppo"], "--judge", "nobody"), "--judge nobody: no judge of that name"),
        ((runs["rm"], "--judge", "llm:tiny"), "reward"),
        ((runs["ppo"], "--judge", "llm:tiny", "--baseline", runs["ppo"]), "cannot be its own baseline"),
        ((runs["ppo"], "--judge", "llm:tiny"), "held no rows out of training"),
    ):
        done = run_cli("eval", *args)
        assert done.returncode != 0
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_ppo_run_paid_for_brevity_sets_off_the_reward_hacking_alarm(in_demo_home):
    """PPO from the demo's SFT model, rewarded for short answers only (a length rule aiming at 2 words); the judge
    checks the whole taught format, which answers that short cannot hold. The reward rises, the judge falls, and
    the warning names where they parted."""
    runs, home = in_demo_home["runs"], in_demo_home["home"]
    config = {
        "stage": "ppo",
        "name": "paid-for-brevity",
        "model": {"name": "tiny"},
        "init": {"from_run": runs["sft"]},
        "data": {"source": "file", "path": str(home / "demo" / "data" / "pairs.jsonl"), "eval_fraction": 0.0},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "train": {"max_steps": 20, "learning_rate": 1e-3, "batch_size": 16, "save_steps": 0, "logging_steps": 5},
        "ppo": {"response_length": 40, "temperature": 0.7, "kl_coef": 0.02, "ppo_epochs": 2, "mini_batch_size": 8},
        "rewards": {"sources": [{"builtin": "length", "args": {"target": 2, "falloff": 10}}]},
        "eval": {
            **demo.watched_by_format_judge(home / "demo" / "data" / "held_out.jsonl", every_steps=5),
            "prompts": 12,
        },
    }
    path = home / "paid-for-brevity.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("train", str(path), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    run = manager.find(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("run ")))
    rows = read_all(run.metrics_path)
    rewards = [r["reward"] for r in rows if "reward" in r]
    judged = [r["judge/taught_format"] for r in rows if "judge/taught_format" in r]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.1, rewards  # the reward it was paid rose
    assert judged[0] > 0.5 and judged[-1] < judged[0] - 0.5, judged  # the format it was taught fell apart
    warnings = [w for w in health.check_run(run) if w.check == "reward_hacking"]
    assert len(warnings) == 1, [w.message for w in health.check_run(run)]
    assert warnings[0].metric == "judge/taught_format"
    assert "judge taught_format falls: they parted at step 0" in warnings[0].message


def test_a_served_run_answers_the_openai_client_and_judges_as_an_endpoint(in_demo_home, monkeypatch):
    """`rlhf-studio serve` puts the demo's DPO run behind an OpenAI-compatible API; the official client talks to it
    (whole and streamed answers), and `rlhf-studio eval` uses it as the endpoint judge of the PPO run."""
    import openai

    from studio.config import JudgeSpec
    from studio.eval import judges
    from tests.test_serve import serving

    runs, home = in_demo_home["runs"], in_demo_home["home"]
    monkeypatch.setenv("STUDIO_JUDGE_KEY", "judge-key")
    with serving(home, runs["dpo"], "--api-key-env", "STUDIO_JUDGE_KEY") as (url, _):
        client = openai.OpenAI(base_url=url, api_key="judge-key")
        ask = {"model": runs["dpo"], "messages": [{"role": "user", "content": "What colour is snow?"}], "seed": 1}
        whole = client.chat.completions.create(**ask, temperature=0, max_tokens=24)
        streamed = client.chat.completions.create(**ask, temperature=0, max_tokens=24, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == whole.choices[0].message.content
        judges.save_judge(
            JudgeSpec(
                kind="endpoint", name="served-dpo", base_url=url, model=runs["dpo"], api_key_env="STUDIO_JUDGE_KEY"
            )
        )
        done = run_cli(
            "eval", runs["ppo"], "--judge", "served-dpo", "--prompts", held_out_file(home), "--held-out", "4", "--json"
        )
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)
    s = result["summary"]
    assert s["prompts"] == 4 and s["wins"] + s["ties"] + s["losses"] + s["no_verdict"] == 4
    for row in result["rows"]:  # each pair asked in both orders; the tiny model's text may name no answer
        assert set(row["detail"]) == {"run_as_a", "run_as_b"}
        assert all(isinstance(row["detail"][order]["reply"], str) for order in ("run_as_a", "run_as_b"))
        assert (row["outcome"] is None) == (None in row["orders"])
    assert result["judge"]["api_key_env"] == "STUDIO_JUDGE_KEY" and "judge-key" not in Path(result["path"]).read_text()


def test_a_judge_server_that_goes_away_leaves_a_partial_result_and_one_line(in_demo_home):
    from studio.config import JudgeSpec
    from studio.eval import judges
    from tests.test_eval_judges import JudgeServer

    runs, home = in_demo_home["runs"], in_demo_home["home"]
    server = JudgeServer(stop_after=4)  # answers both orders of two pairs, then is gone
    try:
        judges.save_judge(JudgeSpec(kind="endpoint", name="short-lived", base_url=server.url, model="m", retries=1))
        done = run_cli(
            "eval", runs["dpo"], "--judge", "short-lived", "--prompts", held_out_file(home), "--held-out", "5"
        )
    finally:
        server.close()
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: judge short-lived: ") and "the verdicts given so far are kept" in error
    saved = next(line for line in done.stdout.splitlines() if line.strip().startswith("saved "))
    assert saved.endswith("(partial)")
    result = evaluate.evaluations(runs["dpo"])[0]
    assert result["partial"] and result["error"] == error.removeprefix("error: ")
    assert [row["outcome"] is not None for row in result["rows"]] == [True, True, False, False, False]
    assert result["summary"]["no_verdict"] == 3 and len(result["rows"]) == 5  # every answer kept, judged or not
