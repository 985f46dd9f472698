"""The studio as a Hugging Face Space, and the Hub login it publishes with. Never imports gradio.

    spaces.on_spaces()          # True inside a Space (Spaces sets SPACE_ID)
    spaces.refuse_cpu_space()   # raises the one-line StudioError on CPU-only Space hardware; a no-op elsewhere
    spaces.serve_address()      # ("0.0.0.0", 7860) on Spaces, ("127.0.0.1", 7860) elsewhere; env vars win
    spaces.token_line()         # where the Hub token comes from and whether one is found (never the token)

The run home on Spaces (persistent storage under /data) is decided in studio.paths.studio_home.
"""

from __future__ import annotations

import os

from studio.errors import StudioError

CPU_SPACE = (
    "this Space runs on CPU-only hardware: training needs a GPU; pick a GPU in the Space settings, or run "
    "the studio on your own machine. Chat and Compare still work."
)
DEFAULT_PORT = 7860


def on_spaces() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def gpu_available() -> bool:
    import torch  # only asked on Spaces, so starting a run elsewhere never pays for importing torch

    return torch.cuda.is_available()


def refuse_cpu_space() -> None:
    """Refuse to create a training run inside a Space without a GPU. Off Spaces nothing is refused: a CPU machine
    of your own may train the tiny model."""
    if on_spaces() and not gpu_available():
        raise StudioError(CPU_SPACE)


def serve_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """(host, port) to serve on: the arguments, else GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (or PORT), else all
    interfaces on Spaces (its proxy must reach the app) and this machine only elsewhere."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_spaces() else "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or DEFAULT_PORT)
    return host, port


def token_source() -> str | None:
    """Where the Hub token on this machine comes from ("HF_TOKEN" or "login"), or None when there is none."""
    from huggingface_hub import get_token

    if not get_token():
        return None
    from_env = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    return "HF_TOKEN" if from_env else "login"


def token_line() -> str:
    """One line for the UI: the token is never typed into the studio; say where it comes from and if one is found."""
    source = token_source()
    where = (
        "The Hub token comes from HF_TOKEN or `huggingface-cli login` on the machine running the studio "
        "(it is never typed here)"
    )
    if source is None:
        return (
            f"{where}: **none found**. Set HF_TOKEN or run `huggingface-cli login` there, then restart the "
            "studio; Export Space works without one."
        )
    found = "HF_TOKEN is set" if source == "HF_TOKEN" else "a stored `huggingface-cli login` token is found"
    return f"{where}: {found}."
