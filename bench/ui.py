"""What the UI costs: start-up to the first page served, and refreshing the charts of a run with 100,000 metric rows.

    python bench/ui.py [--rows 100000] [--repeats 5]

1. Start-up: `rlhf-studio ui` on a free port, in a fresh studio home, timed from the command's start to the first
   HTTP 200 for `/`; then whether the server process has torch loaded (its /proc/PID/maps names libtorch), since
   keeping torch out of the UI process is what keeps start-up short. Targets: under 5 s, no torch.
2. Charts: an SFT run whose metrics.jsonl holds --rows rows (one per step, with eval rows every 100 steps) is
   followed the way the Runs tab does (studio.monitor.charts.ChartFeed: read, panels, plotly figures), then 10 rows are
   appended and the charts refreshed again, --repeats times. Prints the first full read and the median
   incremental refresh. Target for the refresh: under 100 ms.
Absolute times depend on the machine and its load; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_up(home: Path, timeout: float = 120.0) -> tuple[float, bool]:
    """(seconds to the first page, whether the server process loaded torch)."""
    port = free_port()
    env = dict(os.environ, RLHF_STUDIO_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False")
    began = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "studio", "ui", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.monotonic() - began < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    if reply.status == 200:
                        seconds = time.monotonic() - began
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"the studio did not serve a page within {timeout:.0f} s")
        maps = Path(f"/proc/{server.pid}/maps")  # `ui` execs the server, so the pid is the server's
        torch_loaded = "libtorch" in maps.read_text() if maps.exists() else None
        return seconds, torch_loaded
    finally:
        server.terminate()
        server.wait(timeout=30)


def sft_row(step: int) -> dict:
    return {
        "loss": 2.0 / (1 + step / 1000),
        "grad_norm": 1.0 + (step % 7) / 10,
        "learning_rate": 2e-4,
        "mean_token_accuracy": min(0.9, step / 200000),
        "num_tokens": 2048.0 * step,
        "tokens_per_second": 5000.0 + step % 13,
        "step": step,
        "epoch": step / 100000,
        "time": 1.7e9 + step,
    }


def write_metrics(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        for step in range(1, rows + 1):
            f.write(json.dumps(sft_row(step)) + "\n")
            if step % 100 == 0:
                f.write(json.dumps({"eval_loss": 2.1 / (1 + step / 1000), "step": step, "time": 1.7e9 + step}) + "\n")


def draw(feed) -> int:
    """What one Runs-tab tick does once rows were read: every panel's data and its plotly figure."""
    from studio.monitor import charts

    panels = feed.panels("sft", smoothing=0.6)
    for data in panels:
        charts.figure(data)
    return len(panels)


def charts_refresh(home: Path, rows: int, repeats: int) -> tuple[float, float, int]:
    """(seconds for the first full read and draw, median seconds for an incremental refresh and draw, panels)."""
    from studio.monitor import charts

    path = home / "metrics.jsonl"
    write_metrics(path, rows)
    feed = charts.ChartFeed()
    began = time.perf_counter()
    feed.add_run("big", path, stage="sft")
    feed.refresh()
    panels = draw(feed)
    first = time.perf_counter() - began
    ticks = []
    step = rows
    for _ in range(repeats):
        with open(path, "a") as f:
            for _ in range(10):
                step += 1
                f.write(json.dumps(sft_row(step)) + "\n")
        began = time.perf_counter()
        feed.refresh()
        draw(feed)
        ticks.append(time.perf_counter() - began)
    return first, statistics.median(ticks), panels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlhf-studio-ui-bench-") as tmp:
        home = Path(tmp)
        start_up(home)  # the first start writes the home and warms the OS file cache; the second is timed
        seconds, torch_loaded = start_up(home)
        print(
            f"start-up to the first page: {seconds:.2f} s (target under 5 s); "
            f"torch in the UI process: {'yes' if torch_loaded else 'no'}"
        )
        first, tick, panels = charts_refresh(home, args.rows, args.repeats)
        print(
            f"charts of a run with {args.rows:,} metric rows ({panels} panels): first read and draw {first:.2f} s; "
            f"refresh after 10 new rows {tick * 1000:.0f} ms, median of {args.repeats} "
            f"(target under 100 ms, ratio to target {tick / 0.1:.2f})"
        )


if __name__ == "__main__":
    main()
