"""manager.delete: a finished run's folder and index row go; running and queued runs, and runs an unfinished run
still needs, are refused with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studio.config import InitSpec, RunConfig
from studio.errors import StudioError
from studio.paths import runs_root
from studio.runs import manager, process
from studio.runs.metrics import MetricsWriter
from studio.runs.store import RunIndex


def _finished(name: str, state: str = "completed", with_adapter: bool = False):
    run = manager.create(RunConfig(name=name))
    MetricsWriter(run.metrics_path).write({"step": 1, "loss": 1.5, "time": 0.0})
    (run.checkpoints_dir / "checkpoint-1").mkdir(parents=True)
    if with_adapter:
        run.adapter_dir.mkdir()
        (run.adapter_dir / "adapter_model.safetensors").write_bytes(b"weights")
    run.write_status(state=state, step=1, total_steps=1)
    manager.list_runs()  # the index holds its row
    return run


def _index_ids() -> list[str]:
    return [row["id"] for row in RunIndex().rows()]


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_delete_removes_a_finished_runs_folder_and_index_row(state):
    run, other = _finished("gone", state), _finished("kept")
    assert run.id in _index_ids()
    manager.delete(run)
    assert not run.path.exists()
    assert _index_ids() == [other.id]
    assert [r["id"] for r in manager.list_runs()] == [other.id]
    assert not any((runs_root() / ".deleted").iterdir())  # nothing left behind in the trash
    with pytest.raises(StudioError, match="no run with id"):
        manager.find(run.id)


def test_delete_refuses_a_running_run(sleeper):
    run = manager.create(RunConfig(name="busy"))
    run.write_status(state="running", pid=sleeper.pid, started=process.start_time(sleeper.pid))
    with pytest.raises(StudioError) as err:
        manager.delete(run)
    assert str(err.value) == f"run {run.id} is running; cancel it before deleting it"
    assert run.exists() and run.id in [r["id"] for r in manager.list_runs()]


def test_delete_refuses_a_queued_run():
    run = manager.create(RunConfig(name="waiting"))
    with pytest.raises(StudioError, match=f"run {run.id} is queued; cancel it before deleting it"):
        manager.delete(run)
    assert run.exists()
    manager.cancel(run)
    manager.delete(run)
    assert not run.path.exists()


def test_delete_takes_a_run_whose_worker_died_unseen():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = manager.create(RunConfig(name="crashed"))
    run.write_status(state="running", pid=dead.pid, started=1.0)
    manager.delete(run)
    assert not run.path.exists() and run.id not in _index_ids()


def test_delete_refuses_a_run_that_an_unfinished_run_starts_from():
    parent = _finished("parent", with_adapter=True)
    child = manager.create(RunConfig(name="child", init=InitSpec(from_run=parent.id)))
    assert manager.dependents(parent) == [child.id]
    with pytest.raises(StudioError, match=f"needed by {child.id}, not finished yet"):
        manager.delete(parent)
    assert parent.adapter_dir.is_dir()
    manager.cancel(child)
    manager.delete(parent)  # a finished child no longer blocks it
    assert not parent.path.exists() and child.exists()


def test_delete_of_an_unknown_run_says_so():
    run = _finished("twice")
    manager.delete(run)
    with pytest.raises(StudioError, match="no run with id"):
        manager.delete(run)


def test_index_delete_forgets_one_row_only():
    a, b = _finished("a"), _finished("b")
    RunIndex().delete(a.id)
    assert _index_ids() == [b.id]
    RunIndex().delete("no-such-run")  # nothing to forget is not an error
    assert _index_ids() == [b.id]
