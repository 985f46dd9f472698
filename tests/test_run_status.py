"""The run folder's protocol, typed: status.json read and written through RunStatus (old and damaged files
included), the Run object's completed-run check, checkpoint marking and pruning, the atomic adapter publish, and
the dead-process correction that runs and pipelines share. Run folders are written by hand; no worker runs.

    python -m pytest tests/test_run_status.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from studio.config import InitSpec, RunConfig
from studio.errors import StudioError
from studio.pipelines import runner
from studio.runs import folder, manager, process
from studio.runs.rundir import CHECKPOINT_COMPLETE, FINAL_STATES, Run, RunDir
from studio.runs.status import UNREADABLE, RunStatus, State


@pytest.fixture
def run(tmp_path) -> RunDir:
    made = RunDir(tmp_path / "20260101-000000-sft-abcd")
    made.path.mkdir()
    return made


def test_states_and_which_are_final():
    assert [s.value for s in State] == ["queued", "running", "completed", "failed", "cancelled"]
    assert [s for s in State if s.final] == [State.COMPLETED, State.FAILED, State.CANCELLED] == list(FINAL_STATES)
    assert State.COMPLETED == "completed" and f"run is {State.CANCELLED}" == "run is cancelled"
    assert json.dumps({"state": State.RUNNING}) == '{"state": "running"}'


def test_a_status_file_of_an_older_studio_reads_with_defaults_and_keeps_what_it_does_not_know(run):
    old = {"state": "completed", "pid": 4242, "step": 60, "total_steps": 60, "error": None, "created": 5.0}
    run.status_path.write_text(json.dumps({**old, "gpu": "T4"}))
    status = run.read_status()
    assert status == RunStatus(state=State.COMPLETED, pid=4242, step=60, total_steps=60, created=5.0)
    assert status.state is State.COMPLETED and status.final and status.supervisor is None and status.resumed_from == 0
    assert status.extra == {"gpu": "T4"} and status.to_json()["gpu"] == "T4"
    run.write_status(step=61)
    on_disk = json.loads(run.status_path.read_text())
    assert on_disk == {**old, "gpu": "T4", "step": 61, "updated": on_disk["updated"]}  # only what was written


def test_values_of_the_wrong_type_take_their_defaults(run):
    run.status_path.write_text(
        json.dumps({"state": "exploded", "step": "12", "pid": True, "error": 3, "created": None})
    )
    assert run.read_status() == RunStatus(state=State.FAILED, step=0, pid=None, error=None, created=0.0)


@pytest.mark.parametrize("text", [None, "", '{"state": "runn', "[1, 2]"])
def test_a_missing_or_damaged_status_file_reads_as_a_failed_run_saying_so(run, text):
    if text is not None:
        run.status_path.write_text(text)
    assert run.read_status() == RunStatus(state=State.FAILED, error=UNREADABLE, step=0, total_steps=0)


def test_a_damaged_status_file_stays_failed_unless_a_write_says_otherwise(run):
    run.status_path.write_text('{"state": "runn')
    status = run.write_status(step=3)
    assert (status.state, status.error, status.step) == (State.FAILED, UNREADABLE, 3)
    assert run.write_status(state=State.QUEUED, error=None).state is State.QUEUED


def test_writing_a_field_status_json_does_not_have_or_a_state_that_is_none_is_refused(run):
    run.write_status(state="queued")
    with pytest.raises(TypeError, match="status.json has no field 'stage'"):
        run.write_status(stage="sft")
    with pytest.raises(ValueError, match="'complete' is not a valid State"):
        run.write_status(state="complete")
    assert run.read_status().state is State.QUEUED  # neither write happened


# ---------------------------------------------------------------- Run.require_completed


def _made_run(state: State, weights: bool) -> RunDir:
    made = manager.create(RunConfig(name="made"))
    made.write_status(state=state)
    if weights:
        made.adapter_dir.mkdir()
    return made


def test_a_completed_run_with_weights_passes_and_brings_its_config():
    made = _made_run(State.COMPLETED, weights=True)
    opened = manager.open_run(made.id[:-2])  # a unique prefix, as everywhere a run id is typed
    assert isinstance(opened, Run) and opened.folder == made and opened.id == made.id
    assert opened.require_completed("run can be shared") is opened and opened.config.name == "made"


@pytest.mark.parametrize("state", [State.QUEUED, State.FAILED, State.CANCELLED])
def test_a_run_that_did_not_complete_is_refused_in_one_line(state):
    made = _made_run(state, weights=True)
    with pytest.raises(StudioError) as raised:
        manager.open_run(made.id).require_completed("run can be shared")
    assert str(raised.value) == f"run '{made.id}' is {state.value}; only a completed run can be shared"
    with pytest.raises(StudioError) as raised:
        manager.open_run(made.id).require_completed("run can be started from", subject="init.from_run = 'x': that run")
    assert (
        str(raised.value) == f"init.from_run = 'x': that run is {state.value}; only a completed run can be started from"
    )


def test_a_completed_run_whose_weights_are_gone_says_so():
    made = _made_run(State.COMPLETED, weights=False)
    with pytest.raises(StudioError) as raised:
        manager.open_run(made.id).require_completed("run has weights to answer with")
    assert str(raised.value) == f"run '{made.id}' is completed, but its weights are gone: {made.adapter_dir} is missing"


def test_a_run_started_from_a_running_one_is_refused_by_the_live_status(sleeper):
    parent = _made_run(State.RUNNING, weights=True)
    parent.write_status(pid=sleeper.pid, started=process.start_time(sleeper.pid))
    with pytest.raises(StudioError, match=f"init.from_run = '{parent.id}': that run is running; only a completed"):
        manager.create(RunConfig(name="child", init=InitSpec(from_run=parent.id)))


# ---------------------------------------------------------------- checkpoints and the adapter


def test_checkpoints_count_once_marked_and_only_the_newest_are_kept(run):
    for step in (10, 20, 30):
        run.checkpoint_dir(step).mkdir(parents=True)
        (run.checkpoint_dir(step) / "weights").write_text(str(step))
        run.checkpoint_saved(step, keep=2)
    run.checkpoint_dir(40).mkdir()  # a save cut short: no marker
    assert run.complete_checkpoints() == [run.checkpoint_dir(20), run.checkpoint_dir(30)]
    assert (run.checkpoint_dir(30) / CHECKPOINT_COMPLETE).read_text() == "30\n"
    assert not run.checkpoint_dir(10).exists() and run.checkpoint_dir(40).is_dir()
    run.checkpoint_saved(50, keep=2)  # a step whose save wrote nothing marks nothing and prunes nothing more
    assert run.complete_checkpoints() == [run.checkpoint_dir(20), run.checkpoint_dir(30)]


def test_an_adapter_is_published_whole_or_not_at_all(run):
    with run.publishing_adapter() as into:
        (into / "adapter_model.safetensors").write_text("first")
    assert [p.name for p in run.adapter_dir.iterdir()] == ["adapter_model.safetensors"]
    with pytest.raises(OSError), run.publishing_adapter() as into:
        (into / "adapter_model.safetensors").write_text("half")
        raise OSError("disk full")
    assert (run.adapter_dir / "adapter_model.safetensors").read_text() == "first"  # the old one, untouched
    with run.publishing_adapter() as into:
        (into / "model.safetensors").write_text("second")
    assert [p.name for p in run.adapter_dir.iterdir()] == ["model.safetensors"]
    assert sorted(p.name for p in run.path.iterdir()) == ["adapter"]  # the temporary folder was renamed away


# ---------------------------------------------------------------- the shared protocol


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_whose_worker_died_unseen_is_recorded_failed_once():
    made = manager.create(RunConfig(name="orphan"))
    made.write_status(state=State.RUNNING, pid=_dead_pid(), started=1.0)
    status = manager.status(made)
    assert status.state is State.FAILED and status.error.startswith("the worker process is gone before the run")
    assert manager.status(made) == status  # final: read as it is, not corrected again
    waiting = manager.create(RunConfig(name="waiting"))  # queued, no process yet: nothing to correct
    assert manager.status(waiting).state is State.QUEUED


def test_settle_reads_again_before_recording_a_failure():
    reads = iter([{"state": "running"}, {"state": "completed"}])
    recorded = []
    settled = folder.settle(
        lambda: next(reads),
        final=lambda s: s["state"] in FINAL_STATES,
        accounted=lambda s: False,
        record_gone=lambda: recorded.append("failed") or {"state": "failed"},
    )
    assert settled == ({"state": "completed"}, False) and recorded == []  # it ended between the two reads


def test_a_pipeline_uses_the_same_protocol():
    record = runner.PipelineRecord.of("20260101-000000-p-abcd")
    record.path.mkdir(parents=True)
    record.write_state(id=record.id, name="p", state=State.QUEUED.value, pid=None, stages=[])
    assert runner.status(record)["state"] == State.QUEUED  # not launched yet: nothing to correct
    assert record.cancel_path.name == folder.CANCEL and not record.cancel_requested()
    record.request_cancel()
    assert record.cancel_requested() and folder.cancel_requested(record.path)
    record.write_state(state=State.RUNNING.value, pid=_dead_pid(), started=1.0)
    assert runner.status(record)["state"] == State.FAILED
    assert json.loads(record.state_path.read_text())["error"].startswith("the pipeline runner is gone")
