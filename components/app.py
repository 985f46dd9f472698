"""Build the studio's Blocks from the tab modules and serve it.

    python app.py                      # http://127.0.0.1:7860
    rlhf-studio ui --host 127.0.0.1 --port 7860
"""

from __future__ import annotations

import gradio as gr

from components import runs_tab

TITLE = "RLHF Studio"


def build_app() -> gr.Blocks:
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nStart runs with `rlhf-studio train CONFIG.yaml`; they appear here live.")
        with gr.Tab("Runs"):
            runs_tab.build()
    return demo


def main(host: str = "127.0.0.1", port: int = 7860) -> None:
    build_app().launch(server_name=host, server_port=port, show_error=False)
