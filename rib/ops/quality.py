"""Data quality gates with Great Expectations 1.x, on GX's SQL datasource over DuckDB.

Suites are versioned JSON in `expectations/` (GX's own suite format). Each expectation has a
severity: a failed `critical` one fails the gate (the Dagster check blocks everything
downstream), a failed `warning` one is reported. Nothing is pulled into pandas: GX computes every
expectation as SQL queries on a DuckDB file under `<artifacts>/quality/`, which holds the columns
the suites derive (computed in SQL, spilling to disk past the memory limit) beside a view of the
canonical Parquet table, so the table itself is not copied. Every validation rebuilds the Data Docs (HTML, offline:
unstyled without the CDN stylesheet) under `<artifacts>/quality/gx/`.

DuckDB 2 results cannot be read once their connection has gone back to SQLAlchemy's pool, which
is how GX reads them; the `duckdb+buffered` dialect below (duckdb_engine's, reading each result
whole before the connection goes back) is the one change that makes GX's SQL path work on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rib.io import (
    DUCKDB_MEMORY_LIMIT,
    OUT_OF_SESSION_ORDER,
    SESSION_ORDERED_ROWS,
    connect_duckdb,
    parquet_source,
    session_range_rows,
)

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
RAW_DB, FEATURES_DB = "raw_quality.duckdb", "features_quality.duckdb"  # one DuckDB file per validated step
SAMPLES_OF_UNEXPECTED = 20  # unexpected values the Data Docs show per failed expectation


def _buffered_dialect():
    """duckdb_engine's dialect with every result read whole at execution (see the module docstring)."""
    import duckdb_engine
    from sqlalchemy.dialects import registry
    from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy

    class BufferedContext(duckdb_engine.Dialect.execution_ctx_cls):
        def post_exec(self) -> None:
            super().post_exec()
            if self.cursor.description is not None:
                self.cursor_fetch_strategy = FullyBufferedCursorFetchStrategy(self.cursor, self.cursor.description)

    class BufferedDialect(duckdb_engine.Dialect):
        execution_ctx_cls = BufferedContext
        supports_statement_cache = False

        def get_columns(self, connection, table_name, schema=None, **kw):
            """Columns from DuckDB's own catalogue (duckdb_engine's Postgres-catalogue query fails on
            DuckDB 2), typed with SQLAlchemy's standard types, so GX can compare column types."""
            rows = connection.exec_driver_sql(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE table_name = '{table_name}' ORDER BY ordinal_position"
            ).fetchall()
            return [
                {"name": n, "type": _sql_type(t), "nullable": nullable == "YES", "default": None}
                for n, t, nullable in rows
            ]

    registry.impls["duckdb.buffered"] = lambda: BufferedDialect
    return BufferedDialect


def _sql_type(duckdb_type: str):
    import sqlalchemy as sa

    types = {
        "TINYINT": sa.SMALLINT,
        "SMALLINT": sa.SMALLINT,
        "INTEGER": sa.INTEGER,
        "BIGINT": sa.BIGINT,
        "HUGEINT": sa.NUMERIC,
        "FLOAT": sa.FLOAT,
        "DOUBLE": sa.DOUBLE,
        "VARCHAR": sa.VARCHAR,
        "BOOLEAN": sa.BOOLEAN,
        "DATE": sa.DATE,
    }
    if duckdb_type.startswith("TIMESTAMP"):
        return sa.TIMESTAMP(timezone="TIME ZONE" in duckdb_type)
    return types.get(duckdb_type.split("(")[0], sa.types.NullType)()


def _connect(root: Path, name: str):

    root.mkdir(parents=True, exist_ok=True)
    return connect_duckdb(root / name, spill=root / "spill")


def prepare_raw(micro_behaviors: str | Path, root: str | Path) -> Path:
    """View `raw_micro_behaviors` of root/raw_quality.duckdb: the canonical table plus the columns
    the raw suite derives from each row and its neighbours in its session.

    Derived, with the session order (session_id, position):
    - `alone_in_session`: its session has one micro-behavior (a session column mapped wrong makes
      most rows so);
    - `repeats_previous_row`: identical to the previous row of its session (duplicates);
    - `repeats_position`: the position of the previous row of its session, which makes
      (session_id, position) uniqueness a one-scan expectation.
    A canonical table written in session order (as the events ingest writes it) needs no sort: the
    view computes them in the file's order with streaming lag/lead, one run of whole sessions per
    DuckDB thread (rib.io.session_ranges; a streaming window runs on one thread, and the suite's
    one aggregate query reads the runs at once), so nothing is stored: at 100M rows the order
    check and the suite take 11 s, against 15 s with the flags stored as a table first (and 51 s
    for a window per session and a copy). A file out of that order is sorted and copied whole
    instead. Rows without a session_id are a run of their own (the suite fails them)."""
    for stale in (RAW_DB, RAW_DB + ".wal"):  # rebuilt whole: a dropped table would leave the file its size
        (Path(root) / stale).unlink(missing_ok=True)
    con = _connect(Path(root), RAW_DB)
    source = parquet_source(micro_behaviors)
    derived = """
        coalesce(session_id <> lag(session_id) OVER (), true)
            AND coalesce(session_id <> lead(session_id) OVER (), true) AS alone_in_session,
        coalesce(session_id = lag(session_id) OVER () AND sku = lag(sku) OVER ()
                 AND activity = lag(activity) OVER () AND dwell_seconds = lag(dwell_seconds) OVER ()
                 AND time_interval_seconds IS NOT DISTINCT FROM lag(time_interval_seconds) OVER ()
                 AND timestamp IS NOT DISTINCT FROM lag(timestamp) OVER (), false) AS repeats_previous_row,
        coalesce(session_id = lag(session_id) OVER () AND position = lag(position) OVER (), false)
            AS repeats_position"""
    # OVER () with lag/lead is DuckDB's streaming window: rows stay in the order they come in.
    ranges = session_range_rows(con, source)
    out_of_order = " UNION ALL ".join(f"SELECT {OUT_OF_SESSION_ORDER} AS out_of_order FROM ({rows})" for rows in ranges)
    if con.execute(f"SELECT bool_or(out_of_order) FROM ({out_of_order})").fetchone()[0]:  # reads 2 columns
        con.execute(f"CREATE TABLE raw_micro_behaviors AS SELECT *, {derived} FROM {SESSION_ORDERED_ROWS}", [source])
    else:
        con.execute(
            "CREATE VIEW raw_micro_behaviors AS "
            + " UNION ALL ".join(f"SELECT *, {derived} FROM ({rows})" for rows in ranges)
        )
    con.close()
    return Path(root) / RAW_DB


def prepare_features(features_dir: str | Path, root: str | Path) -> Path:
    """Tables `feature_sessions` (split, and the share of a validation or test session's targets
    seen in training) and `dwell_buckets` (each training bucket's share divided by 1/K) of
    root/features.duckdb."""
    import pyarrow as pa

    from rib.features.dataset import SplitData, load_vocab
    from rib.schema import OOV

    con = _connect(Path(root), FEATURES_DB)
    con.execute("ATTACH ? AS built (READ_ONLY)", [str(Path(features_dir) / "features.duckdb")])
    targets = []
    for split in ("validation", "test"):
        data = SplitData.load(features_dir, split)
        targets.append(
            pa.table(
                {
                    "split": pa.array([split] * data.n_examples),
                    "session_index": np.asarray(data.example_session),
                    "known": np.asarray(data.example_target) > OOV,
                }
            )
        )
    known = pa.concat_tables(targets)  # noqa: F841 (read by DuckDB by name)
    con.execute(
        """CREATE OR REPLACE TABLE feature_sessions AS
           SELECT s.session_id, s.split, k.target_known
           FROM built.sessions s LEFT JOIN (
               SELECT split, session_index, avg(known::INTEGER) AS target_known FROM known GROUP BY ALL
           ) k USING (split, session_index)"""
    )
    k = load_vocab(features_dir)["n_dwell_buckets"]
    counts = np.bincount(np.asarray(SplitData.load(features_dir, "train").dwell), minlength=k + 1)[1:]
    buckets = pa.table({"bucket": np.arange(1, k + 1), "share_vs_equal": counts / max(counts.sum(), 1) * k})  # noqa: F841
    con.execute("CREATE OR REPLACE TABLE dwell_buckets AS SELECT * FROM buckets")
    con.execute("DETACH built")
    con.close()
    return Path(root) / FEATURES_DB


def import_great_expectations():
    """great_expectations, imported whatever started this process.

    Importing it imports pyspark's Spark Connect modules (where pyspark is installed, as it is for
    the Spark engine), whose dependency check takes a `__main__` with neither a spec nor a file for a
    doctest run and calls sys.exit(0): that is the `__main__` of a Dagster step under
    `python -m dagster`, and of some notebooks and daemons. For the import only, such a `__main__`
    gets `__file__ = None` (what the check looks for), then is left as it was."""
    import sys

    main = sys.modules.get("__main__")
    bare = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if bare:
        main.__file__ = None
    try:
        import great_expectations
    finally:
        if bare:
            del main.__file__
    return great_expectations


def validate(database: Path, table: str, suite_name: str, root: str | Path) -> dict:
    """Validate the DuckDB table `table` of `database` against expectations/<suite_name>.json on
    GX's SQL datasource; build Data Docs under root/gx."""
    gx = import_great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = Path(root)
    _buffered_dialect()
    # The validation definition and checkpoint are rebuilt below on every run; one stored by an
    # earlier version may name a datasource that is gone, which GX cannot even load: drop them.
    for store in ("validation_definitions", "checkpoints"):
        (root / "gx" / store / f"{suite_name}.json").unlink(missing_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(**json.loads((EXPECTATIONS_DIR / f"{suite_name}.json").read_text()))
    )
    # GX opens its own connection: it gets the same memory limit (DuckDB's default is 80% of RAM).
    limits = {"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": str(root / "spill")}
    source = context.data_sources.add_or_update_sql(
        f"rib_{database.stem}",
        connection_string=f"duckdb+buffered:///{database.resolve()}",
        create_temp_table=False,
        kwargs={"connect_args": {"config": limits}},
    )
    asset = next((a for a in source.assets if a.name == suite_name), None) or source.add_table_asset(
        suite_name, table_name=table
    )
    batch = next((b for b in asset.batch_definitions if b.name == "whole"), None)
    batch = batch or asset.add_batch_definition_whole_table("whole")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
    )

    def run(samples: int):
        """One validation, with `samples` unexpected values per failed expectation for the Data Docs."""
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite_name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": samples},
            )
        )
        return checkpoint.run()

    # Without samples every expectation's counts come from one aggregate query; a sample of the
    # unexpected values is a query per expectation, which scans the whole table when there is none
    # (at 100M rows 13.3 s against 6.9 s). So the samples are fetched only when something failed.
    result = run(samples=0)
    if not result.success:
        result = run(samples=SAMPLES_OF_UNEXPECTED)
    engine = source.get_engine()
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
    engine.dispose()  # let go of the DuckDB file
    expectations = []
    for validation in result.run_results.values():
        for outcome in validation.results:
            config = outcome.expectation_config
            expectations.append(
                {
                    "type": config.type,
                    "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                    "severity": getattr(config.severity, "value", str(config.severity)),
                    "success": bool(outcome.success),
                    "unexpected_count": (outcome.result or {}).get("unexpected_count"),
                    "unexpected_percent": (outcome.result or {}).get("unexpected_percent"),
                    "observed_value": _plain((outcome.result or {}).get("observed_value")),
                    # a sample of the unexpected values, fetched only when something failed (above)
                    "unexpected_sample": _plain((outcome.result or {}).get("partial_unexpected_list")),
                }
            )
    failed = [e for e in expectations if not e["success"]]
    summary = {
        "suite": suite_name,
        "rows": rows,
        "evaluated": len(expectations),
        "passed": len(expectations) - len(failed),
        "failed": len(failed),
        "critical_failed": sum(e["severity"] == "critical" for e in failed),
        "warnings_failed": sum(e["severity"] != "critical" for e in failed),
        "expectations": expectations,
        "data_docs": str(root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"),
    }
    (root / f"{suite_name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
