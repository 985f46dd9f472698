"""The preset store: the bundled presets and recipes (studio/paths.py BUNDLED_PRESETS, shipped with the package) and
the user's own, saved under <home>/presets/; listed, found by name, loaded and saved here, for the Train tab (single
runs), the Pipelines tab (recipes) and `rlhf-studio train NAME`.

    from studio.pipelines import presets
    presets.runs()                        # name -> Preset of every single-run preset
    presets.recipes()                     # name -> Preset of every pipeline recipe
    raw, config = presets.load_run("sft-dolly-tiny")
    presets.save_run("my-sft", raw)       # <home>/presets/my-sft.yaml: the keys that differ from the defaults
    text, pipeline, description = presets.recipe("ppo-tiny")
    presets.save_recipe("my-dpo", text)   # once it validates
    presets.resolve("sft-dolly-tiny")     # the file `rlhf-studio train` reads: a path as given, or a preset's

Both lists put, on a machine without a GPU, the presets that need one (or the hub) after the rest (twins.needs,
twins.offline_first). A bundled name wins over a user file of the same name, and no preset is saved under a bundled
name or over the user's preset of the other kind. A file that does not parse is still listed (a user's in both lists),
so that picking it says what is wrong with it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from studio import config as cfg
from studio.errors import ConfigError, StudioError
from studio.paths import BUNDLED_PRESETS, studio_home
from studio.pipelines import runner, twins
from studio.pipelines.recipe import Pipeline, is_pipeline

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a saved preset's name: a safe file name, never a path
NAME_RULE = "use 1 to 64 letters, digits, - or _, starting with a letter or digit"
RUN, PIPELINE, UNREADABLE = "run", "pipeline", "unreadable"  # Preset.kind: unreadable files do not parse


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    yours: bool  # saved by the user under <home>/presets/, not bundled
    kind: str  # RUN, PIPELINE or UNREADABLE
    description: str  # a recipe's `description:` ('' for a single run)
    needs: tuple[str, ...]  # beyond this machine's CPU and files: "GPU", "hub" (twins.needs)


class NameRefused(ConfigError):
    """A name a preset cannot be saved under (its message is the whole answer, with no "Not saved:" before it)."""


def user_dir() -> Path:
    return studio_home() / "presets"


def _read(path: Path, name: str, yours: bool) -> Preset:
    try:
        raw = cfg.read_yaml(path)
    except StudioError:
        return Preset(name, path, yours, UNREADABLE, "", ())
    kind = PIPELINE if is_pipeline(raw) else RUN
    try:
        needs = tuple(twins.pipeline_needs(twins.configs_of(raw)))
    except StudioError:
        needs = ()  # nothing known of one that does not validate; loading it says what is wrong
    return Preset(name, path, yours, kind, str(raw.get("description") or "") if kind == PIPELINE else "", needs)


def listing() -> dict[str, Preset]:
    """name -> Preset of every file: the bundled ones, then the user's, each folder in name order."""
    found: dict[str, Preset] = {}
    for folder, yours in ((BUNDLED_PRESETS, False), (user_dir(), True)):
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            if path.stem not in found:
                found[path.stem] = _read(path, path.stem, yours)
    return found


def _ordered(presets: list[Preset]) -> dict[str, Preset]:
    by_name = {p.name: p for p in presets}
    return {name: by_name[name] for name in twins.offline_first({p.name: list(p.needs) for p in presets})}


def runs() -> dict[str, Preset]:
    """Every single-run preset (and every file that does not parse), offline ones first on a machine without a GPU."""
    return _ordered([p for p in listing().values() if p.kind != PIPELINE])


def recipes() -> dict[str, Preset]:
    """Every pipeline recipe (and the user's files that do not parse), offline ones first without a GPU."""
    return _ordered([p for p in listing().values() if p.kind == PIPELINE or (p.kind == UNREADABLE and p.yours)])


# ---------------------------------------------------------------- single runs


def load_run(name: str | None) -> tuple[dict, cfg.RunConfig]:
    """(the preset's YAML mapping, its validated config); ConfigError saying why not, as the Train tab shows it."""
    preset = listing().get((name or "").strip())
    if preset is None:
        raise ConfigError(f"No preset named '{name or ''}'; pick one from the list.")
    if preset.kind == PIPELINE:
        raise ConfigError(f"{preset.name} is a pipeline (several linked stages); open it in the Pipelines tab.")
    try:
        raw = cfg.read_yaml(preset.path)
        return raw, cfg.from_dict(raw)
    except StudioError as err:
        raise ConfigError(f"Preset {preset.name}: {err}") from None


def _non_defaults(values: dict, defaults: dict) -> dict:
    """The nested entries of a config that differ from the defaults (a preset reads best short)."""
    kept = {}
    for key, value in values.items():
        if isinstance(value, dict):
            inner = _non_defaults(value, defaults.get(key, {}))
            if inner:
                kept[key] = inner
        elif key == "stage" or value != defaults.get(key):
            kept[key] = value
    return kept


def save_run(name: str | None, raw: dict) -> tuple[Path, bool]:
    """Save a run config mapping (validated here) as <home>/presets/NAME.yaml, only the keys that differ from the
    defaults; (its path, whether it replaced the user's preset of that name). NameRefused for a name it cannot take,
    ConfigError for a config that does not validate, StudioError when the file cannot be written."""
    name = (name or "").strip()
    if not NAME.fullmatch(name):
        raise NameRefused(f"Preset name '{name}': {NAME_RULE}.")
    existing = listing().get(name)
    if existing is not None and not existing.yours:
        raise NameRefused(f"'{name}' is the name of a bundled preset; pick another name.")
    if existing is not None and existing.kind == PIPELINE:
        raise NameRefused(f"'{name}' is the name of your pipeline; pick another name.")
    config = cfg.from_dict(raw)
    body = _non_defaults(cfg.to_dict(config), cfg.to_dict(cfg.RunConfig()))
    path = user_dir() / f"{name}.yaml"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# Saved from the studio's Train tab. Run it with `rlhf-studio train {name}`\n"
            + yaml.safe_dump(body, sort_keys=False),
            encoding="utf-8",
        )
    except OSError as err:
        raise StudioError(f"Could not write {path}: {err.strerror}") from None
    return path, existing is not None


# ---------------------------------------------------------------- recipes


def recipe_text(name: str | None) -> str:
    found = recipes().get((name or "").strip())
    if found is None:
        raise ConfigError(f"recipe: no pipeline named '{name or ''}'; pick one from the list")
    return found.path.read_text(encoding="utf-8")


def recipe(name: str | None) -> tuple[str, Pipeline, str]:
    """(YAML text, validated pipeline, description) of a recipe by name."""
    text = recipe_text(name)
    return (text, *runner.validate(text, where=f"{(name or '').strip()}.yaml"))


def save_recipe(name: str | None, text: str) -> Path:
    """Save pipeline YAML text as the user's recipe <home>/presets/NAME.yaml, once it validates."""
    name = (name or "").strip()
    if not NAME.fullmatch(name):
        raise NameRefused(f"pipeline name '{name}': {NAME_RULE}")
    existing = listing().get(name)
    if existing is not None and not existing.yours:
        raise NameRefused(f"pipeline name '{name}': that is a bundled preset; pick another name")
    if existing is not None and existing.kind == RUN:
        raise NameRefused(f"pipeline name '{name}': your single-run preset has that name; pick another name")
    runner.validate(text)
    path = user_dir() / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- the command line


def resolve(given: str) -> Path:
    """The file `rlhf-studio train GIVEN` reads: GIVEN itself when it is a file or looks like a path (a folder in
    it, or a .yaml ending: read_yaml says when it is missing), else the preset or recipe of that name, bundled or
    saved; ConfigError naming the close names for an unknown name."""
    path = Path(given).expanduser()
    if path.exists() or len(path.parts) != 1 or path.suffix in (".yaml", ".yml"):
        return path
    found = listing()
    if given in found:
        return found[given].path
    close = difflib.get_close_matches(given, list(found), n=3, cutoff=0.6)
    named = ", ".join(close[:-1]) + " or " + close[-1] if len(close) > 1 else "".join(close)
    hint = f"did you mean {named}?" if close else f"the bundled ones are in {BUNDLED_PRESETS}"
    raise ConfigError(f"no preset named '{given}' and no such file; {hint}")
