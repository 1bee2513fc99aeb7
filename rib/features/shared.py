"""What both feature engines share (rib/features/build.py, DuckDB; rib/features/spark.py): the split
cut points, the bucket expressions (SQL both dialects read the same way) and the input checks."""

from __future__ import annotations

from pathlib import Path

from rib.config import FeatureConfig


def split_cuts(config: FeatureConfig) -> tuple[float, float]:
    """The hash share (or time quantile) below which a session is training, then validation."""
    if config.split_method not in ("hash", "time"):
        raise ValueError(f"unknown split_method {config.split_method!r}; expected hash or time")
    return 1 - config.validation_fraction - config.test_fraction, 1 - config.test_fraction


def check_timestamps(micro_behaviors: Path, sessions_missing: int) -> None:
    if sessions_missing:
        raise ValueError(
            f"{micro_behaviors}: split_method=time needs timestamps; {sessions_missing} sessions lack them"
        )


def check_training_split(micro_behaviors: Path, n_train: int) -> None:
    if n_train == 0:
        raise ValueError(f"{micro_behaviors}: the training split is empty")


def bucket_sql(column: str, edges: list[float]) -> str:
    """1 + the number of edges below the value: buckets 1..len(edges)+1, upper-inclusive edges."""
    return "(1" + "".join(f" + CAST({column} > CAST({float(e)!r} AS DOUBLE) AS INTEGER)" for e in edges) + ")"


def interval_sql(edges: list[float]) -> str:
    """1 where the gap is unknown (a session's first micro-behavior), else 1 + its bucket."""
    return f"(CASE WHEN gap_seconds IS NULL THEN 1 ELSE 1 + {bucket_sql('gap_seconds', edges)} END)"


def examples_sql(max_len: int, sessions: str = "sessions") -> str:
    """The examples from table `encoded` (the same SQL in both dialects). Targets: the first
    micro-behavior of each macro interaction after the session's first; the input is the last
    `max_len` micro-behaviors before it, [start_index, end_index) of the split's arrays."""
    return f"""
        WITH starts AS (
            SELECT *, lag(macro) OVER (PARTITION BY split, session_index ORDER BY position)
                      IS DISTINCT FROM macro AS is_macro_start
            FROM encoded)
        SELECT e.split, e.session_index, e.flat_index AS end_index, e.sku_id AS target,
               e.macro = s.n_macro - 1 AS is_last,
               greatest(e.flat_index - e.position, e.flat_index - {int(max_len)}) AS start_index
        FROM starts e JOIN {sessions} s ON s.split = e.split AND s.session_index = e.session_index
        WHERE e.is_macro_start AND e.macro >= 1"""
