"""Logs that arrive as one file (or folder) per day: each day ingested once, and a rolling window
of the last `training_days` days as the canonical table the features and models read.

`data.daily_inputs` names the days, with `{date}` (YYYY-MM-DD) in its path, e.g.
`data/daily/{date}.csv` or `data/daily/{date}/` (every file in the folder). Each day goes to
`<ingest>/days/<date>/` (its canonical table, quarantine and report, as any ingest); the window is
written to `<ingest>/` itself, so everything downstream reads what it reads without days. A session
belongs to its day: its id becomes `<date>/<id>`, so two days' sessions never share an id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

from rib.io import connect_duckdb, new_staging
from rib.artifacts import MICRO_BEHAVIORS_FILE, QUARANTINE_FILE, REPORT_FILE
from rib.config import DataConfig
from rib.data.report import IngestReport
from rib.schema import SYNTHETIC_METADATA_KEY

def available_days(config: DataConfig) -> dict[str, list[Path]]:
    """date -> the files of that day, for every day `daily_inputs` finds, in date order."""
    pattern = str(config.daily_inputs).rstrip("/")
    prefix, _, suffix = pattern.partition("{date}")
    matcher = re.compile(re.escape(prefix) + r"(\d{4}-\d{2}-\d{2})" + re.escape(suffix) + "$")
    root = Path(prefix).parent if not prefix.endswith("/") else Path(prefix)
    days: dict[str, list[Path]] = {}
    for candidate in sorted(root.glob(Path(pattern).name.replace("{date}", "*"))) if root.is_dir() else []:
        found = matcher.match(str(candidate))
        if not found:
            continue
        files = sorted(p for p in candidate.rglob("*") if p.is_file()) if candidate.is_dir() else [candidate]
        if files:
            days.setdefault(found.group(1), []).extend(files)
    return dict(sorted(days.items()))


def day_folder(ingest_dir: str | Path, date: str) -> Path:
    return Path(ingest_dir) / "days" / date


def ingest_day(config: DataConfig, date: str, ingest_dir: str | Path) -> IngestReport:
    """Ingest one day's files into <ingest>/days/<date>/ (replacing an earlier ingest of that day)."""
    from rib.data.ingest import ingest_logs

    files = available_days(config).get(date)
    if not files:
        raise FileNotFoundError(f"{config.daily_inputs}: no input for {date}")
    return ingest_logs(replace(config, inputs=[str(f) for f in files]), day_folder(ingest_dir, date))


def build_window(config: DataConfig, ingest_dir: str | Path, end_date: str | None = None) -> IngestReport:
    """The canonical table of the last `training_days` ingested days up to `end_date` (default: the
    latest), with its quarantine and a report that names the days and their data version."""
    ingest_dir = Path(ingest_dir)
    ingested = sorted(p.name for p in (ingest_dir / "days").glob("*") if (p / REPORT_FILE).exists())
    days = [d for d in ingested if end_date is None or d <= end_date][-config.training_days :]
    if not days:
        raise FileNotFoundError(f"{ingest_dir / 'days'}: no ingested day to train on")
    reports = {d: json.loads((day_folder(ingest_dir, d) / REPORT_FILE).read_text()) for d in days}
    tables = [str(day_folder(ingest_dir, d) / MICRO_BEHAVIORS_FILE) for d in days]
    quarantines = [str(day_folder(ingest_dir, d) / QUARANTINE_FILE) for d in days]
    synthetic = all(day["synthetic"] for day in reports.values())
    label = f", KV_METADATA {{'{SYNTHETIC_METADATA_KEY.decode()}': 'true'}}" if synthetic else ""
    staging = new_staging(ingest_dir, ".window-")
    try:
        con = connect_duckdb(staging / "window.duckdb", spill=staging / "spill")
        con.execute(
            f"""COPY (SELECT regexp_extract(filename, 'days/(\\d{{4}}-\\d{{2}}-\\d{{2}})/', 1) || '/' || session_id AS session_id,
                             * EXCLUDE (session_id, filename)
                      FROM read_parquet(?, filename = true) ORDER BY session_id, position)
                TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000{label})""",
            [tables, str(staging / MICRO_BEHAVIORS_FILE)],
        )
        con.execute(
            "COPY (SELECT * FROM read_parquet(?)) TO ? (FORMAT parquet, COMPRESSION zstd)",
            [quarantines, str(staging / QUARANTINE_FILE)],
        )
        con.close()
        report = IngestReport(format=reports[days[0]]["format"], inputs=[f for r in reports.values() for f in r["inputs"]])
        for day in reports.values():
            for key in ("read", "kept", "quarantined", "sessions"):
                setattr(report, key, getattr(report, key) + day[key])
            for reason, n in day["reasons"].items():
                report.reasons[reason] = report.reasons.get(reason, 0) + n
            report.per_file |= day["per_file"]
        report.synthetic = synthetic
        report.data_version = hashlib.md5("".join(r["data_version"] for r in reports.values()).encode()).hexdigest()
        report.days = days
        from rib.data.ingest import publish

        publish(staging, ingest_dir, report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
