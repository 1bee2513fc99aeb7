"""The comparison table (the paper's Table 3) from the records of evaluated models.

A record is one model (and input variant) evaluated with one seed; `aggregate` turns the
records into one row per model and variant with the mean and standard deviation over seeds.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rib.schema import VARIANT_NAMES

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(records: list[dict], *, synthetic: bool, data: str, k: int = 20) -> dict:
    """One row per (model, variant): mean and std over seeds of test Recall@k and MRR@k."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["model"], record["variant"]), []).append(record)
    rows = []
    for (model, variant), group in groups.items():
        recall = [r["test"][f"recall@{k}"] for r in group]
        mrr = [r["test"][f"mrr@{k}"] for r in group]
        row = {
            "model": model,
            "variant": variant,
            "variant_name": VARIANT_NAMES.get(variant, "-") if variant else "-",
            f"recall@{k}": _mean_std(recall)[0],
            f"recall@{k}_std": _mean_std(recall)[1],
            f"mrr@{k}": _mean_std(mrr)[0],
            f"mrr@{k}_std": _mean_std(mrr)[1],
            "n_test": group[0]["test"]["n"],
            "oov_test_targets": group[0]["test"]["oov_targets"],
            "seeds": len(group),
            f"validation_recall@{k}": statistics.fmean(r["validation"][f"recall@{k}"] for r in group),
            f"validation_mrr@{k}": statistics.fmean(r["validation"][f"mrr@{k}"] for r in group),
            "per_seed": [
                {"seed": r.get("seed"), f"recall@{k}": r["test"][f"recall@{k}"], f"mrr@{k}": r["test"][f"mrr@{k}"]}
                | ({"best_epoch": r["best_epoch"]} if "best_epoch" in r else {})
                for r in group
            ],
            "synthetic": synthetic,
        }
        rows.append(row)
    baselines = [r for r in rows if r["variant"] is None]
    for metric in (f"recall@{k}", f"mrr@{k}"):
        best = max((r[metric] for r in baselines), default=None)
        for row in rows:
            if row["variant"] is not None and best:
                row[f"{metric}_improvement_pct"] = 100.0 * (row[metric] - best) / best
    return {"data": data, "synthetic": synthetic, "k": k, "results": rows}


def write_comparison(document: dict, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMPARISON_JSON).write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / COMPARISON_MD).write_text(comparison_markdown(document) + "\n")
    return document


def comparison_markdown(document: dict) -> str:
    k = document["k"]
    label = "SYNTHETIC data" if document["synthetic"] else "real data"
    lines = [
        f"Test split of {document['data']} ({label}); full-catalog ranking, ties pessimistic, "
        "unseen targets count as misses; mean ± std over seeds; improvement over the best baseline.",
        "",
        f"| model | input | Recall@{k} | MRR@{k} | vs best baseline (R / M) | n test | unseen | seeds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in document["results"]:
        improvement = "-"
        if f"recall@{k}_improvement_pct" in r:
            improvement = f"{r[f'recall@{k}_improvement_pct']:+.1f}% / {r[f'mrr@{k}_improvement_pct']:+.1f}%"
        lines.append(
            f"| {r['model']} | {r['variant_name']} | {r[f'recall@{k}']:.4f} ± {r[f'recall@{k}_std']:.4f} "
            f"| {r[f'mrr@{k}']:.4f} ± {r[f'mrr@{k}_std']:.4f} | {improvement} | {r['n_test']} "
            f"| {r['oov_test_targets']} | {r['seeds']} |"
        )
    return "\n".join(lines)
