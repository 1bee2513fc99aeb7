"""Feature building on Spark: the definitions of rib/features/build.py, written by hand for Spark.

`features.engine: spark` runs this instead of the DuckDB SQL; build.py then turns the three tables it
writes (sessions, sku_vocab, encoded, Parquet under `out`) into the same arrays, examples, vocabulary
and summary as it does DuckDB's. The SQL is not translated automatically: a translation can change
meaning silently (DuckDB's ordered `LIST(x ORDER BY t)` loses its order in Spark), so every ordering
here is an explicit sort key, and tests/test_spark.py builds the same input on both engines and
compares every output (splits, vocabulary, dwell and interval edges, every array).

Three places where the engines differ and how they agree:
- The hash split. DuckDB's `md5_number` is the 16 bytes of the MD5 digest read as a little-endian
  integer; `_md5_mod_sql` computes that integer mod 10^6 from Spark's hex `md5`, byte by byte.
- Quantiles. DuckDB's `quantile_disc` and Spark's `percentile_disc` are both the SQL standard's
  discrete percentile: the first value whose cumulative share reaches q (exact, not approximate).
- Row numbers over a whole split (session_index, flat_index, sku_id). A window without PARTITION BY
  runs in one task; `_running_sums` sorts globally, sums within each sorted partition, and adds the
  totals of the partitions before it (a table of one row per partition, collected).
"""

from __future__ import annotations

from pathlib import Path

from rib.config import FeatureConfig
from rib.features.shared import (
    bucket_sql,
    check_timestamps,
    check_training_split,
    interval_sql,
    split_cuts,
)
from rib.io import spark_session
from rib.schema import OOV

TABLES = ("sessions", "sku_vocab", "encoded")


def build_tables(micro_behaviors: Path, out: Path, config: FeatureConfig) -> tuple[list[float], list[float]]:
    """Run the feature definitions on Spark; write sessions, sku_vocab and encoded as Parquet
    folders under `out`; return the dwell and interval bucket edges."""
    from pyspark.sql import functions as F

    spark = spark_session(config)
    spark.read.parquet(str(micro_behaviors)).createOrReplaceTempView("raw")

    def view(name: str, frame):  # cached: each is read more than once (released at the end)
        frame = frame.persist()
        frame.createOrReplaceTempView(name)
        return frame

    view(
        "mb",
        spark.sql("""
        SELECT session_id, position, sku, activity, dwell_seconds, timestamp, gap_seconds,
               CAST(sum(CASE WHEN lag_sku IS DISTINCT FROM sku THEN 1 ELSE 0 END) OVER w - 1 AS INT) AS macro,
               CAST(row_number() OVER w - 1 AS BIGINT) AS rank_in_session  -- = position (contiguous from 0)
        FROM (SELECT *, lag(sku) OVER w AS lag_sku,
                     -- the time since the previous micro-behavior: known when this one happens
                     lag(time_interval_seconds) OVER w AS gap_seconds
              FROM raw WINDOW w AS (PARTITION BY session_id ORDER BY position))
        WINDOW w AS (PARTITION BY session_id ORDER BY position)"""),
    )
    stats = view(
        "session_stats",
        spark.sql("""SELECT session_id, count(*) AS n_micro, CAST(max(macro) + 1 AS BIGINT) AS n_macro,
                            min(timestamp) AS start_ts, count(timestamp) AS n_timestamps
                     FROM mb GROUP BY session_id"""),
    )
    if config.split_method == "time":
        check_timestamps(micro_behaviors, stats.where("n_timestamps < n_micro").count())
    split = spark.sql(
        f"SELECT *, {_split_sql(spark, config)} AS split FROM (SELECT *, {_hash_input(config)} FROM session_stats)"
    )
    numbered = _running_sums(
        split, "split", [F.col("session_id")], {"session_index": F.lit(1), "flat_start": F.col("n_micro")}
    )
    view("sessions_all", numbered.withColumn("session_index", F.col("session_index").cast("int")))
    train = view(
        "train_mb", spark.sql("SELECT mb.* FROM mb JOIN sessions_all USING (session_id) WHERE split = 'train'")
    )
    check_training_split(micro_behaviors, train.count())

    if config.dwell_edges is not None:
        edges = sorted(float(e) for e in config.dwell_edges)
    else:
        edges = _quantile_edges(spark, "dwell_seconds", config.dwell_buckets)
    interval_edges = _quantile_edges(spark, "gap_seconds", config.interval_buckets)

    counts = spark.sql(
        f"SELECT sku, count(*) AS n FROM train_mb GROUP BY sku HAVING count(*) >= {config.min_sku_count}"
    )
    ranked = _running_sums(counts, None, [F.col("n").desc(), F.col("sku")], {"sku_id": F.lit(1)})
    view(
        "sku_vocab",
        ranked.select((F.col("sku_id") + 2).cast("int").alias("sku_id"), "sku", F.col("n").alias("train_count")),
    )
    view(
        "encoded",
        spark.sql(f"""
        SELECT s.split, s.session_index, m.position, m.macro, CAST(coalesce(v.sku_id, {OOV}) AS INT) AS sku_id,
               CAST(m.activity AS TINYINT) AS activity,
               CAST({bucket_sql("dwell_seconds", edges)} AS TINYINT) AS dwell_bucket,
               CAST({interval_sql(interval_edges)} AS TINYINT) AS interval_bucket,
               s.flat_start + m.rank_in_session AS flat_index
        FROM mb m JOIN sessions_all s USING (session_id) LEFT JOIN sku_vocab v USING (sku)"""),
    )
    sessions = spark.table("sessions_all").select(
        "session_id", "n_micro", "n_macro", "start_ts", "n_timestamps", "split", "session_index"
    )
    for name, frame in zip(TABLES, (sessions, spark.table("sku_vocab"), spark.table("encoded")), strict=True):
        frame.write.parquet(str(out / name))
    spark.catalog.clearCache()
    return edges, interval_edges


def _hash_input(config: FeatureConfig) -> str:
    return f"md5(concat('{config.split_seed}:', session_id)) AS md5_hex"


def _md5_mod_sql(hex_column: str, modulus: int = 1_000_000) -> str:
    """DuckDB's `md5_number(x) % modulus` from the hex digest: byte i (hex digits 2i+1, 2i+2) counts
    256^i, so the sum of byte_i * (256^i mod m), taken mod m, is the same number."""
    terms = [
        f"CAST(conv(substr({hex_column}, {2 * i + 1}, 2), 16, 10) AS BIGINT) * {pow(256, i, modulus)}"
        for i in range(16)
    ]
    return f"pmod({' + '.join(terms)}, {modulus})"


def _split_sql(spark, config: FeatureConfig) -> str:
    train_cut, valid_cut = split_cuts(config)
    if config.split_method == "hash":
        u = f"(CAST({_md5_mod_sql('md5_hex')} AS DOUBLE) / 1000000.0D)"
        return (
            f"CASE WHEN {u} < CAST({train_cut!r} AS DOUBLE) THEN 'train' "
            f"WHEN {u} < CAST({valid_cut!r} AS DOUBLE) THEN 'validation' ELSE 'test' END"
        )
    # A global time split: sessions ordered by their first timestamp (in microseconds).
    cuts = spark.sql(
        f"""SELECT percentile_disc({train_cut!r}) WITHIN GROUP (ORDER BY unix_micros(start_ts)),
                   percentile_disc({valid_cut!r}) WITHIN GROUP (ORDER BY unix_micros(start_ts))
            FROM session_stats"""
    ).collect()[0]
    return f"""CASE WHEN unix_micros(start_ts) < {int(cuts[0])} THEN 'train'
                    WHEN unix_micros(start_ts) < {int(cuts[1])} THEN 'validation' ELSE 'test' END"""


def _quantile_edges(spark, column: str, buckets: int) -> list[float]:
    """Equal-frequency cut points of a column over the training split (nulls left out)."""
    quantiles = [k / buckets for k in range(1, buckets)]
    if not quantiles:
        return []
    row = spark.sql(
        "SELECT "
        + ", ".join(f"percentile_disc({q!r}) WITHIN GROUP (ORDER BY {column})" for q in quantiles)
        + " FROM train_mb"
    ).collect()[0]
    return sorted(set(float(e) for e in row if e is not None))  # ties can merge two quantiles


def _running_sums(frame, group: str | None, order: list, sums: dict):
    """Add, for each column expression in `sums`, its sum over the rows before this one in
    (group, *order), restarting at each group; with the expression 1 that is a 0-based row number.

    Without a window over a whole group (one task): sort globally into range partitions, sum within
    each partition, and add the totals of the earlier partitions of the same group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    group_col = F.col(group) if group else F.lit("")
    values = {f"_value_{name}": expression for name, expression in sums.items()}
    ordered = (
        frame.withColumns(values | {"_group": group_col})
        .orderBy(F.col("_group"), *order)
        .withColumn("_part", F.spark_partition_id())
        .persist()  # the partition each row was sorted into must not change between the two passes
    )
    totals = ordered.groupBy("_part", "_group").agg(*[F.sum(v).alias(v) for v in values]).collect()
    offsets, running = [], {}
    for row in sorted(totals, key=lambda r: r["_part"]):
        before = running.setdefault(row["_group"], dict.fromkeys(values, 0))
        offsets.append((row["_part"], row["_group"], *[before[v] for v in values]))
        for v in values:
            before[v] += row[v]
    schema = ", ".join(["_part INT", "_group STRING", *[f"_offset{v} BIGINT" for v in values]])
    offset_frame = frame.sparkSession.createDataFrame(offsets, schema)
    within = (
        Window.partitionBy("_part", "_group").orderBy(*order).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    result = ordered.join(F.broadcast(offset_frame), ["_part", "_group"])
    for name in sums:
        v = f"_value_{name}"
        result = result.withColumn(name, F.col(f"_offset{v}") + F.sum(v).over(within) - F.col(v))
    return result.drop("_part", "_group", *values, *[f"_offset{v}" for v in values])
