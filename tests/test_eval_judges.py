"""Judges and their statistics without a model: win rates with intervals, the length-controlled rate, verdicts parsed
from text, and the endpoint judge against a real loopback server that is slow, fails, rate-limits, talks nonsense
or goes away. Run: .venv/bin/python -m pytest -q tests/test_eval_judges.py"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from studio import config as cfg
from studio.config import JudgeSpec
from studio.errors import ConfigError
from studio.eval import judges, stats
from studio.eval.endpoint import parse_verdict
from studio.eval.judges import EndpointJudge

# ---------------------------------------------------------------- statistics


def test_win_rate_counts_ties_half_and_its_interval_holds_it():
    outcomes = [1.0] * 6 + [0.5] * 2 + [0.0] * 2
    summary = stats.summarise(outcomes, ["a b"] * 10, ["a b"] * 10)
    assert (summary.wins, summary.ties, summary.losses, summary.no_verdict) == (6, 2, 2, 0)
    assert summary.win_rate == pytest.approx(0.7)
    assert summary.ci_low < 0.7 < summary.ci_high
    assert summary.ci_low > 0.4 and summary.ci_high <= 1.0  # 10 prompts: wide, but not everything
    assert stats.summarise(outcomes, ["a"] * 10, ["a"] * 10).ci_low == summary.ci_low  # seeded: the same twice


def test_a_prompt_without_a_verdict_is_counted_not_guessed():
    summary = stats.summarise([1.0, None, 0.0, None], ["x"] * 4, ["y"] * 4)
    assert (summary.prompts, summary.no_verdict, summary.wins, summary.losses) == (4, 2, 1, 1)
    assert summary.win_rate == 0.5
    assert stats.summarise([None, None], ["x"] * 2, ["y"] * 2).win_rate is None


def test_winning_by_length_alone_is_discounted_at_equal_length():
    # The run wins exactly where its answer is longer: the judge rewards length, not quality.
    differences = [5, 8, 3, 6, -4, -6, 7, 2, -3, 4, 9, -5]
    outcomes = [1.0 if d > 0 else 0.0 for d in differences]
    win, slope = stats.length_controlled(outcomes, differences)
    assert stats.win_rate(outcomes) == pytest.approx(8 / 12)
    assert slope > 2  # strongly length-driven
    assert win < 8 / 12  # at equal length the run is no better than the raw rate says
    # Wins that do not follow length keep their rate.
    even = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    win, slope = stats.length_controlled(even, [0] * 8)
    assert win == pytest.approx(5 / 8, abs=0.01) and slope == 0


def test_lengths_are_reported_in_words():
    summary = stats.summarise([1.0, 0.0], ["one two three", "four"], ["a", "b c"])
    assert (summary.mean_length, summary.baseline_mean_length) == (2.0, 1.5)


# ---------------------------------------------------------------- verdicts and judges named


@pytest.mark.parametrize(
    "reply, verdict",
    [
        ("A", "A"),
        (" b.", "B"),
        ("Answer B", "B"),
        ("[[A]]", "A"),
        ("The better answer is B.", "B"),
        ("Verdict: A", "A"),
        ("I prefer A; B rambles.", "A"),
        ("Both A and B are fine", None),
        ("I cannot tell", None),
        ("", None),
    ],
)
def test_a_verdict_is_parsed_from_text_or_is_none(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_judges_are_named_in_the_judges_file_or_written_short():
    assert judges.resolve("llm:tiny") == JudgeSpec(kind="llm", model="tiny")
    assert judges.resolve("builtin:no_repetition").args == {"n": 3}  # defaults filled
    spec = JudgeSpec(kind="endpoint", name="local", base_url="http://127.0.0.1:9/v1", model="m", api_key_env="K")
    judges.save_judge(spec)
    assert judges.resolve("local") == spec
    assert "api_key_env: K" in judges.judges_file().read_text()
    with pytest.raises(ConfigError, match="--judge nobody: no judge of that name .*saved: local"):
        judges.resolve("nobody")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"kind": "endpoint", "model": "m"}, r"judge\.base_url: an endpoint judge needs one"),
        ({"kind": "llm", "model": "tiny", "run": "x"}, r"judge\.run: only a reward_run judge takes it"),
        ({"kind": "llm", "model": "tiny", "prompt": "Which? {answer_a}"}, r"must hold \{prompt\}, \{answer_b\}"),
        ({"kind": "builtin", "builtin": "format"}, r"judge\.args\.pattern"),
        (
            {"kind": "endpoint", "model": "m", "base_url": "http://h/v1", "api_key_env": "sk-123 secret"},
            "name of an environment variable",
        ),
    ],
)
def test_a_bad_judge_is_one_line_naming_its_key(raw, message):
    with pytest.raises(ConfigError, match=message) as caught:
        cfg.check_judge(cfg.from_dict(raw, JudgeSpec, "judge."), "judge")
    assert "\n" not in str(caught.value)


def test_a_judge_that_is_a_reward_the_run_trained_against_is_named():
    run = cfg.from_dict({"stage": "ppo", "rewards": {"sources": [{"run": "20261101-000000-reward-ab12"}]}})
    assert judges.optimised_against(JudgeSpec(kind="reward_run", run="20261101-000000-reward-ab12"), run)
    assert not judges.optimised_against(JudgeSpec(kind="reward_run", run="20261101-000000-reward-cd34"), run)


def test_agreeing_orders_decide_and_disagreeing_ones_tie():
    assert judges._both_orders(("A", {}), ("B", {})).outcome == 1.0  # the run's answer both times
    assert judges._both_orders(("B", {}), ("A", {})).outcome == 0.0
    assert judges._both_orders(("A", {}), ("A", {})).outcome == 0.5  # the first position both times
    assert judges._both_orders(("A", {}), (None, {})).outcome is None
    bias = judges.position_bias([judges._both_orders(("A", {}), ("A", {})), judges._both_orders(("A", {}), ("B", {}))])
    assert bias == {"first_position_share": 0.75, "orders_disagreed": 1, "judgements": 4}


# ---------------------------------------------------------------- the endpoint judge against a real server


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up on a slow answer closed its end: expected here, not worth a traceback


class JudgeServer:
    """A loopback chat-completions server whose misbehaviour is scripted per request: each entry of `script` is
    what the next request gets ("ok", "slow", "500", "429", "nonsense", "401"); after the script, "ok". "ok"
    answers with the label of the answer that holds the word "good". `stop_after` closes the server after that
    many requests."""

    def __init__(self, script=(), stop_after: int | None = None, slow_s: float = 1.5):
        self.script = list(script)
        self.stop_after = stop_after
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self.closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                act = server.script.pop(0) if server.script else "ok"
                if server.stop_after is not None and len(server.requests) >= server.stop_after:
                    threading.Thread(target=server.close).start()  # gone: later connections are refused
                if act == "slow":
                    time.sleep(server.slow_s)
                    act = "ok"
                if act in ("500", "429", "401"):
                    self.send_response(int(act))
                    if act == "429":
                        self.send_header("Retry-After", "0.2")
                    payload = json.dumps({"error": {"message": f"scripted {act}", "type": "x"}}).encode()
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                text = body["messages"][0]["content"]
                first = text.split("Answer A:")[1].split("Answer B:")[0]
                reply = "I would rather not say" if act == "nonsense" else ("A" if "good" in first else "B")
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        if not self.closed:
            self.closed = True
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def judge_server(request):
    servers = []

    def start(**kwargs) -> JudgeServer:
        servers.append(JudgeServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


PROMPTS = [[{"role": "user", "content": f"Question {i}?"}] for i in range(4)]
RUN = ["a good answer", "a poor answer", "a good answer", "a good answer"]
BASE = ["a poor answer", "a good answer", "a poor answer", "a poor answer"]


def endpoint(server: JudgeServer, **kwargs) -> EndpointJudge:
    return EndpointJudge(JudgeSpec(kind="endpoint", base_url=server.url, model="judge", timeout_s=1.0, **kwargs))


def test_the_endpoint_judge_asks_both_orders_and_sends_the_key_it_names(judge_server, monkeypatch):
    server = judge_server()
    monkeypatch.setenv("JUDGE_KEY", "s3cret")
    verdicts = endpoint(server, api_key_env="JUDGE_KEY").compare(PROMPTS, RUN, BASE)
    assert [v.outcome for v in verdicts] == [1.0, 0.0, 1.0, 1.0]
    assert [v.orders for v in verdicts] == [["A", "B"], ["B", "A"], ["A", "B"], ["A", "B"]]
    assert len(server.requests) == 8 and {r["auth"] for r in server.requests} == {"Bearer s3cret"}
    assert server.requests[0]["body"]["model"] == "judge" and server.requests[0]["body"]["temperature"] == 0


def test_an_empty_key_variable_is_one_line_before_any_request(judge_server, monkeypatch):
    server = judge_server()
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    with pytest.raises(Exception, match="the environment variable JUDGE_KEY is empty"):
        endpoint(server, api_key_env="JUDGE_KEY").check()
    assert server.requests == []


def test_slow_answers_server_errors_and_rate_limits_are_tried_again(judge_server):
    server = judge_server(script=["slow", "500", "429", "429"])
    started = time.monotonic()
    verdicts = endpoint(server, retries=4).compare(PROMPTS[:1], RUN[:1], BASE[:1])
    assert verdicts[0].outcome == 1.0
    assert len(server.requests) == 6  # 4 failures, then both orders
    # a 1 s timeout, backoff 0.5 s then 1 s, then the 0.2 s each rate limit asked for
    assert 1.0 + 0.5 + 1.0 + 0.2 * 2 <= time.monotonic() - started < 6


def test_unparseable_text_is_no_verdict_never_a_crash(judge_server):
    server = judge_server(script=["nonsense"])
    verdicts = endpoint(server).compare(PROMPTS[:2], RUN[:2], BASE[:2])
    assert verdicts[0].outcome is None and verdicts[0].orders == [None, "B"]
    assert verdicts[0].detail["run_as_a"]["reply"] == "I would rather not say"
    assert verdicts[1].outcome == 0.0


def test_a_server_that_stays_down_stops_the_judge_in_one_line_keeping_its_verdicts(judge_server):
    server = judge_server(stop_after=4)  # two pairs judged, then it goes away
    with pytest.raises(judges.JudgeStopped) as stopped:
        endpoint(server, retries=1).compare(PROMPTS, RUN, BASE)
    message = str(stopped.value)
    assert "\n" not in message and server.url in message and "2 tries" in message
    assert "cannot reach it" in message or "connection broke" in message
    assert [v.outcome for v in stopped.value.verdicts] == [1.0, 0.0]


def test_a_refused_key_stops_at_once_with_the_servers_message(judge_server):
    server = judge_server(script=["401"])
    with pytest.raises(judges.JudgeStopped, match=r"refused the request \(HTTP 401 scripted 401\)"):
        endpoint(server, retries=5).compare(PROMPTS[:1], RUN[:1], BASE[:1])
    assert len(server.requests) == 1


def test_every_slow_answer_ends_in_one_line_naming_the_timeout(judge_server):
    server = judge_server(script=["slow"] * 3, slow_s=1.3)
    with pytest.raises(judges.JudgeStopped, match=r"no answer within 1 s, 2 tries; the verdicts given so far are kept"):
        endpoint(server, retries=1).compare(PROMPTS[:1], RUN[:1], BASE[:1])


# ---------------------------------------------------------------- the reward-hacking check on metrics rows


def watched_rows(judge: list[float], se: float, reward_from: float, reward_to: float) -> list[dict]:
    """A run of 40 steps with a reward rising linearly (noise-free) and a judge checked every 10 steps."""
    rows = [{"step": 0, "judge/j": judge[0], "judge_se/j": se}]
    for step in range(1, 41):
        rows.append({"step": step, "reward": reward_from + (reward_to - reward_from) * step / 40, "kl": 0.1})
        if step % 10 == 0:
            rows.append({"step": step, "judge/j": judge[step // 10], "judge_se/j": se})
    return rows


def hacking(rows: list[dict]) -> list:
    from studio.monitor import health

    return [w for w in health.check_rows("ppo", rows) if w.check == "reward_hacking"]


def test_the_alarm_names_the_step_where_reward_and_judge_parted():
    warnings = hacking(watched_rows([0.5, 0.6, 0.8, 0.5, 0.3], se=0.05, reward_from=0.0, reward_to=1.0))
    assert len(warnings) == 1
    w = warnings[0]
    assert (w.metric, w.step, w.value, w.last_step, w.last_value) == ("judge/j", 40, 0.3, 40, 0.3)
    assert "they parted at step 20, where j was 0.8; by step 40 it was 0.3" in w.message


def test_the_alarm_stays_quiet_when_the_judge_agrees_or_the_fall_is_noise():
    assert not hacking(watched_rows([0.5, 0.6, 0.7, 0.8, 0.9], se=0.05, reward_from=0.0, reward_to=1.0))
    assert not hacking(watched_rows([0.8, 0.75, 0.7, 0.72, 0.7], se=0.1, reward_from=0.0, reward_to=1.0))
    # a judge falling while the reward falls too is a run going wrong, not the reward being gamed
    assert not hacking(watched_rows([0.8, 0.6, 0.4, 0.2, 0.1], se=0.05, reward_from=1.0, reward_to=0.0))


def test_a_run_cannot_be_watched_by_the_reward_it_trains_against():
    raw = {
        "stage": "grpo",
        "rewards": {"sources": [{"builtin": "format", "args": {"pattern": "x"}}]},
        "eval": {"every_steps": 5, "judges": [{"kind": "builtin", "builtin": "format", "args": {"pattern": "x"}}]},
    }
    with pytest.raises(ConfigError, match=r"eval.judges\[0\]: format is also in rewards.sources"):
        cfg.from_dict(raw)
    raw["eval"]["judges"][0]["args"]["pattern"] = "y"  # another rule is a judge of its own
    assert cfg.from_dict(raw).eval.judges[0].args["pattern"] == "y"


@pytest.mark.parametrize(
    "eval_section, message",
    [
        ({"every_steps": 5}, "give at least one judge"),
        ({"judges": [{"kind": "llm", "model": "tiny"}]}, "set eval.every_steps"),
    ],
)
def test_the_watch_needs_judges_and_a_rhythm(eval_section, message):
    raw = {"stage": "grpo", "rewards": {"sources": [{"builtin": "no_repetition"}]}, "eval": eval_section}
    with pytest.raises(ConfigError, match=message):
        cfg.from_dict(raw)
    with pytest.raises(ConfigError, match="the sft stage does not sample answers"):
        cfg.from_dict({"stage": "sft", "eval": {"every_steps": 5, "judges": [{"kind": "llm", "model": "tiny"}]}})
