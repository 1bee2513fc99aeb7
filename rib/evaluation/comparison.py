"""The comparison table (the paper's Table 3) from evaluated models, with paired confidence intervals.

An `Evaluated` is one model (and input variant) evaluated in one fold (a session split) with one
seed: its record (validation and test figures) and the rank of every test target. A row of the
table is one model and variant:

- its figure in a fold is the mean over that fold's seeds; the row's figure is the mean over
  folds, with the standard deviation over folds (over seeds when there is one fold);
- its difference to a reference model on the same targets (the best baseline, chosen on
  validation; and, for a trained model's other input variants, its SKU variant) comes with a
  95% paired bootstrap interval: targets are resampled with replacement within each fold
  (stratified), each fold's mean difference computed, and the folds averaged. A difference
  whose interval excludes 0 is marked significant.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rib.config import EvaluationConfig
from rib.schema import COUNTED_BASELINES, VARIANT_NAMES, VISITS

# "RIB-untrained": a trained mixture's row at its initialization (written by every RIB training, rib.steps)
UNTRAINED_SUFFIX = "-untrained"
# A trained network whose validation Recall@k is below this share of the best baseline that is not
# learned (rib.schema.COUNTED_BASELINES) is marked: its settings do not suit this log.
COLLAPSE_SHARE = 0.5
COLLAPSE_ADVICE = "possibly collapsed: tune it on this log"

COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"


@dataclass
class Evaluated:
    record: dict  # model, variant, fold, seed, "validation" and "test" figures
    ranks: np.ndarray  # (n,) rank of every test target of the fold, inf for an unseen one


def per_target(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each target's contribution to Recall@k (a hit) and MRR@k (1/rank within k)."""
    hit = ranks <= k
    return {f"recall@{k}": hit.astype(np.float64), f"mrr@{k}": np.where(hit, 1.0 / ranks, 0.0)}


def build_comparison(evaluated: list[Evaluated], evaluation: EvaluationConfig, *, synthetic: bool, data: str) -> dict:
    """One row per (model, variant) over folds and seeds, with paired intervals (module docstring)."""
    k = evaluation.k
    metrics = (f"recall@{k}", f"mrr@{k}")
    groups: dict[tuple, dict[int, list[Evaluated]]] = {}
    for item in evaluated:
        key = (item.record["model"], item.record["variant"])
        groups.setdefault(key, {}).setdefault(item.record.get("fold", 0), []).append(item)
    folds = sorted({fold for by_fold in groups.values() for fold in by_fold})
    vectors = {  # (model, variant) -> metric -> fold -> per-target values, mean over seeds
        key: {
            m: {f: np.mean([per_target(i.ranks, k)[m] for i in by_fold[f]], axis=0) for f in by_fold} for m in metrics
        }
        for key, by_fold in groups.items()
    }
    rows = [_row(key, by_fold, vectors[key], k, synthetic) for key, by_fold in groups.items()]
    resamples = _resamples(vectors, folds, evaluation)
    baselines = [r for r in rows if r["variant"] is None]
    for metric in metrics:
        best = max(baselines, key=lambda r: r[f"validation_{metric}"], default=None)  # chosen on validation
        for row in rows:
            key = (row["model"], row["variant"])
            if row["variant"] is not None and best is not None:
                reference = (best["model"], None)
                row[f"{metric}_vs_best_baseline"] = _paired(vectors, key, reference, metric, resamples)
                if best[metric] > 0:
                    row[f"{metric}_improvement_pct"] = 100.0 * (row[metric] - best[metric]) / best[metric]
            for reference, suffix in (
                ((row["model"], "sku"), "sku"),  # what the micro-behaviors add to the SKU sequence
                ((row["model"], VISITS), "visits"),  # ... and to the sequence of product visits
                ((row["model"] + UNTRAINED_SUFFIX, row["variant"]), "untrained"),  # what training adds
            ):
                if row["variant"] is not None and reference != key and reference in vectors:
                    row[f"{metric}_vs_{suffix}"] = _paired(vectors, key, reference, metric, resamples)
    _mark_collapsed(rows, k)
    return {
        "data": data,
        "synthetic": synthetic,
        "k": k,
        "targets": evaluation.targets,
        "folds": len(folds),
        "bootstrap": evaluation.bootstrap,
        "results": rows,
    }


def _mark_collapsed(rows: list[dict], k: int) -> None:
    """`collapsed` on each trained network's row (one with epochs) whose validation Recall@k is below
    COLLAPSE_SHARE of the best not-learned baseline's: what a user must not read as a result."""
    metric = f"validation_recall@{k}"
    counted = [r for r in rows if r["variant"] is None and r["model"] in COUNTED_BASELINES]
    reference = max(counted, key=lambda r: r[metric], default=None)
    if reference is None:
        return
    for row in rows:
        trained = any("best_epoch" in s for f in row["per_fold"] for s in f["per_seed"])
        if trained and row[metric] < COLLAPSE_SHARE * reference[metric]:
            row["collapsed"] = {
                "validation_recall": row[metric],
                "reference": reference["model"],
                "reference_validation_recall": reference[metric],
                "advice": COLLAPSE_ADVICE,
            }


def _row(key: tuple, by_fold: dict[int, list[Evaluated]], vectors: dict, k: int, synthetic: bool) -> dict:
    model, variant = key
    per_fold = []
    for fold, items in sorted(by_fold.items()):
        test = items[0].record["test"]
        per_fold.append(
            {
                "fold": fold,
                "n": test["n"],
                "oov_targets": test["oov_targets"],
                **{m: float(np.mean(vectors[m][fold])) for m in vectors},
                **{f"validation_{m}": statistics.fmean(i.record["validation"][m] for i in items) for m in vectors},
                "per_seed": [
                    {"seed": i.record.get("seed"), **{m: i.record["test"][m] for m in vectors}}
                    | ({"best_epoch": i.record["best_epoch"]} if "best_epoch" in i.record else {})
                    for i in items
                ],
            }
        )
    row: dict = {"model": model, "variant": variant, "variant_name": VARIANT_NAMES.get(variant, "-")}
    for m in vectors:
        fold_figures = [f[m] for f in per_fold]
        seed_figures = [s[m] for f in per_fold for s in f["per_seed"]]
        spread = fold_figures if len(per_fold) > 1 else seed_figures
        row[m] = statistics.fmean(fold_figures)
        row[f"{m}_std"] = statistics.stdev(spread) if len(spread) > 1 else 0.0
        row[f"validation_{m}"] = statistics.fmean(f[f"validation_{m}"] for f in per_fold)
    row |= {
        "n_test": sum(f["n"] for f in per_fold),
        "oov_test_targets": sum(f["oov_targets"] for f in per_fold),
        "folds": len(per_fold),
        "seeds": len(per_fold[0]["per_seed"]),
        "std_over": "folds" if len(per_fold) > 1 else "seeds",
        "per_fold": per_fold,
        "synthetic": synthetic,
    }
    return row


def _resamples(vectors: dict, folds: list[int], evaluation: EvaluationConfig) -> dict[int, np.ndarray]:
    """fold -> (bootstrap, n) target indices drawn with replacement; one draw shared by every comparison."""
    rng = np.random.default_rng(evaluation.bootstrap_seed)
    sizes = {}
    for by_metric in vectors.values():
        for fold, values in next(iter(by_metric.values())).items():
            sizes.setdefault(fold, len(values))
    return {fold: rng.integers(0, sizes[fold], size=(evaluation.bootstrap, sizes[fold])) for fold in folds}


def _paired(vectors: dict, key: tuple, reference: tuple, metric: str, resamples: dict[int, np.ndarray]) -> dict:
    """Mean paired difference key - reference over folds, with its 95% stratified bootstrap interval."""
    ours, theirs = vectors[key][metric], vectors[reference][metric]
    folds = sorted(set(ours) & set(theirs))
    if not folds or any(len(ours[f]) != len(theirs[f]) for f in folds):
        raise ValueError(f"{key} and {reference} were not evaluated on the same targets")
    differences = {f: ours[f] - theirs[f] for f in folds}
    estimate = statistics.fmean(float(d.mean()) for d in differences.values())
    replicates = np.mean([differences[f][resamples[f]].mean(axis=1) for f in folds], axis=0)  # (bootstrap,)
    low, high = np.percentile(replicates, [2.5, 97.5])
    return {
        "reference": reference[0] + (f" {VARIANT_NAMES[reference[1]]}" if reference[1] else ""),
        "difference": estimate,
        "ci95": [float(low), float(high)],
        "significant": bool(low > 0 or high < 0),
    }


def write_comparison(document: dict, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMPARISON_JSON).write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / COMPARISON_MD).write_text(comparison_markdown(document) + "\n")
    return document


def difference_text(row: dict, key: str) -> str:
    """`+0.0123 [+0.0040, +0.0210]*`: a paired difference, its 95% interval, * when significant."""
    if key not in row:
        return "-"
    d = row[key]
    return f"{d['difference']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]{'*' if d['significant'] else ''}"


def comparison_markdown(document: dict) -> str:
    k = document["k"]
    label = "SYNTHETIC data" if document["synthetic"] else "real data"
    protocol = {
        "all": "every next product of a test session is a target",
        "last": "each test session's last product is the target",
    }[document["targets"]]
    rows = document["results"]
    spread = "folds" if document["folds"] > 1 else "seeds"
    best = {
        m: next((r[f"{m}_vs_best_baseline"]["reference"] for r in rows if f"{m}_vs_best_baseline" in r), "-")
        for m in (f"recall@{k}", f"mrr@{k}")
    }
    lines = [
        f"Test split of {document['data']} ({label}); {protocol} (evaluation.targets: {document['targets']}); "
        f"full-catalog ranking, ties pessimistic, unseen targets count as misses; mean ± std over {spread} "
        f"({document['folds']} fold(s)); Δ: paired difference with its 95% bootstrap interval "
        f"({document['bootstrap']} resamples of the targets), * where the interval excludes 0. "
        f"Best baseline chosen on validation: {best[f'recall@{k}']} (Recall), {best[f'mrr@{k}']} (MRR).",
        "",
        f"| model | input | Recall@{k} | Δ vs best baseline | MRR@{k} | Δ vs best baseline "
        f"| Δ Recall vs Visits | Δ MRR vs Visits | Δ Recall vs SKU | Δ MRR vs SKU | n test | unseen | folds × seeds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"{r['model']} ({COLLAPSE_ADVICE})" if "collapsed" in r else r["model"]
        lines.append(
            f"| {name} | {r['variant_name']} | {r[f'recall@{k}']:.4f} ± {r[f'recall@{k}_std']:.4f} "
            f"| {difference_text(r, f'recall@{k}_vs_best_baseline')} "
            f"| {r[f'mrr@{k}']:.4f} ± {r[f'mrr@{k}_std']:.4f} | {difference_text(r, f'mrr@{k}_vs_best_baseline')} "
            f"| {difference_text(r, f'recall@{k}_vs_visits')} | {difference_text(r, f'mrr@{k}_vs_visits')} "
            f"| {difference_text(r, f'recall@{k}_vs_sku')} | {difference_text(r, f'mrr@{k}_vs_sku')} "
            f"| {r['n_test']} | {r['oov_test_targets']} | {r['folds']} × {r['seeds']} |"
        )
    collapsed = [r for r in rows if "collapsed" in r]
    if collapsed:
        share = f"{COLLAPSE_SHARE:g}"
        lines += [
            "",
            f"Possibly collapsed (validation Recall@{k} below {share} of the best counted baseline's): "
            "`rib benchmark --tune N` tunes every learned model on this log's validation split first.",
            "",
        ]
        for r in collapsed:
            c = r["collapsed"]
            lines.append(
                f"- {r['model']} {r['variant_name']}: validation Recall@{k} {c['validation_recall']:.4f}, "
                f"{c['reference']} {c['reference_validation_recall']:.4f}"
            )
    trained = [r for r in rows if f"recall@{k}_vs_untrained" in r]
    if trained:
        lines += ["", "What training adds (trained minus the same model at its initialization, paired):", ""]
        for r in trained:
            lines.append(
                f"- {r['model']} {r['variant_name']}: Recall@{k} {difference_text(r, f'recall@{k}_vs_untrained')}, "
                f"MRR@{k} {difference_text(r, f'mrr@{k}_vs_untrained')}"
            )
    if document["folds"] > 1:
        lines += ["", f"Per fold (Recall@{k} / MRR@{k}, n):", ""]
        folds = [f["fold"] for f in rows[0]["per_fold"]]
        lines.append("| model | input | " + " | ".join(f"fold {f}" for f in folds) + " |")
        lines.append("|---|---|" + "---:|" * len(folds))
        for r in rows:
            cells = [f"{f[f'recall@{k}']:.4f} / {f[f'mrr@{k}']:.4f} ({f['n']})" for f in r["per_fold"]]
            lines.append(f"| {r['model']} | {r['variant_name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
