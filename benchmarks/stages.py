"""What the stage-by-stage benchmarks share: each stage in its own process, so that its wall time
and peak resident memory are its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def run_stage(script: str, args: list[str]) -> tuple[float, float]:
    """Run `python script args`; (wall seconds, peak RSS in GB)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, script, *args])
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"stage {args} failed with status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024**2
