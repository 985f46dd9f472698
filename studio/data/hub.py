"""The Hugging Face Hub for datasets: load a source's raw rows, or say in one sentence why not and what to do;
and, before a run exists, whether the dataset is already in the local cache or the Hub can be reached
(studio/hub_reach.py), in well under a second when offline.

    rows = load_hub_rows("databricks/databricks-dolly-15k")
    dataset_cached("Anthropic/hh-rlhf")

Never imports `datasets` or `huggingface_hub` to answer the quick questions: the first takes seconds to import, and
both read their environment once at import, while these answers follow the environment as it is now.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.errors import DataError
from studio.hub_reach import hf_home, reach_problem


def load_hub_rows(hub_id: str, subset: str | None = None, split: str = "train", data_dir: str | None = None):
    """Raw rows of a hub dataset split, as an iterable of dicts."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, subset, split=split, data_dir=data_dir)
    except Exception as err:  # datasets raises many types for "offline", "missing" and "gated"
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise DataError(
            f"could not load {hub_id} from the Hugging Face Hub ({detail}); download it "
            "and set data.path to the local file (jsonl, jsonl.gz, json, csv or parquet in "
            "the source's raw schema)"
        ) from None


# ---------------------------------------------------------------- is it cached


def dataset_cached(hub_id: str) -> bool:
    """Whether `datasets` has this dataset prepared in its cache, so that it loads offline: the folder
    <HF_DATASETS_CACHE>/<owner>___<name>/<config>/<version>/<hash> its offline fallback looks for (the name in snake
    case, which for the sources' ids is their lower case, underscores aside)."""
    root = Path(os.environ.get("HF_DATASETS_CACHE") or hf_home() / "datasets").expanduser()
    wanted = _folded("___".join(hub_id.split("/")))
    if not root.is_dir():
        return False
    return any(
        _folded(folder.name) == wanted and any(p.is_dir() for p in folder.glob("*/*/*")) for folder in root.iterdir()
    )


def _folded(name: str) -> str:
    return name.lower().replace("_", "")


def check_dataset(hub_id: str, source: str, path: str | None) -> None:
    """Refuse, in one line saying what to do, a hub dataset that is neither reachable nor in the local cache."""
    if dataset_cached(hub_id):
        return
    problem = reach_problem("datasets")
    if problem is None:
        return
    how = "data.path = hub" if path else "data.path is empty"
    raise DataError(
        f"{how}, so the {source} source loads {hub_id} from the Hugging Face Hub, which cannot be "
        f"reached ({problem}), and it is not in the local cache; set data.path to sample for the "
        "bundled sample, or to a local file in the source's raw schema"
    )
