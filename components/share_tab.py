"""Share tab: publish a completed run to the Hugging Face Hub, or export it as a Space (studio/publish/share.py).

    run            a completed run (Refresh, or opening the tab, lists them again)
    repo id        the Hub repository to push to, "your-name/model-name"
    merged         push the full model with the LoRA adapter merged in, instead of the adapter alone
    private        create the repository (or the Space) private
    Preview card   the model card a push with these boxes writes as the repo's README.md, rendered
    Push           uploads the run with its card; the token is never typed here: it comes from HF_TOKEN or
                   `huggingface-cli login` on the machine running the studio, and the tab says whether one is found
    Export Space   writes a Gradio chat app for the run into a folder (empty: <home>/spaces/<run id>) and lists its
                   files; Push Space then uploads that folder as a Space. A folder outside the studio home is
                   written only once "Yes, export there" is ticked (the box clears after each export, and when the
                   folder changes). When others can open the studio (another address behind a login, or a Space)
                   the folder must be inside <home>/spaces
    Export GGUF    writes the run's merged weights as one GGUF file (f16 or q8_0) with an Ollama Modelfile into a fresh
                   temporary folder, and offers both as downloads; shown only where llama.cpp's converter is installed
                   (`rlhf-studio install-gguf-converter`), else a line saying how to install it

Endpoints for scripts and tests (gradio_client): /share_runs, /token_status,
/card_preview(run_id, repo_id, merged) -> (card, message), /push(run_id, repo_id, merged, private) -> message,
/export_space(run_id, folder, confirm) -> message, /push_space(space_repo_id, private) -> message (pushes the folder
this session exported last), /export_gguf(run_id, type) -> (message, GGUF download, Modelfile download).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr

from components.oneline import error_line
from studio import access, spaces
from studio.errors import StudioError
from studio.paths import studio_home
from studio.publish import converter, gguf, share
from studio.runs import manager
from studio.runs.status import State


def _choices() -> list[tuple[str, str]]:
    """Completed runs, newest first, as (label, id)."""
    rows = [r for r in manager.list_runs() if r["state"] == State.COMPLETED]
    return [
        (f"{r['id']} ({r['name']}, {r['stage']})" if r["name"] else f"{r['id']} ({r['stage']})", r["id"])
        for r in reversed(rows)
    ]


def share_runs():
    return gr.Dropdown(choices=_choices())


def token_status() -> str:
    return spaces.token_line()


def _required(run_id: str | None, repo_id: str | None = "-", what: str = "repo id") -> None:
    if not run_id:
        raise StudioError("pick a completed run to share")
    if not (repo_id or "").strip():
        raise StudioError(f"type a {what}, such as your-name/tiny-sft")


def _rendered(card: str) -> str:
    """The card as Markdown shows it: its YAML metadata (the Hub reads it; Markdown would garble it) as a code block."""
    if card.startswith("---\n") and "\n---" in card[4:]:
        meta, body = card[4:].split("\n---", 1)
        return f"```yaml\n{meta.strip()}\n```\n{body.lstrip('-').lstrip()}"
    return card


def card_preview(run_id: str | None, repo_id: str | None, merged: bool):
    """(the rendered model card, message): the card a push with these boxes writes; a mistake gives ("", one
    line)."""
    try:
        _required(run_id)
        card = share.model_card(run_id, merged=bool(merged), repo_id=(repo_id or "").strip() or None)
    except Exception as err:
        return "", error_line(err)
    return _rendered(card), f"The model card of run {run_id}: the README.md a push writes."


def push(run_id: str | None, repo_id: str | None, merged: bool, private: bool) -> str:
    """One line: where the run went, or why it did not."""
    try:
        _required(run_id, repo_id)
        url = share.push(run_id, repo_id.strip(), merged=bool(merged), private=bool(private))
    except Exception as err:
        return error_line(err)
    what = "the merged full model" if merged else "the adapter"
    return f"Pushed run {run_id} ({what} and its model card) to {url}" + (" (private)." if private else ".")


def _new_folder(run_id: str) -> Path:
    """<home>/spaces/<run id>, or <run id>-2, -3, ... when an earlier export is there (an export needs an empty
    folder)."""
    root, n = studio_home() / "spaces", 1
    while (out := root / (run_id if n == 1 else f"{run_id}-{n}")).exists() and any(out.iterdir()):
        n += 1
    return out


def _export_folder(run_id: str, folder: str | None) -> Path:
    """The folder to export into: a new one under <home>/spaces when the box is empty; the one typed, anywhere, on a
    studio only this machine can open; inside <home>/spaces (else one line) when others can open it, so a visitor
    cannot write wherever the server may."""
    text = (folder or "").strip()
    if access.exposed():  # the default too: its name comes from the run id the request sent
        return access.inside(studio_home() / "spaces", text or str(_new_folder(run_id)), "export folder")
    return Path(text).expanduser() if text else _new_folder(run_id)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def export_space(run_id: str | None, folder: str | None, confirm: bool = False):
    """(exported folder, message with the folder and its files, Push Space button); a mistake gives (None, one line,
    a disabled button). A folder outside the studio home waits for `confirm` (one line saying where and how)."""
    try:
        _required(run_id)
        out = _export_folder(run_id, folder)
        if share.outside_home(out) and not confirm:
            return (
                gr.skip(),
                f"`{out}` is outside the studio home (`{studio_home()}`): tick “Yes, export there” "
                "and press Export Space again to write the Space there.",
                gr.skip(),
            )
        out = Path(share.export_space(run_id, out))
    except Exception as err:
        return None, error_line(err), gr.Button(interactive=False)
    files = "\n".join(f"- `{name}`" for name in _files(out))
    return (
        str(out),
        f"Exported run {run_id} as a Space to `{out}`:\n{files}\n\nPush it as a Space below, or upload "
        "the folder yourself.",
        gr.Button(interactive=True),
    )


def push_space(folder: str | None, space_repo_id: str | None, private: bool) -> str:
    try:
        if not folder:
            raise StudioError("export the Space first: Push Space uploads the folder Export Space wrote")
        _required("-", space_repo_id, "Space repo id")
        url = share.push_space(folder, space_repo_id.strip(), bool(private))
    except Exception as err:
        return error_line(err)
    return f"Pushed the Space in `{folder}` to {url}" + (" (private)." if private else ".")


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def export_gguf(run_id: str | None, type: str | None):
    """(message naming the folder and its files, GGUF download, Modelfile download): the run exported into a fresh
    temporary folder; a mistake gives (one line, hidden downloads)."""
    hidden = gr.DownloadButton(value=None, visible=False)
    where = None
    try:
        _required(run_id)
        type = type or converter.TYPES[0]
        where = Path(tempfile.mkdtemp(prefix="rlhf-studio-gguf-"))
        done = gguf.export_gguf(run_id, where / f"{run_id}-{type}", type=type)
    except Exception as err:
        if where is not None:
            shutil.rmtree(where, ignore_errors=True)
        return error_line(err), hidden, hidden
    message = (
        f"Exported run {run_id} as GGUF ({type}) to `{done.gguf.parent}`:\n"
        f"- `{done.gguf.name}` ({_size(done.gguf)})\n- `{done.modelfile.name}`\n\n"
        "With both in one folder: `ollama create NAME -f Modelfile`, or load the GGUF in llama.cpp."
    )
    if done.note:
        message += f"\n\nNote: {done.note}."
    return (
        message,
        gr.DownloadButton(value=str(done.gguf), visible=True),
        gr.DownloadButton(value=str(done.modelfile), visible=True),
    )


def build(tab: gr.Tab | None = None) -> None:
    """The tab's widgets and events; `tab` (the gr.Tab holding it) refreshes the run list and the token line each
    time it is opened."""
    with gr.Row():
        run = gr.Dropdown(choices=_choices(), label="Run", info="A completed run", scale=4)
        refresh = gr.Button("Refresh list", scale=1, size="sm")
    token = gr.Markdown(token_status())
    with gr.Row():
        repo_id = gr.Textbox(label="Repo id", placeholder="your-name/tiny-sft", scale=3)
        merged = gr.Checkbox(
            label="Merged full model", info="The base model with the adapter merged in; else the adapter alone", scale=1
        )
        private = gr.Checkbox(label="Private", info="Create the repo (or Space) private", scale=1)
    with gr.Row():
        preview = gr.Button("Preview card")
        push_button = gr.Button("Push to the Hub", variant="primary")
    message = gr.Markdown()
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown()

    with gr.Accordion("Export as a Space", open=False):
        with gr.Row():
            folder = gr.Textbox(label="Folder", placeholder="empty: <home>/spaces/<run id>", scale=3)
            confirm = gr.Checkbox(
                label="Yes, export there", value=False, scale=1, info="Needed for a folder outside the studio home"
            )
        export = gr.Button("Export Space")
        with gr.Row():
            space_repo = gr.Textbox(label="Space repo id", placeholder="your-name/tiny-sft-chat", scale=3)
            push_space_button = gr.Button("Push Space", interactive=False, scale=1)
        space_message = gr.Markdown()

    with gr.Accordion("Export GGUF (llama.cpp, Ollama)", open=False):
        try:
            converter.find()
            ready = True
        except StudioError as err:  # not installed: the line says how to install it
            gr.Markdown(str(err))
            ready = False
        with gr.Row(visible=ready):
            gguf_type = gr.Radio(
                list(converter.TYPES), value=converter.TYPES[0], label="Type", info=converter.TYPE_HELP, scale=3
            )
            gguf_button = gr.Button("Export GGUF", scale=1)
        gguf_message = gr.Markdown()
        with gr.Row():
            gguf_file = gr.DownloadButton("Download GGUF", visible=False)
            modelfile_file = gr.DownloadButton("Download Modelfile", visible=False)
    exported = gr.State(None)

    refresh.click(share_runs, outputs=run, api_name="share_runs").then(
        token_status, outputs=token, api_name="token_status"
    )
    if tab is not None:
        tab.select(
            share_runs, outputs=run, api_name="share_runs_on_open", api_visibility="private", show_progress="hidden"
        ).then(
            token_status,
            outputs=token,
            api_name="token_status_on_open",
            api_visibility="private",
            show_progress="hidden",
        )
    preview.click(card_preview, inputs=[run, repo_id, merged], outputs=[card, message], api_name="card_preview")
    push_button.click(push, inputs=[run, repo_id, merged, private], outputs=message, api_name="push")
    private_event = dict(api_visibility="private", show_progress="hidden")
    export.click(
        export_space,
        inputs=[run, folder, confirm],
        outputs=[exported, space_message, push_space_button],
        api_name="export_space",
    ).then(lambda: False, outputs=confirm, api_name="reset_confirm", **private_event)
    # A confirmation is for the folder it was given for.
    folder.input(lambda: False, outputs=confirm, api_name="folder_changed", **private_event)
    push_space_button.click(
        push_space, inputs=[exported, space_repo, private], outputs=space_message, api_name="push_space"
    )
    gguf_button.click(
        export_gguf,
        inputs=[run, gguf_type],
        outputs=[gguf_message, gguf_file, modelfile_file],
        api_name="export_gguf",
    )
