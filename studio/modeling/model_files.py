"""Where a model's files are, from file names alone (no torch, no transformers), so that `manager.check_inputs`
refuses an unusable model before a run folder exists and the UI can say what is about to take time;
studio/modeling/models.py loads the model.

    model_files.local_folder("./my-model")   # Path of the folder, None for a hub id, ModelError if unusable
    model_files.check_reachable(spec)        # a hub id: in the local cache, or the Hub answers; else ModelError
    model_files.tiny_built()                 # False until the built-in tiny model is built (about 15 s, once)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from studio.config import ModelSpec
from studio.errors import ModelError
from studio.hub_reach import hf_home, reach_problem
from studio.paths import SAMPLES_DIR, studio_home

TINY_NAME = "tiny"  # the built-in model: written by the worker on first use, so never checked here
TINY_RECIPE_VERSION = 1  # bump when the tiny model's architecture, tokenizer or pretraining change
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


def check_reachable(spec: ModelSpec) -> None:
    """A hub id must be in the local Hugging Face cache or the Hub must answer (quickly: see hub_reach.reach_problem);
    otherwise the worker would fail at loading, after the run was queued. Whether the id exists and is open to this
    user is left to the loader."""
    name = spec.name
    if name == TINY_NAME or local_folder(name) is not None or model_cached(name, spec.revision):
        return
    problem = reach_problem("models")
    if problem is not None:
        raise ModelError(
            f"model.name = '{name}' is a Hugging Face Hub id, and the Hub cannot be reached ({problem}) "
            "and the model is not in the local cache; download it and set model.name to its folder, "
            "or use tiny (the built-in model)"
        )


def hub_cache() -> Path:
    """huggingface_hub's cache folder, as it finds it now."""
    folder = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(folder).expanduser() if folder else hf_home() / "hub"


def model_cached(name: str, revision: str | None = None) -> bool:
    """Whether huggingface_hub holds the model's config.json for this revision (a branch or tag through refs/, or a
    commit), which is what loading offline needs first."""
    repo = hub_cache() / f"models--{name.replace('/', '--')}"
    wanted = revision or "main"
    ref = repo / "refs" / wanted
    try:
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else wanted
    except OSError:
        return False
    return (repo / "snapshots" / commit / "config.json").is_file()


# ---------------------------------------------------------------- the built-in tiny model's place


# Samples the tiny model is not pretrained on. arithmetic: its questions are the task the math presets teach by SFT
# and GRPO (the base model must not have seen the held-out sums), and a new sample in the corpus would change the
# tiny model and its tokenizer under every test written against it.
TINY_CORPUS_LEAVES_OUT = ("arithmetic",)


def tiny_corpus() -> list[str]:
    """Plain-text documents for the tiny model's tokenizer and pretraining: the text fields of every bundled
    sample row but TINY_CORPUS_LEAVES_OUT's, in a fixed order."""

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    docs = []
    for path in sorted(SAMPLES_DIR.glob("*.jsonl")):
        if path.stem in TINY_CORPUS_LEAVES_OUT:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            docs.append("\n".join(s for s in strings(json.loads(line)) if s.strip()))
    return docs


def tiny_folder(corpus: list[str] | None = None) -> Path:
    """Where the tiny model is, or will be once built. Its name carries a hash of the recipe and corpus, so a
    changed recipe builds a new model instead of silently reusing a mismatched one."""
    corpus = tiny_corpus() if corpus is None else corpus
    digest = hashlib.sha256(f"{TINY_RECIPE_VERSION}\n".encode() + "\n".join(corpus).encode()).hexdigest()[:10]
    return studio_home() / "models" / f"tiny-{digest}"


def tiny_built() -> bool:
    """Whether the tiny model is ready; if not, the first thing that needs it builds it (about 15 s on 2 cores)."""
    return (tiny_folder() / "config.json").is_file()
