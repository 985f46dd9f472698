"""The Hugging Face Hub for datasets (and, through `reach_problem`, for models): load a source's raw rows, or say in
one sentence why not and what to do; and, before a run exists, whether the Hub can be reached at all or the dataset
is already in the local cache, in well under a second when offline and at most REACH_TIMEOUT seconds otherwise.

    rows = load_hub_rows("databricks/databricks-dolly-15k")
    reach_problem("datasets")        # None, or "offline mode is on: HF_HUB_OFFLINE=1", "no answer from ..."
    dataset_cached("Anthropic/hh-rlhf")

Never imports `datasets` or `huggingface_hub` to answer the quick questions: the first takes seconds to import, and
both read their environment once at import, while these answers follow the environment as it is now.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from studio.errors import DataError

REACH_TIMEOUT = 2.0  # seconds the Hub has to answer before Start calls it out of reach
REACH_MEMORY = 15.0  # seconds an answer is reused: a pipeline asks once per stage, data and model
DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = ("1", "on", "yes", "true")
_answers: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when asked, problem or None)


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


# ---------------------------------------------------------------- can the Hub be reached, is it cached


def offline_variable(kind: str) -> str | None:
    """The variable that puts `kind` ("datasets" or "models") in offline mode now, e.g. "HF_HUB_OFFLINE=1", read as
    the libraries read it: datasets' own HF_DATASETS_OFFLINE, when set, wins over HF_HUB_OFFLINE; huggingface_hub
    takes HF_HUB_OFFLINE, or transformers' old TRANSFORMERS_OFFLINE when that is unset."""
    if kind == "datasets" and "HF_DATASETS_OFFLINE" in os.environ:
        name = "HF_DATASETS_OFFLINE"
    else:
        name = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    value = os.environ.get(name, "").strip()
    return f"{name}={value}" if value.lower() in TRUE else None


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def reach_problem(kind: str = "datasets") -> str | None:
    """Why the Hub cannot be reached for `kind` now, in a few words, or None when it answers. Offline mode answers at
    once; otherwise one HEAD request with a REACH_TIMEOUT-second limit, its answer reused for REACH_MEMORY seconds.
    Any HTTP answer counts as reachable: whether the id exists and is open to this user is the loader's question."""
    offline = offline_variable(kind)
    if offline:
        return f"offline mode is on: {offline}"
    url = endpoint()
    asked, problem = _answers.get(url, (0.0, None))
    if time.monotonic() - asked < REACH_MEMORY:
        return problem
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=REACH_TIMEOUT).close()
        problem = None
    except urllib.error.HTTPError:
        problem = None  # it answered
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            problem = f"no answer from {url} within {REACH_TIMEOUT:g} s"
        else:
            problem = f"{url} could not be reached: {getattr(reason, 'strerror', None) or reason}"
    _answers[url] = (time.monotonic(), problem)
    return problem


def hf_home() -> Path:
    """The Hugging Face cache root, as huggingface_hub and datasets find it."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(os.environ.get("HF_HOME") or Path(xdg) / "huggingface").expanduser()


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
