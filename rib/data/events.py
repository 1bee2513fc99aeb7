"""Generic event logs (CSV, Parquet, JSON lines) described by a small YAML config.

DuckDB reads every file itself, in bounded memory (a DuckDB file in the staging folder, spilling
to disk past `memory_limit`), and writes the canonical table in row groups. Rules, in the order
they are applied (see docs/sources.md):

1. Parsing: a line the CSV parser cannot read (cut off, a column too many or too few, a quote left
   open, bytes that are not UTF-8, a line over the size limit) or a JSON line that is not an
   object goes to the quarantine (`unparsable_line`, `unparsable_json`) with its file, line
   number and text, and so does a blank line (`blank_line`); the rest of the file is read.
2. Rows are validated; each bad row goes to the quarantine with a reason: missing_item,
   missing_event_type, excluded_event_type (listed in the config), unmapped_event_type,
   missing_session, missing_user, missing_timestamp, bad_timestamp, missing_dwell,
   non_numeric_field, negative_dwell. A log without an event type (a view-only click log)
   maps every event to `default_activity`.
3. Sessions: the session column when configured; otherwise a user's events ordered by time
   are cut where the gap between two events exceeds `session_gap_minutes`.
4. Order within a session: timestamp, then file, then line.
5. Dwell, when the log has none: consecutive events on one item form a visit (a macro
   interaction); its dwell is the time from its first event to the first event of the
   session's next visit (on another item). The session's last visit has no next event, so
   its dwell is the time from its first to its last event (0 for a single event): the part
   of the visit that was observed. All events of a visit share its dwell, as in JD's logs.
6. Time interval: seconds to the next event of the session, null for the last.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rib.data.report import IngestReport
from rib.errors import InputFileError, check_input_file
from rib.io import connect_duckdb, sql_text

COLUMN_ROLES = ("user", "session", "timestamp", "item", "event_type", "dwell", "category")
TIMESTAMP_FORMATS = ("auto", "unix_s", "unix_ms")
CONFIG_KEYS = {
    "format",
    "csv",
    "columns",
    "timestamp_format",
    "session_gap_minutes",
    "activity_map",
    "excluded_event_types",
    "default_activity",
}
CSV_KEYS = {"header", "delimiter", "column_names", "quote"}
MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is quarantined, not read


@dataclass
class EventsConfig:
    columns: dict[str, str | None]
    activity_map: dict[str, int]
    file_format: str | None = None  # csv | parquet | jsonl; None: from the file extension
    excluded_event_types: list[str] = field(default_factory=list)
    default_activity: int | None = None  # the activity of every event of a log without an event type
    session_gap_minutes: float = 30.0
    timestamp_format: str = "auto"
    csv_header: bool = True
    csv_delimiter: str = ","
    csv_quote: str = '"'  # "" for logs that never quote: an open quote then costs one line, not the rest
    csv_column_names: list[str] | None = None
    source: str = "<config>"

    @classmethod
    def load(cls, path: str | Path) -> EventsConfig:
        path = check_input_file(path, text=True)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise InputFileError(path, f"not valid YAML ({error})") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputFileError(path, f"an events config is a mapping of settings, got {type(raw).__name__}")
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<config>") -> EventsConfig:
        def fail(problem: str):
            raise InputFileError(source, problem)

        unknown = set(raw) - CONFIG_KEYS
        if unknown:
            fail(f"unknown settings {sorted(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}")
        csv = raw.get("csv") or {}
        if not isinstance(csv, dict) or set(csv) - CSV_KEYS:
            fail(f"csv takes the settings {sorted(CSV_KEYS)}, got {csv!r}")
        columns = raw.get("columns") or {}
        if not isinstance(columns, dict):
            fail(f"columns maps roles to column names, got {columns!r}")
        unknown = set(columns) - set(COLUMN_ROLES)
        if unknown:
            fail(f"unknown column roles {sorted(unknown)}; known: {', '.join(COLUMN_ROLES)}")
        columns = {role: columns.get(role) for role in COLUMN_ROLES}
        if not columns["item"]:
            fail("columns.item is required")
        default_activity = raw.get("default_activity")
        if not columns["event_type"] and default_activity is None:
            fail("needs columns.event_type, or default_activity (1..10) for a log with one kind of event")
        if default_activity is not None and (
            isinstance(default_activity, bool) or default_activity not in range(1, 11)
        ):
            fail(f"default_activity must be an activity code 1..10, got {default_activity!r}")
        if not columns["session"] and not columns["user"]:
            fail("needs columns.session, or columns.user to cut sessions by inactivity gap")
        if not columns["timestamp"] and not (columns["session"] and columns["dwell"]):
            fail("needs columns.timestamp (to order events, cut sessions and derive dwell)")
        activity_map = {str(k): v for k, v in (raw.get("activity_map") or {}).items()}
        if not activity_map and columns["event_type"]:
            fail("activity_map is empty: map each event type onto an activity code 1..10")
        bad_codes = {k: v for k, v in activity_map.items() if isinstance(v, bool) or v not in range(1, 11)}
        if bad_codes:
            fail(f"activity_map codes must be in 1..10, got {bad_codes}")
        timestamp_format = raw.get("timestamp_format", "auto")
        if timestamp_format not in TIMESTAMP_FORMATS:
            fail(f"timestamp_format must be one of {TIMESTAMP_FORMATS}")
        return cls(
            columns=columns,
            activity_map=activity_map,
            file_format=raw.get("format"),
            excluded_event_types=[str(e) for e in raw.get("excluded_event_types") or []],
            default_activity=default_activity,
            session_gap_minutes=float(raw.get("session_gap_minutes", 30)),
            timestamp_format=timestamp_format,
            csv_header=bool(csv.get("header", True)),
            csv_delimiter=str(csv.get("delimiter", ",")),
            csv_quote=str(csv.get("quote", '"')),
            csv_column_names=csv.get("column_names"),
            source=source,
        )


def _file_format(path: Path, config: EventsConfig) -> str:
    if config.file_format:
        if config.file_format not in ("csv", "parquet", "jsonl"):
            raise InputFileError(config.source, f"format must be csv, parquet or jsonl, got {config.file_format!r}")
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


def _lines_sql(path: str) -> str:
    """Every physical line of a text file (`path`, a SQL literal) as one column (no quoting), numbered from 1."""
    return f"""SELECT row_number() OVER () AS line_number, line
               FROM read_csv({path}, header = false, delim = '\x1e', quote = '', escape = '',
                             auto_detect = false, columns = {{'line': 'VARCHAR'}}, ignore_errors = true,
                             max_line_size = {MAX_LINE_BYTES})"""


def _csv_names(path: Path, config: EventsConfig) -> list[str]:
    if config.csv_column_names:
        return [str(name) for name in config.csv_column_names]
    if not config.csv_header:
        raise InputFileError(config.source, "a CSV without a header needs csv.column_names")
    import gzip

    opener = gzip.open if "".join(path.suffixes).lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:  # the header alone, not a pass over the file
            header = handle.readline(MAX_LINE_BYTES).decode("utf-8").rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"the first line (the header) cannot be read: {error}") from None
    if not header.strip():
        raise InputFileError(path, "the first line (the header) is empty")
    return [name.strip().strip(config.csv_quote or '"') for name in header.split(config.csv_delimiter)]


@dataclass
class _FileScan:
    """How one file's records are read: as (file_index, ordinal, one VARCHAR column per role)."""

    index: int
    path: Path
    file_format: str
    first_line: int  # the physical line of record 1
    rows: str  # the records, for every read after the first
    first_rows: str  # the same records for the first read, which also keeps a CSV's unreadable lines


def _scan_file(con, file_index: int, path: Path, config: EventsConfig) -> _FileScan:
    """What reading one file takes (its format's reader, its columns checked against the config); a
    JSON-lines file's unreadable and blank lines go into `unreadable` here, and its objects into a
    table `json_lines_<file_index>`, so that every later read sees the same records."""
    file_format = _file_format(path, config)
    check_input_file(path, text=file_format != "parquet")
    roles = {role: column for role, column in config.columns.items() if column}
    literal = sql_text(str(path))
    rejects = ""
    if file_format == "parquet":
        try:
            names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal})").fetchall()]
        except Exception as error:  # duckdb raises several kinds for a file that is not Parquet
            raise InputFileError(path, f"not a readable Parquet file ({error})") from None
        _check_columns(path, roles, names)
        fields = ", ".join(f'CAST("{column}" AS VARCHAR) AS {role}' for role, column in roles.items())
        source = f"SELECT file_row_number + 1 AS ordinal, {fields} FROM read_parquet({literal}, file_row_number = true)"
        first_line = 1
    elif file_format == "jsonl":
        valid = "coalesce(json_valid(line), false) AND starts_with(ltrim(line), '{')"  # an object
        lines = f"SELECT * FROM ({_lines_sql(literal)}) WHERE line IS NOT NULL AND trim(line) != ''"
        con.execute(
            f"""INSERT INTO unreadable
                SELECT {file_index}, line_number, 'unparsable_json', 'not a JSON object', left(line, 1000)
                FROM ({lines}) WHERE NOT ({valid})"""
        )
        # The objects first, on their own: DuckDB may evaluate a projection before a filter.
        con.execute(f"CREATE OR REPLACE TABLE json_lines_{file_index} AS SELECT * FROM ({lines}) WHERE {valid}")
        con.execute(
            f"""INSERT INTO unreadable SELECT {file_index}, line_number, 'blank_line', 'an empty line', ''
                FROM ({_lines_sql(literal)}) WHERE line IS NULL OR trim(line) = ''"""
        )
        fields = ", ".join(f"line ->> {sql_text('$.' + column)} AS {role}" for role, column in roles.items())
        source = f"SELECT line_number AS ordinal, {fields} FROM json_lines_{file_index}"
        first_line = 1
    else:
        names = _csv_names(path, config)
        _check_columns(path, roles, names)
        if len(set(names)) != len(names):
            raise InputFileError(path, f"the header repeats a column name: {names}")
        columns = "{" + ", ".join(f"{sql_text(name)}: 'VARCHAR'" for name in names) + "}"
        first_line = 2 if config.csv_header and not config.csv_column_names else 1
        skip = 1 if config.csv_header and config.csv_column_names else 0
        fields = ", ".join(f'"{column}" AS {role}' for role, column in roles.items())
        quote = sql_text(config.csv_quote)
        # The first read keeps the lines the parser rejects; a later read skips the same lines.
        rejects = f", store_rejects = true, rejects_table = 'rejects_{file_index}'"
        rejects += f", rejects_scan = 'rejects_{file_index}_scan'"
        source = f"""SELECT row_number() OVER () AS ordinal, {fields}
                     FROM read_csv({literal}, header = {str(config.csv_header and not config.csv_column_names).lower()},
                                   skip = {skip}, delim = {sql_text(config.csv_delimiter)}, quote = {quote},
                                   escape = {quote}, auto_detect = false, columns = {columns},
                                   max_line_size = {MAX_LINE_BYTES}, strict_mode = true, ignore_errors = true
                                   <rejects>)"""
    role_columns = ", ".join(role if role in roles else f"NULL::VARCHAR AS {role}" for role in COLUMN_ROLES)
    rows = f"SELECT {file_index} AS file_index, ordinal, {role_columns} FROM ({source})"
    return _FileScan(
        file_index, path, file_format, first_line, rows.replace("<rejects>", ""), rows.replace("<rejects>", rejects)
    )


def _tally_file(con, scan: _FileScan, config: EventsConfig) -> list[tuple]:
    """Read one file through the checks: its (file_index, reason, count) rows, reason None for the
    kept records; a CSV's unreadable and blank lines into `unreadable` and what turns its records'
    ordinals into physical lines into `line_offsets`."""
    try:
        counts = con.sql(f"SELECT file_index, reason, count(*) FROM ({_checks(config, scan.first_rows)}) GROUP BY ALL")
        counts = counts.fetchall()
    except Exception as error:
        raise InputFileError(scan.path, f"cannot be read as {scan.file_format}: {error}") from None
    if scan.file_format == "csv":
        _record_csv_skips(con, scan.index, scan.path, f"rejects_{scan.index}", scan.first_line)
    return counts


def _checks(config: EventsConfig, rows: str) -> str:
    """The SELECT of `rows` (file_index, ordinal, one VARCHAR column per role) typed and checked:
    each row's first failed rule as `reason` (NULL: kept); the raw texts the quarantine shows are
    kept only for the quarantined rows."""
    has = {role: bool(column) for role, column in config.columns.items()}
    event_type = "event_type" if has["event_type"] else "'<default>'"
    return f"""
        SELECT file_index, ordinal, user_id, session_raw, sku, category, activity, ts, dwell, reason,
               CASE WHEN reason IS NOT NULL THEN timestamp_raw END AS timestamp_raw,
               CASE WHEN reason IS NOT NULL THEN event_type END AS event_type,
               CASE WHEN reason IS NOT NULL THEN dwell_raw END AS dwell_raw
        FROM (
          SELECT e.*, m.activity,
            CASE
              WHEN sku IS NULL OR sku = '' THEN 'missing_item'
              WHEN e.event_type IS NULL THEN 'missing_event_type'
              WHEN e.event_type IN (SELECT event_type FROM excluded) THEN 'excluded_event_type'
              WHEN m.activity IS NULL THEN 'unmapped_event_type'
              WHEN {has["session"]} AND session_raw IS NULL THEN 'missing_session'
              WHEN NOT {has["session"]} AND user_id IS NULL THEN 'missing_user'
              WHEN {has["timestamp"]} AND timestamp_raw IS NULL THEN 'missing_timestamp'
              WHEN {has["timestamp"]} AND ts IS NULL THEN 'bad_timestamp'
              WHEN {has["dwell"]} AND dwell_raw IS NULL THEN 'missing_dwell'
              WHEN {has["dwell"]} AND dwell IS NULL THEN 'non_numeric_field'
              WHEN {has["dwell"]} AND NOT isfinite(dwell) THEN 'non_finite_dwell'
              WHEN {has["dwell"]} AND dwell < 0 THEN 'negative_dwell'
            END AS reason
          FROM (
            SELECT file_index, ordinal, user AS user_id, session AS session_raw, timestamp AS timestamp_raw,
                   {_timestamp_sql(config)} AS ts, item AS sku, {event_type} AS event_type,
                   dwell AS dwell_raw, TRY_CAST(dwell AS DOUBLE) AS dwell, category
            FROM ({rows})
          ) e LEFT JOIN mapping m USING (event_type)
        )"""


def _record_csv_skips(con, file_index: int, path: Path, rejects: str, first_line: int) -> None:
    """Put the lines the CSV scan left out (unreadable ones from DuckDB's rejects table, blank ones)
    into `unreadable`, and `skip_offsets` for numbering the kept records by their physical line:
    kept record k sits on line k + (first data line - 1) + the number of lines skipped before it."""
    con.execute(
        f"""INSERT INTO unreadable
            SELECT {file_index}, line, 'unparsable_line',
                   arg_min(lower(error_type::VARCHAR) || ': ' || error_message, coalesce(column_idx, 0)),
                   left(arg_min(csv_line, coalesce(column_idx, 0)), 1000)
            FROM {rejects} GROUP BY line"""  # DuckDB lists one error per bad column: one row per line
    )
    if has_empty_line(path):  # the parser skips empty lines silently (a line of blanks it rejects)
        con.execute(
            f"""INSERT INTO unreadable
                SELECT {file_index}, line_number, 'blank_line', 'an empty line', ''
                FROM ({_lines_sql(sql_text(str(path)))})
                WHERE line_number >= {first_line} AND (line IS NULL OR line IN ('', '\r'))"""
        )
    con.execute(  # lines skipped one after another share kept_before: keep the largest count
        f"""INSERT INTO line_offsets
            SELECT {file_index}, {first_line - 1}, kept_before, max(skipped_before) AS skipped_before FROM (
                SELECT line_number - {first_line} - (row_number() OVER (ORDER BY line_number) - 1) AS kept_before,
                       row_number() OVER (ORDER BY line_number) AS skipped_before
                FROM (SELECT DISTINCT line_number FROM unreadable WHERE file_index = {file_index})
            ) GROUP BY kept_before"""
    )


def has_empty_line(path: Path, chunk: int = 1 << 24) -> bool:
    """Whether a text file has an empty line (a byte scan, far cheaper than parsing; a compressed
    file is assumed to have one: the slow, exact pass then finds them). Read in chunks, not mapped:
    a mapped 3 GB file counts 3 GB in the process's resident memory once scanned."""
    if "".join(path.suffixes).lower().endswith(".gz"):
        return True
    with open(path, "rb") as handle:
        tail = b"\n"  # the file's start counts as a line start
        while block := handle.read(chunk):
            data = tail + block
            # b"\r" in data is a memchr: a file without CR skips the second search (half the time)
            if data.find(b"\n\n") >= 0 or (b"\r" in data and data.find(b"\n\r\n") >= 0):
                return True
            tail = data[-2:]
    return False


def _check_columns(path: Path, roles: dict[str, str], names: list[str]) -> None:
    missing = [column for column in roles.values() if column not in names]
    if missing:
        raise InputFileError(path, f"required column(s) {missing} absent; the file has {names}")


def _timestamp_sql(config: EventsConfig) -> str:
    """The event time; NULL (quarantined as bad_timestamp) when it does not parse, is NaN or infinite,
    or lies past what a timestamp holds (|seconds| >= 1e11, about the year 5000)."""
    if config.timestamp_format in ("unix_s", "unix_ms"):
        seconds = "TRY_CAST(timestamp AS DOUBLE)" + (" / 1000" if config.timestamp_format == "unix_ms" else "")
        return f"CASE WHEN isfinite({seconds}) AND abs({seconds}) < 1e11 THEN to_timestamp({seconds}) END"
    return "TRY_CAST(timestamp AS TIMESTAMPTZ)"


def read_events(
    inputs: list, config: EventsConfig, table_path: Path, quarantine_path: Path, memory_limit: str | None = None
) -> IngestReport:
    """Read the event logs into the canonical table (`table_path`) and the quarantine, never storing a
    file whole. Each file is read once into the canonical table's sorts. A CSV file is also scanned
    as bytes beside it (its lines counted, no parse): when the table holds a row for every line but
    the header, every record was read and kept, and nothing else is read (at 100M rows the counting
    read cost 13-28 s of the ingest beside the copy). Otherwise, and for the other formats (beside
    the copy), each file is read once more through the checks for the counts and, only when rows
    fail a check, once more for those rows."""
    paths = [Path(p) for p in inputs]
    # In the staging folder, spilling to disk past the memory limit.
    con = connect_duckdb(
        table_path.parent / "events.duckdb", spill=table_path.parent / "spill", memory_limit=memory_limit
    )
    con.execute("SET GLOBAL TimeZone = 'UTC'")  # global: the canonical table's cursor too
    con.execute("SET GLOBAL preserve_insertion_order = true")  # row_number() OVER () follows the file
    con.execute("CREATE TABLE mapping (event_type VARCHAR, activity TINYINT)")
    if config.activity_map:
        con.executemany("INSERT INTO mapping VALUES (?, ?)", list(config.activity_map.items()))
    if not config.columns["event_type"]:  # a view-only log: every event is the default activity
        con.execute("INSERT INTO mapping VALUES ('<default>', ?)", [config.default_activity])
    con.execute("CREATE TABLE excluded (event_type VARCHAR)")
    if config.excluded_event_types:
        con.executemany("INSERT INTO excluded VALUES (?)", [(e,) for e in config.excluded_event_types])
    con.execute(
        "CREATE TABLE unreadable (file_index INTEGER, line_number BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR)"
    )
    # record `ordinal` of a file sits on line ordinal + offset + the lines skipped before it
    con.execute(
        "CREATE TABLE line_offsets (file_index INTEGER, offset_ INTEGER, kept_before BIGINT, skipped_before BIGINT)"
    )
    scans = [_scan_file(con, file_index, path, config) for file_index, path in enumerate(paths)]
    # Every file's checked records as a view: each query over it reads the files again. Storing them
    # instead (a temporary table) cost a third of the ingest at 100M rows, spilling past the memory limit.
    # Not a temporary view: the canonical table is written on a cursor of its own, which sees the
    # database's views, not this connection's temporary ones.
    con.execute("CREATE VIEW checked AS " + " UNION ALL ".join(_checks(config, scan.rows) for scan in scans))
    canonical = con.cursor()
    writing = ThreadPoolExecutor(1, thread_name_prefix="rib-canonical")
    written = writing.submit(
        canonical.execute,
        f"COPY ({_canonical_sql(config)}) TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)",
        [str(table_path)],
    )
    try:
        for scan in scans:  # record 1 of a file sits on its first line
            con.execute("INSERT INTO line_offsets VALUES (?, ?, -1, 0)", [scan.index, scan.first_line - 1])
        lines = _csv_records(scans, config)  # beside the copy; None: not plain CSV files
        # written.exception() waits for the copy
        if lines is not None and written.exception() is None and _rows(con, table_path) == sum(lines):
            counts = [(scan.index, None, n) for scan, n in zip(scans, lines, strict=True)]  # every line kept
        else:  # the counts, and a file's error before the copy's
            counts = [row for scan in scans for row in _tally_file(con, scan, config)]
        failed = any(reason is not None for _, reason, _ in counts)
        limit = "" if failed else "LIMIT 0"  # a clean log: no third read
        con.execute(f"CREATE TEMP TABLE failed AS SELECT * FROM checked WHERE reason IS NOT NULL {limit}")
        con.execute("CREATE TABLE files (file_index INTEGER, source_file VARCHAR)")
        con.executemany("INSERT INTO files VALUES (?, ?)", [(i, str(p)) for i, p in enumerate(paths)])
        _write_quarantine(con, quarantine_path)
    except BaseException:
        canonical.interrupt()  # the file's error, not the interrupted copy's, is the one to report
        raise
    finally:
        writing.shutdown(wait=True)
        canonical.close()
    if error := written.exception():  # duckdb raises several kinds; a damaged page may fail this read alone
        named = ", ".join(str(path) for path in paths if str(path) in str(error)) or ", ".join(map(str, paths))
        raise InputFileError(named, f"cannot be read into the canonical table: {error}") from None
    counts += con.sql("SELECT file_index, reason, count(*) FROM unreadable GROUP BY ALL").fetchall()
    sessions = con.sql(  # each session's first micro-behavior
        "SELECT count(*) FROM read_parquet($path) WHERE position = 0", params={"path": str(table_path)}
    ).fetchall()[0][0]
    con.close()
    return events_report(paths, counts, sessions)


def _rows(con, table_path: Path) -> int:
    """The rows of a Parquet file (from its footer)."""
    return con.execute("SELECT count(*) FROM read_parquet(?)", [str(table_path)]).fetchall()[0][0]


def _csv_records(scans: list[_FileScan], config: EventsConfig, chunk: int = 1 << 24) -> list[int] | None:
    """Each CSV file's lines but its header, counted as bytes (at 3.3 GB: 2-3 s), which is the
    number of its records when every line holds one; None where a file is not plain CSV or ends its
    lines with a lone CR (a line break the count would miss). Fewer rows than this in the canonical
    table means a line was unreadable, blank, quarantined or part of a quoted multi-line record."""
    records = []
    for scan in scans:
        if scan.file_format != "csv" or "".join(scan.path.suffixes).lower().endswith(".gz"):
            return None
        lines, crs, crlfs, last = 0, 0, 0, b"\n"
        buffer = bytearray(chunk)
        with open(scan.path, "rb") as handle:
            while read := handle.readinto(buffer):
                lines += buffer.count(b"\n", 0, read)
                if buffer.find(b"\r", 0, read) >= 0:  # CRLF is one line break; a lone CR is one too
                    crs += buffer.count(b"\r", 0, read)
                    crlfs += buffer.count(b"\r\n", 0, read)
                crlfs += last == b"\r" and buffer[0:1] == b"\n"
                last = bytes(buffer[read - 1 : read])
        if crs != crlfs:
            return None
        lines += last != b"\n"  # a last line without its line break
        records.append(lines - (1 if config.csv_header else 0))
    return records


def events_report(paths: list[Path], counts: list[tuple], sessions: int) -> IngestReport:
    """The report of an event-log ingest (either engine) from its (file_index, reason, count) rows,
    reason None for kept rows; every file appears, one with nothing readable in it too."""
    report = IngestReport(format="events", inputs=[str(p) for p in paths], sessions=sessions)
    reasons: Counter = Counter()
    for file_index, path in enumerate(paths):
        read = sum(n for i, _, n in counts if i == file_index)
        kept = sum(n for i, reason, n in counts if i == file_index and reason is None)
        report.per_file[str(path)] = {"read": read, "kept": kept, "quarantined": read - kept}
        report.read += read
        report.kept += kept
    for _, reason, n in counts:
        if reason is not None:
            reasons[reason] += n
    report.quarantined = report.read - report.kept
    report.reasons = dict(sorted(reasons.items()))
    if report.kept == 0:
        raise InputFileError(paths[0], f"no usable event in the input; quarantine reasons: {report.reasons}")
    return report


def _write_quarantine(con, quarantine_path: Path) -> None:
    """Every quarantined row and unreadable line, with its file, physical line and reason."""
    con.execute(
        """
        COPY (
          SELECT source_file, c.ordinal + k.offset_ + k.skipped_before AS line_number, NULL::INTEGER AS token_index,
                 reason,
                 CASE reason
                   WHEN 'unmapped_event_type' THEN 'event type ' || event_type || ' is not in activity_map'
                   WHEN 'excluded_event_type' THEN 'event type ' || event_type || ' is excluded by the config'
                   WHEN 'bad_timestamp' THEN 'cannot parse timestamp ' || timestamp_raw
                   WHEN 'negative_dwell' THEN 'dwell=' || dwell_raw
                   WHEN 'non_finite_dwell' THEN 'dwell=' || dwell_raw
                   WHEN 'non_numeric_field' THEN 'dwell=' || dwell_raw
                   ELSE reason END AS detail,
                 concat_ws(',', user_id, session_raw, timestamp_raw, sku, event_type, dwell_raw, category) AS raw
          FROM failed c
          ASOF JOIN line_offsets k ON c.file_index = k.file_index AND c.ordinal > k.kept_before
          JOIN files f ON f.file_index = c.file_index
          UNION ALL
          SELECT source_file, line_number, NULL::INTEGER, reason, detail, raw
          FROM unreadable JOIN files USING (file_index)
          ORDER BY source_file, line_number
        ) TO ? (FORMAT parquet, COMPRESSION zstd)
    """,
        [str(quarantine_path)],
    )


def _canonical_sql(config: EventsConfig) -> str:
    """The kept rows as the canonical table, ordered by session and position, in two passes over
    each user's events in time order, then one sort by session. The first pass reads each event's
    neighbours (so each event knows whether it starts or ends its session and its visit); the second
    carries running values forward (session number, position, the visit's first time) and one value
    back from the visit's last event (the visit's end). No per-session sort, no join."""
    has = {role: bool(column) for role, column in config.columns.items()}
    part = "session_raw" if has["session"] else "user_id"
    gap = config.session_gap_minutes * 60
    if has["session"]:
        new_session, last_in_session = "row_in_part = 1", "NOT has_next"
    else:
        new_session = f"(prev_ts IS NULL OR epoch(ts) - epoch(prev_ts) > {gap})"
        last_in_session = f"(NOT has_next OR epoch(next_ts) - epoch(ts) > {gap})"
    session_id = "session_raw" if has["session"] else "user_id || '#' || session_number"
    # Dwell, when the log has none: from a visit's first event to the first event of the session's
    # next visit; for the session's last visit, to its last event (the end of the session). Times
    # never fall along a user's events, so the visit's first time is the running maximum of visit
    # starts, and its end the smallest end still ahead.
    dwell = "dwell" if has["dwell"] else "epoch(visit_end_ts) - epoch(visit_start_ts)"
    columns = ", ".join(
        ["user_id", "sku", "category", "activity", "ts"]
        + (["session_raw"] if has["session"] else [])
        + (["dwell"] if has["dwell"] else [])
    )
    return f"""
      WITH first_pass AS (  -- only the columns the table needs travel through the sorts
        SELECT {columns}, lag(ts) OVER w AS prev_ts, lag(sku) OVER w AS prev_sku,
               lead(ts) OVER w AS next_ts, lead(sku) OVER w AS next_sku,
               lead(true, 1, false) OVER w AS has_next, row_number() OVER w AS row_in_part
        FROM checked WHERE reason IS NULL
        WINDOW w AS (PARTITION BY {part} ORDER BY ts, file_index, ordinal)
      ), sessions AS (
        SELECT *, {new_session} AS new_session, {last_in_session} AS last_in_session FROM first_pass
      ), visits AS (
        SELECT *, new_session OR prev_sku IS DISTINCT FROM sku AS new_visit,
               last_in_session OR next_sku IS DISTINCT FROM sku AS last_in_visit
        FROM sessions
      ), second_pass AS (
        SELECT *,
          sum(new_session::INTEGER) OVER upto AS session_number,
          row_in_part - max(CASE WHEN new_session THEN row_in_part END) OVER upto AS position,
          max(CASE WHEN new_visit THEN ts END) OVER upto AS visit_start_ts,
          min(CASE WHEN last_in_visit THEN (CASE WHEN last_in_session THEN ts ELSE next_ts END) END) OVER ahead
            AS visit_end_ts
        FROM visits
        WINDOW w AS (PARTITION BY {part} ORDER BY row_in_part),  -- the first pass's order, as one integer
               upto AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
               ahead AS (w ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
      )
      SELECT {session_id} AS session_id, user_id, position::INTEGER AS position, sku, category,
             activity::TINYINT AS activity, ({dwell})::DOUBLE AS dwell_seconds,
             (CASE WHEN NOT last_in_session THEN epoch(next_ts) - epoch(ts) END)::DOUBLE AS time_interval_seconds,
             ts::TIMESTAMPTZ AS timestamp
      FROM second_pass
      ORDER BY session_id, position"""
