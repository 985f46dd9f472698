"""Share a finished run: its merged weights, a model card with charts, a push to the Hub, and a Space.

    merged_model(run_id, "out/merged")           # base + every adapter of the run's chain, as safetensors
    text = model_card(run_id)                    # README.md: front matter, lineage, hyperparameters, metrics
    url = push(run_id, "me/my-model", merged=False, private=True)
    folder = export_space(run_id, "out/space")   # app.py (gradio, runs without the studio) + settings + weights
    outside_home("/etc/space")                   # True: the Share tab asks before exporting there
    url = push_space(folder, "me/my-space")
    rlhf-studio push RUN_ID REPO_ID [--merged] [--private]
    rlhf-studio export-space RUN_ID OUT_DIR [--push REPO_ID] [--private]

The Hub token comes from $HF_TOKEN or the stored login (`huggingface-cli login`), never from an argument: it is
handed to huggingface_hub calls and nowhere else (not the staged folder, the card, logs or the run).
A push stages its files under <home>/share/<run_id>/ first, so what was uploaded can be looked at afterwards.
Merging a reward run is refused: it would make a sequence-classification model, which nothing here loads yet;
its adapter can be pushed as it is.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from studio import config as cfg
from studio import stages
from studio.errors import StudioError
from studio.paths import studio_home
from studio.runs.rundir import RunDir

NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `huggingface-cli login`"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
SPACE_TEMPLATE = Path(__file__).parent / "space_template" / "app.py.tmpl"
SPACE_SETTINGS = "space_settings.json"
# The data options only some sources read (the rest apply to every source): a card lists a run's data options
# without the ones its source never looked at, such as SHP's min_score_ratio under HH-RLHF data.
SOURCE_OPTIONS = {
    "categories": ("dolly",),
    "domains": ("shp",),
    "min_score_ratio": ("shp",),
    "languages": ("oasst",),
    "columns": ("file",),
    "votes": ("votes",),
}
CPU_BASIC_MAX_PARAMETERS = 1_000_000_000  # above this a free 2-vCPU Space answers too slowly: suggest a T4


# ---------------------------------------------------------------- runs


def _completed(run_id: str) -> tuple[RunDir, cfg.RunConfig]:
    from studio.runs import manager

    run = manager.open_run(run_id).require_completed("run can be shared")
    return run.folder, run.config


def _chain(run: RunDir, config: cfg.RunConfig) -> list[tuple[str, cfg.RunConfig | None]]:
    """(run id, config or None when it is gone) of the run and each run it started from, newest first."""
    out: list[tuple[str, cfg.RunConfig | None]] = [(run.id, config)]
    seen = {run.id}
    while config is not None and config.init.from_run and config.init.from_run not in seen:
        parent = RunDir.of(config.init.from_run)
        seen.add(parent.id)
        config = cfg.load_config(parent.config_path) if parent.config_path.is_file() else None
        out.append((parent.id, config))
    return out


def check_repo_id(repo_id: str) -> str:
    repo_id = (repo_id or "").strip()
    if not REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise StudioError(
            f"repo id '{repo_id}' is not owner/name (letters, digits, '-', '_', '.'), e.g. my-name/my-model"
        )
    return repo_id


def _is_hub_id(name: str) -> bool:
    from studio.modeling import models

    return name != models.TINY_NAME and not Path(name).expanduser().is_dir() and not name.startswith((".", "/", "~"))


# ---------------------------------------------------------------- merged weights


def merged_model(run_id: str, out_dir: str | Path) -> Path:
    """Save the run's full weights (its base with every adapter of its chain merged in, or its whole-model folder)
    as safetensors, with its tokenizer and chat template; a plain transformers AutoModelForCausalLM loads it."""
    import torch

    from studio.modeling import models
    from studio.serve import generate

    run, config = _completed(run_id)
    if not stages.get(config.stage).writes_text:
        raise StudioError(
            f"run '{run.id}' is a reward run: merged, it would be a sequence-classification model, "
            "which the studio does not export; push its adapter without --merged"
        )
    target = generate.run_target(run.id)
    out = Path(out_dir)
    # Merge in full precision: folding an adapter into quantised weights would round the update away.
    spec = replace(target.model, quantization="none")
    with torch.no_grad():
        model = models.load_causal_lm(spec, target.weights)
        for folder in (*target.merged, *target.adapters):  # LoRA updates add up: merged one by one, oldest first
            model = models.merge_adapter(model, folder)
    model.requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    generate.shared().tokenizer(target).save_pretrained(str(out))
    return out


# ---------------------------------------------------------------- model card


def lineage(run_id: str) -> list[dict]:
    """The runs behind this one: {"id", "stage", "name", "role"} for the run, each run it started from
    (init.from_run, newest first) and the reward models that scored any of them."""
    run = RunDir.of(run_id)
    config = cfg.load_config(run.config_path)
    rows = []
    for i, (rid, conf) in enumerate(_chain(run, config)):
        rows.append(
            {
                "id": rid,
                "stage": conf.stage if conf else "?",
                "name": conf.name if conf else None,
                "role": "this run" if i == 0 else f"started from (by {rows[-1]['id']})",
            }
        )
        for rm in conf.rewards.runs if conf and conf.stage in cfg.ONLINE_STAGES else []:
            rm_dir = RunDir.of(rm)
            rm_conf = cfg.load_config(rm_dir.config_path) if rm_dir.config_path.is_file() else None
            rows.append(
                {
                    "id": rm,
                    "stage": rm_conf.stage if rm_conf else "?",
                    "name": rm_conf.name if rm_conf else None,
                    "role": f"reward model of {rid}",
                }
            )
    return rows


def final_metrics(run_id: str) -> list[dict]:
    """{"key", "value", "step"}: the last logged value of each metric the stage's charts draw."""
    from studio.monitor import charts
    from studio.runs.metrics import read_all

    run = RunDir.of(run_id)
    stage = cfg.load_config(run.config_path).stage
    series = charts.columns(read_all(run.metrics_path)).series()
    out = []
    for panel in charts.stage_panels(stage):
        for key in panel.keys_in(series):
            steps, values = series[key]
            if len(values) and not any(r["key"] == key for r in out):
                out.append({"key": key, "value": values[-1], "step": steps[-1]})
    return out


def write_charts(run_id: str, folder: str | Path) -> list[Path]:
    """One PNG line chart per chart panel of the run's stage that has data, written into `folder`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from studio.monitor import charts
    from studio.runs.metrics import read_all

    run = RunDir.of(run_id)
    stage = cfg.load_config(run.config_path).stage
    series = charts.columns(read_all(run.metrics_path)).series()
    folder = Path(folder)
    written = []
    for panel in charts.stage_panels(stage):
        keys = [k for k in panel.keys_in(series) if len(series[k][1])]
        if not keys:
            continue
        fig = Figure(figsize=(6, 3.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key in keys:
            steps, values = series[key]
            ax.plot(list(steps), list(values), label=key, marker="o" if len(values) < 3 else None)
        ax.set_title(panel.title)
        ax.set_xlabel(charts.x_label(stage))
        if panel.log_y and all(v > 0 for k in keys for v in series[k][1]):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^a-z0-9]+", "-", panel.title.lower()).strip("-") + ".png")
        fig.savefig(path, format="png")
        written.append(path)
    return written


def _data_origin(data: cfg.DataSpec) -> tuple[str, str | None]:
    """(how the card describes where the data came from, the dataset's hub id when it was loaded from the hub)."""
    from studio import data as datasets

    module = datasets.source_module(data.source)
    try:
        origin = datasets.origin_of(data)
    except StudioError:
        origin = data.path or ""
    hub_id = getattr(module, "HUB_ID", None)
    if hub_id and origin == hub_id:
        subset = f" ({data.subset})" if data.subset else ""
        return f"[{hub_id}](https://huggingface.co/datasets/{hub_id}){subset} from the Hugging Face Hub", hub_id
    schema = f" in the schema of `{hub_id}`" if hub_id else ""
    if data.path == datasets.SAMPLE:
        return f"the small `{data.source}` sample bundled with RLHF Studio{schema}", None
    return f"a local file, `{Path(origin).name}`{schema}", None


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_value(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _flat(section: dict, prefix: str) -> list[tuple[str, object]]:
    out = []
    for key, value in section.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _reward_row(source: cfg.RewardSource) -> tuple[str, str, str, str]:
    """A reward source for the model card: a run by its id, a built-in with its parameters, a Python function by its
    file's name only (the full path is this machine's business)."""
    if source.run:
        what = f"`{source.run}`"
    elif source.builtin:
        what = ", ".join(f"{k}={v!r}" for k, v in source.args.items()) or "defaults"
    else:
        file, _, name = source.function.rpartition(":")
        what = f"`{Path(file).name}:{name}`"
    return (source.label, source.kind, what, f"{source.weight:g}")


def data_options(data: cfg.DataSpec) -> dict:
    """The run's data section without the options its source does not read."""
    return {
        key: value for key, value in cfg.to_dict(data).items() if data.source in SOURCE_OPTIONS.get(key, (data.source,))
    }


def model_card(run_id: str, merged: bool = False, repo_id: str | None = None, charts: list[str | Path] = ()) -> str:
    """The README.md of the run's Hub repository: YAML front matter, where it comes from (base model, data,
    lineage), its hyperparameters, final metrics, the chart files named in `charts` (paths relative to the
    README) and how to load it. `merged`: the repository holds merged weights rather than the adapter."""
    import yaml

    from studio.modeling import models

    run, config = _completed(run_id)
    base = config.model.name
    chain = _chain(run, config)
    adapter = (run.adapter_dir / "adapter_config.json").is_file() and not merged
    hub_base = _is_hub_id(base)
    origin, dataset_id = _data_origin(config.data)
    datasets_ = [dataset_id] if dataset_id else []
    for _, conf in chain[1:]:
        if conf is not None:
            parent_id = _data_origin(conf.data)[1]
            if parent_id and parent_id not in datasets_:
                datasets_.append(parent_id)

    front: dict = {}
    if hub_base:
        front["base_model"] = base
    front["library_name"] = "peft" if adapter else "transformers"
    front["pipeline_tag"] = "text-generation" if stages.get(config.stage).writes_text else "text-classification"
    front["tags"] = ["rlhf-studio", config.stage, *(["lora"] if adapter else [])]
    if datasets_:
        front["datasets"] = datasets_

    title = repo_id or config.name or run.id
    base_words = (
        f"[{base}](https://huggingface.co/{base})"
        if hub_base
        else "the built-in tiny model of RLHF Studio (a small Llama, not on the Hub)"
        if base == models.TINY_NAME
        else f"a local model folder, `{Path(base).name}`"
    )
    what = (
        "a LoRA adapter" if adapter else "the full weights (every adapter merged in)" if merged else "the full weights"
    )
    summary = cfg.STAGE_SUMMARIES.get(config.stage, config.stage)
    parts = [
        f"---\n{yaml.safe_dump(front, sort_keys=False).rstrip()}\n---\n",
        f"# {title}\n",
        f"{what.capitalize()} of {base_words}, trained with **{config.stage}** ({summary}) in "
        f"RLHF Studio as run `{run.id}`" + (f" ({config.name})" if config.name else "") + ".\n",
    ]

    parts.append("## Data\n")
    data_rows = [
        (k, v)
        for k, v in _flat(data_options(config.data), "data.")  # unset options say nothing
        if k != "data.path" and v not in (None, [])
    ]
    parts.append(f"Trained on {origin}.\n\n" + _table(("option", "value"), data_rows) + "\n")

    parts.append("## Lineage\n")
    parts.append(
        _table(
            ("run", "stage", "name", "role"),
            [(f"`{r['id']}`", r["stage"], r["name"], r["role"]) for r in lineage(run.id)],
        )
        + "\n"
    )
    if len(chain) > 1:
        parts.append(
            f"This run started from the weights of run `{chain[1][0]}`"
            + (" (merged into the weights here)." if not adapter else "; the adapter here only works on top of them.")
            + "\n"
        )

    if config.stage in cfg.ONLINE_STAGES:
        parts.append("## Rewards\n")
        parts.append(
            f"Answers were scored by these sources, combined by {config.rewards.combine}:\n\n"
            + _table(("source", "kind", "what", "weight"), [_reward_row(source) for source in config.rewards.sources])
            + "\n"
        )

    parts.append("## Hyperparameters\n")
    raw = cfg.to_dict(config)
    raw["rewards"].pop("sources")  # in the Rewards table, without the reward file's local path
    for section in ("model", "lora", "train", "init", *stages.get(config.stage).sections):
        rows = [(k, v) for k, v in _flat(raw[section], f"{section}.")]
        parts.append(f"**{section}**\n\n" + _table(("option", "value"), rows) + "\n")

    metrics = final_metrics(run.id)
    parts.append("## Final metrics\n")
    parts.append(
        _table(("metric", "last value", "at step"), [(m["key"], m["value"], int(m["step"])) for m in metrics]) + "\n"
        if metrics
        else "No metrics were logged.\n"
    )
    if charts:
        parts.append("## Charts\n")
        for path in charts:
            rel = Path(path).as_posix()
            parts.append(f"![{Path(path).stem}]({rel})\n")

    parts.append("## How to load it\n")
    repo = repo_id or "OWNER/NAME"
    if adapter:
        parts.append(
            f"```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f'model = AutoPeftModelForCausalLM.from_pretrained("{repo}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n```\n'
        )
        if not hub_base:
            parts.append(
                "The base model is not on the Hub, so this adapter loads only where that base is; the "
                "merged weights (`rlhf-studio push RUN_ID REPO_ID --merged`) load anywhere.\n"
            )
    else:
        parts.append(
            f"```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
            'messages = [{"role": "user", "content": "Name a fruit."}]\n'
            'ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")\n'
            "print(tokenizer.decode(model.generate(ids, max_new_tokens=64)[0, ids.shape[1]:], "
            "skip_special_tokens=True))\n```\n"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------- the Hub


SPACE_PUSH_OPT_IN = "RLHF_STUDIO_ALLOW_PUSH"
SPACE_PUSH_REFUSED = (
    "this studio runs in a Space, where its Hub token would publish for every visitor; set the "
    f"Space variable {SPACE_PUSH_OPT_IN}=1 only if no one else can open it (a private Space)"
)


def hub_token(token: str | None) -> str:
    """The token to publish with: the one given, else HF_TOKEN or the stored login. In a Space the token is the
    Space owner's while the page is anyone's, so publishing needs the owner's explicit opt-in."""
    if token:
        return token
    from huggingface_hub import get_token

    from studio import spaces

    if spaces.on_spaces() and os.environ.get(SPACE_PUSH_OPT_IN) != "1":
        raise StudioError(SPACE_PUSH_REFUSED)

    found = get_token()
    if not found:
        raise StudioError(NO_TOKEN)
    return found


def _hub(action: str, call):
    """Run a huggingface_hub call; a failure becomes one line (never with the token in it)."""
    from huggingface_hub import errors as hub_errors

    try:
        return call()
    except hub_errors.OfflineModeIsEnabled:
        raise StudioError(
            "could not reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1); unset it "
            "and check your connection"
        ) from None
    except hub_errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise StudioError(
                f"the Hugging Face Hub refused to {action} ({status}): the token cannot write there; "
                "use a token with write access (HF_TOKEN or `huggingface-cli login`)"
            ) from None
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StudioError(f"the Hugging Face Hub could not {action}: {first}") from None
    except (OSError, ConnectionError) as err:  # requests / httpx connection errors are OSErrors or wrap them
        raise StudioError(
            f"could not reach the Hugging Face Hub: {type(err).__name__}; check your connection"
        ) from None
    except Exception as err:
        if type(err).__module__.split(".")[0] in ("httpx", "requests", "urllib3", "httpcore"):
            raise StudioError(
                f"could not reach the Hugging Face Hub: {type(err).__name__}; check your connection"
            ) from None
        raise


def _upload(folder: Path, repo_id: str, repo_type: str, private: bool, token: str, message: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    extra = {"space_sdk": "gradio"} if repo_type == "space" else {}
    _hub(
        f"create {repo_id}",
        lambda: api.create_repo(repo_id, token=token, private=private, repo_type=repo_type, exist_ok=True, **extra),
    )
    _hub(
        f"upload to {repo_id}",
        lambda: api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, token=token, repo_type=repo_type, commit_message=message
        ),
    )
    prefix = {"space": "spaces/", "dataset": "datasets/"}.get(repo_type, "")
    return f"https://huggingface.co/{prefix}{repo_id}"


def stage(run_id: str, folder: str | Path, merged: bool = False, repo_id: str | None = None) -> Path:
    """Write what a push uploads: the adapter (or merged weights), charts/*.png and the README.md card."""
    run, config = _completed(run_id)
    if not merged:
        chain = _chain(run, config)
        if len(chain) > 1:
            raise StudioError(
                f"run '{run.id}' starts from run '{chain[1][0]}': its adapter only works on top of "
                "that run's weights; push it with --merged"
            )
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    if merged:
        merged_model(run.id, folder)
    else:
        shutil.copytree(run.adapter_dir, folder)
    charts = [p.relative_to(folder) for p in write_charts(run.id, folder / "charts")]
    (folder / "README.md").write_text(
        model_card(run.id, merged=merged, repo_id=repo_id, charts=charts), encoding="utf-8"
    )
    return folder


def push(run_id: str, repo_id: str, merged: bool = False, private: bool = False, token: str | None = None) -> str:
    """Upload the run (its adapter, or merged weights) with its model card and charts to a Hub model repository;
    returns its URL. The files are staged under <home>/share/<run_id>/ first."""
    from studio.runs import manager

    run = manager.find(run_id)
    _completed(run.id)
    repo_id = check_repo_id(repo_id)
    token = hub_token(token)
    folder = stage(run.id, studio_home() / "share" / run.id, merged=merged, repo_id=repo_id)
    return _upload(folder, repo_id, "model", private, token, f"RLHF Studio run {run.id}")


# ---------------------------------------------------------------- a Space


def _requirement(package: str) -> str:
    version = metadata.version(package).split("+")[0]
    major, minor = (version.split(".") + ["0"])[:2]
    return f"{package}>={major}.{minor},<{int(major) + 1}"


def _suggested_hardware(model: cfg.ModelSpec) -> str | None:
    from studio.modeling import estimate

    try:
        parameters = estimate.estimate(model, cfg.LoraSpec(enabled=False), stages=("sft",)).parameters
    except StudioError:  # a hub model that cannot be looked up now: leave the choice to the Space's owner
        return None
    return "cpu-basic" if parameters <= CPU_BASIC_MAX_PARAMETERS else "t4-small"


def outside_home(folder: str | Path) -> bool:
    """Whether a folder lies outside the studio home (symlinks and ../ followed): an export there writes where the
    studio never writes on its own, so the Share tab asks before it does."""
    return not Path(folder).expanduser().resolve().is_relative_to(studio_home().resolve())


def export_space(run_id: str, out_dir: str | Path, settings: cfg.GenerationSpec | None = None) -> Path:
    """A Hugging Face Space folder that chats with the run and compares it with its base model: app.py (gradio,
    independent of the studio), space_settings.json, requirements.txt, README.md and the run's weights (the base
    too when it is the tiny model or a local folder)."""
    from studio.modeling import models
    from studio.serve import generate

    run, config = _completed(run_id)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"'{out}' already exists and is not empty; give a new or empty folder")
    target = generate.run_target(run.id)  # refuses reward runs: they write no answers to chat with
    for folder in ((target.weights,) if target.weights else ()) + target.merged + target.adapters:
        models.check_safe_weights(folder)  # the Space loads them as they are: never ship a pickle .bin
    settings = settings or cfg.GenerationSpec()
    out.mkdir(parents=True, exist_ok=True)
    try:
        base = config.model.name
        if _is_hub_id(base):
            base_ref = base
        else:  # not on the hub: the Space carries it (the tiny model is a few MB)
            shutil.copytree(models.resolve(base), out / "base", ignore=shutil.ignore_patterns(".*"))
            base_ref = "base"

        def copy(folder: Path, name: str) -> str:
            shutil.copytree(folder, out / name)
            return name

        weights = copy(target.weights, "model") if target.weights else None
        merged = [copy(f, f"merged/{i}") for i, f in enumerate(target.merged)]
        adapters = [copy(f, f"adapters/{i}") for i, f in enumerate(target.adapters)]
        tokenizer = adapters[-1] if adapters else weights
        title = (config.name or run.id)[:30]
        base_label = "tiny" if base == models.TINY_NAME else base
        description = (
            f"RLHF Studio run `{run.id}`: {config.stage} of {base_label}. The Base vs tuned tab answers "
            "one prompt with both, with the same settings and seed."
        )
        space = {
            "title": title,
            "description": description,
            "run_id": run.id,
            "stage": config.stage,
            "base_model": base_ref,
            "base_label": base_label,
            "base_revision": config.model.revision,
            "trust_remote_code": config.model.trust_remote_code,
            "weights": weights,
            "merged": merged,
            "adapters": adapters,
            "tokenizer": tokenizer,
            "generation": cfg.to_dict(settings),
        }
        (out / SPACE_SETTINGS).write_text(json.dumps(space, indent=1) + "\n", encoding="utf-8")
        shutil.copyfile(SPACE_TEMPLATE, out / "app.py")
        (out / "requirements.txt").write_text(
            "\n".join(_requirement(p) for p in ("gradio", "torch", "transformers", "peft", "accelerate")) + "\n",
            encoding="utf-8",
        )
        front = {
            "title": title,
            "emoji": "🤖",
            "colorFrom": "indigo",
            "colorTo": "blue",
            "sdk": "gradio",
            "sdk_version": metadata.version("gradio"),
            "app_file": "app.py",
            "pinned": False,
            "short_description": f"Chat with an RLHF Studio {config.stage} run"[:60],
        }
        hardware = _suggested_hardware(config.model)
        if hardware:
            front["suggested_hardware"] = hardware
        if _is_hub_id(base):
            front["models"] = [base]
        import yaml

        (out / "README.md").write_text(
            f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip()}\n---\n\n# {title}\n\n"
            f"{description}\n\nRun it locally: `pip install -r requirements.txt && python app.py`.\n",
            encoding="utf-8",
        )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def push_space(out_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload an exported Space folder to a Hugging Face Space; returns its URL."""
    folder = Path(out_dir)
    if not (folder / "app.py").is_file() or not (folder / SPACE_SETTINGS).is_file():
        raise StudioError(
            f"'{folder}' is not an exported Space (no app.py and {SPACE_SETTINGS}); make one with "
            "`rlhf-studio export-space RUN_ID OUT_DIR`"
        )
    repo_id = check_repo_id(repo_id)
    token = hub_token(token)
    return _upload(folder, repo_id, "space", private, token, "RLHF Studio Space")
