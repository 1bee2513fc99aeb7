"""Writing files completely or not at all: staged folders, and Parquet in bounded-memory row groups;
DuckDB connections held to a memory limit; the Spark session of either Spark step (ingest, features)."""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from rib.config import FeatureConfig

DUCKDB_MEMORY_LIMIT = "4GB"  # DuckDB's default is 80% of the machine: a 100M-row ingest then took 19.6 GB


def connect_duckdb(database: str | Path = ":memory:", spill: str | Path | None = None, memory_limit: str | None = None):
    """A DuckDB connection that stays within `memory_limit` (spilling to `spill` past it)."""
    import duckdb

    con = duckdb.connect(str(database))
    con.execute("SET memory_limit = ?", [memory_limit or DUCKDB_MEMORY_LIMIT])
    if spill is not None:
        con.execute("SET temp_directory = ?", [str(spill)])
    return con


def parquet_source(path: str | Path) -> str:
    """What DuckDB's read_parquet reads for a table written as one file (DuckDB) or as a folder of
    part files (Spark, e.g. the canonical table of `data.engine: spark`)."""
    path = Path(path)
    return str(path / "*.parquet") if path.is_dir() else str(path)


# The canonical table in session order, read as it comes (streaming lag/lead over OVER () keep that
# order): what the quality's derived columns and the features' macro interactions need from a
# row's neighbours. OUT_OF_SESSION_ORDER marks a row that comes before the one read before it; a
# table with such rows is read through SESSION_ORDERED_ROWS (a sort) instead.
OUT_OF_SESSION_ORDER = """coalesce(session_id < lag(session_id) OVER ()
    OR (session_id = lag(session_id) OVER () AND position < lag(position) OVER ()), false)"""
SESSION_ORDERED_ROWS = "(SELECT * FROM read_parquet(?) ORDER BY session_id, position)"


def sql_text(value: str) -> str:
    """A string as a SQL literal (a view's definition cannot hold parameters)."""
    return "'" + value.replace("'", "''") + "'"


def session_ranges(con, source: str, parts: int | None = None) -> list[str]:
    """WHERE conditions that cut the table `source` into `parts` runs of whole sessions (by
    session_id, cut at the session of every parts-th share of the rows; by default one per thread
    of `con`) and one for rows without a session_id: every row meets exactly one. In a file in
    session order each run is a run of rows, and DuckDB reads only its row groups (their
    session_id statistics)."""
    parts = parts or con.execute("SELECT current_setting('threads')").fetchone()[0]
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [source]).fetchone()[0]
    found = (
        con.execute("SELECT session_id FROM read_parquet(?) LIMIT 1 OFFSET ?", [source, rows * k // parts]).fetchone()
        for k in range(1, parts)
    )
    cuts = sorted({row[0] for row in found if row and row[0] is not None})
    bounds = [None, *cuts, None]
    ranges = []
    for low, high in pairwise(bounds):
        condition = ["session_id IS NOT NULL"]
        condition += [f"session_id >= {sql_text(low)}"] if low is not None else []
        condition += [f"session_id < {sql_text(high)}"] if high is not None else []
        ranges.append(" AND ".join(condition))
    return [*ranges, "session_id IS NULL"]


def session_range_rows(con, source: str) -> list[str]:
    """session_ranges as queries of the Parquet table's rows, each run in the file's order: with the
    file named in the SQL (a view's definition cannot hold parameters)."""
    return [f"SELECT * FROM read_parquet({sql_text(source)}) WHERE {where}" for where in session_ranges(con, source)]


def new_staging(parent: Path, prefix: str) -> Path:
    """A new hidden staging folder `prefix`* in `parent`, after removing those a killed run left
    there (one writer per output at a time: the Dagster pools and DVC's lock see to it)."""
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """Yield a staging folder beside `target`; when the block succeeds it replaces `target` in one
    step (the two folders exchanged atomically where the system can, Linux's renameat2), so a
    process killed at any point leaves either the previous `target` or the new one, never a mix.
    Staging folders of `target` left by killed runs are removed first (one writer per target)."""
    target = Path(target)
    staging = new_staging(target.parent, f".{target.name}-staging-")  # not `.{name}-progress` (training)
    try:
        yield staging
        if not (target.exists() and _exchange(staging, target)):  # staging now holds the previous output
            if target.exists():  # no atomic exchange: move the previous output aside first
                os.replace(target, staging.with_name(staging.name + "-previous"))
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(staging.with_name(staging.name + "-previous"), ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 with RENAME_EXCHANGE); False where not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


class ChunkedParquetWriter:
    """Buffer rows column by column and write a row group every `chunk_rows` rows."""

    def __init__(self, path: str | Path, schema: pa.Schema, chunk_rows: int = 1_000_000) -> None:
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.rows_written = 0
        self._columns: dict[str, list] = {name: [] for name in schema.names}
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")

    def append_row(self, *values: object) -> None:
        for column, value in zip(self._columns.values(), values, strict=True):
            column.append(value)
        if len(self._columns[self.schema.names[0]]) >= self.chunk_rows:
            self.flush()

    def write_arrays(self, arrays: dict[str, object]) -> None:
        """Write a whole chunk given as column arrays (numpy or Arrow)."""
        self.flush()
        table = pa.table({name: arrays[name] for name in self.schema.names}).cast(self.schema)
        self._writer.write_table(table)
        self.rows_written += table.num_rows

    def flush(self) -> None:
        n_rows = len(self._columns[self.schema.names[0]])
        if n_rows == 0:
            return
        table = pa.Table.from_pydict(self._columns, schema=self.schema)
        self._writer.write_table(table)
        self.rows_written += n_rows
        for column in self._columns.values():
            column.clear()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> ChunkedParquetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spark_session(config: FeatureConfig):
    """The active Spark session, or a new one on `spark_master` (loopback only when local), its
    scratch and warehouse folders in a temporary folder removed at exit."""
    with warnings.catch_warnings():  # pyspark 4.3 warns about pandas 3 on import; pandas is not used here
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    scratch = tempfile.mkdtemp(prefix="rib-spark-")
    atexit.register(shutil.rmtree, scratch, True)
    builder = (
        SparkSession.builder.master(config.spark_master)
        .appName("rib")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # UTC instants, as DuckDB's
        .config("spark.sql.warehouse.dir", f"{scratch}/warehouse")
        .config("spark.local.dir", f"{scratch}/local")
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={scratch}")
    )
    if config.spark_master.startswith("local"):  # one machine: loopback only, a few shuffle partitions
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        builder = builder.config("spark.sql.shuffle.partitions", "16")
    for key, value in config.spark_conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
