"""The Model and Data tabs answer through their HTTP endpoints: Inspect (counts and memory per stage), the file
upload, and Preview (counts, drops, the first examples with the trained part marked). One server for the module."""

from __future__ import annotations

import os

import pytest

from studio.config import STAGES, LoraSpec, ModelSpec, RunConfig
from studio.modeling.estimate import estimate, gib, run_estimate
from tests.conftest import error_shown, served_studio, write_jsonl
from tests.test_start_checks import labelled

FIRST_DOLLY_EXAMPLE = (
    "--- example 1\n"
    "<|im_start|>user\n"
    "Summarize this passage in one sentence.\n\n"
    "Context:\n"
    "Mossgate is a town on the river Ouse Minor. It was founded in 1793 by Owen Blake and is known for clock making. "
    "About 27,002 people live there today, and a market is held every Friday.<|im_end|>\n"
    "<|im_start|>assistant\n"
    "[completion, trained] >>>Mossgate is a town on the Ouse Minor founded in 1793, known for clock making.<|im_end|>\n"
    "<<<"
)


@pytest.fixture(scope="module")
def ui(tmp_path_factory, shared_models):
    """(client, call) for one studio server; `call(api, **{config key: value})` fills every other input with the
    form's initial value, so the tests do not depend on the other tabs' fields."""
    home = tmp_path_factory.mktemp("ui-home")
    (home / "models").symlink_to(shared_models)
    with served_studio(home) as (_url, client):
        endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]

        def call(api: str, **values):
            params = endpoints[api]["parameters"]
            by_label = labelled(api, params, values)
            return client.predict(*[by_label.get(p["label"], p.get("parameter_default")) for p in params], api_name=api)

        yield client, call


def test_inspect_tiny_matches_the_estimate(ui, studio_home):
    _client, call = ui
    summary, table = call("/inspect_model", **{"model.name": "tiny"})
    expected = estimate(ModelSpec(name="tiny"), LoraSpec())
    assert f"parameters: **{expected.parameters:,}**; trainable: **{expected.trainable:,}**" in summary
    assert "260,928" in summary and "37,376" in summary
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == list(STAGES)
    for stage in STAGES:
        if stage != "ppo":
            assert rows[stage][1] == gib(expected.stages[stage].total)
    # PPO as its trainer runs: train.batch_size answers sampled, ppo.mini_batch_size sequences per training pass
    ppo = run_estimate(RunConfig(stage="ppo", model=ModelSpec(name="tiny")))
    assert rows["ppo"][1] == gib(ppo.total) != gib(expected.stages["ppo"].total)
    assert rows["dpo"][table["headers"].index("reference")] == "shared (adapter off)"
    assert rows["sft"][table["headers"].index("reward models")] == ""


def test_bad_model_name_gives_one_line(ui, tmp_path):
    _client, call = ui
    summary, table = call("/inspect_model", **{"model.name": "no-such-owner/no-such-model"})
    assert error_shown(summary) == (
        "could not load 'no-such-owner/no-such-model' from the Hugging Face Hub (no connection, or "
        "no such model, or it needs a login); check the id, or download it and set model.name to the "
        "local folder"
    )
    assert table["data"] == []
    summary, _ = call("/inspect_model", **{"model.name": str(tmp_path / "missing")})
    assert error_shown(summary) == f"model.name = '{tmp_path / 'missing'}': no such folder"
    summary, _ = call("/inspect_model", **{"model.quantization": "4bit", "lora.enabled": False})
    assert error_shown(summary).startswith("model.quantization = '4bit': quantised weights cannot be trained directly")


def test_trust_remote_code_shows_a_warning(ui):
    _client, call = ui
    assert call("/trust_warning", **{"model.trust_remote_code": True})["visible"] is True
    assert call("/trust_warning", **{"model.trust_remote_code": False})["visible"] is False


def test_preview_dolly_sample_marks_the_trained_part(ui):
    _client, call = ui
    summary, examples = call("/preview_data", **{"data.source": "dolly", "data.path": "sample"})
    assert summary.startswith("**200** sft rows from `")
    assert "(190 train, 10 eval)" in summary and "- dropped: 0" in summary
    assert examples.startswith(FIRST_DOLLY_EXAMPLE + "\n\n--- example 2\n")
    assert examples.count("--- example") == 3


def test_preview_follows_the_stage_format(ui):
    _client, call = ui
    summary, examples = call("/preview_data", **{"data.source": "shp", "data.path": "sample", "stage": "dpo"})
    assert (
        "preference rows" in summary and "[chosen, trained] >>>" in examples and "[rejected, trained] >>>" in examples
    )
    summary, examples = call("/preview_data", **{"data.source": "shp", "data.path": "sample", "stage": "sft"})
    assert (error_shown(summary), examples) == (
        "data.source = 'shp' gives preference rows, not sft rows, which the Train tab's "
        "stage, sft, trains on; pick another stage there or another source",
        "",
    )


def test_uploaded_file_with_a_bad_row(ui, tmp_path):
    from gradio_client import handle_file

    client, call = ui
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "Hi", "completion": "Hello!"},
            {"prompt": "Bye", "completion": ""},
            {"prompt": "Yo", "completion": "Hey"},
        ],
    )
    path = client.predict(handle_file(str(bad)), api_name="/use_upload")
    assert path.endswith("bad.jsonl") and os.path.isfile(path)
    summary, examples = call("/preview_data", **{"data.source": "file", "data.path": path})
    assert "**2** sft rows" in summary
    assert "- dropped: 1 (completion empty: 1)" in summary
    assert "- `bad.jsonl row 2: column 'completion': empty`" in summary
    assert "[completion, trained] >>>Hello!<|im_end|>" in examples
    summary, examples = call("/preview_data", **{"data.source": "file", "data.path": path, "data.on_bad_rows": "fail"})
    assert (error_shown(summary), examples) == ("bad.jsonl row 2: column 'completion': empty", "")


def test_preview_bad_inputs_give_one_line(ui, tmp_path):
    _client, call = ui
    summary, _ = call("/preview_data", **{"data.source": "file", "data.path": str(tmp_path / "nope.jsonl")})
    assert "nope.jsonl" in summary and "\n" not in summary
    summary, _ = call("/preview_data", **{"data.path": "sample", "model.name": str(tmp_path / "missing")})
    assert error_shown(summary) == f"model.name = '{tmp_path / 'missing'}': no such folder"
    summary, _ = call("/preview_data", **{"data.path": "sample", "data.max_length": 8})
    assert error_shown(summary) == "data.max_length = 8: must be at least 16"
