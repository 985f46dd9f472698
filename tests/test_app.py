"""The served studio answers through its HTTP endpoints (what the browser calls)."""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs import manager
from tests.conftest import served_studio


def test_app_serves_and_lists_runs(studio_home):
    run = manager.create(RunConfig(name="listed-run"))
    with served_studio(studio_home) as (_url, client):
        table = client.predict(api_name="/runs_table")
        assert table["headers"] == [
            "id",
            "name",
            "stage",
            "state",
            "step",
            "ETA",
            "last loss / reward",
            "key metric",
            "parent",
        ]
        assert table["data"] == [[run.id, "listed-run", "sft", "queued", "0/?", "", "", "", ""]]
        status, _log = client.predict(run.id, api_name="/run_details")
        assert run.id in status and "queued" in status


def test_no_list_refreshed_on_focus_sends_a_value_back(studio_home):
    """A dropdown refreshes its choices when it gets focus; the answer arrives after the person may have picked one,
    so an answer carrying the value from the moment of focus would undo the pick (CI's browser test once caught the
    preset dropdown so). Focus answers carry choices alone."""
    from components.app import build_app

    manager.create(RunConfig(name="listed-run"))
    refreshed = []
    for dependency in build_app().fns.values():
        if not any(event == "focus" for _block, event in dependency.targets):
            continue
        answer = dependency.fn(*(block.value for block in dependency.inputs))
        for block, update in zip(dependency.outputs, answer if isinstance(answer, tuple) else (answer,)):
            refreshed.append(block.label)
            assert "choices" in update.constructor_args and "value" not in update.constructor_args, block.label
    # The Train tab's parent list and its reward rows' run lists (6 rows) answer together, on either one's focus.
    assert sorted(refreshed) == [
        "Overlay runs",
        "Pipeline",
        "Preset",
        "Recipe",
        *["Reward run"] * 12,
        "Start from run",
        "Start from run",
    ]
