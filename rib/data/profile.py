"""Summary statistics of a canonical micro-behavior table, computed in DuckDB.

Part of every ingest report (and so of the ingest asset's metadata); also used to calibrate
the synthetic generator against the JD samples (benchmarks/synthetic_vs_jd.py). Past SAMPLE_ROWS
micro-behaviors the distributions come from a sample of whole sessions (`sample` says which share):
the profile then costs about the same at 100M rows as at 500K.
"""

from __future__ import annotations

import tempfile

from pathlib import Path

from rib.io import connect_duckdb, parquet_source


# Past this many micro-behaviors the distributions (shares, quantiles, lengths) come from a seeded
# sample of whole sessions of about this size, the SKU count from HyperLogLog; the totals stay exact.
SAMPLE_ROWS = 500_000


def profile(micro_behaviors: str | Path, sample_rows: int = SAMPLE_ROWS) -> dict:
    with tempfile.TemporaryDirectory(prefix="rib-profile-") as spill:
        return _profile(connect_duckdb(spill=spill), micro_behaviors, sample_rows)


def _profile(con, micro_behaviors: str | Path, sample_rows: int) -> dict:
    path = parquet_source(micro_behaviors)
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchall()[0][0]  # the Parquet footer's
    share = min(1.0, sample_rows / max(rows, 1))
    sampled = share < 1.0
    distinct = "approx_count_distinct(sku)" if sampled else "count(DISTINCT sku)"
    n, n_sessions, n_skus = con.execute(  # the totals in one scan
        f"SELECT count(*), count(*) FILTER (position = 0), {distinct} FROM read_parquet(?)", [path]
    ).fetchall()[0]
    where = f"WHERE hash(session_id) % 1000000 < {int(share * 1_000_000)}" if sampled else ""
    # The sample on its own first: with the windows in the same statement, DuckDB read the whole
    # table (15 s at 100M rows against 2 s).
    con.execute(f"CREATE TEMP TABLE sampled AS SELECT * FROM read_parquet(?) {where}", [path])
    con.execute(
        """CREATE TEMP TABLE mb AS
           SELECT *, sum(CASE WHEN lag_sku IS DISTINCT FROM sku THEN 1 ELSE 0 END)
                       OVER (PARTITION BY session_id ORDER BY position) AS macro
           FROM (SELECT *, lag(sku) OVER (PARTITION BY session_id ORDER BY position) AS lag_sku FROM sampled)"""
    )
    activity_share = dict(
        con.sql("SELECT activity, round(count(*) / sum(count(*)) OVER (), 4) FROM mb GROUP BY 1 ORDER BY 1").fetchall()
    )
    dwell_quantiles = con.sql("SELECT quantile_disc(dwell_seconds, [0.1, 0.25, 0.5, 0.75, 0.9]) FROM mb").fetchall()[0][
        0
    ]
    lengths = con.sql("""SELECT avg(n), quantile_disc(n, 0.5), max(n), avg(n_macro)
                         FROM (SELECT count(*) AS n, max(macro) AS n_macro FROM mb GROUP BY session_id)""").fetchall()[
        0
    ]
    repeat_share = con.sql("""
        WITH visits AS (SELECT session_id, macro, any_value(sku) AS sku FROM mb GROUP BY ALL),
             flagged AS (SELECT macro > 1 AS has_previous,  -- a visit to a product the session saw before
                                row_number() OVER (PARTITION BY session_id, sku ORDER BY macro) > 1 AS seen_before
                         FROM visits)
        SELECT avg(seen_before::INTEGER) FROM flagged WHERE has_previous""").fetchall()[0][0]
    top_share = con.sql("""SELECT sum(n) / (SELECT count(*) FROM mb) FROM
                           (SELECT count(*) AS n FROM mb GROUP BY sku ORDER BY n DESC LIMIT 100)""").fetchall()[0][0]
    con.close()
    return {
        "micro_behaviors": n,
        "sessions": n_sessions,
        "skus": n_skus,
        "sample": {"sessions_share": round(share, 6), "skus_approximate": True} if sampled else None,
        "activity_share": {str(k): v for k, v in activity_share.items()},
        "dwell_p10_p25_p50_p75_p90": dwell_quantiles,
        "session_length_mean": round(lengths[0], 2),
        "session_length_median": lengths[1],
        "session_length_max": lengths[2],
        "macro_per_session_mean": round(lengths[3], 2),
        "micro_per_macro": round(lengths[0] / lengths[3], 3),
        "next_visit_seen_before_share": round(repeat_share or 0.0, 4),
        "top100_sku_share": round(float(top_share), 4),
    }
