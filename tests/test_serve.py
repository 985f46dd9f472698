"""`rlhf-studio serve`: an OpenAI-compatible API for the session's tuned tiny runs and their base model, started as
a real process and spoken to with the official `openai` client (and plain HTTP for what that client cannot send);
its answers checked against the engine's (studio/serve/generate.py), and its refusals.

    OMP_NUM_THREADS=1 python -m pytest tests/test_serve.py -q
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest

from studio.config import GenerationSpec, RunConfig
from studio.modeling.generation import prompt_ids
from studio.serve.generate import Generator, base_target, run_target
from tests.conftest import QUESTIONS, REPO, free_port, run_cli

KEY_ENV = "STUDIO_TEST_SERVE_KEY"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@contextmanager
def serving(home, *args: str, env: dict | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base url, process) of `rlhf-studio serve ARGS` on a free loopback port of this studio home, once it printed
    its ready line; stopped after (Ctrl+C, then killed if it lingers)."""
    port = free_port()
    # The server's log goes to a file, not a pipe: a chatty server never blocks on a full pipe.
    with tempfile.TemporaryFile(mode="w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "studio", "serve", *args, "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "RLHF_STUDIO_HOME": str(home), "OMP_NUM_THREADS": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            ready = server.stdout.readline()  # the ready line, or "" once the process ended without one
            if not ready.startswith("serving "):
                server.wait(timeout=30)
                log.seek(0)
                pytest.fail(f"serve did not start ({server.returncode}): {log.read()[-3000:]}")
            assert ready.endswith(f" at http://127.0.0.1:{port}/v1\n"), ready
            yield f"http://127.0.0.1:{port}/v1", server
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            server.stdout.close()


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a raw POST: for requests the openai client would never send."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def server(tuned_runs) -> Iterator[dict]:
    """One server for the module: the tuned SFT run and its base, given in that order."""
    with serving(tuned_runs["home"], tuned_runs["sft"], "base") as (url, process):
        yield {"url": url, "process": process, "client": openai.OpenAI(base_url=url, api_key="unused")}


@pytest.fixture(scope="module")
def engine() -> Generator:
    """The engine in this process, for the answers the server must give."""
    return Generator()


def engine_answer(engine: Generator, target, messages: list[dict], settings: GenerationSpec) -> tuple[str, int]:
    """(text, tokens) the engine streams for one conversation: what the server must send."""
    *_, last = engine.stream(target, messages, settings)
    return last.text, last.tokens


def greedy(max_tokens: int, seed: int = 0) -> GenerationSpec:
    return GenerationSpec(max_new_tokens=max_tokens, temperature=0.0, top_p=1.0, seed=seed, batch_size=1)


# ---------------------------------------------------------------- the API


@pytest.mark.slow
def test_models_lists_the_run_and_base_in_the_order_given(server, in_tuned_home):
    models = server["client"].models.list().data
    assert [m.id for m in models] == [in_tuned_home["sft"], "base"]
    assert {(m.object, m.owned_by) for m in models} == {("model", "rlhf-studio")}
    assert server["client"].models.retrieve("base").id == "base"


@pytest.mark.slow
def test_a_completion_is_the_engines_answer_with_its_token_counts(server, in_tuned_home, engine):
    sft = in_tuned_home["sft"]
    messages = [{"role": "system", "content": "Be brief."}, *user(QUESTIONS[0])]
    reply = server["client"].chat.completions.create(model=sft, messages=messages, max_tokens=8, temperature=0, seed=0)
    target = run_target(sft)
    text, tokens = engine_answer(engine, target, messages, greedy(8))
    assert (reply.object, reply.model, len(reply.choices)) == ("chat.completion", sft, 1)
    choice = reply.choices[0]
    assert (choice.index, choice.message.role, choice.message.content) == (0, "assistant", text)
    assert text != ""
    prompt = len(prompt_ids(engine.tokenizer(target), messages))
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        prompt,
        tokens,
        prompt + tokens,
    )
    assert reply.usage.completion_tokens <= 8
    assert choice.finish_reason == ("length" if tokens == 8 else "stop")
    assert reply.id.startswith("chatcmpl-")


@pytest.mark.slow
def test_a_run_is_also_asked_for_by_its_name(server, in_tuned_home):
    reply = server["client"].chat.completions.create(model="tuned-sft", messages=user("Hi"), max_tokens=2)
    assert reply.model == in_tuned_home["sft"]


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_a_streamed_answer_adds_up_to_the_whole_one(server, in_tuned_home, temperature):
    client, sft = server["client"], in_tuned_home["sft"]
    ask = dict(model=sft, messages=user(QUESTIONS[1]), max_tokens=12, temperature=temperature, seed=7)
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    *answer, last, usage = chunks
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    assert (answer[0].choices[0].delta.role, answer[0].choices[0].delta.content) == ("assistant", "")
    assert [c.choices[0].finish_reason for c in answer] == [None] * len(answer)
    assert "".join(c.choices[0].delta.content for c in answer) == whole.choices[0].message.content != ""
    assert (last.choices[0].delta.content, last.choices[0].finish_reason) == (None, whole.choices[0].finish_reason)
    assert (usage.choices, usage.usage) == ([], whole.usage)


@pytest.mark.slow
def test_base_and_run_answer_as_the_engine_does_and_differently(server, in_tuned_home, engine):
    sft = in_tuned_home["sft"]
    served, expected = {}, {}
    for model, target in (("base", base_target(sft)), (sft, run_target(sft))):
        served[model] = [
            server["client"]
            .chat.completions.create(model=model, messages=user(q), max_tokens=10, temperature=0, seed=0)
            .choices[0]
            .message.content
            for q in QUESTIONS[:3]
        ]
        expected[model] = [engine_answer(engine, target, user(q), greedy(10))[0] for q in QUESTIONS[:3]]
    assert served == expected
    assert served["base"] != served[sft]  # the run's adapter is switched on for its requests, off for base's


@pytest.mark.slow
def test_a_stop_string_ends_the_answer_before_it(server, in_tuned_home):
    client, sft = server["client"], in_tuned_home["sft"]
    ask = dict(model=sft, messages=user(QUESTIONS[2]), max_tokens=16, temperature=0, seed=0)
    full = client.chat.completions.create(**ask).choices[0].message.content
    assert len(full) >= 6, full
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    expected = full[: full.find(stop)]
    reply = client.chat.completions.create(**ask, stop=stop)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (expected, "stop")
    assert reply.usage.completion_tokens < 16
    streamed = client.chat.completions.create(**ask, stop=["never-in-it", stop], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected


@pytest.mark.slow
def test_an_unknown_model_is_not_found_naming_the_served_ones(server, in_tuned_home):
    with pytest.raises(openai.NotFoundError) as caught:
        server["client"].chat.completions.create(model="nope", messages=user("Hi"), max_tokens=2)
    assert caught.value.body == {
        "message": f"model 'nope' is not served here; served: {in_tuned_home['sft']}, base",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.slow
def test_more_than_one_choice_is_a_bad_request(server):
    with pytest.raises(openai.BadRequestError) as caught:
        server["client"].chat.completions.create(model="base", messages=user("Hi"), max_tokens=2, n=2)
    assert (caught.value.param, caught.value.body["message"]) == (
        "n",
        "n = 2: this server gives one choice per request; send n = 1",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            b"{not json",
            "request body: not valid JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))",
            None,
        ),
        (b'["base"]', "request body: expected a JSON object, got list", None),
        (b'{"model": "base"}', "messages: expected a non-empty list of {role, content} objects", "messages"),
        (
            b'{"model": "base", "messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "x"}]}',
            'messages[1].role = "tool": expected one of system, developer, user, assistant',
            "messages[1].role",
        ),
        (
            b'{"model": "base", "messages": [{"role": "user", "content": 3}]}',
            "messages[0].content: expected a string or a list of text parts",
            "messages[0].content",
        ),
        (
            b'{"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}',
            "max_tokens = 0: must be at least 1",
            "max_tokens",
        ),
        (
            b'{"model": "base", "messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"}',
            'temperature = "hot": expected a number',
            "temperature",
        ),
        (
            b'{"model": "base", "messages": [{"role": "user", "content": "Hi"}], "stop": [""]}',
            'stop[0] = "": expected a non-empty string',
            "stop",
        ),
    ],
)
def test_a_bad_request_is_one_line_naming_the_field(server, body, message, param):
    status, answer = post(server["url"] + "/chat/completions", body, {"Content-Type": "application/json"})
    assert (status, answer) == (
        400,
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}},
    )


@pytest.mark.slow
def test_with_a_key_requests_need_it_and_ctrl_c_stops_with_exit_0(studio_home):
    with serving(studio_home, "base", "--model", "tiny", "--api-key-env", KEY_ENV, env={KEY_ENV: "s3cret"}) as (
        url,
        process,
    ):
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=url, api_key="wrong").models.list()
        assert caught.value.code == "invalid_api_key"
        status, body = post(url + "/chat/completions", b"{}")  # no Authorization header at all
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        assert [m.id for m in openai.OpenAI(base_url=url, api_key="s3cret").models.list().data] == ["base"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


# ---------------------------------------------------------------- refusals, in one line


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0 and result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_another_host_without_a_key_is_refused():
    assert one_error_line(run_cli("serve", "base", "--model", "tiny", "--host", "0.0.0.0")) == (
        "error: --host 0.0.0.0: other machines could reach the models and use this machine's accelerator; give "
        "--api-key-env NAME (an environment variable holding the key), or bind 127.0.0.1 and use an SSH tunnel"
    )


def test_a_key_variable_that_is_not_set_is_refused(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert one_error_line(run_cli("serve", "base", "--model", "tiny", "--api-key-env", KEY_ENV)) == (
        f"error: --api-key-env {KEY_ENV}: no key in the environment variable '{KEY_ENV}'; set it first "
        f"(export {KEY_ENV}=...) and give the variable's name, never the key itself"
    )


def test_a_port_in_use_is_refused():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert one_error_line(run_cli("serve", "base", "--model", "tiny", "--port", str(port))) == (
            f"error: --port {port}: 127.0.0.1:{port} is in use by another program; give another --port"
        )


def test_base_alone_needs_a_model():
    assert one_error_line(run_cli("serve", "base")) == (
        "error: base: with no run to take it from, give --model NAME (a hub id, a local folder or tiny)"
    )


def test_runs_that_cannot_answer_are_refused(in_tuned_home):
    reward = in_tuned_home["reward"]
    assert one_error_line(run_cli("serve", reward, "base")).startswith(
        f"error: run '{reward}' is a reward run: it scores answers and writes none"
    )
    assert one_error_line(run_cli("serve", "nope")) == "error: no run with id 'nope' (see `rlhf-studio runs`)"
    assert one_error_line(run_cli("serve", in_tuned_home["sft"], "--model", "tiny")) == (
        "error: --model tiny: it names the model of the `base` target; add `base` to the targets"
    )


def test_a_run_that_has_not_finished_is_refused(studio_home):
    from studio.runs import manager

    run = manager.create(RunConfig(name="unfinished"))
    assert one_error_line(run_cli("serve", run.id)) == (
        f"error: run '{run.id}' is queued; only a completed run has weights to answer with"
    )
