"""Evaluate recommenders on the stored features and write the comparison table."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rib.baselines import BASELINES
from rib.dataset import SplitData, load_vocab
from rib.metrics import evaluate

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


def evaluate_baselines(
    features_dir: str | Path,
    names: list[str] | tuple[str, ...] = tuple(BASELINES),
    ks: list[int] | tuple[int, ...] = (20,),
    exclude_last_sku: bool = True,
) -> list[dict]:
    """Fit each baseline on training and evaluate it on validation and test."""
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {list(BASELINES)}")
    n_items = len(load_vocab(features_dir)["sku"])
    train = SplitData.load(features_dir, "train")
    records = []
    for name in names:
        started = time.perf_counter()
        model = BASELINES[name]().fit(train, n_items)
        record = {"model": name, "variant": None, "fit_seconds": round(time.perf_counter() - started, 3)}
        for split in ("validation", "test"):
            figures = evaluate(
                model.score_all,
                SplitData.load(features_dir, split),
                ks=tuple(ks),
                n_items=n_items,
                exclude_last_sku=exclude_last_sku,
            )
            record[split] = figures
        records.append(record)
    return records


def write_comparison(records: list[dict], out_dir: str | Path, *, synthetic: bool, data: str, k: int = 20) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "data": data,
        "synthetic": synthetic,
        "k": k,
        "results": [
            {
                "model": r["model"],
                "variant": r["variant"],
                f"recall@{k}": r["test"][f"recall@{k}"],
                f"mrr@{k}": r["test"][f"mrr@{k}"],
                "n_test": r["test"]["n"],
                "oov_test_targets": r["test"]["oov_targets"],
                "validation": r["validation"],
                "synthetic": synthetic,
            }
            for r in records
        ],
    }
    (out_dir / COMPARISON_JSON).write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / COMPARISON_MD).write_text(comparison_markdown(document) + "\n")
    return document


def comparison_markdown(document: dict) -> str:
    k = document["k"]
    label = "SYNTHETIC data" if document["synthetic"] else "real data"
    lines = [
        f"Test split of {document['data']} ({label}); full-catalog ranking, ties pessimistic, "
        "unseen targets count as misses.",
        "",
        f"| model | variant | Recall@{k} | MRR@{k} | n test | of which unseen |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in document["results"]:
        lines.append(
            f"| {r['model']} | {r['variant'] or '-'} | {r[f'recall@{k}']:.4f} | {r[f'mrr@{k}']:.4f} "
            f"| {r['n_test']} | {r['oov_test_targets']} |"
        )
    return "\n".join(lines)
