"""What a local model folder must hold, read from its file names alone (no torch, no transformers), so that
`manager.check_inputs` refuses an unusable folder before a run folder exists; studio/models.py loads it.

    model_files.local_folder("./my-model")   # Path of the folder, None for a hub id, ModelError if unusable
"""

from __future__ import annotations

from pathlib import Path

from studio.errors import ModelError

TINY_NAME = "tiny"  # the built-in model: written by the worker on first use, so never checked here
# transformers' names for a checkpoint: one file, or shards listed by an index (model-00001-of-00002.safetensors).
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def looks_like_a_path(name: str) -> bool:
    """A hub id is "owner/name" or "name"; anything starting like a path, or deeper, can only be a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def local_folder(name: str) -> Path | None:
    """The folder a model name points to, or None for a hub id. A folder needs config.json to be a model."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelError(f"model.name = '{name}': the folder has no config.json, so it is not a model folder")
        return folder
    if looks_like_a_path(name):
        raise ModelError(f"model.name = '{name}': no such folder")
    return None


def check_weights(name: str) -> None:
    """A local model folder to train must hold its weights (the Model tab's estimate needs config.json alone)."""
    folder = None if name == TINY_NAME else local_folder(name)
    if folder is not None and not any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise ModelError(f"model.name = '{name}': the folder has no weights (model.safetensors or pytorch_model.bin)")
