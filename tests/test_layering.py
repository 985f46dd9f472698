"""House rule 2: studio/ never imports gradio; components/ never imports the ML stack; the launcher stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

ML_STACK = {"torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate"}


def _imported_packages(folder: Path) -> dict[str, set[str]]:
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_studio_never_imports_gradio_or_components():
    offenders = {p: n & {"gradio", "components"} for p, n in _imported_packages(REPO / "studio").items()}
    assert not {p: n for p, n in offenders.items() if n}


def test_components_never_import_the_ml_stack():
    offenders = {p: n & ML_STACK for p, n in _imported_packages(REPO / "components").items()}
    assert not {p: n for p, n in offenders.items() if n}
    assert (REPO / "components").is_dir() and _imported_packages(REPO / "components")


def test_launching_runs_and_the_cli_do_not_import_torch():
    code = (
        "import sys, studio.cli, studio.runs.manager, studio.config, studio.data; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'gradio') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""


def test_the_ui_builds_without_importing_torch(tmp_path):
    """The UI process starts in seconds because the ML stack loads only when a tab first generates or scores
    (bench/ui.py measures the start-up)."""
    code = (
        "import sys, components.app; components.app.build_app(); "
        "print('heavy:', *sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    env = {**os.environ, "RLHF_STUDIO_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert [line for line in result.stdout.splitlines() if line.startswith("heavy:")] == ["heavy:"]
