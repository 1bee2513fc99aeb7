"""Turn raw logs into the canonical micro-behavior table, with a quarantine and a report.

Every source writes into a temporary folder inside the output folder; only when the whole
input has been read and `read == kept + quarantined` holds are the three files renamed
into place, so a failed ingest never leaves half-written output behind.

The unit counted by `read` is one input record: a micro-behavior token (or an empty line)
of a JD file, a row of an event log or of a canonical Parquet file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

MICRO_BEHAVIORS_FILE = "micro_behaviors.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest_report.json"
FORMATS = ("jd", "events", "canonical")


@dataclass
class IngestReport:
    format: str
    inputs: list[str]
    read: int = 0
    kept: int = 0
    quarantined: int = 0
    sessions: int = 0
    synthetic: bool = False
    reasons: dict[str, int] = field(default_factory=dict)
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def ingest(
    format: str,
    inputs: list[str | Path],
    out_dir: str | Path,
    config: str | Path | None = None,
) -> IngestReport:
    """Read `inputs` in `format` and write the canonical table, quarantine and report to `out_dir`."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if not inputs:
        raise ValueError("no input files given")
    if format == "events" and config is None:
        raise ValueError("--format events needs --config FILE describing the log's columns")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir))
    try:
        table_path = staging / MICRO_BEHAVIORS_FILE
        quarantine_path = staging / QUARANTINE_FILE
        if format == "jd":
            from rib.sources.jd import read_jd

            report = read_jd(inputs, table_path, quarantine_path)
        elif format == "events":
            from rib.sources.events import EventsConfig, read_events

            report = read_events(inputs, EventsConfig.load(config), table_path, quarantine_path)
        else:
            from rib.sources.canonical import read_canonical

            report = read_canonical(inputs, table_path, quarantine_path)
        if report.read != report.kept + report.quarantined:
            raise AssertionError(
                f"ingest lost rows: read {report.read} != kept {report.kept} + quarantined {report.quarantined}"
            )
        (staging / REPORT_FILE).write_text(report.to_json() + "\n")
        for name in (MICRO_BEHAVIORS_FILE, QUARANTINE_FILE, REPORT_FILE):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
