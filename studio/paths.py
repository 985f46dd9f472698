"""Where the studio keeps things: its home (runs, votes, uploads, saved presets) and the files shipped with it.

    from studio.paths import studio_home, runs_root
    studio_home()        # $RLHF_STUDIO_HOME, /data/rlhf-studio on a Space with storage, else ~/.rlhf-studio

A leaf module (standard library only), so that every part of the engine can ask it without importing another.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SAMPLES_DIR = PACKAGE / "data" / "samples"  # the small samples of every named source, written by scripts/sample_gen


def _bundled_presets() -> Path:
    """The YAML presets and recipes shipped with the studio. The top-level presets/ folder is their one source: a
    checkout (an editable install included) reads it beside the package; a wheel (or `pip install .`) carries a
    copy inside the package, as studio/_presets (pyproject.toml maps that package to presets/). The copy is looked
    for first: beside an installed package, a `presets` folder would be some other distribution's."""
    shipped = PACKAGE / "_presets"
    return shipped if shipped.is_dir() else PACKAGE.parent / "presets"


BUNDLED_PRESETS = _bundled_presets()
PERSISTENT_STORAGE = Path("/data")  # where a Space mounts its persistent storage, when it has some


def studio_home() -> Path:
    """$RLHF_STUDIO_HOME; else, inside a Space with writable persistent storage, /data/rlhf-studio (runs survive a
    restart); else ~/.rlhf-studio."""
    if os.environ.get("RLHF_STUDIO_HOME"):
        return Path(os.environ["RLHF_STUDIO_HOME"]).expanduser()
    if os.environ.get("SPACE_ID") and PERSISTENT_STORAGE.is_dir() and os.access(PERSISTENT_STORAGE, os.W_OK):
        return PERSISTENT_STORAGE / "rlhf-studio"
    return Path.home() / ".rlhf-studio"


def runs_root() -> Path:
    return studio_home() / "runs"


def votes_root() -> Path:
    """The vote sets, one folder each (studio/data/votes/sets.py)."""
    return studio_home() / "votes"
