"""A cheap stand-in for the training worker, for the queue tests: `python tests/fake_worker.py RUN_DIR`.

It is the real worker (`studio.runs.worker.main`: claim, recorded end, start of the next queued run) with the
stage replaced by a wait: it ends when the test writes FINISH (completed) or FAIL (failed) into the run
directory, or when the run is cancelled. The runs it starts next are fakes too.

With FAKE_WORKER_STUBBORN=1 in its environment the stage ignores the cancel request and SIGTERM, and starts a
grandchild process, like a training stuck in a data loader: what `manager.cancel` must kill after its timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from any folder

from studio.errors import StudioError  # noqa: E402
from studio.runs import manager, worker  # noqa: E402
from studio.runs.rundir import RunDir  # noqa: E402

COMMAND = [sys.executable, str(Path(__file__).resolve())]


def fake_stage(run: RunDir) -> None:
    run.write_status(step=0, total_steps=1)
    print("fake stage: waiting for FINISH or FAIL", flush=True)  # a line for the log tail of a killed run
    stubborn = os.environ.get("FAKE_WORKER_STUBBORN") == "1"
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    while stubborn or not run.cancel_requested():
        if (run.path / "FINISH").exists():
            run.write_status(step=1)
            return
        if (run.path / "FAIL").exists():
            raise StudioError("told to fail")
        time.sleep(0.05)


if __name__ == "__main__":
    manager.WORKER = COMMAND
    worker.run_stage = fake_stage
    raise SystemExit(worker.main(sys.argv))
