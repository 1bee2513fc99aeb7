"""Generic event logs (CSV, Parquet, JSON lines) described by a small YAML config.

Rules, in the order they are applied (see docs/sources.md):

1. Rows are validated in DuckDB; each bad row goes to the quarantine with a reason:
   missing_item, missing_event_type, excluded_event_type (listed in the config),
   unmapped_event_type, missing_session, missing_user, missing_timestamp, bad_timestamp,
   missing_dwell, non_numeric_field, negative_dwell.
2. Sessions: the session column when configured; otherwise a user's events ordered by time
   are cut where the gap between two events exceeds `session_gap_minutes`.
3. Order within a session: timestamp, then file, then row.
4. Dwell, when the log has none: consecutive events on one item form a visit (a macro
   interaction); its dwell is the time from its first event to the first event of the
   session's next visit (on another item). The session's last visit has no next event, so
   its dwell is the time from its first to its last event (0 for a single event): the part
   of the visit that was observed. All events of a visit share its dwell, as in JD's logs.
5. Time interval: seconds to the next event of the session, null for the last.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rib.data.report import IngestReport
from rib.errors import InputFileError, check_input_file

COLUMN_ROLES = ("user", "session", "timestamp", "item", "event_type", "dwell", "category")
TIMESTAMP_FORMATS = ("auto", "unix_s", "unix_ms")


@dataclass
class EventsConfig:
    columns: dict[str, str | None]
    activity_map: dict[str, int]
    file_format: str | None = None  # csv | parquet | jsonl; None: from the file extension
    excluded_event_types: list[str] = field(default_factory=list)
    session_gap_minutes: float = 30.0
    timestamp_format: str = "auto"
    csv_header: bool = True
    csv_delimiter: str = ","
    csv_column_names: list[str] | None = None
    source: str = "<config>"

    @classmethod
    def load(cls, path: str | Path) -> EventsConfig:
        path = check_input_file(path, text=True)
        raw = yaml.safe_load(path.read_text()) or {}
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<config>") -> EventsConfig:
        def fail(problem: str):
            raise InputFileError(source, problem)

        columns = raw.get("columns") or {}
        unknown = set(columns) - set(COLUMN_ROLES)
        if unknown:
            fail(f"unknown column roles {sorted(unknown)}; known: {', '.join(COLUMN_ROLES)}")
        columns = {role: columns.get(role) for role in COLUMN_ROLES}
        if not columns["item"] or not columns["event_type"]:
            fail("columns.item and columns.event_type are required")
        if not columns["session"] and not columns["user"]:
            fail("needs columns.session, or columns.user to cut sessions by inactivity gap")
        if not columns["timestamp"] and not (columns["session"] and columns["dwell"]):
            fail("needs columns.timestamp (to order events, cut sessions and derive dwell)")
        activity_map = {str(k): int(v) for k, v in (raw.get("activity_map") or {}).items()}
        if not activity_map:
            fail("activity_map is empty: map each event type onto an activity code 1..10")
        bad_codes = {k: v for k, v in activity_map.items() if not 1 <= v <= 10}
        if bad_codes:
            fail(f"activity_map codes must be in 1..10, got {bad_codes}")
        timestamp_format = raw.get("timestamp_format", "auto")
        if timestamp_format not in TIMESTAMP_FORMATS:
            fail(f"timestamp_format must be one of {TIMESTAMP_FORMATS}")
        csv = raw.get("csv") or {}
        return cls(
            columns=columns,
            activity_map=activity_map,
            file_format=raw.get("format"),
            excluded_event_types=[str(e) for e in raw.get("excluded_event_types") or []],
            session_gap_minutes=float(raw.get("session_gap_minutes", 30)),
            timestamp_format=timestamp_format,
            csv_header=bool(csv.get("header", True)),
            csv_delimiter=str(csv.get("delimiter", ",")),
            csv_column_names=csv.get("column_names"),
            source=source,
        )


def _file_format(path: Path, config: EventsConfig) -> str:
    if config.file_format:
        return config.file_format
    suffixes = "".join(path.suffixes).lower()
    for ending, name in (
        (".parquet", "parquet"),
        (".jsonl", "jsonl"),
        (".json", "jsonl"),
        (".csv", "csv"),
        (".tsv", "csv"),
    ):
        if suffixes.endswith(ending) or suffixes.endswith(ending + ".gz"):
            return name
    raise InputFileError(path, "unknown format: name it in the config (format: csv|parquet|jsonl)")


def _read_table(path: Path, config: EventsConfig):
    """Read one log into Arrow with a `_line` column: the 1-based line (text) or row (Parquet)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    file_format = _file_format(path, config)
    check_input_file(path, text=file_format != "parquet")
    first_line = 1
    try:
        if file_format == "parquet":
            table = pq.read_table(path)
        elif file_format == "jsonl":
            table = pajson.read_json(path)
        elif file_format == "csv":
            read_options = pacsv.ReadOptions(
                column_names=config.csv_column_names,
                autogenerate_column_names=not config.csv_header and not config.csv_column_names,
            )
            if config.csv_header:
                first_line = 2
            table = pacsv.read_csv(
                path,
                read_options=read_options,
                parse_options=pacsv.ParseOptions(delimiter=config.csv_delimiter),
                convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
            )
        else:
            raise InputFileError(path, f"unknown format {file_format!r}; expected csv, parquet or jsonl")
    except pa.ArrowInvalid as error:
        raise InputFileError(path, f"cannot be read as {file_format}: {error}") from None
    if table.num_rows == 0:
        raise InputFileError(path, "has a header but no rows")
    missing = [c for c in config.columns.values() if c and c not in table.column_names]
    if missing:
        raise InputFileError(path, f"required column(s) {missing} absent; the file has {table.column_names}")
    wanted = {role: table[col] for role, col in config.columns.items() if col}
    out = {role: wanted[role] if role in wanted else pa.nulls(table.num_rows) for role in COLUMN_ROLES}
    out["_line"] = pa.array(range(first_line, first_line + table.num_rows), pa.int64())
    return pa.table(out)


def _timestamp_sql(config: EventsConfig) -> str:
    if config.timestamp_format == "unix_s":
        return "to_timestamp(TRY_CAST(timestamp AS DOUBLE))"
    if config.timestamp_format == "unix_ms":
        return "to_timestamp(TRY_CAST(timestamp AS DOUBLE) / 1000)"
    return "TRY_CAST(timestamp AS TIMESTAMPTZ)"


def read_events(inputs: list, config: EventsConfig, table_path: Path, quarantine_path: Path):
    import duckdb

    paths = [Path(p) for p in inputs]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE mapping (event_type VARCHAR, activity TINYINT)")
    con.executemany("INSERT INTO mapping VALUES (?, ?)", list(config.activity_map.items()))
    con.execute("CREATE TABLE excluded (event_type VARCHAR)")
    if config.excluded_event_types:
        con.executemany("INSERT INTO excluded VALUES (?)", [(e,) for e in config.excluded_event_types])

    for file_index, path in enumerate(paths):
        arrow = _read_table(path, config)  # noqa: F841 (read by DuckDB by name)
        select = f"""
            SELECT {file_index} AS file_index, _line,
                   CAST(user AS VARCHAR) AS user_id, CAST(session AS VARCHAR) AS session_raw,
                   CAST(timestamp AS VARCHAR) AS timestamp_raw, {_timestamp_sql(config)} AS ts,
                   CAST(item AS VARCHAR) AS sku, CAST(event_type AS VARCHAR) AS event_type,
                   CAST(dwell AS VARCHAR) AS dwell_raw, TRY_CAST(dwell AS DOUBLE) AS dwell,
                   CAST(category AS VARCHAR) AS category
            FROM arrow"""
        verb = "CREATE TABLE events AS" if file_index == 0 else "INSERT INTO events"
        try:
            con.execute(f"{verb} {select}")
        except duckdb.Error as error:
            raise InputFileError(path, f"cannot interpret the configured columns: {error}") from None

    has = {role: bool(col) for role, col in config.columns.items()}
    needs_timestamp = has["timestamp"]
    con.execute(f"""
        CREATE TABLE checked AS
        SELECT e.*, m.activity,
          CASE
            WHEN sku IS NULL OR sku = '' THEN 'missing_item'
            WHEN e.event_type IS NULL THEN 'missing_event_type'
            WHEN e.event_type IN (SELECT event_type FROM excluded) THEN 'excluded_event_type'
            WHEN m.activity IS NULL THEN 'unmapped_event_type'
            WHEN {has["session"]} AND session_raw IS NULL THEN 'missing_session'
            WHEN NOT {has["session"]} AND user_id IS NULL THEN 'missing_user'
            WHEN {needs_timestamp} AND timestamp_raw IS NULL THEN 'missing_timestamp'
            WHEN {needs_timestamp} AND ts IS NULL THEN 'bad_timestamp'
            WHEN {has["dwell"]} AND dwell_raw IS NULL THEN 'missing_dwell'
            WHEN {has["dwell"]} AND dwell IS NULL THEN 'non_numeric_field'
            WHEN {has["dwell"]} AND dwell < 0 THEN 'negative_dwell'
          END AS reason
        FROM events e LEFT JOIN mapping m USING (event_type)
    """)

    con.execute("CREATE TABLE files (file_index INTEGER, source_file VARCHAR)")
    con.executemany("INSERT INTO files VALUES (?, ?)", [(i, str(p)) for i, p in enumerate(paths)])
    con.execute(f"""
        COPY (
          SELECT source_file, _line AS line_number, NULL::INTEGER AS token_index,
                 reason,
                 CASE reason
                   WHEN 'unmapped_event_type' THEN 'event type ' || event_type || ' is not in activity_map'
                   WHEN 'excluded_event_type' THEN 'event type ' || event_type || ' is excluded by the config'
                   WHEN 'bad_timestamp' THEN 'cannot parse timestamp ' || timestamp_raw
                   WHEN 'negative_dwell' THEN 'dwell=' || dwell_raw
                   WHEN 'non_numeric_field' THEN 'dwell=' || dwell_raw
                   ELSE reason END AS detail,
                 concat_ws(',', user_id, session_raw, timestamp_raw, sku, event_type, dwell_raw, category) AS raw
          FROM checked JOIN files USING (file_index) WHERE reason IS NOT NULL ORDER BY file_index, _line
        ) TO ? (FORMAT parquet, COMPRESSION zstd)
    """,
        [str(quarantine_path)],
    )

    gap_seconds = config.session_gap_minutes * 60
    session_sql = (
        "session_raw"
        if has["session"]
        else f"""user_id || '#' || sum(CASE WHEN prev_ts IS NULL OR epoch(ts) - epoch(prev_ts) > {gap_seconds}
                                        THEN 1 ELSE 0 END) OVER (PARTITION BY user_id ORDER BY ts, file_index, _line)"""
    )
    dwell_sql = (
        "dwell"
        if has["dwell"]
        else """CASE WHEN next_visit_ts IS NOT NULL THEN epoch(next_visit_ts) - epoch(visit_start_ts)
                     ELSE epoch(visit_end_ts) - epoch(visit_start_ts) END"""
    )
    con.execute(f"""
        COPY (
          WITH kept AS (
            SELECT *, lag(ts) OVER (PARTITION BY user_id ORDER BY ts, file_index, _line) AS prev_ts
            FROM checked WHERE reason IS NULL
          ), sessioned AS (
            SELECT *, {session_sql} AS session_id FROM kept
          ), ordered AS (
            SELECT *, row_number() OVER w - 1 AS position,
                   CASE WHEN lag(sku) OVER w IS DISTINCT FROM sku THEN 1 ELSE 0 END AS visit_starts
            FROM sessioned WINDOW w AS (PARTITION BY session_id ORDER BY ts, file_index, _line)
          ), visits AS (
            SELECT *, sum(visit_starts) OVER (PARTITION BY session_id ORDER BY position) AS visit
            FROM ordered
          ), visit_times AS (
            SELECT session_id, visit, min(ts) AS visit_start_ts, max(ts) AS visit_end_ts
            FROM visits GROUP BY ALL
          ), visit_next AS (
            SELECT *, lead(visit_start_ts) OVER (PARTITION BY session_id ORDER BY visit) AS next_visit_ts
            FROM visit_times
          )
          SELECT v.session_id, v.user_id, v.position::INTEGER AS position, v.sku, v.category,
                 v.activity::TINYINT AS activity, ({dwell_sql})::DOUBLE AS dwell_seconds,
                 (epoch(lead(v.ts) OVER (PARTITION BY v.session_id ORDER BY v.position)) - epoch(v.ts))::DOUBLE
                     AS time_interval_seconds,
                 v.ts::TIMESTAMPTZ AS timestamp
          FROM visits v JOIN visit_next n USING (session_id, visit)
          ORDER BY v.session_id, v.position
        ) TO ? (FORMAT parquet, COMPRESSION zstd)
    """,
        [str(table_path)],
    )

    report = IngestReport(format="events", inputs=[str(p) for p in paths])
    per_file = con.sql("""
        SELECT file_index, count(*) AS n_read, count(*) FILTER (reason IS NULL) AS n_kept
        FROM checked GROUP BY file_index ORDER BY file_index
    """).fetchall()
    for file_index, n_read, n_kept in per_file:
        report.per_file[str(paths[file_index])] = {"read": n_read, "kept": n_kept, "quarantined": n_read - n_kept}
        report.read += n_read
        report.kept += n_kept
    report.quarantined = report.read - report.kept
    reasons = con.sql("SELECT reason, count(*) FROM checked WHERE reason IS NOT NULL GROUP BY reason").fetchall()
    report.reasons = dict(sorted(Counter(dict(reasons)).items()))
    report.sessions = con.sql(
        "SELECT count(DISTINCT session_id) FROM read_parquet($path)", params={"path": str(table_path)}
    ).fetchall()[0][0]
    con.close()
    if report.kept == 0:
        raise InputFileError(paths[0], f"no usable event in the input; quarantine reasons: {report.reasons}")
    return report
