"""The studio installs like a package: a wheel built from the repository and installed, without -e, into a fresh
virtual environment runs from another folder. It trains a bundled preset by name (`rlhf-studio train
sft-dolly-tiny`), runs `rlhf-studio demo --json`, and its UI lists the bundled presets and recipes (/presets,
/recipes); the wheel carries the presets (studio/_presets), the sample data, the Space template and the launch configs.

The fresh venv sees the project venv's third-party packages through a .pth line, so nothing is downloaded; a folder
added by a .pth line does not run that folder's own .pth files, so the project's editable install stays out of it,
and the tests check that the studio imported there is the wheel's.

    python -m pytest tests/test_wheel.py -q                # build, install, what the wheel holds (seconds)
    python -m pytest tests/test_wheel.py -q -m slow        # the CLI and the UI from the installed wheel
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from components import pipelines_tab, train_tab
from tests.conftest import REPO, free_port, served_app

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _tree_files() -> list[str]:
    """The working tree's files as git sees them (tracked, and untracked ones it does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the repository as it is now, built from a copy of its tree (so that no build/ folder of an
    earlier build, nor egg-info, is left in the checkout or ends up in the wheel), offline: no build isolation."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in _tree_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [found] = (root / "dist").glob("rlhf_studio-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel, installed without -e; the project venv's site-packages lent to
    it by a .pth line (for torch, gradio and the rest)."""
    folder = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lent = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(purelib, "project-venv.pth").write_text("".join(f"{path}\n" for path in lent))
    # The fresh interpreter runs pip (lent by the project venv), so scripts and files land in the fresh venv;
    # --ignore-installed: the project's editable rlhf-studio is visible through the lent folder, and stays as it is.
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return folder


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **OFFLINE_ENV, "RLHF_STUDIO_HOME": str(home), "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")}


def _home(tmp_path: Path, shared_models: Path | None = None) -> tuple[Path, Path]:
    """(a folder outside the repository to run from, a fresh studio home in it), the home's models/ the session's
    tiny model where given."""
    home = tmp_path / "home"
    home.mkdir()
    if shared_models is not None:
        (home / "models").symlink_to(shared_models)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return elsewhere, home


def _run(venv: Path, args: list[str], cwd: Path, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The fresh venv's `rlhf-studio ARGS` (its console script) from `cwd`."""
    return subprocess.run(
        [str(venv / "bin" / "rlhf-studio"), *args],
        cwd=cwd,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_packages_pyproject_lists_are_the_tree_s():
    """pyproject.toml lists the packages by hand (studio._presets has no folder of its own): every folder with an
    __init__.py is there, and nothing else."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("studio", "components")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == in_tree | {"studio._presets"}
    assert setuptools["package-dir"] == {"studio._presets": "presets"}


def test_the_wheel_carries_the_presets_samples_template_and_launch_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    def shipped(folder: str, inside: str) -> set[str]:
        return {f"{inside}/{p.name}" for p in (REPO / folder).iterdir() if p.is_file() and p.suffix != ".py"}

    assert shipped("presets", "studio/_presets") <= names
    assert {n for n in names if n.startswith("studio/_presets/")} == shipped("presets", "studio/_presets")
    for folder in ("studio/data/samples", "studio/publish/space_template", "studio/runs/launch"):
        assert shipped(folder, folder) and shipped(folder, folder) <= names, folder
    modules = {str(p.relative_to(REPO)) for top in ("studio", "components") for p in (REPO / top).rglob("*.py")}
    assert modules - {m for m in modules if "space_template" in m} <= names
    assert not any(n.startswith(("presets/", "tests/", "build/")) for n in names)


def test_the_installed_studio_is_the_wheel_s_and_lists_its_presets(venv, tmp_path):
    elsewhere, home = _home(tmp_path)
    answer = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, components, studio; from studio.paths import BUNDLED_PRESETS; "
            "from studio.pipelines import presets; print(json.dumps([studio.__file__, components.__file__, "
            "str(BUNDLED_PRESETS), list(presets.runs()), list(presets.recipes())]))",
        ],
        cwd=elsewhere,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    studio_file, components_file, bundled, runs, recipes = json.loads(answer.stdout)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert Path(studio_file) == site / "studio" / "__init__.py"  # the wheel's, not the checkout's
    assert Path(components_file) == site / "components" / "__init__.py"
    assert Path(bundled) == site / "studio" / "_presets"
    assert sorted(runs + recipes) == sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))
    assert "sft-dolly-tiny" in runs and "ppo-tiny" in recipes


@pytest.mark.slow
def test_the_installed_ui_lists_the_bundled_presets_and_recipes(venv, tmp_path, monkeypatch):
    elsewhere, home = _home(tmp_path)
    port = free_port()
    argv = [str(venv / "bin" / "rlhf-studio"), "ui", "--port", str(port)]
    with served_app(argv, port, elsewhere, _env(home), start_timeout=300) as client:
        listed, recipes = client.predict(api_name="/presets"), client.predict(api_name="/recipes")
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))  # the same empty home: the lists the checkout would show
    assert [tuple(choice) for choice in listed] == train_tab.preset_choices()
    assert [tuple(choice) for choice in recipes] == pipelines_tab.recipe_choices()
    names = [name for _label, name in listed + recipes]
    assert sorted(names) == sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))


@pytest.mark.slow
def test_the_installed_cli_trains_a_bundled_preset_by_name(venv, tmp_path, shared_models):
    elsewhere, home = _home(tmp_path, shared_models)
    result = _run(venv, ["train", "sft-dolly-tiny", "--set", "train.max_steps=4"], elsewhere, home)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads(_run(venv, ["runs", "--json"], elsewhere, home).stdout)
    assert [(r["stage"], r["state"], r["step"], r["total_steps"]) for r in listed] == [("sft", "completed", 4, 4)]
    assert (home / "runs" / listed[0]["id"] / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(elsewhere.iterdir())  # the folder it ran from is left as it was
    unknown = _run(venv, ["train", "sft-dolly-tny"], elsewhere, home)
    assert unknown.returncode == 2 and unknown.stderr.startswith(
        "error: no preset named 'sft-dolly-tny' and no such file; did you mean sft-dolly-tiny"
    )


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_the_installed_demo_runs(venv, tmp_path, shared_models):
    elsewhere, home = _home(tmp_path, shared_models)
    result = _run(venv, ["demo", "--json"], elsewhere, home, timeout=2300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert [(s["name"], s["stage"]) for s in out["stages"]] == [
        ("sft", "sft"),
        ("rm", "reward"),
        ("ppo", "ppo"),
        ("dpo", "dpo"),
    ]
    table = {row["model"]: row for row in out["table"]}
    assert list(table) == ["base", "sft", "ppo", "dpo"]
    for model in ("ppo", "dpo"):  # as tests/test_demo.py asks of the checkout's demo
        assert table[model]["reward"] > table["base"]["reward"] + 1.0, out["table"]
        assert table[model]["check"] > table["base"]["check"] + 0.3, out["table"]
    listed = json.loads(_run(venv, ["runs", "--json"], elsewhere, home).stdout)
    assert [(r["stage"], r["state"]) for r in listed] == [(s["stage"], "completed") for s in out["stages"]]
