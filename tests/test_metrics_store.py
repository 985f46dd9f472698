"""studio/runs/metrics.py (append-only JSONL, incremental reader) and studio/runs/store.py (the SQLite index).

python -m pytest tests/test_metrics_store.py -q
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from studio.config import RunConfig, TrainSpec, to_yaml
from studio.paths import runs_root
from studio.runs.metrics import MetricsReader, MetricsWriter, last_value, read_all
from studio.runs.rundir import RunDir
from studio.runs.status import RunStatus, State
from studio.runs.store import RunIndex, all_run_dirs, summarize


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


# ---------------------------------------------------------------- metrics


def test_writer_appends_one_json_object_per_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"step": 1, "loss": 2.5, "epoch": 0.1, "time": 1.0, "grad_norm": 0.7})
    writer.write({"step": 2, "loss": 2.25, "custom/anything": "kept"})
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    assert [json.loads(line) for line in lines[:-1]] == [
        {"step": 1, "loss": 2.5, "epoch": 0.1, "time": 1.0, "grad_norm": 0.7},
        {"step": 2, "loss": 2.25, "custom/anything": "kept"},
    ]


def test_reader_returns_only_new_rows(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer, reader = MetricsWriter(path), MetricsReader(path)
    assert reader.read_new() == []  # no file yet
    writer.write({"step": 1, "loss": 3.0})
    writer.write({"step": 2, "loss": 2.0})
    assert reader.read_new() == [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}]
    assert reader.read_new() == []
    writer.write({"step": 3, "loss": 1.0})
    assert reader.read_new() == [{"step": 3, "loss": 1.0}]
    assert reader.read_new() == []


def test_a_file_rewritten_by_resume_is_read_again_from_the_start(tmp_path):
    from studio.runs.metrics import truncate_after

    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    for step in range(1, 5):
        writer.write({"loss": 1.0 / step, "step": step})
    reader = MetricsReader(path)
    assert [r["step"] for r in reader.read_new()] == [1, 2, 3, 4] and not reader.restarted
    assert not reader.has_new()
    truncate_after(path, 2)  # a resume from checkpoint-2 drops steps 3 and 4, then logs them again
    MetricsWriter(path).write({"loss": 0.3, "step": 3})
    assert reader.has_new()
    assert [r["step"] for r in reader.read_new()] == [1, 2, 3] and reader.restarted
    MetricsWriter(path).write({"loss": 0.2, "step": 4})
    assert [r["step"] for r in reader.read_new()] == [4] and not reader.restarted


def test_half_written_last_line_waits_until_complete(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    append(path, '{"step": 1, "loss": 3.0}\n{"step": 2, "lo')
    assert reader.read_new() == [{"step": 1, "loss": 3.0}]
    assert reader.read_new() == []
    append(path, 'ss": 2.0')
    assert reader.read_new() == []  # still no newline
    append(path, "}\n")
    assert reader.read_new() == [{"step": 2, "loss": 2.0}]
    assert reader.read_new() == []  # exactly once
    append(path, '{"step": 3, "loss": 1.0}\n')
    assert reader.read_new() == [{"step": 3, "loss": 1.0}]


def test_half_written_only_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    append(path, '{"step": 1, "lo')
    assert reader.read_new() == []
    append(path, 'ss": 3.0}\n')
    assert reader.read_new() == [{"step": 1, "loss": 3.0}]


def test_multibyte_text_split_across_reads(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    line = json.dumps({"step": 1, "note": "café ☕"}, ensure_ascii=False).encode("utf-8") + b"\n"
    cut = line.index("☕".encode()) + 1  # inside the 3-byte character
    with open(path, "ab") as f:
        f.write(line[:cut])
    assert reader.read_new() == []
    with open(path, "ab") as f:
        f.write(line[cut:])
    assert reader.read_new() == [{"step": 1, "note": "café ☕"}]


def test_corrupt_middle_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append(path, '{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.\x00\x00garbage\n[1, 2]\n{"step": 3, "loss": 1.0}\n')
    assert MetricsReader(path).read_new() == [{"step": 1, "loss": 3.0}, {"step": 3, "loss": 1.0}]
    assert read_all(path) == [{"step": 1, "loss": 3.0}, {"step": 3, "loss": 1.0}]


@pytest.mark.parametrize("value, text", [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_non_finite_values_are_written_as_text(tmp_path, value, text):
    path = tmp_path / "metrics.jsonl"
    MetricsWriter(path).write({"step": 7, "loss": value, "learning_rate": 1e-4})
    line = path.read_text(encoding="utf-8").rstrip("\n")
    row = json.loads(line)  # strict JSON: no NaN / Infinity literals
    assert "NaN" not in line and "Infinity" not in line
    assert row == {"step": 7, "loss": text, "learning_rate": 1e-4}
    assert MetricsReader(path).read_new() == [row]


def test_last_value_reads_the_latest(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert last_value(path, "loss") is None  # no file
    writer = MetricsWriter(path)
    writer.write({"step": 1, "loss": 3.0})
    writer.write({"step": 2, "loss": 2.0, "eval_loss": 2.5})
    writer.write({"step": 3, "grad_norm": 0.5})
    assert last_value(path, "loss") == 2.0
    assert last_value(path, "eval_loss") == 2.5
    assert last_value(path, "grad_norm") == 0.5
    assert last_value(path, "step") == 3
    assert last_value(path, "reward") is None
    append(path, '{"step": 4, "loss": 1.')  # half-written: not a value yet
    assert last_value(path, "loss") == 2.0


def test_last_value_of_a_long_file_reads_the_end(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    for step in range(1, 3001):
        writer.write({"step": step, "loss": 1.0 / step, "padding": "x" * 40})
    assert path.stat().st_size > 65536
    assert last_value(path, "loss") == 1.0 / 3000
    assert last_value(path, "step") == 3000


def test_last_value_of_a_diverged_loss_is_nan_text(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    writer.write({"step": 1, "loss": 1.0})
    writer.write({"step": 2, "loss": math.nan})
    assert last_value(path, "loss") == "nan"


# ---------------------------------------------------------------- run index


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RLHF_STUDIO_HOME", str(home))
    return home


def make_run(
    run_id: str,
    *,
    state: str,
    step: int,
    total: int,
    created: float,
    losses: list[float] | None,
    name: str | None = None,
    model: str = "tiny",
    error: str | None = None,
) -> RunDir:
    run = RunDir(runs_root() / run_id)
    run.path.mkdir(parents=True)
    config = RunConfig(name=name, train=TrainSpec(max_steps=total))
    config.model.name = model
    run.config_path.write_text(to_yaml(config), encoding="utf-8")
    run.write_status(state=state, pid=None, step=step, total_steps=total, error=error, created=created)
    if losses is not None:
        writer = MetricsWriter(run.metrics_path)
        for i, loss in enumerate(losses, start=1):
            writer.write({"step": i * 5, "loss": loss, "epoch": i / 10, "time": created + i})
    return run


def three_runs() -> list[RunDir]:
    return [
        make_run(
            "20250101-100000-sft-aaaa",
            state="completed",
            step=60,
            total=60,
            created=1000.0,
            losses=[3.0, 2.0, 1.25],
            name="first",
        ),
        make_run(
            "20250101-110000-sft-bbbb",
            state="running",
            step=10,
            total=60,
            created=2000.0,
            losses=[2.5],
            model="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        make_run(
            "20250101-120000-sft-cccc",
            state="failed",
            step=0,
            total=60,
            created=3000.0,
            losses=None,
            error="CUDA out of memory",
        ),
    ]


def view(rows: list[dict]) -> list[tuple]:
    return [(r["id"], r["stage"], r["state"], r["step"], r["last_loss"]) for r in rows]


EXPECTED = [
    ("20250101-100000-sft-aaaa", "sft", "completed", 60, 1.25),
    ("20250101-110000-sft-bbbb", "sft", "running", 10, 2.5),
    ("20250101-120000-sft-cccc", "sft", "failed", 0, None),
]


def test_sync_lists_every_run(home, tmp_path):
    three_runs()
    rows = RunIndex(tmp_path / "db" / "index.sqlite").sync()
    assert view(rows) == EXPECTED
    first, second, third = rows
    assert first["name"] == "first" and first["model"] == "tiny" and first["total_steps"] == 60
    assert first["created"] == 1000.0
    assert second["name"] == "" and second["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert third["error"] == "CUDA out of memory" and first["error"] == ""


def test_rows_reads_back_what_sync_wrote(home, tmp_path):
    three_runs()
    index = RunIndex(tmp_path / "index.sqlite")
    synced = index.sync()
    assert RunIndex(tmp_path / "index.sqlite").rows() == synced


def test_index_defaults_to_the_studio_home(home):
    three_runs()
    index = RunIndex()
    assert index.path == home / "index.sqlite"
    assert view(index.sync()) == EXPECTED
    assert (home / "index.sqlite").is_file()


def test_rebuild_after_deleting_the_database_gives_the_same_rows(home, tmp_path):
    three_runs()
    db = tmp_path / "index.sqlite"
    index = RunIndex(db)
    before = index.sync()
    db.unlink()
    assert not db.exists()
    after = RunIndex(db).rebuild()
    assert after == before
    assert db.is_file()


def test_rebuild_replaces_a_corrupt_database(home, tmp_path):
    three_runs()
    db = tmp_path / "index.sqlite"
    before = RunIndex(db).sync()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    assert RunIndex(db).rebuild() == before


def test_removed_run_disappears_after_sync(home, tmp_path):
    runs = three_runs()
    index = RunIndex(tmp_path / "index.sqlite")
    assert len(index.sync()) == 3
    shutil.rmtree(runs[1].path)
    assert view(index.sync()) == [EXPECTED[0], EXPECTED[2]]
    assert view(index.rows()) == [EXPECTED[0], EXPECTED[2]]


def test_sync_picks_up_new_progress(home, tmp_path):
    runs = three_runs()
    index = RunIndex(tmp_path / "index.sqlite")
    index.sync()
    runs[1].write_status(step=20)
    MetricsWriter(runs[1].metrics_path).write({"step": 20, "loss": 1.75})
    row = [r for r in index.sync() if r["id"] == runs[1].id][0]
    assert row["step"] == 20 and row["last_loss"] == 1.75 and row["state"] == "running"


def test_folder_without_status_is_not_a_run(home, tmp_path):
    three_runs()
    (runs_root() / "not-a-run").mkdir()
    (runs_root() / "stray-file.txt").write_text("x")
    assert [r.id for r in all_run_dirs()] == [e[0] for e in EXPECTED]
    assert view(RunIndex(tmp_path / "index.sqlite").sync()) == EXPECTED


def test_no_runs_folder_gives_an_empty_index(home, tmp_path):
    assert all_run_dirs() == []
    assert RunIndex(tmp_path / "index.sqlite").sync() == []


def test_diverged_loss_is_stored_as_null(home, tmp_path):
    make_run("20250101-100000-sft-nnnn", state="failed", step=5, total=60, created=1.0, losses=[2.0, math.nan])
    (row,) = RunIndex(tmp_path / "index.sqlite").sync()
    assert row["last_loss"] is None and row["step"] == 5


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"state": "running", "st', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
        pytest.param(b"null", id="json-null"),
        pytest.param(b"[1, 2]", id="json-list"),
    ],
)
def test_unreadable_status_is_failed_not_an_exception(home, tmp_path, content):
    runs = three_runs()
    runs[1].status_path.write_bytes(content)
    rows = RunIndex(tmp_path / "index.sqlite").sync()
    assert len(rows) == 3
    broken = [r for r in rows if r["id"] == runs[1].id][0]
    assert broken["state"] == "failed"
    assert broken["error"]  # says why
    others = [r for r in rows if r["id"] != runs[1].id]
    assert view(others) == [EXPECTED[0], EXPECTED[2]]


def test_unreadable_config_does_not_stop_the_index(home, tmp_path):
    runs = three_runs()
    runs[0].config_path.write_text("stage: [unclosed\n", encoding="utf-8")
    runs[2].config_path.unlink()
    rows = RunIndex(tmp_path / "index.sqlite").sync()
    assert [(r["id"], r["stage"], r["state"]) for r in rows] == [
        (EXPECTED[0][0], "", "completed"),
        (EXPECTED[1][0], "sft", "running"),
        (EXPECTED[2][0], "", "failed"),
    ]


def test_summarize_uses_the_given_status(home):
    run = three_runs()[0]
    row = summarize(run, RunStatus(state=State.CANCELLED, step=3, total_steps=60, created=5.0))
    assert row["state"] == "cancelled" and row["step"] == 3 and row["last_loss"] == 1.25
    assert row["stage"] == "sft" and row["name"] == "first"


def test_upsert_adds_and_replaces(home, tmp_path):
    runs = three_runs()
    index = RunIndex(tmp_path / "index.sqlite")
    index.upsert(summarize(runs[0]))
    assert view(index.rows()) == [EXPECTED[0]]
    index.upsert(dict(summarize(runs[0]), state="cancelled"))
    assert [r["state"] for r in index.rows()] == ["cancelled"]


def test_write_status_merges_and_replaces_atomically(home):
    run = RunDir(runs_root() / "r")
    run.path.mkdir(parents=True)
    run.write_status(state="queued", step=0, total_steps=60)
    status = run.write_status(state="running", step=5)
    assert status.state == "running" and status.step == 5 and status.total_steps == 60
    assert status.updated is not None
    assert run.read_status() == status
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]  # temporary file renamed away
