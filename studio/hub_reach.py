"""Can the Hugging Face Hub be reached now, and where is its local cache: asked before a run exists (for its model
and its dataset), in well under a second when offline and at most REACH_TIMEOUT seconds otherwise.

    reach_problem("datasets")        # None, or "offline mode is on: HF_HUB_OFFLINE=1", "no answer from ..."
    hf_home()                        # ~/.cache/huggingface, or $HF_HOME

Never imports `datasets` or `huggingface_hub`: the first takes seconds to import, and both read their environment
once at import, while these answers follow the environment as it is now.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

REACH_TIMEOUT = 2.0  # seconds the Hub has to answer before Start calls it out of reach
REACH_MEMORY = 15.0  # seconds an answer is reused: a pipeline asks once per stage, data and model
DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = ("1", "on", "yes", "true")
_answers: dict[str, tuple[float, str | None]] = {}  # endpoint -> (when asked, problem or None)


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
