"""Parquet files already in the canonical layout (rib.schema), e.g. from the synthetic generator.

Rows are checked like any other source (missing session or SKU, activity outside 1..10,
missing or negative dwell, negative time interval); positions are renumbered over the kept rows.
A file written by the synthetic generator keeps its `synthetic` label.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from rib.io import connect_duckdb
from rib.data.report import IngestReport
from rib.errors import InputFileError, check_input_file
from rib.schema import COLUMNS, SYNTHETIC_METADATA_KEY, is_synthetic

REQUIRED = ("session_id", "position", "sku", "activity", "dwell_seconds")


def read_canonical(inputs: list, table_path: Path, quarantine_path: Path):
    import duckdb

    paths = [check_input_file(p, text=False) for p in inputs]
    for path in paths:
        try:
            names = pq.read_schema(path).names
        except Exception as error:  # pyarrow raises several types for a non-Parquet file
            raise InputFileError(path, f"not a Parquet file ({error})") from None
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise InputFileError(path, f"required column(s) {missing} absent; the file has {names}")
    synthetic = all(is_synthetic(str(p)) for p in paths)

    con = connect_duckdb(spill=Path(table_path).parent / "spill")
    con.execute("SET TimeZone = 'UTC'")
    files = [str(p) for p in paths]
    con.execute(
        """CREATE TABLE rows AS SELECT * FROM read_parquet(?, filename = true, file_row_number = true,
           union_by_name = true)""",
        [files],
    )
    present = {row[0] for row in con.sql("DESCRIBE rows").fetchall()}
    optional = {c: (c if c in present else f"NULL AS {c}") for c in COLUMNS}
    con.execute(f"""
        CREATE TABLE checked AS
        SELECT filename, file_row_number + 1 AS line_number,
               {", ".join(optional.values())},
               CASE
                 WHEN session_id IS NULL THEN 'missing_session'
                 WHEN sku IS NULL THEN 'missing_item'
                 WHEN activity IS NULL OR activity NOT BETWEEN 1 AND 10 THEN 'activity_out_of_range'
                 WHEN dwell_seconds IS NULL THEN 'missing_dwell'
                 WHEN NOT isfinite(dwell_seconds::DOUBLE) THEN 'non_finite_dwell'
                 WHEN dwell_seconds < 0 THEN 'negative_dwell'
                 WHEN NOT isfinite(time_interval_seconds::DOUBLE) THEN 'non_finite_time_interval'
                 WHEN time_interval_seconds < 0 THEN 'negative_time_interval'
               END AS reason
        FROM rows
    """)
    con.execute(f"""
        COPY (SELECT filename AS source_file, line_number, NULL::INTEGER AS token_index, reason,
                     reason || ' (activity=' || coalesce(activity::VARCHAR, 'null') || ', dwell='
                       || coalesce(dwell_seconds::VARCHAR, 'null') || ')' AS detail,
                     concat_ws(',', session_id, position, sku, activity, dwell_seconds) AS raw
              FROM checked WHERE reason IS NOT NULL ORDER BY filename, line_number)
        TO ? (FORMAT parquet, COMPRESSION zstd)
    """,
        [str(quarantine_path)],
    )
    metadata = f", KV_METADATA {{'{SYNTHETIC_METADATA_KEY.decode()}': 'true'}}" if synthetic else ""
    con.execute(f"""
        COPY (SELECT session_id::VARCHAR AS session_id, user_id::VARCHAR AS user_id,
                     (row_number() OVER (PARTITION BY session_id ORDER BY position, filename, line_number) - 1)::INTEGER
                        AS position,
                     sku::VARCHAR AS sku, category::VARCHAR AS category, activity::TINYINT AS activity,
                     dwell_seconds::DOUBLE AS dwell_seconds, time_interval_seconds::DOUBLE AS time_interval_seconds,
                     timestamp::TIMESTAMPTZ AS timestamp
              FROM checked WHERE reason IS NULL ORDER BY session_id, position)
        TO ? (FORMAT parquet, COMPRESSION zstd{metadata})
    """,
        [str(table_path)],
    )

    report = IngestReport(format="canonical", inputs=files, synthetic=synthetic)
    for filename, n_read, n_kept in con.sql("""
        SELECT filename, count(*), count(*) FILTER (reason IS NULL) FROM checked GROUP BY filename ORDER BY filename
    """).fetchall():
        report.per_file[filename] = {"read": n_read, "kept": n_kept, "quarantined": n_read - n_kept}
        report.read += n_read
        report.kept += n_kept
    report.quarantined = report.read - report.kept
    report.reasons = dict(
        sorted(con.sql("SELECT reason, count(*) FROM checked WHERE reason IS NOT NULL GROUP BY reason").fetchall())
    )
    report.sessions = con.sql("SELECT count(DISTINCT session_id) FROM checked WHERE reason IS NULL").fetchall()[0][0]
    con.close()
    if report.kept == 0:
        raise InputFileError(paths[0], f"no usable micro-behavior; quarantine reasons: {report.reasons}")
    return report
