"""DVC versions what the pipeline makes: after a Dagster asset has written its outputs, its
stage in dvc.yaml is recorded with `dvc commit` (hashes into dvc.lock, outputs into the DVC
cache), so a Dagster run and `dvc repro` agree. DVC commands never run two at once here: a
file lock serialises them (DVC's own lock would make the second one fail)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path


def dvc_executable() -> str:
    candidate = Path(sys.executable).parent / "dvc"
    return str(candidate) if candidate.exists() else "dvc"


def record_stage(stage: str, root: str | Path = ".", force: bool = True) -> bool:
    """`dvc commit [-f] <stage or .dvc file>` under a lock; False (nothing done) outside a DVC project."""
    root = Path(root).resolve()
    if not (root / "dvc.yaml").exists() or not (root / ".dvc").is_dir():
        return False
    lock_path = root / ".dvc" / "tmp" / "rib-pipeline.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            [dvc_executable(), "commit", *(["--force"] if force else []), "--quiet", stage],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
    if done.returncode != 0:
        raise RuntimeError(f"dvc commit {stage} failed: {done.stderr.strip() or done.stdout.strip()}")
    return True
