"""The served studio answers through its HTTP endpoints (what the browser calls)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from studio.config import RunConfig
from studio.runs import manager
from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_and_lists_runs(studio_home):
    from gradio_client import Client

    run = manager.create(RunConfig(name="listed-run"))
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "studio", "ui", "--port", str(port)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # not up yet
                assert server.poll() is None and time.monotonic() < deadline, "the studio did not start"
                time.sleep(0.5)
        table = client.predict(api_name="/runs_table")
        assert table["headers"] == ["id", "name", "stage", "state", "step", "ETA", "last loss / reward", "key metric",
                                    "parent"]
        assert table["data"] == [[run.id, "listed-run", "sft", "queued", "0/?", "", "", "", ""]]
        status, _log = client.predict(run.id, api_name="/run_details")
        assert run.id in status and "queued" in status
    finally:
        server.terminate()
        server.wait(timeout=10)
