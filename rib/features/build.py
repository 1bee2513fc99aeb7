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
import shutil
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
from rib.io import connect_duckdb, parquet_source, staged_folder
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
        summary = _write_outputs(con, micro_behaviors, staging, config, edges, interval_edges)
        con.close()
        shutil.rmtree(staging / "_spark", ignore_errors=True)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# The definitions, in DuckDB SQL (rib/features/spark.py has the same in Spark SQL). Each engine
# leaves four tables: sessions, sku_vocab, encoded (one row per micro-behavior), examples.


def _build(con, micro_behaviors: Path, config: FeatureConfig) -> tuple[list[float], list[float]]:
    con.execute(
        """CREATE TEMP TABLE mb AS
           SELECT session_id, position, sku, activity, dwell_seconds, timestamp, gap_seconds,
                  lag_sku IS DISTINCT FROM sku AS starts_macro,
                  sum(CASE WHEN lag_sku IS DISTINCT FROM sku THEN 1 ELSE 0 END)
                      OVER (PARTITION BY session_id ORDER BY position) - 1 AS macro
           FROM (SELECT *, lag(sku) OVER (PARTITION BY session_id ORDER BY position) AS lag_sku,
                        -- the time since the previous micro-behavior: known when this one happens
                        lag(time_interval_seconds) OVER (PARTITION BY session_id ORDER BY position) AS gap_seconds
                 FROM read_parquet(?))""",
        [parquet_source(micro_behaviors)],
    )
    con.execute("""CREATE TEMP TABLE session_stats AS
                   SELECT session_id, count(*) AS n_micro, (max(macro) + 1)::BIGINT AS n_macro,
                          min(timestamp) AS start_ts, count(timestamp) AS n_timestamps
                   FROM mb GROUP BY session_id""")
    if config.split_method == "time":
        missing = con.sql("SELECT count(*) FROM session_stats WHERE n_timestamps < n_micro").fetchall()[0][0]
        check_timestamps(micro_behaviors, missing)
    con.execute(f"""CREATE TABLE sessions AS
                    SELECT *, (row_number() OVER (PARTITION BY split ORDER BY session_id) - 1)::INTEGER AS session_index
                    FROM (SELECT *, {_split_sql(config)} AS split FROM session_stats)""")
    con.execute(
        "CREATE TEMP TABLE train_mb AS SELECT mb.* FROM mb JOIN sessions USING (session_id) WHERE split = 'train'"
    )
    check_training_split(micro_behaviors, con.sql("SELECT count(*) FROM train_mb").fetchall()[0][0])

    if config.dwell_edges is not None:
        edges = sorted(float(e) for e in config.dwell_edges)
    else:
        edges = _quantile_edges(con, "dwell_seconds", config.dwell_buckets)
    interval_edges = _quantile_edges(con, "gap_seconds", config.interval_buckets)

    con.execute(f"""CREATE TABLE sku_vocab AS
                    SELECT (row_number() OVER (ORDER BY n DESC, sku) + 1)::INTEGER AS sku_id, sku, n AS train_count
                    FROM (SELECT sku, count(*) AS n FROM train_mb GROUP BY sku)
                    WHERE n >= {config.min_sku_count}""")
    # A micro-behavior's place in its split's arrays: its session's first place (the micro-behaviors
    # of the sessions before it, a running sum over the small sessions table) plus its position. The
    # Spark engine numbers the same places with a global row number (rib/features/spark.py).
    con.execute("""CREATE TEMP TABLE session_offsets AS
                   SELECT session_id, s.split, s.session_index, s.n_macro,
                          sum(n_micro) OVER (PARTITION BY split ORDER BY session_index
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS first_flat
                   FROM sessions s""")
    con.execute(f"""CREATE TEMP TABLE encoded AS
                    SELECT s.split, s.session_index, m.position, m.macro::INTEGER AS macro,
                           coalesce(v.sku_id, {OOV})::INTEGER AS sku_id, m.activity::TINYINT AS activity,
                           {bucket_sql("dwell_seconds", edges)}::TINYINT AS dwell_bucket,
                           {interval_sql(interval_edges)}::TINYINT AS interval_bucket,
                           (coalesce(s.first_flat, 0) + m.position)::BIGINT AS flat_index,
                           m.starts_macro, s.n_macro
                    FROM mb m JOIN session_offsets s USING (session_id) LEFT JOIN sku_vocab v USING (sku)""")
    # examples_sql (shared with Spark) finds the macro starts with a window; here they are known.
    con.execute(f"""CREATE TEMP TABLE examples AS
                    SELECT split, session_index, flat_index AS end_index, sku_id AS target,
                           macro = n_macro - 1 AS is_last,
                           greatest(flat_index - position, flat_index - {int(config.max_len)}) AS start_index
                    FROM encoded WHERE starts_macro AND macro >= 1""")
    return edges, interval_edges


def _split_sql(config: FeatureConfig) -> str:
    train_cut, valid_cut = split_cuts(config)
    if config.split_method == "hash":
        # md5_number: the 16 bytes of the MD5 digest as a little-endian integer (Spark: md5_mod_sql)
        u = f"(md5_number('{config.split_seed}:' || session_id) % 1000000) / 1000000.0"
        return f"CASE WHEN {u} < {train_cut} THEN 'train' WHEN {u} < {valid_cut} THEN 'validation' ELSE 'test' END"
    # A global time split: sessions ordered by their first timestamp.
    cut = "(SELECT quantile_disc(start_ts, {}) FROM session_stats)"
    return f"""CASE WHEN start_ts < {cut.format(train_cut)} THEN 'train'
                    WHEN start_ts < {cut.format(valid_cut)} THEN 'validation' ELSE 'test' END"""


def _quantile_edges(con, column: str, buckets: int) -> list[float]:
    """Equal-frequency cut points of a column over the training split (nulls left out)."""
    quantiles = [k / buckets for k in range(1, buckets)]
    edges = con.sql(f"SELECT quantile_disc({column}, {quantiles}) FROM train_mb").fetchall()[0][0]
    return sorted(set(float(e) for e in edges or []))  # ties can merge two quantiles; no gaps: no edges


# ---------------------------------------------------------------------------------------------
# Writing either engine's tables out.


def _attach_spark_tables(con, folder: Path) -> None:
    """The Spark engine's Parquet tables: sessions and sku_vocab kept in features.duckdb (as the
    DuckDB engine keeps them), encoded and examples read in place."""
    for name, kind in (
        ("sessions", "TABLE"),
        ("sku_vocab", "TABLE"),
        ("encoded", "TEMP VIEW"),
        ("examples", "TEMP VIEW"),
    ):
        files = str(folder / name / "*.parquet").replace("'", "''")  # a view's SQL cannot take parameters
        con.execute(f"CREATE {kind} {name} AS SELECT * FROM read_parquet('{files}')")


def _write_outputs(con, micro_behaviors: Path, out: Path, config: FeatureConfig, edges, interval_edges) -> dict:
    summary: dict = {
        "input": str(micro_behaviors),
        "synthetic": is_synthetic(str(micro_behaviors)),
        "config": asdict(config),
        "dwell_edges": edges,
        "interval_edges": interval_edges,
        "n_skus": con.sql("SELECT count(*) FROM sku_vocab").fetchall()[0][0],
        "splits": {},
    }
    for split in SPLITS:
        summary["splits"][split] = _write_split(con, out / split, split)

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
    return summary


def _column(con, sql: str, dtype) -> np.ndarray:
    table = con.sql(sql).to_arrow_table()
    return _as(table, table.column_names[0], dtype)


def _write_split(con, folder: Path, split: str) -> dict:
    folder.mkdir(parents=True)
    # Read in any order and put in place by flat_index (dense 0..n-1): no sort of the whole split.
    # One column at a time, each read with its places (a scan's order is not repeatable), so memory
    # holds one column and its places, not the split's rows.
    n = 0
    for name, column, dtype in (
        ("sku", "sku_id", np.int32),
        ("activity", "activity", np.int8),
        ("dwell", "dwell_bucket", np.int8),
        ("interval", "interval_bucket", np.int8),
        ("macro", "macro", np.int32),
    ):
        table = con.sql(f"SELECT flat_index, {column} FROM encoded WHERE split = '{split}'").to_arrow_table()
        n = table.num_rows
        values = np.empty(n, dtype)
        values[_as(table, "flat_index", np.int64)] = _as(table, column, dtype)
        del table
        np.save(folder / f"{name}.npy", values)
        del values
    lengths = _column(con, f"SELECT n_micro FROM sessions WHERE split = '{split}' ORDER BY session_index", np.int64)
    np.save(folder / "session_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))

    examples = con.sql(
        f"SELECT session_index, end_index, target, is_last, start_index FROM examples "
        f"WHERE split = '{split}' ORDER BY end_index"
    ).to_arrow_table()
    targets = _as(examples, "target", np.int32)
    is_last = _as(examples, "is_last", np.bool_)
    np.save(folder / "example_session.npy", _as(examples, "session_index", np.int32))
    np.save(folder / "example_start.npy", _as(examples, "start_index", np.int64))
    np.save(folder / "example_end.npy", _as(examples, "end_index", np.int64))
    np.save(folder / "example_target.npy", targets)
    np.save(folder / "example_is_last.npy", is_last)
    return {
        "sessions": len(lengths),
        "micro_behaviors": n,
        "examples": len(targets),
        "oov_targets": int((targets == OOV).sum()),
        "last_examples": int(is_last.sum()),
        "last_oov_targets": int((targets[is_last] == OOV).sum()),
        "sessions_without_example": int(
            con.sql(f"SELECT count(*) FROM sessions WHERE split = '{split}' AND n_macro < 2").fetchall()[0][0]
        ),
    }


def _as(table, column: str, dtype) -> np.ndarray:
    return table[column].to_numpy().astype(dtype, copy=False) if table.num_rows else np.zeros(0, dtype)
