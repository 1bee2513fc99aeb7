"""Turn raw logs into the canonical micro-behavior table, with a quarantine and a report.

Every source writes into a temporary folder inside the output folder; only when the whole
input has been read and `read == kept + quarantined` holds are the three files renamed
into place, so a failed ingest never leaves half-written output behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rib.artifacts import MICRO_BEHAVIORS_FILE, QUARANTINE_FILE, REPORT_FILE
from rib.config import DataConfig, FeatureConfig
from rib.data.profile import profile
from rib.data.report import IngestReport
from rib.errors import InputFileError
from rib.io import new_staging

FORMATS = ("jd", "events", "canonical")


ENGINES = ("duckdb", "spark")


def ingest_logs(config: DataConfig, out_dir: str | Path, spark: FeatureConfig | None = None) -> IngestReport:
    """Read `config.inputs` in `config.format`; write the canonical table, quarantine and report.
    With `config.engine` spark (event logs), on the Spark session `spark` describes."""
    if config.format not in FORMATS:
        raise ValueError(f"unknown format {config.format!r}; expected one of {', '.join(FORMATS)}")
    if config.engine not in ENGINES:
        raise ValueError(f"unknown data.engine {config.engine!r}; expected one of {', '.join(ENGINES)}")
    if config.engine == "spark" and config.format != "events":
        raise ValueError(
            f"data.engine spark reads event logs (format events), not format {config.format!r}: "
            "describe the log with an events config (docs/sources.md), or use the duckdb engine"
        )
    if not config.inputs:
        raise ValueError("no input files given")
    if config.format == "events" and config.events_config is None:
        raise ValueError("format events needs an events config (a YAML file describing the log's columns)")
    seen: dict[Path, str] = {}
    for path in map(str, config.inputs):  # the same file twice would count its rows twice
        if Path(path).resolve() in seen:
            raise InputFileError(path, f"given twice (also as {seen[Path(path).resolve()]})")
        seen[Path(path).resolve()] = path
    out_dir = Path(out_dir)
    staging = new_staging(out_dir, ".ingest-")
    # The inputs' md5 is read beside the engine (hashlib and DuckDB both release the GIL).
    hashing = ThreadPoolExecutor(1, thread_name_prefix="rib-md5")
    version = hashing.submit(data_version, config.inputs)
    try:
        table_path = staging / MICRO_BEHAVIORS_FILE
        quarantine_path = staging / QUARANTINE_FILE
        if config.format == "jd":
            from rib.data.jd import read_jd

            report = read_jd(config.inputs, table_path, quarantine_path)
        elif config.format == "events" and config.engine == "spark":
            from rib.data.events import EventsConfig
            from rib.data.events_spark import read_events_spark

            events = EventsConfig.load(config.events_config)
            report = read_events_spark(config.inputs, events, table_path, quarantine_path, spark or FeatureConfig())
        elif config.format == "events":
            from rib.data.events import EventsConfig, read_events

            events = EventsConfig.load(config.events_config)
            report = read_events(config.inputs, events, table_path, quarantine_path, config.duckdb_memory_limit)
        else:
            from rib.data.canonical import read_canonical

            report = read_canonical(config.inputs, table_path, quarantine_path)
        if report.read != report.kept + report.quarantined:
            raise AssertionError(
                f"ingest lost rows: read {report.read} != kept {report.kept} + quarantined {report.quarantined}"
            )
        report.data_version = version.result()
        publish(staging, out_dir, report)
    finally:
        hashing.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(staging, ignore_errors=True)
    return report


def publish(staging: Path, out_dir: Path, report: IngestReport) -> None:
    """Profile the staged canonical table, write the report beside it, and move the three files
    from `staging` into `out_dir`, each by a rename."""
    report.profile = profile(staging / MICRO_BEHAVIORS_FILE)
    (staging / REPORT_FILE).write_text(report.to_json() + "\n")
    for name in (MICRO_BEHAVIORS_FILE, QUARANTINE_FILE, REPORT_FILE):
        target = out_dir / name
        if target.exists() and (target.is_dir() or (staging / name).is_dir()):  # a Spark engine's folder
            os.replace(target, staging / f"{name}.old")  # a rename cannot replace a folder, nor a file by one
        os.replace(staging / name, target)


def data_version(paths: list[str | Path]) -> str:
    """md5 of the raw inputs (one file: its md5, as in a .dvc file; several: md5 of their md5s)."""
    digests = []
    for path in sorted(str(p) for p in paths):
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest())
    return digests[0] if len(digests) == 1 else hashlib.md5("".join(digests).encode()).hexdigest()
