"""Small canonical tables with known answers, written by the tests themselves."""

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rib.schema import MICRO_BEHAVIOR_SCHEMA

REPO = Path(__file__).resolve().parents[1]


def write_canonical(path: Path, sessions: dict[str, list[tuple]], synthetic: bool = False) -> Path:
    """sessions: id -> [(sku, activity, dwell), ...] in order."""
    rows = []
    for session_id, events in sessions.items():
        for position, (sku, activity, dwell) in enumerate(events):
            rows.append(
                {
                    "session_id": session_id,
                    "user_id": None,
                    "position": position,
                    "sku": str(sku),
                    "category": None,
                    "activity": activity,
                    "dwell_seconds": float(dwell),
                    "time_interval_seconds": None,
                    "timestamp": None,
                }
            )
    schema = MICRO_BEHAVIOR_SCHEMA
    if synthetic:
        schema = schema.with_metadata({b"rib.synthetic": b"true"})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def ingest(format: str, inputs: list, out_dir, config=None):
    """rib.data.ingest.ingest_logs with the data settings given one by one."""
    from rib.config import DataConfig
    from rib.data.ingest import ingest_logs

    return ingest_logs(DataConfig(format=format, inputs=[str(p) for p in inputs], events_config=config), out_dir)


def copy_of_repository(tmp_path: Path) -> Path:
    """The working tree's tracked and untracked-not-ignored files, as a fresh git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    clone = tmp_path / "clone"
    for name in files:
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
    ):
        subprocess.run(["git", *command], cwd=clone, check=True)
    return clone
