"""Is a worker still alive? A PID alone is not enough: after a crash the PID may belong to another process,
so status.json keeps the process start time too and both must match."""

from __future__ import annotations

import psutil


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def is_alive(pid: int | None, started: float | None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # create_time is rounded differently on some platforms; a reused PID differs by far more.
        return started is None or abs(proc.create_time() - started) < 1.0
    except (psutil.Error, ValueError):
        return False
