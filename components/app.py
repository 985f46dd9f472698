"""Build the studio's Blocks from the tab modules and serve it.

    python app.py                      # http://127.0.0.1:7860
    rlhf-studio ui --host 127.0.0.1 --port 7860

Tabs share one draft run config through their form fields (components/forms.py): Model and Data hold the model.*
and data.* keys, Train the rest and the Start button; Model's estimate and Data's preview read every field.
Compare, Chat, Reward models and Share work on finished runs; Compare and Chat share the process's one loaded model
(studio.generate.shared) and wait for it in one queue (components/generation.py).
"""

from __future__ import annotations

import sys

import gradio as gr

from components import (chat_tab, compare_tab, data_tab, model_tab, pipelines_tab, reward_tab, runs_tab, share_tab,
                        train_tab)
from studio import access, spaces
from studio.errors import StudioError

TITLE = "RLHF Studio"


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Tab("Model"):
            model_fields = model_tab.build()
        with gr.Tab("Data"):
            data_fields = data_tab.build()
        with gr.Tab("Train"):
            train_fields = train_tab.build({**model_fields, **data_fields})
        with gr.Tab("Pipelines"):
            pipelines_tab.build()
        with gr.Tab("Runs"):
            runs_tab.build()
        with gr.Tab("Compare") as compare:
            compare_tab.build(compare)
        with gr.Tab("Chat") as chat:
            chat_tab.build(chat)
        with gr.Tab("Reward models") as reward:
            reward_tab.build(reward)
        with gr.Tab("Share") as share:
            share_tab.build(share)
        fields = {**model_fields, **data_fields, **train_fields}
        model_tab.attach(fields)
        data_tab.attach(fields)
    return demo


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
    # share=False: never a public gradio.live tunnel; max_file_size: uploads above it are refused by gradio.
    build_app().launch(server_name=host, server_port=port, show_error=False, share=False, auth=login,
                       max_file_size=access.max_upload())
