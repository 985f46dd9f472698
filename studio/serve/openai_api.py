"""An OpenAI-compatible server for finished runs and their base model, so other tools can chat with them.

    rlhf-studio serve 20261101-120000-sft-ab12 base --port 8000      # serving ... at http://127.0.0.1:8000/v1
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="20261101-120000-sft-ab12", messages=[...], max_tokens=64)

It answers `POST /v1/chat/completions` (whole, or streamed as server-sent events with "stream": true) and
`GET /v1/models`, and errors in OpenAI's shape {"error": {"message", "type", "param", "code"}}. A request's `model`
names a run by its id (or its name) or "base", the model the runs were tuned from. Answers come from
generate.shared(): one base model held in memory, each run's adapter switched on for its requests, one
generation at a time. Defaults follow OpenAI's (temperature 1, top_p 1, a fresh seed per request), except
max_tokens, which defaults to GenerationSpec's max_new_tokens.

It binds 127.0.0.1 unless told otherwise, and another address needs an API key (read from the environment variable
--api-key-env names, so it never shows in the process list); with a key, every request must carry
`Authorization: Bearer KEY`.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from studio import access
from studio import config as cfg
from studio.config import GenerationSpec, ModelSpec
from studio.errors import ConfigError, StudioError
from studio.serve import generate
from studio.serve.generate import Generator, Target

log = logging.getLogger(__name__)

BASE = "base"  # the id of the runs' base model
OWNER = "rlhf-studio"
MAX_STOPS = 4  # as OpenAI allows
# Roles a chat template knows; OpenAI's "developer" is its newer name for the system message.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# OpenAI fields this server cannot honour: refused rather than silently ignored. (field, is it asked for?)
UNSUPPORTED = {
    "tools": lambda value: bool(value),
    "functions": lambda value: bool(value),
    "logprobs": lambda value: bool(value),
    "response_format": lambda value: isinstance(value, dict) and value.get("type", "text") != "text",
}


# ---------------------------------------------------------------- what is served


@dataclass(frozen=True)
class ServedModel:
    """One model a request can name: its id, other names it answers to, and what generates its answers."""

    id: str
    target: Target
    created: int  # unix time: when the run was created, or when the server started for the base model
    aliases: tuple[str, ...] = ()

    def card(self) -> dict:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": OWNER}


def served_models(names: list[str], model: str | None = None) -> list[ServedModel]:
    """The models `rlhf-studio serve` names: completed runs (id or unique prefix) and `base`, the runs' base model
    (or, with no run, the model `model` names). One line for a run that cannot answer or a base with no model."""
    from studio.runs.rundir import RunDir

    order: list[str] = []  # served ids, in the order given
    runs: dict[str, Target] = {}
    for name in names:
        if name == BASE:
            key = BASE
        else:
            target = generate.run_target(name)  # unknown, unfinished or reward runs fail here in one line
            key = target.run_id
            runs.setdefault(key, target)
        if key not in order:
            order.append(key)
    if model is not None and BASE not in order:
        raise ConfigError(f"--model {model}: it names the model of the `base` target; add `base` to the targets")
    known = {r["id"]: r["name"] for r in generate.generating_runs()}
    names_seen = [known.get(run_id) for run_id in runs]
    out = []
    for key in order:
        if key == BASE:
            base = _base_of(list(runs.values()), model)
            out.append(ServedModel(BASE, base, int(time.time()), (base.label,)))  # "base (tiny)", as Compare says
            continue
        name = known.get(key)
        # A run's name is another way to ask for it, unless two served runs share it or it is another model's id.
        alias = (name,) if name and names_seen.count(name) == 1 and name not in order else ()
        out.append(ServedModel(key, runs[key], int(RunDir.of(key).read_status().created), alias))
    return out


def _base_of(runs: list[Target], model: str | None) -> Target:
    if not runs:
        if not model or not model.strip():
            raise ConfigError("base: with no run to take it from, give --model NAME (a hub id, a local folder or tiny)")
        return generate.model_target(ModelSpec(name=model.strip()))
    models = sorted({t.model.name for t in runs})
    if len(models) > 1:
        raise ConfigError(
            f"base: the runs start from different base models ({', '.join(models)}); serve the runs of one model"
        )
    if model is not None and model.strip() != models[0]:
        raise ConfigError(f"--model {model}: the runs given start from {models[0]}; leave --model out")
    return generate.base_target(runs[0].run_id)  # loaded as the run loaded it (dtype, quantization)


def api_key_from_env(name: str | None) -> str | None:
    """The key in the environment variable `name` (None when no name is given); one line when it is unset."""
    if name is None:
        return None
    key = os.environ.get(name.strip(), "") if name.strip() else ""
    if not key.strip():
        raise ConfigError(
            f"--api-key-env {name}: no key in the environment variable {name!r}; set it first "
            f"(export {name.strip() or 'NAME'}=...) and give the variable's name, never the key itself"
        )
    return key.strip()


def check_exposure(host: str, key: str | None) -> None:
    """Refuse to serve another address than this machine's without an API key (the UI's rule, access.py)."""
    if access.is_loopback(host) or key is not None:
        return
    raise ConfigError(
        f"--host {host}: other machines could reach the models and use this machine's accelerator; give "
        "--api-key-env NAME (an environment variable holding the key), or bind 127.0.0.1 and use an SSH tunnel"
    )


# ---------------------------------------------------------------- the request


class ApiError(Exception):
    """A request refused, with its HTTP status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    @property
    def type(self) -> str:
        return "server_error" if self.status >= 500 else "invalid_request_error"

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """A chat-completions request, checked: the model it names, the conversation and how to answer."""

    model: ServedModel
    messages: list[dict]
    settings: GenerationSpec
    stops: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


def parse_chat(raw: bytes, models: list[ServedModel]) -> ChatRequest:
    """The request in a body; ApiError (400, or 404 for a model not served) naming the field at fault."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"request body: not valid JSON ({err})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body: expected a JSON object, got {type(body).__name__}")
    served = _model_named(body.get("model"), models)
    for name, asked in UNSUPPORTED.items():
        if asked(body.get(name)):
            raise ApiError(400, f"{name}: not supported by this server; leave it out", param=name)
    n = body.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise ApiError(400, f"n = {json.dumps(n)}: this server gives one choice per request; send n = 1", param="n")
    stream = _optional(body, "stream", bool, "true or false") or False
    options = _optional(body, "stream_options", dict, "an object") or {}
    include_usage = options.get("include_usage") is True
    return ChatRequest(
        model=served,
        messages=_messages(body.get("messages")),
        settings=_settings(body),
        stops=_stops(body.get("stop")),
        stream=stream,
        include_usage=include_usage,
    )


def _model_named(name, models: list[ServedModel]) -> ServedModel:
    ids = ", ".join(m.id for m in models)
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, f"model: required, one of: {ids}", param="model")
    for served in models:
        if name.strip() == served.id or name.strip() in served.aliases:
            return served
    raise ApiError(404, f"model '{name}' is not served here; served: {ids}", param="model", code="model_not_found")


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: expected a non-empty list of {role, content} objects", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where}: expected an object with role and content", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(
                400, f"{where}.role = {json.dumps(role)}: expected one of {', '.join(ROLES)}", param=f"{where}.role"
            )
        out.append({"role": ROLES[role], "content": _content(message.get("content"), f"{where}.content")})
    return out


def _content(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(
                    400, f"{where}[{i}]: expected a text part {{type: text, text}}; only text is understood", where
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise ApiError(400, f"{where}: expected a string or a list of text parts", param=where)


def _settings(body: dict) -> GenerationSpec:
    """GenerationSpec from OpenAI's fields, its ranges checked by config.from_dict and reported by the field sent."""
    # max_completion_tokens is OpenAI's newer name for max_tokens; it wins when both are sent.
    most = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    sent = {"max_new_tokens": most, "temperature": "temperature", "top_p": "top_p", "seed": "seed"}
    values = {"temperature": 1.0, "top_p": 1.0, "seed": secrets.randbelow(2**32), "batch_size": 1}
    for spec_name, name in sent.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ApiError(400, f"{name} = {json.dumps(value)}: expected a number", param=name)
        # transformers seeds numpy too, which takes 32 bits: any integer seed maps onto one, the same every time.
        values[spec_name] = value % 2**32 if spec_name == "seed" and _is_int(value) else value
    try:
        return cfg.from_dict(values, GenerationSpec)
    except ConfigError as err:
        spec_name, _, why = str(err).partition(" ")
        name = sent.get(spec_name, spec_name)
        raise ApiError(400, f"{name} {why}", param=name) from None


def _stops(stop) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise ApiError(400, f"stop: expected a string or a list of at most {MAX_STOPS} strings", param="stop")
    for i, text in enumerate(stops):
        if not isinstance(text, str) or not text:
            raise ApiError(400, f"stop[{i}] = {json.dumps(text)}: expected a non-empty string", param="stop")
    return list(stops)


def _optional(body: dict, name: str, kind: type, expected: str):
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise ApiError(400, f"{name} = {json.dumps(value)}: expected {expected}", param=name)
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------- the answer


class Answer:
    """One reply generated token by token. deltas() yields text as it becomes final; after it ends, `text`,
    `finish_reason` ("stop" or "length") and `completion_tokens` describe the whole reply."""

    def __init__(self, generator: Generator, request: ChatRequest):
        self.generator, self.request = generator, request
        self.text = ""
        self.finish_reason = "stop"
        self.completion_tokens = 0

    def whole(self) -> str:
        """The whole reply, once generated."""
        for _ in self.deltas():
            pass
        return self.text

    def deltas(self) -> Iterator[str]:
        request = self.request
        stop = threading.Event()
        hit_stop = False  # a stop string appeared: the text ends before it, the rest is thrown away
        shown_tokens = 0  # tokens counted by the last partial answer (an end-of-turn token yields none)
        final = None
        for part in self.generator.stream(request.model.target, request.messages, request.settings, stop):
            if part.done:
                final = part
            else:
                shown_tokens = part.tokens
            if hit_stop:
                continue  # generation ends at the next token: read on, so the generator lets go of the model
            text = part.text
            cut = _first_stop(text, request.stops)
            if cut is not None:
                text, hit_stop = text[:cut], True
                stop.set()
            ready = text if (part.done or hit_stop) else _settled(text, request.stops)
            # The text so far is decoded whole at each token, so it only grows; should a decode ever rewrite what
            # was sent, what was sent stands (a stream cannot take text back), and `text` stays what was sent.
            if ready.startswith(self.text) and len(ready) > len(self.text):
                delta, self.text = ready[len(self.text) :], ready
                yield delta
        self.completion_tokens = final.tokens
        ended_on_stop_token = final.tokens > shown_tokens
        ran_out = final.tokens >= request.settings.max_new_tokens and not (hit_stop or ended_on_stop_token)
        self.finish_reason = "length" if ran_out else "stop"


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _settled(text: str, stops: list[str]) -> str:
    """The text that can be sent while more comes: without a tail that may still grow into a stop string, nor a
    character whose last byte has not arrived yet (it decodes as U+FFFD until then)."""
    keep = len(text)
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                keep = min(keep, len(text) - size)
                break
    return text[:keep].rstrip("\ufffd")


def _prompt_tokens(generator: Generator, request: ChatRequest) -> int:
    from studio.modeling.generation import prompt_ids

    return len(prompt_ids(generator.tokenizer(request.model.target), request.messages))


# ---------------------------------------------------------------- the HTTP app


def build_app(models: list[ServedModel], key: str | None = None, generator: Generator | None = None):
    """The Starlette app serving `models`; with `key`, each request needs `Authorization: Bearer KEY`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    generator = generator or generate.shared()

    def refused(err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    def guarded(endpoint):
        """The endpoint behind the key check, its errors as one line in OpenAI's shape, never a traceback."""

        async def wrapped(request):
            try:
                _authorize(request.headers.get("authorization", ""), key)
                return await endpoint(request)
            except ApiError as err:
                return refused(err)
            except StudioError as err:
                return refused(ApiError(500, str(err)))
            except Exception as err:  # a bug: its traceback to the server's log, one line to the client
                log.exception("request to %s failed", request.url.path)
                return refused(ApiError(500, f"{type(err).__name__}: {_one_line(err)}"))

        return wrapped

    async def list_models(request):
        return JSONResponse({"object": "list", "data": [m.card() for m in models]})

    async def one_model(request):
        return JSONResponse(_model_named(request.path_params["model"], models).card())

    async def chat(request):
        parsed = parse_chat(await request.body(), models)
        # Counting the prompt first also checks it renders (a chat template), while an error can still be a status.
        prompt_tokens = await run_in_threadpool(_prompt_tokens, generator, parsed)
        answer = Answer(generator, parsed)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": parsed.model.id}
        if parsed.stream:
            return StreamingResponse(
                _events(answer, head, prompt_tokens),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        message = {"role": "assistant", "content": await run_in_threadpool(answer.whole)}
        return JSONResponse(
            {
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason}],
                "usage": _usage(prompt_tokens, answer),
            }
        )

    async def http_error(request, err: HTTPException):
        path = request.url.path
        if err.status_code == 405:
            return refused(ApiError(405, f"{request.method} {path}: method not allowed here"))
        return refused(
            ApiError(err.status_code, f"{path}: not found; this server has /v1/chat/completions and /v1/models")
        )

    return Starlette(
        routes=[
            Route("/v1/models", guarded(list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", guarded(one_model), methods=["GET"]),
            Route("/v1/chat/completions", guarded(chat), methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def _authorize(header: str, key: str | None) -> None:
    if key is None:
        return
    scheme, _, given = header.partition(" ")
    # Constant-time, so response times do not tell how much of a guessed key was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise ApiError(401, "a valid API key is needed: send Authorization: Bearer KEY", code="invalid_api_key")


def _usage(prompt_tokens: int, answer: Answer) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": prompt_tokens + answer.completion_tokens,
    }


def _events(answer: Answer, head: dict, prompt_tokens: int) -> Iterator[str]:
    """The reply as server-sent events: a first chunk with the role, one per piece of text, a last one with the
    finish reason (and a usage chunk when asked for), then [DONE]. Starlette reads it in a worker thread."""

    def chunk(delta: dict, finish: str | None = None) -> str:
        payload = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return _event(payload)

    yield chunk({"role": "assistant", "content": ""})
    try:
        for text in answer.deltas():
            yield chunk({"content": text})
    except Exception as err:  # the status line is sent already: the error goes in the stream, as OpenAI does
        log.exception("streamed answer failed")
        message = str(err) if isinstance(err, StudioError) else f"{type(err).__name__}: {_one_line(err)}"
        yield _event(ApiError(500, message).body())
        yield "data: [DONE]\n\n"
        return
    yield chunk({}, answer.finish_reason)
    if answer.request.include_usage:
        yield _event({**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(prompt_tokens, answer)})
    yield "data: [DONE]\n\n"


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "no message"


# ---------------------------------------------------------------- the server


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not (a port in use, an unknown host)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected a port from 1 to 65535 (0 picks a free one)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: not an address of this machine ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop reuses the port
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise StudioError(
                f"--port {port}: {host}:{port} is in use by another program; give another --port"
            ) from None
        raise StudioError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
    return sock


def warm_up(generator: Generator, models: list[ServedModel]) -> None:
    """Generate one token with each model, so the first request is not the one that waits for loading, and a model
    that cannot answer (no chat template, weights that do not load) stops the server before it says it is ready."""
    probe = [[{"role": "user", "content": "Hello"}]]
    settings = GenerationSpec(max_new_tokens=1, temperature=0.0, batch_size=1)
    for served in models:
        try:
            generator.generate(served.target, probe, settings)
        except StudioError as err:
            raise StudioError(f"{served.id}: cannot answer: {err}") from None
        except Exception as err:  # any failure to load is this model's: said in one line
            raise StudioError(f"{served.id}: cannot answer: {type(err).__name__}: {_one_line(err)}") from None


def serve(
    targets: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    key_env: str | None = None,
    model: str | None = None,
) -> None:
    """`rlhf-studio serve`: check, load, print the ready line, and serve until Ctrl+C (KeyboardInterrupt)."""
    import uvicorn

    key = api_key_from_env(key_env)
    check_exposure(host, key)
    models = served_models(targets, model)
    sock = bind(host, port)
    try:
        print(f"loading {', '.join(m.id for m in models)} ...", file=sys.stderr, flush=True)
        generator = generate.shared()
        warm_up(generator, models)
        bound = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        line = f"serving {', '.join(m.id for m in models)} at http://{shown_host}:{bound}/v1"
        config = uvicorn.Config(
            build_app(models, key, generator),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,  # a streamed answer still running does not hold Ctrl+C up for long
        )
        _ready_server(config, line).run(sockets=[sock])
    finally:
        sock.close()


def _ready_server(config, line: str):
    """uvicorn's server, printing the ready line once it accepts connections."""
    import uvicorn

    class Ready(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                print(line, flush=True)

    return Ready(config)
