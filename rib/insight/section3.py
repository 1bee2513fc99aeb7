"""Section 3 of the paper as tables, computed in DuckDB from the canonical table.

Definitions (every rate comes with the counts behind it):
- conversion rate of a micro-behavior (eq. 1): the share of its occurrences whose product is
  ordered (activity 10, Order) later in the same session: by activity (Figure 2) and by dwell
  bucket (Figure 4);
- a visit is a macro interaction (consecutive micro-behaviors on one SKU); its click source is
  the first click-source activity (1-5) in it, its dwell the largest dwell of its micro-behaviors
  (JD repeats one visit's dwell on each of its micro-behaviors);
- click source vs browsing modules (Figure 3): per click source, the share of its visits that
  include each browsing module (6-8);
- dwell vs click source (Figure 5): per click source, the share of its visits in each dwell bucket;
- dwell vs browsing modules (Figure 6): per dwell bucket, the share of visits that include each module.
Dwell buckets default to the paper's Table 1 (0-9, 10-24, 25-60, 61-120, >120 seconds).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from rib.io import parquet_source
from rib.schema import ACTIVITY_NAMES, BROWSING_MODULES, CLICK_SOURCES, ORDER

PAPER_DWELL_EDGES = (9, 24, 60, 120)


def _bucket_sql(column: str, edges) -> str:
    return "(1" + "".join(f" + ({column} > {float(e)})::INTEGER" for e in edges) + ")"


def bucket_labels(edges) -> list[str]:
    bounds = [0, *[int(e) for e in edges]]
    labels = [f"{lo if i == 0 else lo + 1}-{hi}s" for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]
    return [*labels, f">{int(edges[-1])}s"]


def section3_tables(micro_behaviors: str | Path, dwell_edges=PAPER_DWELL_EDGES) -> dict[str, list[dict]]:
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""CREATE TEMP TABLE mb AS
            SELECT *, {_bucket_sql("dwell_seconds", dwell_edges)} AS dwell_bucket,
                   sum(CASE WHEN lag_sku IS DISTINCT FROM sku THEN 1 ELSE 0 END)
                       OVER (PARTITION BY session_id ORDER BY position) AS visit
            FROM (SELECT *, lag(sku) OVER (PARTITION BY session_id ORDER BY position) AS lag_sku
                  FROM read_parquet(?))""",
        [parquet_source(micro_behaviors)],
    )
    con.execute(f"""CREATE TEMP TABLE converted AS
                    SELECT m.*, EXISTS (SELECT 1 FROM mb o WHERE o.session_id = m.session_id AND o.sku = m.sku
                                        AND o.activity = {ORDER} AND o.position > m.position) AS ordered_later
                    FROM mb m""")
    sources, modules = ",".join(map(str, CLICK_SOURCES)), BROWSING_MODULES
    con.execute(f"""CREATE TEMP TABLE visits AS
                    SELECT session_id, visit, max(dwell_seconds) AS dwell,
                           {_bucket_sql("max(dwell_seconds)", dwell_edges)} AS dwell_bucket,
                           arg_min(activity, position) FILTER (activity IN ({sources})) AS source,
                           {", ".join(f"bool_or(activity = {m}) AS module_{m}" for m in modules)}
                    FROM mb GROUP BY session_id, visit""")

    def rows(sql: str) -> list[dict]:
        table = con.sql(sql)
        return [dict(zip(table.columns, values, strict=True)) for values in table.fetchall()]

    labels = bucket_labels(dwell_edges)
    tables = {
        "conversion_by_activity": rows("""
            SELECT activity, count(*) AS occurrences, count(*) FILTER (ordered_later) AS converted,
                   count(*) FILTER (ordered_later) / count(*) AS conversion_rate
            FROM converted GROUP BY activity ORDER BY activity"""),
        "conversion_by_dwell": rows("""
            SELECT dwell_bucket, count(*) AS occurrences, count(*) FILTER (ordered_later) AS converted,
                   count(*) FILTER (ordered_later) / count(*) AS conversion_rate
            FROM converted GROUP BY dwell_bucket ORDER BY dwell_bucket"""),
        "source_vs_modules": rows(f"""
            SELECT source, count(*) AS visits,
                   {", ".join(f"count(*) FILTER (module_{m}) AS visits_with_{m}" for m in modules)},
                   {", ".join(f"count(*) FILTER (module_{m}) / count(*) AS share_{m}" for m in modules)}
            FROM visits WHERE source IS NOT NULL GROUP BY source ORDER BY source"""),
        "dwell_vs_source": rows("""
            SELECT source, dwell_bucket, count(*) AS visits,
                   count(*) / sum(count(*)) OVER (PARTITION BY source) AS share
            FROM visits WHERE source IS NOT NULL GROUP BY source, dwell_bucket ORDER BY source, dwell_bucket"""),
        "dwell_vs_modules": rows(f"""
            SELECT dwell_bucket, count(*) AS visits,
                   {", ".join(f"count(*) FILTER (module_{m}) AS visits_with_{m}" for m in modules)},
                   {", ".join(f"count(*) FILTER (module_{m}) / count(*) AS share_{m}" for m in modules)}
            FROM visits GROUP BY dwell_bucket ORDER BY dwell_bucket"""),
    }
    con.close()
    for table in tables.values():
        for row in table:
            if "activity" in row:
                row["activity_name"] = ACTIVITY_NAMES[row["activity"]]
            if "source" in row:
                row["source_name"] = ACTIVITY_NAMES[row["source"]]
            if "dwell_bucket" in row:
                row["dwell_label"] = labels[row["dwell_bucket"] - 1]
    return tables


def plot_section3(tables: dict[str, list[dict]], out_dir: str | Path, title_suffix: str = "") -> dict[str, str]:
    """One PNG per figure (matplotlib, Agg); returns figure name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = str(path)

    for name, key, label in (
        ("conversion_by_activity", "activity_name", "Figure 2: ordering vs micro-behaviors"),
        ("conversion_by_dwell", "dwell_label", "Figure 4: ordering vs dwell time"),
    ):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.bar([r[key] for r in tables[name]], [r["conversion_rate"] for r in tables[name]], color="#4c72b0")
        ax.set_ylabel("conversion rate")
        ax.set_title(label + title_suffix)
        ax.tick_params(axis="x", rotation=35)
        save(fig, name)

    for name, rows_key, title in (
        ("source_vs_modules", "source_name", "Figure 3: click source vs browsing modules"),
        ("dwell_vs_modules", "dwell_label", "Figure 6: dwell time vs browsing modules"),
    ):
        rows = tables[name]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        width = 0.27
        for offset, module in enumerate(BROWSING_MODULES):
            xs = [i + (offset - 1) * width for i in range(len(rows))]
            ax.bar(xs, [r[f"share_{module}"] for r in rows], width, label=ACTIVITY_NAMES[module])
        ax.set_xticks(range(len(rows)), [r[rows_key] for r in rows], rotation=35)
        ax.set_ylabel("share of visits")
        ax.set_title(title + title_suffix)
        ax.legend(fontsize=8)
        save(fig, name)

    rows = tables["dwell_vs_source"]
    sources = sorted({r["source"] for r in rows})
    buckets = sorted({r["dwell_bucket"] for r in rows})
    labels = {r["dwell_bucket"]: r["dwell_label"] for r in rows}
    share = {(r["source"], r["dwell_bucket"]): r["share"] for r in rows}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = [0.0] * len(sources)
    for bucket in buckets:
        values = [share.get((s, bucket), 0.0) for s in sources]
        ax.bar([ACTIVITY_NAMES[s] for s in sources], values, bottom=bottom, label=labels[bucket])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("share of visits")
    ax.set_title("Figure 5: dwell time vs click source" + title_suffix)
    ax.tick_params(axis="x", rotation=35)
    ax.legend(fontsize=8, title="dwell")
    save(fig, "dwell_vs_source")
    return paths


def write_section3(micro_behaviors: str | Path, out_dir: str | Path, synthetic: bool) -> dict:
    """Every Section 3 table and figure of a canonical table into `out_dir` (section3.json + PNGs)."""
    tables = section3_tables(micro_behaviors)
    out_dir = Path(out_dir)
    figures = plot_section3(tables, out_dir, " (SYNTHETIC data)" if synthetic else "")
    document = {"synthetic": synthetic, "dwell_edges": list(PAPER_DWELL_EDGES), "tables": tables, "figures": figures}
    (out_dir / "section3.json").write_text(json.dumps(document, indent=2, default=float) + "\n")
    return document
