"""Build the studio's Blocks from the tab modules and serve it.

    python app.py                      # http://127.0.0.1:7860
    rlhf-studio ui --host 127.0.0.1 --port 7860

Tabs share one draft run config through their form fields (components/forms.py): Model and Data hold the model.*
and data.* keys, Train the rest and the Start button; Model's estimate and Data's preview read every field.
Compare, Chat, Rewards and Share work on finished runs (Rewards also tries reward sources on typed or sampled answers);
Compare, Chat and Rewards' sampling share the process's one loaded model (studio.serve.generate.shared) and wait for it
in one queue (components/generation.py).
"""

from __future__ import annotations

import sys

import gradio as gr

from components import (
    chat_tab,
    compare_tab,
    data_tab,
    model_tab,
    pipelines_tab,
    reward_tab,
    runs_tab,
    share_tab,
    start_strip,
    train_tab,
)
from components.oneline import ERROR_CLASS
from studio import access, spaces
from studio.errors import StudioError

TITLE = "RLHF Studio"
# An error line (components/oneline.py) in the theme's error colours, so a refusal never reads as a result.
APP_CSS = f""".{ERROR_CLASS} {{ color: var(--error-text-color); background: var(--error-background-fill);
    border: 1px solid var(--error-border-color); border-radius: var(--radius-sm); padding: 6px 10px;
    white-space: pre-wrap; }}"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        strip = start_strip.build()
        with gr.Tabs(elem_id="studio-tabs") as tabs:  # ids: the address names the tab (?tab=runs)
            with gr.Tab("Model", id="model"):
                model_fields = model_tab.build()
            with gr.Tab("Data", id="data"):
                data_fields = data_tab.build()
            with gr.Tab("Train", id="train"):
                train_fields = train_tab.build({**model_fields, **data_fields})
            with gr.Tab("Pipelines", id="pipelines"):
                pipelines_tab.build()
            with gr.Tab(runs_tab.LABEL, id="runs"):
                runs = runs_tab.build(tabs)
            with gr.Tab("Compare", id="compare") as compare:
                compare_panel = compare_tab.build(compare)
            with gr.Tab("Chat", id="chat") as chat:
                chat_tab.build(chat)
            with gr.Tab("Rewards", id="rewards") as reward:
                reward_tab.build(reward)
            with gr.Tab("Share", id="share") as share:
                share_tab.build(share)
        fields = {**model_fields, **data_fields, **train_fields}
        model_tab.attach(fields)
        data_tab.attach(fields)
        _keep_in_address(demo, tabs, runs)
        start_strip.attach(strip, demo, tabs, compare_panel, runs)
    return demo


# Writes the tab the person picked (its button is selected by now) into the page's address; replaceState changes
# the address without loading anything.
TAB_IN_ADDRESS_JS = """() => {
    const picked = document.querySelector('#studio-tabs [role=tab][aria-selected=true]');
    if (!picked || !picked.dataset.tabId) return;
    const url = new URL(window.location.href);
    url.searchParams.set('tab', picked.dataset.tabId);
    history.replaceState(history.state, '', url);
}"""


def _keep_in_address(demo: gr.Blocks, tabs: gr.Tabs, runs: list) -> None:
    """A page refresh comes back to the same tab and run: both sit in the address (?tab=runs&run=ID), written as the
    person picks them (the run by runs_tab) and read when the page loads (runs: what runs_tab.restore answers)."""
    ids = [tab.id for tab in tabs.children]
    # The whole tab bar's select, not each tab's: a tab's own fires as the page opens, which would overwrite the
    # address before it is read.
    tabs.select(None, js=TAB_IN_ADDRESS_JS)

    def restore(request: gr.Request) -> list:
        tab = request.query_params.get("tab")
        tab = tab if tab in ids else None
        return [
            gr.Tabs(selected=tab) if tab else gr.skip(),
            *runs_tab.restore(request.query_params.get("run") or "", tab == "runs"),
        ]

    demo.load(restore, outputs=[tabs, *runs], api_visibility="private", show_progress="hidden")


def main(host: str | None = None, port: int | None = None) -> None:
    """Serve on host:port; left out, GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (or PORT) decide, else 0.0.0.0:7860 on
    Spaces (SPACE_ID is set) and 127.0.0.1:7860 elsewhere. Another address than this machine's needs a login
    (RLHF_STUDIO_AUTH, see studio/access.py); a refusal is one line and exit code 2, before anything is built."""
    host, port = spaces.serve_address(host, port)
    try:
        login = access.login_from_env()
        access.serve(host, login)  # checks the address, and remembers it for access.exposed()
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    demo = build_app()
    # share=False: never a public gradio.live tunnel; max_file_size: uploads above it are refused by gradio.
    # quiet: gradio's banner (its address and a hint about share=True) gives way to the one line below, printed
    # once launch returns: it starts the server and checks that the page answers, so "ready" is true when said.
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            show_error=False,
            share=False,
            auth=login,
            max_file_size=access.max_upload(),
            quiet=True,
            prevent_thread_lock=True,
            css=APP_CSS,
        )
    except OSError:  # gradio's own message names its launch() parameters, not ours
        print(
            f"error: cannot serve on {host}:{port}: the port is in use (another studio?); pick another with --port",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    print(f"{TITLE} is ready on {demo.local_url.rstrip('/')}", flush=True)
    demo.block_thread()
