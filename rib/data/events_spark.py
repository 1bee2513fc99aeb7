"""Event logs on Spark: the rules of rib/data/events.py, written by hand for Spark (`data.engine: spark`).

A log past one machine goes raw files -> quarantine -> canonical table on the cluster, and the
canonical table and the quarantine are Parquet folders (part files) in place of DuckDB's single
files; every reader of the canonical table takes either (rib.io.parquet_source). The rules are
events.py's, in its order (parsing, row checks, sessions by gap or column, order, dwell when
absent, intervals); tests/test_spark_ingest.py runs both engines on small logs in the Taobao,
REES46, Diginetica and JSON-lines layouts and finds the canonical tables and the quarantine
counts per reason identical.

How the engines differ:
- Text files are read a physical line at a time, numbered by the line's place in its file (the
  `_metadata.file_block_start` of its split, then its order inside the split: no single-task
  window). A record is one line: a quoted field cannot span lines, so an open quote costs its
  own line (`unparsable_line`), where DuckDB's parser reads on to the end of the file.
- A CSV line is split on the delimiter outside quotes; a field with a quote at both ends loses
  them ("" inside is one quote); an empty field is NULL, as in DuckDB. A line that is not valid
  UTF-8 is `unparsable_line`.
- The quarantine's `detail` of an unreadable line is this reader's words (the reason is the same).
"""

from __future__ import annotations

import re
from pathlib import Path

from rib.config import FeatureConfig
from rib.data.events import COLUMN_ROLES, EventsConfig, _check_columns, _csv_names, _file_format, events_report
from rib.data.report import IngestReport
from rib.errors import InputFileError, check_input_file
from rib.io import spark_session

CHECKED_NAMES = {  # each column role's name from the read on (as in events._checks)
    "user": "user_id",
    "session": "session_raw",
    "timestamp": "timestamp_raw",
    "item": "sku",
    "event_type": "event_type",
    "dwell": "dwell_raw",
    "category": "category",
}


def read_events_spark(
    inputs: list, config: EventsConfig, table_path: Path, quarantine_path: Path, spark_config: FeatureConfig
) -> IngestReport:
    """rib.data.events.read_events on Spark (session settings: `features.spark_master`, `spark_conf`):
    writes the canonical table and the quarantine as Parquet folders; returns the same report."""
    from pyspark.sql import functions as F

    spark = spark_session(spark_config)
    paths = [Path(p) for p in inputs]
    checked, unreadable = None, None
    for file_index, path in enumerate(paths):
        rows, bad = _scan_file(spark, file_index, path, config)
        checked = rows if checked is None else checked.unionByName(rows)
        if bad is not None:
            unreadable = bad if unreadable is None else unreadable.unionByName(bad)
    files = spark.createDataFrame([(i, str(p)) for i, p in enumerate(paths)], "file_index INT, source_file STRING")
    checked = _checks(spark, config, checked).persist()
    try:
        _write_quarantine(checked, unreadable, files, quarantine_path)
        canonical = _canonical(spark, config, checked.where("reason IS NULL"))
        canonical.write.mode("overwrite").option("compression", "zstd").parquet(str(table_path))

        counted = checked.select("file_index", "reason")
        if unreadable is not None:
            counted = counted.unionByName(unreadable.select("file_index", "reason"))
        counts = [tuple(r) for r in counted.groupBy("file_index", "reason").count().collect()]
    finally:
        checked.unpersist()
    sessions = spark.read.parquet(str(table_path)).where(F.col("position") == 0).count()
    return events_report(paths, counts, sessions)


def _numbered_lines(spark, path: Path):
    """(line_number from 1, line) of every physical line of a text file, numbered in parallel: a
    line's place is its split's start byte, then its order inside the split (the ids Spark gives
    rows in one partition increase in read order); the splits' line counts are collected (one
    row per split) and summed into each split's first line number."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lines = spark.read.text(str(path)).select(
        F.col("value").alias("line"),
        F.col("_metadata.file_block_start").alias("block"),
        F.monotonically_increasing_id().alias("id"),
    )
    blocks = lines.groupBy("block").agg(F.count("*").alias("n"), F.min("id").alias("first_id"))
    before = Window.orderBy("block").rowsBetween(Window.unboundedPreceding, -1)
    blocks = blocks.select("block", "first_id", F.coalesce(F.sum("n").over(before), F.lit(0)).alias("offset"))
    return lines.join(F.broadcast(blocks), "block").select(
        (F.col("offset") + F.col("id") - F.col("first_id") + 1).alias("line_number"), "line"
    )


def _scan_file(spark, file_index: int, path: Path, config: EventsConfig):
    """One file's records as (file_index, ordinal, one string column per role), and its unreadable
    lines as (file_index, line_number, reason, detail, raw), or None for a Parquet file."""
    from pyspark.sql import functions as F

    file_format = _file_format(path, config)
    check_input_file(path, text=file_format != "parquet")
    roles = {role: column for role, column in config.columns.items() if column}

    def records(frame, ordinal):  # the roles under the names the checks use (events._checks's)
        columns = [
            (F.col(role) if role in roles else F.lit(None).cast("string")).alias(CHECKED_NAMES[role])
            for role in COLUMN_ROLES
        ]
        return frame.select(F.lit(file_index).alias("file_index"), ordinal.alias("ordinal"), *columns)

    if file_format == "parquet":
        try:
            frame = spark.read.parquet(str(path))
        except Exception as error:
            raise InputFileError(path, f"not a readable Parquet file ({error})") from None
        _check_columns(path, roles, frame.columns)
        frame = frame.select(
            F.col("_metadata.row_index").alias("row_index"),
            *[F.col(f"`{column}`").cast("string").alias(role) for role, column in roles.items()],
        )
        return records(frame, F.col("row_index") + 1), None

    lines = _numbered_lines(spark, path)
    if file_format == "jsonl":
        blank = F.col("line").isNull() | (F.trim("line") == "")
        is_object = F.json_object_keys("line").isNotNull() & F.ltrim("line").startswith("{")
        lines = lines.select(
            "*",
            F.when(blank, "blank_line").when(~is_object, "unparsable_json").alias("reason"),
            F.when(blank, "an empty line").when(~is_object, "not a JSON object").alias("detail"),
        )
        good = lines.where("reason IS NULL").select(
            "line_number", *[F.get_json_object("line", f"$.{column}").alias(role) for role, column in roles.items()]
        )
        return records(good, F.col("line_number")), _unreadable(lines, file_index)

    names = _csv_names(path, config)
    _check_columns(path, roles, names)
    if len(set(names)) != len(names):
        raise InputFileError(path, f"the header repeats a column name: {names}")
    first_line = 2 if config.csv_header else 1  # a header line is skipped, named by it or by column_names
    delimiter, quote = re.escape(config.csv_delimiter), config.csv_quote
    q = re.escape(quote)  # a delimiter is outside quotes when an even number of quotes follows it
    outside_quotes = f"(?=(?:[^{q}]*{q}[^{q}]*{q})*[^{q}]*$)"
    line = F.regexp_replace("line", "\r$", "")
    fields = F.split(line, delimiter, -1)
    if quote:  # the slower, quote-aware split only for the lines with a quote
        fields = F.when(line.contains(quote), F.split(line, delimiter + outside_quotes, -1)).otherwise(fields)
    open_quote = (
        (F.length(line) - F.length(F.regexp_replace(line, re.escape(quote), ""))) % 2 == 1 if quote else F.lit(False)
    )
    lines = lines.where(F.col("line_number") >= first_line).select(
        "line_number",
        "line",
        F.when(line == "", "blank_line")
        .when(~F.is_valid_utf8("line"), "unparsable_line")
        .when(open_quote, "unparsable_line")
        .when(F.size(fields) != len(names), "unparsable_line")
        .alias("reason"),
        F.when(line == "", "an empty line")
        .when(~F.is_valid_utf8("line"), "invalid unicode: the line is not UTF-8")
        .when(open_quote, "unquoted value: a quote opens a field and does not close on this line")
        .when(
            F.size(fields) < len(names),
            F.concat(F.lit(f"missing columns: expected {len(names)} columns, found "), F.size(fields).cast("string")),
        )
        .when(
            F.size(fields) > len(names),
            F.concat(F.lit(f"too many columns: expected {len(names)} columns, found "), F.size(fields).cast("string")),
        )
        .alias("detail"),
        fields.alias("fields"),
    )

    def field(index: int):
        value = F.col("fields")[index]
        if quote:  # "a ""b""" -> a "b"
            quoted = value.startswith(quote) & value.endswith(quote) & (F.length(value) >= 2)
            inner = F.regexp_replace(
                F.expr(f"substring(fields[{index}], 2, length(fields[{index}]) - 2)"),
                re.escape(quote * 2),
                quote.replace("\\", "\\\\"),
            )
            value = F.when(quoted, inner).otherwise(value)
        return F.when(value == "", None).otherwise(value)

    good = lines.where("reason IS NULL").select(
        "line_number", *[field(names.index(column)).alias(role) for role, column in roles.items()]
    )
    return records(good, F.col("line_number")), _unreadable(lines, file_index)


def _unreadable(lines, file_index: int):
    from pyspark.sql import functions as F

    return lines.where("reason IS NOT NULL").select(
        F.lit(file_index).alias("file_index"),
        "line_number",
        "reason",
        "detail",
        F.when(F.col("reason") == "blank_line", "")
        .otherwise(F.substring(F.make_valid_utf8("line"), 1, 1000))  # Parquet text is UTF-8 (U+FFFD for a bad byte)
        .alias("raw"),
    )


def _timestamp_sql(config: EventsConfig) -> str:
    """events._timestamp_sql in Spark SQL: NULL where the text does not parse or lies out of range."""
    if config.timestamp_format in ("unix_s", "unix_ms"):
        seconds = "try_cast(timestamp_raw AS DOUBLE)" + (" / 1000" if config.timestamp_format == "unix_ms" else "")
        finite = f"NOT isnan({seconds}) AND abs({seconds}) < 1e11"
        return f"CASE WHEN {finite} THEN timestamp_micros(CAST(round({seconds} * 1000000) AS BIGINT)) END"
    return "try_cast(timestamp_raw AS TIMESTAMP)"


def _checks(spark, config: EventsConfig, rows):
    """events._checks: each row's first failed rule as `reason` (NULL: kept)."""
    has = {role: bool(column) for role, column in config.columns.items()}
    rows.createOrReplaceTempView("rib_rows")
    mapping = list(config.activity_map.items())
    if not has["event_type"]:
        mapping.append(("<default>", config.default_activity))
    spark.createDataFrame(mapping or [("", 0)], "event_type STRING, activity TINYINT").where(
        "activity > 0"
    ).createOrReplaceTempView("rib_mapping")
    excluded = ", ".join("'" + e.replace("'", "''") + "'" for e in config.excluded_event_types) or "NULL"
    event_type = "event_type" if has["event_type"] else "'<default>'"
    flag = {role: "true" if present else "false" for role, present in has.items()}
    return spark.sql(f"""
        SELECT file_index, ordinal, user_id, session_raw, sku, category, activity, ts, dwell, reason,
               CASE WHEN reason IS NOT NULL THEN timestamp_raw END AS timestamp_raw,
               CASE WHEN reason IS NOT NULL THEN event_type END AS event_type,
               CASE WHEN reason IS NOT NULL THEN dwell_raw END AS dwell_raw
        FROM (
          SELECT e.*, m.activity,
            CASE
              WHEN sku IS NULL OR sku = '' THEN 'missing_item'
              WHEN e.event_type IS NULL THEN 'missing_event_type'
              WHEN e.event_type IN ({excluded}) THEN 'excluded_event_type'
              WHEN m.activity IS NULL THEN 'unmapped_event_type'
              WHEN {flag["session"]} AND session_raw IS NULL THEN 'missing_session'
              WHEN NOT {flag["session"]} AND user_id IS NULL THEN 'missing_user'
              WHEN {flag["timestamp"]} AND timestamp_raw IS NULL THEN 'missing_timestamp'
              WHEN {flag["timestamp"]} AND ts IS NULL THEN 'bad_timestamp'
              WHEN {flag["dwell"]} AND dwell_raw IS NULL THEN 'missing_dwell'
              WHEN {flag["dwell"]} AND dwell IS NULL THEN 'non_numeric_field'
              WHEN {flag["dwell"]} AND (isnan(dwell) OR abs(dwell) = double('inf')) THEN 'non_finite_dwell'
              WHEN {flag["dwell"]} AND dwell < 0 THEN 'negative_dwell'
            END AS reason
          FROM (
            SELECT file_index, ordinal, user_id, session_raw, timestamp_raw, {_timestamp_sql(config)} AS ts, sku,
                   {event_type} AS event_type, dwell_raw, try_cast(dwell_raw AS DOUBLE) AS dwell, category
            FROM rib_rows
          ) e LEFT JOIN rib_mapping m ON e.event_type = m.event_type
        )""")


def _write_quarantine(checked, unreadable, files, quarantine_path: Path) -> None:
    """events._write_quarantine: every quarantined row and unreadable line, its file, line and reason."""
    from pyspark.sql import functions as F

    details = {
        "unmapped_event_type": F.concat(F.lit("event type "), "event_type", F.lit(" is not in activity_map")),
        "excluded_event_type": F.concat(F.lit("event type "), "event_type", F.lit(" is excluded by the config")),
        "bad_timestamp": F.concat(F.lit("cannot parse timestamp "), "timestamp_raw"),
        "negative_dwell": F.concat(F.lit("dwell="), "dwell_raw"),
        "non_finite_dwell": F.concat(F.lit("dwell="), "dwell_raw"),
        "non_numeric_field": F.concat(F.lit("dwell="), "dwell_raw"),
    }
    detail = F.col("reason")
    for reason, text in details.items():
        detail = F.when(F.col("reason") == reason, text).otherwise(detail)
    raw = F.concat_ws(",", "user_id", "session_raw", "timestamp_raw", "sku", "event_type", "dwell_raw", "category")
    rows = checked.where("reason IS NOT NULL").select(
        "file_index",
        F.col("ordinal").alias("line_number"),
        F.lit(None).cast("int").alias("token_index"),
        "reason",
        detail.alias("detail"),
        raw.alias("raw"),
    )
    if unreadable is not None:
        rows = rows.unionByName(
            unreadable.select(
                "file_index", "line_number", F.lit(None).cast("int").alias("token_index"), "reason", "detail", "raw"
            )
        )
    rows = rows.join(F.broadcast(files), "file_index").select(
        "source_file", "line_number", "token_index", "reason", "detail", "raw"
    )
    rows.orderBy("source_file", "line_number").write.mode("overwrite").option("compression", "zstd").parquet(
        str(quarantine_path)
    )


def _canonical(spark, config: EventsConfig, kept):
    """events._canonical_sql on Spark: sessions, positions, visits, dwell and intervals from each
    user's (or session's) events in time, file and line order."""
    has = {role: bool(column) for role, column in config.columns.items()}
    part = "session_raw" if has["session"] else "user_id"
    gap = config.session_gap_minutes * 60
    epoch = "(unix_micros({0}) / 1000000D)"
    new_session = (
        "row_in_part = 1"
        if has["session"]
        else f"(prev_ts IS NULL OR {epoch.format('ts')} - {epoch.format('prev_ts')} > {gap})"
    )
    session_id = "session_raw" if has["session"] else "concat(user_id, '#', CAST(session_number AS STRING))"
    dwell = (
        "dwell"
        if has["dwell"]
        else f"""CASE WHEN next_visit_ts IS NOT NULL AND NOT next_visit_starts_session
                     THEN {epoch.format("next_visit_ts")} - {epoch.format("visit_start_ts")}
                     ELSE {epoch.format("session_end_ts")} - {epoch.format("visit_start_ts")} END"""
    )
    kept.createOrReplaceTempView("rib_kept")
    # "The next non-null value after this row" (DuckDB's lead(...) IGNORE NULLS) is the last non-null
    # one in reverse order up to the row before: a growing frame, linear in the partition.
    after = f"(PARTITION BY {part} ORDER BY row_in_part DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    return spark.sql(f"""
      WITH first_pass AS (
        SELECT *, lag(ts) OVER w AS prev_ts, lag(sku) OVER w AS prev_sku, lead(ts) OVER w AS next_ts,
               row_number() OVER w AS row_in_part
        FROM rib_kept
        WINDOW w AS (PARTITION BY {part} ORDER BY ts, file_index, ordinal)
      ), flagged AS (
        SELECT *, {new_session} AS new_session, ({new_session}) OR NOT (prev_sku <=> sku) AS new_visit
        FROM first_pass
      ), numbered AS (
        SELECT *, sum(CAST(new_session AS INT)) OVER upto AS session_number,
                  max(CASE WHEN new_visit THEN ts END) OVER upto AS visit_start_ts,
                  lead(new_session) OVER w AS next_starts_session,
                  last(CASE WHEN new_visit THEN ts END, true) OVER {after} AS next_visit_ts,
                  last(CASE WHEN new_visit THEN new_session END, true) OVER {after} AS next_visit_starts_session
        FROM flagged
        WINDOW w AS (PARTITION BY {part} ORDER BY row_in_part),
               upto AS (PARTITION BY {part} ORDER BY row_in_part ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      ), second_pass AS (
        SELECT *, row_number() OVER (PARTITION BY {part}, session_number ORDER BY row_in_part) - 1 AS position,
                  max(ts) OVER (PARTITION BY {part}, session_number) AS session_end_ts
        FROM numbered
      )
      SELECT {session_id} AS session_id, user_id, CAST(position AS INT) AS position, sku, category,
             CAST(activity AS TINYINT) AS activity, CAST({dwell} AS DOUBLE) AS dwell_seconds,
             CAST(CASE WHEN NOT next_starts_session THEN {epoch.format("next_ts")} - {epoch.format("ts")} END AS DOUBLE)
               AS time_interval_seconds,
             ts AS `timestamp`
      FROM second_pass
      ORDER BY session_id, position""")
