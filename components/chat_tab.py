"""Chat tab: talk with a base model or a finished run, the answer streaming in token by token
(studio/serve/generate.py).

    model     each base model the completed runs start from ("base (tiny)") and every completed run that answers;
              listed anew each time the tab opens, the base model picked while nothing else is
    system    an optional system prompt, sent first in every turn
    Send      (or Enter; Shift+Enter adds a line) streams the reply into the chat, opening with the name of the
              model that writes it (the whole conversation is the prompt, so it is multi-turn); the line
              under the chat says how many tokens the reply took and how fast they came
    Stop      ends the reply where it is: the generation stops at its next token and the model is free again
    Clear     stops any reply and empties the conversation
    Unload    frees the held model (memory back for training); the next message loads it again

Endpoints for scripts and tests (gradio_client): /chat_models(current pick), /chat(message, history, model, system,
*settings) (a stream of (history, message box, stats); *settings are the generation boxes in GenerationSpec's order),
/stop_chat, /clear_chat, /unload_model.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import closing

import gradio as gr

from components import firstopen, generation
from components.oneline import error_markdown
from studio.errors import StudioError
from studio.serve import generate

REPAINT_SECONDS = 0.05  # a streaming reply is sent to the browser at most 20 times a second, whatever the model's speed


class _Reply:
    """One streaming reply: `stop` is the stop event the engine watches (set by Stop, Clear, or the handler
    ending), `asked` records that the user pressed Stop or Clear."""

    def __init__(self):
        self.stop, self.asked = threading.Event(), threading.Event()


# The replies streaming now, per browser session: Stop and Clear set their stop events, so the engine ends the
# generation at its next token even before gradio closes the cancelled handler.
_streaming: dict[str, set[_Reply]] = {}
_streaming_lock = threading.Lock()


def _register(session: str, reply: _Reply) -> None:
    with _streaming_lock:
        _streaming.setdefault(session, set()).add(reply)


def _unregister(session: str, reply: _Reply) -> None:
    with _streaming_lock:
        replies = _streaming.get(session)
        if replies is not None:
            replies.discard(reply)
            if not replies:
                del _streaming[session]


def _stop_session(session: str) -> int:
    with _streaming_lock:
        replies = list(_streaming.get(session, ()))
    for reply in replies:
        reply.asked.set()
        reply.stop.set()
    return len(replies)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def chat_models(current: str | None = None):
    """The model list, current on every open; the pick stays while it is listed, else the first base model (the
    list's first entry) is picked, so Send works without a visit to the list."""
    choices = generate.answering_models()
    keys = [key for _label, key in choices]
    if current in keys:
        return gr.Dropdown(choices=choices)
    return gr.Dropdown(choices=choices, value=keys[0] if keys else None)


def _text(content) -> str:
    """A chat message's text: gradio hands content over as a list of parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    return "".join(
        part.get("text", "") for part in content or () if isinstance(part, dict) and part.get("type", "text") == "text"
    )


# Each reply opens with the model that wrote it, in bold on a line of its own: a conversation may switch models.
_SIGNED = re.compile(r"\A\*\*(.+?)\*\*\n\n", re.S)


def signed(label: str, text: str) -> str:
    return f"**{label}**\n\n{text}"


def unsigned(text: str, labels: set[str]) -> str:
    """A reply without the line naming its model (only a known model's name counts as that line)."""
    match = _SIGNED.match(text)
    return text[match.end() :] if match and match[1] in labels else text


def conversation(history: list[dict] | None) -> list[dict]:
    """The chat's messages as plain role/content dicts, user and assistant turns only, replies without the line
    naming their model."""
    labels = {label for label, _key in generate.answering_models()} if history else set()  # as the picker names them
    return [
        {
            "role": m["role"],
            "content": unsigned(_text(m.get("content")), labels)
            if m["role"] == "assistant"
            else _text(m.get("content")),
        }
        for m in history or ()
        if m.get("role") in ("user", "assistant")
    ]


def _stats(part: generate.Partial, label: str, stopped: bool) -> str:
    how = "stopped after" if stopped else "reply:"
    return f"{label} {how} {part.tokens} tokens in {part.seconds:.2f} s ({part.tokens_per_second:.1f} tokens/s)"


def chat(request: gr.Request, message: str, history: list[dict] | None, model: str | None, system: str | None, *values):
    """Stream the reply to `message`: yields (history with the reply so far, message box, stats line)."""
    shown_before = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in history or ()
        if m.get("role") in ("user", "assistant")
    ]
    turns = conversation(history)
    try:
        if not (message or "").strip():
            raise StudioError("type a message first")
        settings = generation.settings(values)
        listed = generate.answering_models()
        # Nothing picked yet (Send before the list's refresh on open came back): the list's first entry, the base
        # model, as the refresh would pick. The reply's signature says which model it was.
        model = model or (listed[0][1] if listed else "")
        target = generate.target_for(model)
        # The reply is signed with the name the picker shows (a run's id and name), which conversation() knows.
        signature = dict((key, label) for label, key in listed).get(model, target.label)
    except Exception as err:
        yield shown_before, message, error_markdown(err)
        return
    prompt = [{"role": "user", "content": message.strip()}]
    messages = ([{"role": "system", "content": system.strip()}] if (system or "").strip() else []) + turns + prompt
    shown = shown_before + prompt + [{"role": "assistant", "content": signed(signature, "")}]
    session, reply = _session(request), _Reply()
    _register(session, reply)
    last = 0.0
    try:
        yield shown, "", f"{target.label} is answering..."
        with closing(generate.shared().stream(target, messages, settings, reply.stop)) as parts:
            for part in parts:
                now = time.monotonic()
                if part.done or now - last >= REPAINT_SECONDS:
                    last = now
                    shown[-1] = {"role": "assistant", "content": signed(signature, part.text)}
                    yield shown, "", _stats(part, target.label, reply.asked.is_set()) if part.done else gr.skip()
    except Exception as err:
        yield shown, "", error_markdown(err)
    finally:
        reply.stop.set()  # ends the generation if gradio closed this handler (Stop, Clear, a closed browser)
        _unregister(session, reply)


def stop_chat(request: gr.Request) -> str:
    """Stop the session's streaming reply (the Stop button also cancels its event)."""
    stopped = _stop_session(_session(request))
    return "Stopped; the reply ends where it was." if stopped else "Nothing is streaming."


def clear_chat(request: gr.Request):
    _stop_session(_session(request))
    return [], "", ""


def unload_model() -> str:
    generate.shared().unload()
    return "Unloaded the model; the next message loads it again."


def build(tab: gr.Tab | None = None) -> None:
    """The tab's widgets and events; `tab` (the gr.Tab holding it) refreshes the model list each time it is opened."""
    choices = generate.answering_models()
    with gr.Row():
        model = gr.Dropdown(
            choices=choices,
            value=choices[0][1] if choices else None,
            label="Model",
            info="A base model or a completed run",
            scale=4,
            visible=False,
        )
        refresh = gr.Button("Refresh list", scale=1, size="sm")
        unload = gr.Button("Unload model", scale=1, size="sm")
    # Built hidden and shown when the tab opens (components/firstopen.py): what is typed right away then stays.
    system = gr.Textbox(
        label="System prompt", lines=2, placeholder="optional: sent before every conversation", visible=False
    )
    settings = generation.build(visible=False)
    chatbot = gr.Chatbot(label="Chat", height=420, elem_id="chat-window")
    # One line to start with (so Enter sends, as gradio sends on Enter only from a one-line box), growing to eight.
    message = gr.Textbox(
        label="Message",
        lines=1,
        max_lines=8,
        visible=False,
        placeholder="Type a message; Enter sends, Shift+Enter adds a line",
    )
    firstopen.reveal_on_open(tab, [model, system, *settings, message])
    with gr.Row():
        send = gr.Button("Send", variant="primary")
        stop = gr.Button("Stop", variant="stop")
        clear = gr.Button("Clear")
    stats = gr.Markdown(elem_id="chat-stats")

    # preprocess=False: a pick whose run was deleted since must reach the handler (to be replaced), not be refused.
    refresh.click(chat_models, preprocess=False, inputs=model, outputs=model, api_name="chat_models")
    if tab is not None:
        tab.select(
            chat_models,
            preprocess=False,
            inputs=model,
            outputs=model,
            api_name="chat_models_on_open",
            api_visibility="private",
            show_progress="hidden",
        )
    inputs, outputs = [message, chatbot, model, system, *settings], [chatbot, message, stats]
    sending = [
        send.click(chat, inputs=inputs, outputs=outputs, api_name="chat", **generation.QUEUE),
        message.submit(
            chat, inputs=inputs, outputs=outputs, api_name="chat_on_enter", api_visibility="private", **generation.QUEUE
        ),
    ]
    stop.click(stop_chat, outputs=stats, cancels=sending, api_name="stop_chat")
    clear.click(clear_chat, outputs=[chatbot, message, stats], cancels=sending, api_name="clear_chat")
    unload.click(unload_model, outputs=stats, api_name="unload_model", **generation.QUEUE)
