"""Feature building: splits, macro interactions, dwell buckets, vocabularies, examples.

Output folder layout (all arrays are .npy, memory-mappable):

    features.duckdb          tables `sessions` (split, index, counts) and `sku_vocab`
    vocab.json               SKU strings by id, activity names, dwell bucket edges
    summary.json             counts per split, the configuration, the `synthetic` label
    <split>/sku.npy          int32, one entry per micro-behavior, sessions back to back
    <split>/activity.npy     int8   1..10
    <split>/dwell.npy        int8   dwell bucket 1..K
    <split>/interval.npy     int8   bucket of the time since the previous micro-behavior: 1 none
                                    (a session's first, or unknown), 2..K+1 equal-frequency buckets
    <split>/macro.npy        int32  index of the micro-behavior's macro interaction in its session
    <split>/session_offsets.npy  int64 (n_sessions + 1): session s is [offsets[s], offsets[s+1])
    <split>/example_start.npy, example_end.npy   int64: the input is [start, end)
    <split>/example_target.npy   int32 SKU id of the next macro interaction
    <split>/example_session.npy  int32 session index within the split
    <split>/example_is_last.npy  bool: the target is its session's last macro interaction

Ids: SKU 0 = padding, 1 = out of vocabulary (not seen `min_sku_count` times in training),
2.. by training frequency. Activity ids are the paper's codes 1..10, dwell buckets 1..K;
0 is padding for both.

Examples, in every split: every macro interaction after a session's first is a target, its
input the last `max_len` micro-behaviors before it (the protocol of GRU4Rec, NARM and SR-GNN).
`example_is_last` marks the targets of the older protocol, one per session (its last macro
interaction), which `evaluation.targets: last` selects. All four input variants of the paper
(SKU, +Activity, +Dwell, +Micro-behaviors) read these same arrays.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rib.config import FeatureConfig
from rib.features.shared import (
    bucket_sql,
    check_timestamps,
    check_training_split,
    interval_sql,
    split_cuts,
)
from rib.io import (
    OUT_OF_SESSION_ORDER,
    SESSION_ORDERED_ROWS,
    connect_duckdb,
    parquet_source,
    session_range_rows,
    staged_folder,
)
from rib.schema import ACTIVITY_NAMES, OOV, is_synthetic

SPLITS = ("train", "validation", "test")


def build_features(micro_behaviors: str | Path, out_dir: str | Path, config: FeatureConfig | None = None) -> dict:
    """Build every feature from the canonical Parquet table into `out_dir` (replaced atomically), on
    DuckDB (`engine: duckdb`, the default) or Spark (`engine: spark`, rib/features/spark.py)."""

    config = config or FeatureConfig()
    micro_behaviors = Path(micro_behaviors)
    with staged_folder(out_dir) as staging:
        con = connect_duckdb(staging / "features.duckdb", memory_limit=config.duckdb_memory_limit)
        con.execute("SET threads = ?", [config.duckdb_threads])
        con.execute("SET preserve_insertion_order = false")
        if config.engine == "duckdb":
            edges, interval_edges = _build(con, micro_behaviors, config)
        elif config.engine == "spark":
            from rib.features.spark import build_tables

            edges, interval_edges = build_tables(micro_behaviors, staging / "_spark", config)
            _attach_spark_tables(con, staging / "_spark")
        else:
            raise ValueError(f"features.engine {config.engine!r}: expected duckdb or spark")
        with _small_pages():
            summary = _write_outputs(con, micro_behaviors, staging, config, edges, interval_edges)  # closes con
        shutil.rmtree(staging / "_spark", ignore_errors=True)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@contextmanager
def _small_pages() -> Iterator[None]:
    """numpy asks the kernel for huge pages for its large arrays (madvise); where the kernel then
    compacts memory on the spot to find them (transparent huge pages with defrag `madvise`, a common
    default), each new GB of arrays waits for it. At 100M rows the features took 53-55 s with huge
    pages and 47 s without, on the 2-core machine (system time 16-19 s against 12-13 s). The arrays
    are filled and written once: small pages cost nothing here. numpy's own switch, where it has one."""
    switch = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    previous = switch(False) if switch else None
    try:
        yield
    finally:
        if switch:
            switch(previous)


# ---------------------------------------------------------------------------------------------
# The definitions, in DuckDB SQL (rib/features/spark.py has the same in Spark SQL). Each engine
# leaves three tables: sessions, sku_vocab, encoded (one row per micro-behavior and its place in its
# split's arrays); the examples are worked out from the arrays (_write_split).


def _build(con, micro_behaviors: Path, config: FeatureConfig) -> tuple[list[float], list[float]]:
    """Leaves tables `sessions` and `sku_vocab`, and the view `encoded` (one row per micro-behavior,
    its place in its split's arrays) over `mb`, the micro-behaviors in session order."""
    source = parquet_source(micro_behaviors)
    ranges = _session_order_views(con, source)  # one per DuckDB thread (features.duckdb_threads)
    if con.execute("SELECT bool_or(out_of_order) FROM range_stats").fetchone()[0]:  # not in session order
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"CREATE TEMP TABLE sorted_rows AS SELECT * FROM {SESSION_ORDERED_ROWS}", [source])
        ranges = _session_order_views(con, source, ["SELECT * FROM sorted_rows"])
    con.execute("SET preserve_insertion_order = false")  # the rest is joins and aggregates: any order
    # `s` numbers the sessions of each range from 0: the global number counts on from the ranges before.
    counts = dict(con.execute("SELECT r, max(s) + 1 FROM range_stats GROUP BY r").fetchall())
    offsets = [sum(counts.get(j, 0) for j in range(k)) for k in range(ranges)]
    offset = "(CASE r " + " ".join(f"WHEN {k} THEN {o}" for k, o in enumerate(offsets)) + " END)"
    con.execute(f"CREATE TEMP VIEW mb AS SELECT (s + {offset})::INTEGER AS s, * EXCLUDE (r, s) FROM mb_ranges")
    con.execute(f"""CREATE TEMP TABLE session_stats AS
                    SELECT (s + {offset})::INTEGER AS s, * EXCLUDE (r, s, out_of_order) FROM range_stats""")
    if config.split_method == "time":
        missing = con.sql("SELECT count(*) FROM session_stats WHERE n_timestamps < n_micro").fetchall()[0][0]
        check_timestamps(micro_behaviors, missing)
    # A micro-behavior's place in its split's arrays: its session's first place (the micro-behaviors
    # of the sessions before it, a running sum over the small sessions table) plus its position. The
    # Spark engine numbers the same places with a global row number (rib/features/spark.py).
    con.execute(f"""CREATE TEMP TABLE session_keys AS
                    SELECT *, (row_number() OVER w - 1)::INTEGER AS session_index,
                           coalesce(sum(n_micro) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::BIGINT
                               AS first_flat
                    FROM (SELECT * EXCLUDE (md5), {_split_sql(config)} AS split
                          FROM (SELECT *, {_hash_input(config)} FROM session_stats))
                    WINDOW w AS (PARTITION BY split ORDER BY s)  -- s numbers sessions in session_id order
                 """)
    con.execute("""CREATE TABLE sessions AS
                   SELECT session_id, n_micro, n_macro, start_ts, n_timestamps, split, session_index
                   FROM session_keys""")

    # What the training split's micro-behaviors give (vocabulary, bucket edges), in one scan.
    con.execute("""CREATE TEMP TABLE train_counts AS
                   SELECT sku, dwell_seconds, gap_seconds, GROUPING(sku) = 0 AS by_sku,
                          GROUPING(dwell_seconds) = 0 AS by_dwell, count(*) AS n
                   FROM mb JOIN session_keys k USING (s) WHERE k.split = 'train'
                   GROUP BY GROUPING SETS ((sku), (dwell_seconds), (gap_seconds))""")
    n_train = con.sql("SELECT coalesce(sum(n), 0) FROM train_counts WHERE by_sku").fetchall()[0][0]
    check_training_split(micro_behaviors, n_train)
    if config.dwell_edges is not None:
        edges = sorted(float(e) for e in config.dwell_edges)
    else:
        edges = _quantile_edges(con, "dwell_seconds", "by_dwell", config.dwell_buckets)
    interval_edges = _quantile_edges(con, "gap_seconds", "NOT by_sku AND NOT by_dwell", config.interval_buckets)

    con.execute(f"""CREATE TABLE sku_vocab AS
                    SELECT (row_number() OVER (ORDER BY n DESC, sku) + 1)::INTEGER AS sku_id, sku, n AS train_count
                    FROM train_counts WHERE by_sku AND n >= {config.min_sku_count}""")
    con.execute(f"""CREATE TEMP VIEW encoded AS
                    SELECT k.split, k.first_flat + m.position AS flat_index,
                           coalesce(v.sku_id, {OOV})::INTEGER AS sku_id, m.activity::TINYINT AS activity,
                           {bucket_sql("dwell_seconds", edges)}::TINYINT AS dwell_bucket,
                           {interval_sql(interval_edges)}::TINYINT AS interval_bucket,
                           (m.g - k.first_g)::INTEGER AS macro
                    FROM mb m JOIN session_keys k USING (s) LEFT JOIN sku_vocab v USING (sku)""")
    return edges, interval_edges


def _session_order_views(con, source: str, ranges: list[str] | None = None) -> int:
    """View `mb_ranges`: the micro-behaviors of each range of whole sessions (rib.io.session_range_rows;
    `ranges`, queries of rows in session order, replace them) with what needs their neighbours
    (_session_order_sql) and the range `r`; and, from one pass over it, table `range_stats` (each
    session's counts, by range and session). A streaming window runs on one thread, so one range per
    DuckDB thread keeps every core busy, and a query over the view reads the ranges at once. Not
    stored: every later query computes the view again (at 100M rows 5 s a pass), which costs less
    than storing it (the pass that wrote its 100M rows to tables took 17 s, past the memory limit)
    and reading it back. Returns the number of ranges."""
    ranges = ranges or session_range_rows(con, source)
    con.execute("SET preserve_insertion_order = true")  # a streaming window reads rows in the file's order
    for k, rows in enumerate(ranges):
        con.execute(_session_order_sql(f"TEMP VIEW mb_{k}", f"({rows})"))
    con.execute(
        "CREATE OR REPLACE TEMP VIEW mb_ranges AS "
        + " UNION ALL ".join(f"SELECT {k} AS r, * FROM mb_{k}" for k in range(len(ranges)))
    )
    con.execute("""CREATE OR REPLACE TEMP TABLE range_stats AS
                   SELECT r, s, any_value(session_id) AS session_id, count(*) AS n_micro,
                          (max(g) - min(g) + 1)::BIGINT AS n_macro, min(g) AS first_g,
                          min(timestamp) AS start_ts, count(timestamp) AS n_timestamps,
                          bool_or(out_of_order) AS out_of_order
                   FROM mb_ranges GROUP BY r, s""")
    return len(ranges)


def _session_order_sql(table: str, rows: str) -> str:
    """`table`: the micro-behaviors of `rows` in session order (session_id, position), each with
    what needs its neighbours, from one streaming pass (lag and running sums over OVER (), which
    keep the order rows come in): `s` numbers the sessions in that order, `g` the macro interactions
    (a new one wherever the product or the session changes), `gap_seconds` is the time since the
    previous micro-behavior of its session (known when this one happens), `session_id` is kept on a
    session's first row only, and `out_of_order` marks a row that comes before the previous one
    (a table written in another order is then read through a sort; the events ingest writes this
    order on either engine)."""
    return f"""CREATE OR REPLACE {table} AS
        SELECT (sum(new_session::INTEGER) OVER (ROWS UNBOUNDED PRECEDING) - 1)::INTEGER AS s,
               CASE WHEN new_session THEN session_id END AS session_id, position, sku, activity,
               dwell_seconds, timestamp, gap_seconds,
               sum((new_session OR sku IS DISTINCT FROM previous_sku)::INTEGER) OVER (ROWS UNBOUNDED PRECEDING) AS g,
               out_of_order
        FROM (SELECT session_id, position, sku, activity, dwell_seconds, timestamp,
                     session_id IS DISTINCT FROM lag(session_id) OVER () AS new_session,
                     lag(sku) OVER () AS previous_sku,
                     CASE WHEN session_id = lag(session_id) OVER () THEN lag(time_interval_seconds) OVER () END
                         AS gap_seconds,
                     {OUT_OF_SESSION_ORDER} AS out_of_order
              FROM {rows})"""


def _hash_input(config: FeatureConfig) -> str:
    """The digest the hash split reads, computed once per session in a query of its own (inside the
    split's CASE it was computed once per comparison: 3.2 s on 5M sessions, against 0.5 s)."""
    if config.split_method != "hash":
        return "NULL AS md5"
    return f"md5_number('{config.split_seed}:' || session_id) AS md5"


def _split_sql(config: FeatureConfig) -> str:
    train_cut, valid_cut = split_cuts(config)
    if config.split_method == "hash":
        # md5_number: the 16 bytes of the MD5 digest as a little-endian integer (Spark: md5_mod_sql),
        # taken mod 10^6 in 64-bit arithmetic: its high and low 64 bits each mod 10^6, and
        # 2^64 mod 10^6 = 551616 (the 128-bit modulo took 7 s on 5M sessions); tests/test_features.py
        # checks the result against Python's hashlib.
        high, low = "(md5 >> 64)::UBIGINT", "(md5 & 18446744073709551615)::UBIGINT"
        u = f"((({high} % 1000000) * 551616 + {low} % 1000000) % 1000000) / 1000000.0"
        return f"CASE WHEN {u} < {train_cut} THEN 'train' WHEN {u} < {valid_cut} THEN 'validation' ELSE 'test' END"
    # A global time split: sessions ordered by their first timestamp.
    cut = "(SELECT quantile_disc(start_ts, {}) FROM session_stats)"
    return f"""CASE WHEN start_ts < {cut.format(train_cut)} THEN 'train'
                    WHEN start_ts < {cut.format(valid_cut)} THEN 'validation' ELSE 'test' END"""


def _quantile_edges(con, column: str, rows: str, buckets: int) -> list[float]:
    """Equal-frequency cut points of a column over the training split (nulls left out), from its
    histogram in table train_counts (the `rows` of it): quantile_disc's (and Spark's percentile_disc)
    value at q, the smallest whose running count reaches ceil(q * n)."""
    histogram = con.sql(
        f"SELECT {column}, n FROM train_counts WHERE {rows} AND {column} IS NOT NULL ORDER BY {column}"
    ).fetchall()
    values = np.array([v for v, _ in histogram], dtype=np.float64)
    running = np.cumsum([n for _, n in histogram])
    if not len(running):
        return []
    ranks = [max(math.ceil(running[-1] * k / buckets), 1) for k in range(1, buckets)]
    edges = values[np.searchsorted(running, ranks)]
    return sorted(set(float(e) for e in edges))  # ties can merge two quantiles; no gaps: no edges


# ---------------------------------------------------------------------------------------------
# Writing either engine's tables out.


def _attach_spark_tables(con, folder: Path) -> None:
    """The Spark engine's Parquet tables: sessions and sku_vocab kept in features.duckdb (as the
    DuckDB engine keeps them), encoded read in place."""
    for name, kind in (
        ("sessions", "TABLE"),
        ("sku_vocab", "TABLE"),
        ("encoded", "TEMP VIEW"),
    ):
        files = str(folder / name / "*.parquet").replace("'", "''")  # a view's SQL cannot take parameters
        con.execute(f"CREATE {kind} {name} AS SELECT * FROM read_parquet('{files}')")


def _write_outputs(con, micro_behaviors: Path, out: Path, config: FeatureConfig, edges, interval_edges) -> dict:
    """Vocabulary, summary and every split's arrays and examples. Reads what it needs from `con`, then
    closes it before the examples are worked out, so DuckDB's memory is back before numpy's peak."""
    vocab = {
        "sku": ["<pad>", "<oov>"] + [r[0] for r in con.sql("SELECT sku FROM sku_vocab ORDER BY sku_id").fetchall()],
        "sku_train_count": [0, 0]
        + [r[0] for r in con.sql("SELECT train_count FROM sku_vocab ORDER BY sku_id").fetchall()],
        "activity": {str(code): name for code, name in ACTIVITY_NAMES.items()},
        "dwell_edges": edges,
        "n_dwell_buckets": len(edges) + 1,
        "interval_edges": interval_edges,
        "n_interval_buckets": len(interval_edges) + 2,
    }
    (out / "vocab.json").write_text(json.dumps(vocab) + "\n")
    sessions, arrays = _read_splits(con)
    con.close()
    return {
        "input": str(micro_behaviors),
        "synthetic": is_synthetic(str(micro_behaviors)),
        "config": asdict(config),
        "dwell_edges": edges,
        "interval_edges": interval_edges,
        "n_skus": len(vocab["sku"]) - 2,
        "splits": {
            split: _write_split(out / split, arrays.pop(split), *sessions[split], config.max_len) for split in SPLITS
        },
    }


ARRAYS = (  # file, column of `encoded`, dtype
    ("sku", "sku_id", np.int32),
    ("activity", "activity", np.int8),
    ("dwell", "dwell_bucket", np.int8),
    ("interval", "interval_bucket", np.int8),
    ("macro", "macro", np.int32),
)


def _read_splits(con) -> tuple[dict, dict]:
    """Each split's sessions (micro-behaviors and macro interactions, by session_index) and arrays,
    from one scan of `encoded` in any order: the splits' arrays are back to back in one array per
    column, and each row is put in its place there (its split's start plus its flat_index, dense
    0..n-1 within its split), so nothing is ever sorted."""
    sessions = {}
    for split in SPLITS:
        table = con.sql(
            f"SELECT n_micro, n_macro FROM sessions WHERE split = '{split}' ORDER BY session_index"
        ).to_arrow_table()
        sessions[split] = (_as(table, "n_micro", np.int64), _as(table, "n_macro", np.int64))
    sizes = [int(sessions[split][0].sum()) for split in SPLITS]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    columns = {name: np.empty(int(starts[-1]), dtype) for name, _, dtype in ARRAYS}
    # numpy fills the arrays during the scan: DuckDB gives up their size of its memory limit meanwhile,
    # so that the step's peak stays near the limit it was given (at 100M rows the arrays are 1.1 GB).
    held = sum(values.nbytes for values in columns.values())
    con.execute("SET memory_limit = ?", [f"{max(_memory_limit_bytes(con) - held, 1 << 30)}B"])
    start = " ".join(f"WHEN '{split}' THEN {int(starts[i])}" for i, split in enumerate(SPLITS))
    reader = con.sql(
        f"SELECT flat_index::BIGINT + (CASE split {start} END) AS place, "
        + ", ".join(column for _, column, _ in ARRAYS)
        + " FROM encoded"
    ).to_arrow_reader(1 << 20)
    for batch in reader:
        place = batch.column(0).to_numpy()
        for k, (name, _, _) in enumerate(ARRAYS):
            columns[name][place] = batch.column(1 + k).to_numpy()
    arrays = {
        split: {name: values[starts[i] : starts[i + 1]] for name, values in columns.items()}
        for i, split in enumerate(SPLITS)
    }
    return sessions, arrays


def _memory_limit_bytes(con) -> int:
    """DuckDB's memory limit, as it shows it (e.g. '3.7 GiB'), in bytes."""
    number, unit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0].split()
    return int(float(number) * 1024 ** (["bytes", "KiB", "MiB", "GiB", "TiB"].index(unit)))


def _write_split(folder: Path, arrays: dict, n_micro: np.ndarray, n_macro: np.ndarray, max_len: int) -> dict:
    """A split's arrays and its examples: every macro interaction after its session's first is a
    target (where `macro` steps up within a session), its input the last max_len micro-behaviors
    before it. Each array is saved as soon as it is made (a 100M-row split's examples are GBs)."""
    folder.mkdir(parents=True)
    for name, values in arrays.items():
        np.save(folder / f"{name}.npy", values)
    offsets = np.concatenate([[0], np.cumsum(n_micro)]).astype(np.int64)
    np.save(folder / "session_offsets.npy", offsets)

    # Few arrays of the examples' size (each new one costs its page faults: 0.2-1 s a GB here).
    macro = arrays["macro"]
    end = np.flatnonzero((macro[1:] != macro[:-1]) & (macro[1:] >= 1))  # macro steps up, not to 0 (a new session)
    end += 1
    np.save(folder / "example_end.npy", end)
    targets = arrays.pop("sku")[end]
    np.save(folder / "example_target.npy", targets)
    session = np.repeat(np.arange(len(n_micro), dtype=np.int32), n_micro)[end]  # 1.6 s at 70M, searchsorted 2.8
    np.save(folder / "example_session.npy", session)
    start = offsets[session]
    np.save(folder / "example_start.npy", np.maximum(start, end - max_len, out=start))
    is_last = macro[end] == (n_macro - 1).astype(np.int32)[session]  # int32: half the bytes of int64
    np.save(folder / "example_is_last.npy", is_last)
    return {
        "sessions": len(n_micro),
        "micro_behaviors": len(macro),
        "examples": len(targets),
        "oov_targets": int((targets == OOV).sum()),
        "last_examples": int(is_last.sum()),
        "last_oov_targets": int((targets[is_last] == OOV).sum()),
        "sessions_without_example": int((n_macro < 2).sum()),
    }


def _as(table, column: str, dtype) -> np.ndarray:
    return table[column].to_numpy().astype(dtype, copy=False) if table.num_rows else np.zeros(0, dtype)
