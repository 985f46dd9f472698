"""Preflight and the `rlhf-studio data` command: counts, previews and clear errors before any model loads."""

from __future__ import annotations

import json

import pytest

from studio import data
from studio.config import DATA_SOURCES, SOURCE_FORMATS, DataSpec, ModelSpec
from studio.data.lengths import check_lengths, token_length
from studio.data.preflight import preview
from studio.errors import DataError, ModelError
from studio.modeling import models
from tests.conftest import dolly_row, run_cli, write_jsonl


# votes has no bundled sample: its rows are the user's own blind A/B votes (tests/test_votes.py)
@pytest.mark.parametrize("source", [source for source in DATA_SOURCES if source != "votes"])
def test_every_bundled_sample_converts_through_the_cli(studio_home, source):
    result = run_cli("data", source, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == source and report["format"] == SOURCE_FORMATS[source][0]
    assert report["rows"] >= 20 and report["dropped"] == {}  # oasst gives one SFT row per message tree
    for example in report["examples"]:
        answers = ["completion"] if report["format"] == "sft" else ["chosen", "rejected"]
        for key in ["prompt", *answers]:
            assert example[key] and all(set(m) == {"role", "content"} for m in example[key])
        assert all(example[a][-1]["role"] == "assistant" for a in answers)


def _bad_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    write_jsonl(
        path,
        [
            dolly_row("Fine?", "Yes."),
            {"instruction": "No response column", "context": ""},
            dolly_row("Empty answer", "  "),
            dolly_row(7, "A number as the instruction"),
        ],
    )
    return path


def test_bad_rows_are_counted_in_drop_mode(studio_home, tmp_path):
    result = run_cli("data", "dolly", "--path", str(_bad_file(tmp_path)), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 1
    assert report["dropped"] == {"response missing": 1, "response empty": 1, "instruction expected text, got int": 1}
    assert report["problems"] == [
        "mixed.jsonl row 2: column 'response': missing",
        "mixed.jsonl row 3: column 'response': empty",
        "mixed.jsonl row 4: column 'instruction': expected text, got int",
    ]


def test_fail_mode_and_broken_files_exit_nonzero_with_one_line(studio_home, tmp_path):
    result = run_cli("data", "dolly", "--path", str(_bad_file(tmp_path)), "--on-bad-rows", "fail")
    assert result.returncode != 0
    assert result.stderr == "error: mixed.jsonl row 2: column 'response': missing\n"

    cut = tmp_path / "cut.jsonl"
    cut.write_text(json.dumps(dolly_row("a", "b")) + "\n" + '{"instruction": "c", "resp')
    result = run_cli("data", "dolly", "--path", str(cut))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr == f"error: {cut} line 2: not valid JSON (the last line is cut off)\n"


def test_wrong_format_for_a_stage_is_refused(studio_home):
    result = run_cli("train", "presets/sft-dolly-tiny.yaml", "--set", "data.source=shp")
    assert result.returncode != 0
    assert result.stderr.startswith(
        "error: data.source = 'shp' gives preference rows, but the sft stage trains on "
        "sft rows; pick a source that has them: dolly, alpaca, oasst, file"
    )
    with pytest.raises(Exception, match="gives sft rows, not preference rows"):
        data.load(DataSpec(source="dolly", path="sample"), "preference")


def test_length_check_drops_or_fails_and_names_the_row(studio_home, tmp_path):
    tokenizer = models.load_tokenizer(ModelSpec())
    long_answer = "The town has a long history. " * 20
    path = write_jsonl(tmp_path / "lengths.jsonl", [dolly_row("Short?", "Yes."), dolly_row("Long?", long_answer)])
    loaded = data.load(DataSpec(source="dolly", path=str(path)), "sft")
    lengths = [token_length(row, tokenizer) for row in loaded.rows]
    assert lengths[0] <= 20 and lengths[1] > 100

    check_lengths(loaded, tokenizer, max_length=50, on_bad_rows="drop")
    assert [r["prompt"][0]["content"] for r in loaded.rows] == ["Short?"]
    assert loaded.dropped == {"longer than data.max_length": 1}
    assert loaded.problems == [
        f"lengths.jsonl row 2: {lengths[1]} tokens after the chat template, over data.max_length = 50"
    ]
    with pytest.raises(DataError, match="lengths.jsonl row 2: .* over data.max_length = 50"):
        check_lengths(data.load(DataSpec(source="dolly", path=str(path)), "sft"), tokenizer, 50, "fail")


def test_preview_marks_exactly_the_trained_part(studio_home):
    tokenizer = models.load_tokenizer(ModelSpec())
    row = {"prompt": [{"role": "user", "content": "Hi?"}], "completion": [{"role": "assistant", "content": "Hello."}]}
    assert preview([row], tokenizer) == [
        {"prompt": "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n", "completion": "Hello.<|im_end|>\n"}
    ]
    pair = {
        "prompt": row["prompt"],
        "chosen": [{"role": "assistant", "content": "Hello, friend."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    shown = preview([pair], tokenizer)[0]
    assert shown["chosen"] == "Hello, friend.<|im_end|>\n" and shown["rejected"] == "Go away.<|im_end|>\n"

    result = run_cli("data", "dolly", "--model", "tiny", "--examples", "1")
    assert result.returncode == 0, result.stderr
    assert "<|im_start|>assistant\n[completion, trained] >>>" in result.stdout


def test_a_tokenizer_without_chat_template_is_refused_clearly(studio_home):
    tokenizer = models.load_tokenizer(ModelSpec())
    tokenizer.chat_template = None
    loaded = data.load(DataSpec(source="dolly", path="sample"), "sft")
    with pytest.raises(ModelError, match="has no chat template, and this data is chat messages"):
        check_lengths(loaded, tokenizer, 512, "drop")


def test_converted_data_is_cached_until_the_file_changes(studio_home, tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [dolly_row("One?", "1.")])
    spec = DataSpec(source="dolly", path=str(path))
    assert len(data.load(spec).rows) == 1
    assert len(list((studio_home / "cache" / "data").glob("*.json"))) == 1
    write_jsonl(path, [dolly_row("One?", "1."), dolly_row("Two?", "2.")])
    assert len(data.load(spec).rows) == 2
    assert len(data.load(spec, use_cache=False).rows) == 2
