"""Small canonical tables with known answers, written by the tests themselves."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rib.schema import MICRO_BEHAVIOR_SCHEMA


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
