"""The served studio answers through its HTTP endpoints (what the browser calls)."""

from __future__ import annotations

from studio.config import RunConfig
from studio.runs import manager
from tests.conftest import served_studio


def test_app_serves_and_lists_runs(studio_home):
    run = manager.create(RunConfig(name="listed-run"))
    with served_studio(studio_home) as (_url, client):
        table = client.predict(api_name="/runs_table")
        assert table["headers"] == ["id", "name", "stage", "state", "step", "ETA", "last loss / reward", "key metric",
                                    "parent"]
        assert table["data"] == [[run.id, "listed-run", "sft", "queued", "0/?", "", "", "", ""]]
        status, _log = client.predict(run.id, api_name="/run_details")
        assert run.id in status and "queued" in status
