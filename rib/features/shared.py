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
