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


# ---------------------------------------------------------------- the engine's import graph

# The engine's groups, lowest first: a module may import its own group and the groups below it, never one above.
# Every engine module must be named here (a new top-level module or package has to be placed on purpose).
LAYERS = (
    ("core", ("errors", "paths", "hub_reach", "config", "stages", "spaces", "access", "rewards")),
    ("modeling", ("modeling",)),
    ("data", ("data",)),
    ("runs", ("runs",)),
    ("monitor", ("monitor",)),
    ("serve", ("serve",)),
    ("eval", ("eval",)),
    ("trainers", ("trainers",)),
    ("pipelines", ("pipelines",)),
    ("publish", ("publish",)),
    ("app", ("demo", "cli", "__main__")),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports() -> dict[str, set[str]]:
    """studio module -> the studio modules it imports, at module level or inside functions alike."""
    paths = {_module_name(p): p for p in (REPO / "studio").rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..data import y
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        # `from studio import config` names the package too; only the modules themselves count
        graph[name] = {m for m in found if m in paths and m not in (name, "studio")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for number, (_, members) in enumerate(LAYERS):
        if top in members:
            return number
    raise AssertionError(f"{module} is in no layer of tests/test_layering.py LAYERS: place it")


def test_the_engine_has_no_import_cycle():
    graph = engine_imports()
    assert len(graph) > 60 and "studio.runs.manager" in graph["studio.cli"]  # the graph is really read
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_each_group_imports_only_its_own_and_lower_groups():
    graph = engine_imports()
    upward = sorted(
        f"{module} ({LAYERS[_layer_of(module)][0]}) imports {target} ({LAYERS[_layer_of(target)][0]})"
        for module, targets in graph.items()
        if module != "studio"
        for target in targets
        if _layer_of(target) > _layer_of(module)
    )
    assert not upward, "\n".join(upward)
