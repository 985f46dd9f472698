"""Bad input (issue 10, items 8 to 10): each broken data file, unusable model and out-of-range config value gets one
line naming what is wrong, through every door a person uses: `manager.start` (what the UI and the CLI call), the
`rlhf-studio train` command, and the served studio's Start button (/start_run).

A bad data file is refused before a run folder exists, so no worker starts and no model loads. One studio serves
the whole module, with a small upload cap so that "too big" needs no big file.

    python -m pytest tests/test_bad_input.py -q
"""

from __future__ import annotations

import json
import os
import sys

import httpx
import pytest

from studio import access, cli
from studio import config as cfg
from studio.errors import ConfigError, StudioError
from studio.modeling import models
from studio.paths import runs_root
from studio.runs import manager
from tests.conftest import REPO, error_shown, free_port, run_cli, served_app, write_jsonl

PRESET = str(REPO / "presets" / "sft-dolly-tiny.yaml")
LIMIT, LIMIT_BYTES = "64kb", 64 * 1024  # the upload cap (RLHF_STUDIO_MAX_UPLOAD) of every test here
# A worker that exits at once: if a protection were gone, a test would start this rather than a training.
NO_WORKER = [sys.executable, "-c", "pass"]


@pytest.fixture(autouse=True)
def small_upload_cap(monkeypatch):
    monkeypatch.setenv(access.UPLOAD_ENV, LIMIT)
    monkeypatch.setattr(manager, "WORKER", NO_WORKER)


def run_dirs() -> list[str]:
    root = runs_root()
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


# ---------------------------------------------------------------- item 8: data files

GOOD = {"prompt": "How do I boil an egg?", "completion": "Nine minutes in boiling water."}
FAIL = {"data.on_bad_rows": "fail"}


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


# id, file name, its bytes, data.* settings, the message ({path}: the file as given, {name}: its name)
FAULTS = [
    (
        "missing-column",
        "no-completion.jsonl",
        jsonl([{"prompt": "Hi"}, {"prompt": "Hello"}]),
        {},
        "{name}: no SFT layout fits: the file has prompt; SFT data needs prompt/completion",
    ),
    ("missing-cell", "gap.jsonl", jsonl([GOOD, {"prompt": "Hi"}]), FAIL, "{name} row 2: column 'completion': missing"),
    (
        "empty-string",
        "blank.jsonl",
        jsonl([GOOD, GOOD, {"prompt": "Hi", "completion": "  "}]),
        FAIL,
        "{name} row 3: column 'completion': empty",
    ),
    (
        "every-row-empty",
        "all-blank.jsonl",
        jsonl([{"prompt": "Hi", "completion": ""}] * 3),
        {},
        "{path}: no usable rows for source 'file'; first problem: {name} row 1: column 'completion': empty",
    ),
    (
        "mixed-types",
        "mixed.jsonl",
        jsonl([GOOD, GOOD, {"prompt": 42, "completion": "Yes."}]),
        FAIL,
        "{name} row 3: column 'prompt': expected text or a list of role/content messages, got int",
    ),
    (
        "csv-extra-cell",
        "extra.csv",
        b"prompt,completion\nHi,Hello\nHi,Hello,again\n",
        {},
        "{path} line 3: more values than the header has columns",
    ),
    (
        "cut-off-last-line",
        "cut.jsonl",
        jsonl([GOOD, GOOD]) + b'{"prompt": "Hi", "compl',
        {},
        "{path} line 3: not valid JSON (the last line is cut off)",
    ),
    ("zero-bytes", "empty.jsonl", b"", {}, "{path}: the file is empty"),
    (
        "html-renamed-jsonl",
        "page.jsonl",
        b"<!DOCTYPE html>\n<html><body><p>Too many requests</p></body></html>\n",
        {},
        "{path}: an HTML page (a web page saved instead of the data file?), not JSON lines",
    ),
    (
        "binary-renamed-jsonl",
        "image.jsonl",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        {},
        "{path}: not UTF-8 text (is it a binary file with a text extension?)",
    ),
    (
        "over-the-size-limit",
        "big.jsonl",
        jsonl([GOOD] * 1200),
        {},
        "{path}: {size:.1f} KB, over the 64.0 KB the studio reads (it reads a file whole into memory)",
    ),
]
FAULT_IDS = [fault[0] for fault in FAULTS]


def fault_file(folder, fault) -> tuple[str, dict, str]:
    """(path, data.* settings, expected message) of one fault, written into folder."""
    _, name, body, settings, message = fault
    path = folder / name
    path.write_bytes(body)
    return str(path), {"data.source": "file", "data.path": str(path), **settings}, message


def expected(message: str, path: str) -> str:
    return message.format(path=path, name=os.path.basename(path), size=os.path.getsize(path) / 1024)


def test_the_big_file_is_over_the_cap_and_the_others_under():
    sizes = {fault[0]: len(fault[2]) for fault in FAULTS}
    assert sizes.pop("over-the-size-limit") > LIMIT_BYTES > max(sizes.values())


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_a_bad_data_file_is_refused_by_start_before_a_run_exists(tmp_path, fault):
    path, settings, message = fault_file(tmp_path, fault)
    config = cfg.load_config(PRESET, [f"{k}={v}" for k, v in settings.items()])
    before = run_dirs()
    with pytest.raises(StudioError) as raised:
        manager.start(config)
    assert str(raised.value).startswith(expected(message, path)) and "\n" not in str(raised.value)
    assert run_dirs() == before  # no run folder, so no worker and no model


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_a_bad_data_file_is_one_line_from_the_cli(tmp_path, fault):
    path, settings, message = fault_file(tmp_path, fault)
    sets = [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]
    result = run_cli("train", PRESET, *sets, "--set", "train.max_steps=1", timeout=120)
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: {expected(message, path)}") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == "" and run_dirs() == []


def test_a_bad_file_in_a_later_pipeline_stage_is_refused_before_the_first_starts(tmp_path):
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(jsonl([{"chosen": "a", "rejected": "b"}]) + b'{"chosen": "a", "rej')
    result = run_cli("train", str(REPO / "presets" / "sft-dpo-tiny.yaml"), "--set", f"stages.dpo.data.path={cut}")
    assert result.returncode == cli.EXIT_FAILED and result.stdout == ""
    assert result.stderr == f"error: stage dpo: {cut} line 2: not valid JSON (the last line is cut off)\n"
    assert run_dirs() == []


def test_a_good_file_still_starts_and_is_converted_once(tmp_path):
    """The check reads the file as the worker will, and leaves the converted rows in the cache for the worker."""
    path = write_jsonl(tmp_path / "good.jsonl", [GOOD] * 5)
    config = cfg.load_config(PRESET, ["data.source=file", f"data.path={path}"])
    run, _proc = manager.start(config)
    assert run_dirs() == [run.id]
    assert len(list((runs_root().parent / "cache" / "data").glob("*.json"))) == 1


# ---------------------------------------------------------------- item 8 through the served studio


@pytest.fixture(scope="module")
def served_home(tmp_path_factory):
    """The studio home of the module's served studio (no model in it: nothing here gets as far as a model)."""
    return tmp_path_factory.mktemp("served-home")


@pytest.fixture
def in_served_home(served_home, monkeypatch):
    """The test process looks at the served studio's home, to count its runs."""
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(served_home))


@pytest.fixture(scope="module")
def served(served_home):
    """(url, client) of one studio serving the module's home, with the module's upload cap."""
    port = free_port()
    env = {**os.environ, "RLHF_STUDIO_HOME": str(served_home), access.UPLOAD_ENV: LIMIT, "OMP_NUM_THREADS": "1"}
    # `rlhf-studio ui` with the worker swapped for NO_WORKER, so that a missing protection never starts a training.
    serve = (
        "import sys; from studio.runs import manager; manager.WORKER = [sys.executable, '-c', 'pass']; "
        "from studio import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    with served_app([sys.executable, "-c", serve, "ui", "--port", str(port)], port, REPO, env) as client:
        yield f"http://127.0.0.1:{port}/", client


@pytest.fixture(scope="module")
def form(served) -> dict:
    """The Start form (config key -> value) with the tiny SFT preset loaded."""
    client = served[1]
    keys = client.predict(api_name="/form_keys")
    _message, *values = client.predict("sft-dolly-tiny", api_name="/load_preset")
    return dict(zip(keys, values))


def start_from_form(client, form: dict, changes: dict) -> str:
    """The Train tab's answer to Start, as its text (a refusal is shown as an error line)."""
    answer = client.predict(*{**form, **changes}.values(), api_name="/start_run")
    return error_shown(answer) or answer


@pytest.mark.usefixtures("in_served_home")
def test_an_uploaded_bad_file_is_refused_by_start_in_one_line(served, form, tmp_path):
    """Each fault uploaded as a person does (the Data tab's file drop fills data.path), then Start: one line, no run.
    The file over the cap never uploads: gradio answers 413 naming the cap, and typed as a path it is refused too."""
    from gradio_client import handle_file

    url, client = served
    # The page's file drop reads the cap from the app's config and refuses a bigger file before sending it.
    assert httpx.get(f"{url}config").json()["max_file_size"] == LIMIT_BYTES
    before = len(manager.list_runs())
    for fault in FAULTS:
        path, settings, message = fault_file(tmp_path, fault)
        if fault[0] == "over-the-size-limit":
            with open(path, "rb") as f:
                refused = httpx.post(f"{url}gradio_api/upload", files={"files": (fault[1], f)})
            assert refused.status_code == 413
            assert refused.text == f"File size exceeded maximum allowed size of {LIMIT_BYTES} bytes."
        else:
            path = client.predict(handle_file(path), api_name="/use_upload")  # the copy the server keeps
            assert os.path.basename(path) == fault[1]
        answer = start_from_form(client, form, {**settings, "data.path": path})
        # An upload is named as the person named it, not by the server's copy in gradio's upload folder.
        shown = path if fault[0] == "over-the-size-limit" else f"uploaded {fault[1]}"
        assert (
            answer.startswith(f"Not started: {expected(message, path).replace(path, shown)}") and "\n" not in answer
        ), fault[0]
    assert len(manager.list_runs()) == before


# ---------------------------------------------------------------- item 9: models


def model_folder(path, chat_template: bool = True, weights: bool = True, **config) -> str:
    """A model folder written by hand: a small Llama config, a word-level tokenizer (with the studio's ChatML
    template, or none) and an empty model.safetensors (or none). Enough for every fault below: each is found before
    a weight is read, and no model has to be built or fetched."""
    path.mkdir()
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "eos_token": "<|im_end|>"}
    if chat_template:
        tokenizer_config["chat_template"] = models.CHATML_TEMPLATE
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "architectures": ["LlamaForCausalLM"],
                "vocab_size": len(vocab),
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                **config,
            }
        )
    )
    if weights:
        (path / "model.safetensors").write_bytes(b"")
    return str(path)


@pytest.fixture
def model_folders(tmp_path) -> dict:
    """Model folders unusable in one way each."""
    remote_code = {
        "model_type": "studio-custom-arch",
        "architectures": ["CustomModel"],
        "auto_map": {
            "AutoConfig": "configuration_custom.CustomConfig",
            "AutoModelForCausalLM": "modeling_custom.CustomModel",
        },
    }
    (tmp_path / "not-a-model").mkdir()
    return {
        "no-weights": model_folder(tmp_path / "no-weights", weights=False),
        "not-a-model": str(tmp_path / "not-a-model"),
        "remote-code": model_folder(tmp_path / "remote-code", **remote_code),
        "no-template": model_folder(tmp_path / "no-template", chat_template=False),
    }


# Found from the folder's file names when the run is asked for, before a run folder exists.
MODEL_FAULTS_AT_START = [
    ("no-such-folder", "./no-such-model", "model.name = './no-such-model': no such folder"),
    (
        "not-a-model-folder",
        "{not-a-model}",
        "model.name = '{not-a-model}': the folder has no config.json, so it is not a model folder",
    ),
    (
        "no-weights",
        "{no-weights}",
        "model.name = '{no-weights}': the folder has no weights (model.safetensors or pytorch_model.bin)",
    ),
    # A hub id that is not in the local cache while the Hub cannot be reached (the tests run offline).
    (
        "hub-id-out-of-reach",
        "someone/no-such-model",
        "model.name = 'someone/no-such-model' is a Hugging Face Hub id, and the Hub cannot be reached (offline mode is "
        "on: HF_HUB_OFFLINE=1) and the model is not in the local cache; download it and set model.name to its folder, "
        "or use tiny (the built-in model)",
    ),
]
# Found by the worker, which loads the model: the run exists and fails with the reason.
MODEL_FAULTS = [
    (
        "remote-code-without-opt-in",
        "{remote-code}",
        "model '{remote-code}' needs Python code from its repository to load; set model.trust_remote_code: true only "
        "if you trust that repository",
    ),
    (
        "no-chat-template-for-chat-data",
        "{no-template}",
        "the tokenizer of '{no-template}' has no chat template, and this data is chat messages; pick an instruct or "
        "chat model, or one that ships a chat template",
    ),
]


@pytest.mark.parametrize(
    "name, message", [fault[1:] for fault in MODEL_FAULTS_AT_START], ids=[f[0] for f in MODEL_FAULTS_AT_START]
)
def test_an_unusable_model_folder_is_refused_by_start_before_a_run_exists(model_folders, name, message):
    name, message = name.format_map(model_folders), message.format_map(model_folders)
    config = cfg.load_config(PRESET, [f"model.name={name}"])
    with pytest.raises(StudioError) as raised:
        manager.start(config)
    assert str(raised.value) == message
    assert run_dirs() == []  # no run folder, so no worker and no model


def test_a_run_started_from_another_is_not_held_to_the_model_name_it_does_not_use(model_folders):
    """A run with init.from_run trains the parent run's base model, so whatever model.name says is not checked."""
    config = cfg.load_config(PRESET, [f"model.name={model_folders['no-weights']}", "init.from_run=no-such-run"])
    with pytest.raises(StudioError) as raised:
        manager.start(config)
    assert str(raised.value).startswith("no run with id 'no-such-run'")


def test_a_tokenizer_without_chat_template_is_one_line_from_the_data_command(model_folders):
    """`rlhf-studio data dolly --model FOLDER`, the data preview that loads the tokenizer alone: one line, exit 1.
    (Every model fault through `rlhf-studio train` is the slow test below.)"""
    name, message = next(fault[1:] for fault in MODEL_FAULTS if fault[0] == "no-chat-template-for-chat-data")
    name, message = name.format_map(model_folders), message.format_map(model_folders)
    result = run_cli("data", "dolly", "--path", "sample", "--model", name, timeout=120)
    assert result.returncode == cli.EXIT_FAILED
    assert result.stderr == f"error: {message}\n" and "Traceback" not in result.stdout


@pytest.mark.slow  # each starts a worker that imports torch and transformers: about 10 s
@pytest.mark.parametrize("name, message", [fault[1:] for fault in MODEL_FAULTS], ids=[f[0] for f in MODEL_FAULTS])
def test_an_unusable_model_is_one_line_from_the_cli(model_folders, name, message):
    """`rlhf-studio train` with the model: the run fails in its worker, and the terminal gets the reason as its one
    error line (the progress bar aside), no traceback."""
    name, message = name.format_map(model_folders), message.format_map(model_folders)
    result = run_cli("train", PRESET, "--set", f"model.name={name}", "--set", "train.max_steps=1", timeout=120)
    assert result.returncode == cli.EXIT_FAILED
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [result.stderr.splitlines()[-1]] and errors[0].startswith(f"error: {message} (log: ")
    assert "Traceback" not in result.stdout + result.stderr


# ---------------------------------------------------------------- item 10: every config field out of range


def _outside(kind, bound: str, limit: float):
    """A value just outside one bound of a field: the bound itself for a strict one, else one step past it."""
    if kind in (int, int | None):
        step = 1
    else:
        step = max(abs(limit) * 1e-3, 1e-3)  # 1.001 past 1.0, -0.001 below 0.0
    value = {"ge": limit - step, "gt": limit, "le": limit + step, "lt": limit}[bound]
    return int(value) if kind in (int, int | None) else float(value)


def out_of_range_cases(cls=cfg.RunConfig) -> list[tuple[str, object, str]]:
    """(key, value, words of the refusal) for every bound of every field, and every field with choices."""
    cases = []
    words = {"ge": "must be at least", "gt": "must be greater than", "le": "must be at most", "lt": "must be less than"}
    for key, meta in cfg.field_info(cls).items():
        for bound in ("ge", "gt", "le", "lt"):
            if meta.get(bound) is not None:
                cases.append((key, _outside(meta["type"], bound, meta[bound]), f"{words[bound]} {meta[bound]}"))
        if meta.get("choices"):
            cases.append((key, "no-such-choice", "allowed values are " + ", ".join(map(str, meta["choices"]))))
    return cases


CASES = out_of_range_cases()
CASE_IDS = [f"{key}={value}" for key, value, _ in CASES]


def test_every_bounded_field_and_every_choice_is_covered():
    info = cfg.field_info()
    bounded = {k for k, m in info.items() if any(m.get(b) is not None for b in ("ge", "gt", "le", "lt"))}
    assert {key for key, _, _ in CASES} == bounded | {k for k, m in info.items() if m.get("choices")}
    assert len(bounded) > 50  # the walk found the fields (a renamed metadata key would find none)


def refusal(key: str, value) -> str:
    return f"{key} = {value!r}: " if isinstance(value, str) else f"{key} = {value}: "


@pytest.mark.parametrize("key, value, words", CASES, ids=CASE_IDS)
def test_out_of_range_through_the_config(key, value, words):
    with pytest.raises(ConfigError) as raised:
        cfg.load_config(PRESET, [f"{key}={value}"])
    assert str(raised.value) == refusal(key, value) + words


@pytest.mark.parametrize("key, value, words", CASES, ids=CASE_IDS)
def test_out_of_range_through_the_cli(key, value, words, capsys):
    """`rlhf-studio train PRESET --set KEY=VALUE`, in process (cli.main, the command's own entry point)."""
    code = cli.main(["train", PRESET, "--set", f"{key}={value}"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_BAD_INPUT and out == ""
    assert err == f"error: {refusal(key, value)}{words}\n"
    assert run_dirs() == []


@pytest.mark.parametrize(
    "key, value",
    [("lora.r", 0), ("data.eval_fraction", 0.5), ("ppo.cliprange", 0.0), ("train.lr_scheduler", "no-such-choice")],
)
def test_out_of_range_through_the_real_command(key, value):
    """A few of the cases above as a person types them: a process, its stderr and exit code."""
    key, value, words = next(case for case in CASES if case[:2] == (key, value))
    result = run_cli("train", PRESET, "--set", f"{key}={value}", timeout=60)
    assert result.returncode == cli.EXIT_BAD_INPUT and result.stdout == ""
    assert result.stderr == f"error: {refusal(key, value)}{words}\n"
    assert run_dirs() == []


@pytest.fixture(scope="module")
def train_tab_fields() -> dict:
    """The Model, Data and Train tabs' inputs, built in this process as the app builds them (config key -> input)."""
    import gradio as gr

    from components import data_tab, model_tab, train_tab

    with gr.Blocks():
        shared = {**model_tab.build(), **data_tab.build()}
        own = train_tab.build(shared)
    return {**shared, **own}


def test_out_of_range_through_the_start_handler(train_tab_fields):
    """Every case through the Train tab's Start handler (train_tab.start_run, in process), the preset loaded first as
    a person would: one line naming the field, and no run."""
    from components import train_tab

    message, *values = train_tab.load_preset(train_tab_fields, "sft-dolly-tiny")
    assert message.startswith("Loaded preset")
    form = dict(zip(train_tab_fields, values))
    wrong = {}
    # A key with no input cannot be set from the UI at all (test_ui_train checks that every key has one).
    for key, value, words in (case for case in CASES if case[0] in form):
        answer = train_tab.start_run(train_tab_fields, list({**form, key: value}.values()))
        if error_shown(answer) != f"Not started: {refusal(key, value)}{words}":
            wrong[f"{key}={value}"] = answer
    assert wrong == {}
    assert run_dirs() == []


@pytest.mark.usefixtures("in_served_home")
@pytest.mark.parametrize(
    "key, value", [("lora.r", 0), ("train.warmup_ratio", 1.0), ("dpo.beta", 10.01), ("model.dtype", "no-such-choice")]
)
def test_out_of_range_through_the_served_start_button(served, form, key, value):
    """A few of the cases through the served studio's /start_run, as the browser sends the form."""
    key, value, words = next(case for case in CASES if case[:2] == (key, value))
    before = len(manager.list_runs())
    assert start_from_form(served[1], form, {key: value}) == f"Not started: {refusal(key, value)}{words}"
    assert len(manager.list_runs()) == before


GENERATION_CASES = out_of_range_cases(cfg.GenerationSpec)


@pytest.mark.parametrize("key, value, words", GENERATION_CASES, ids=[f"{k}={v}" for k, v, _ in GENERATION_CASES])
def test_generation_settings_out_of_range(key, value, words):
    """Compare and chat settings (config.GenerationSpec): through the config, and the CLI's options (--top-p ...),
    whose refusal names the option typed."""
    with pytest.raises(ConfigError) as raised:
        cfg.from_dict({key: value}, cfg.GenerationSpec)
    assert str(raised.value) == refusal(key, value) + words
    option = "--" + key.replace("_", "-")
    args = cli.build_parser().parse_args(["compare", "some-run", "--prompt", "Hi", option, str(value)])
    with pytest.raises(ConfigError) as raised:
        cli.generation_spec_from_args(args)
    assert str(raised.value) == refusal(option, value) + words
