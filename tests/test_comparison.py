"""The comparison table: figures over folds and seeds, references chosen on validation, and paired
bootstrap intervals with known answers."""

import numpy as np
import pytest

from rib.config import EvaluationConfig
from rib.evaluation.comparison import Evaluated, build_comparison, comparison_markdown

K20 = EvaluationConfig(ks=[20], bootstrap=2000)


def evaluated(model, variant, ranks, validation_recall=0.0, fold=0, seed=0):
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks <= 20
    test = {"n": len(ranks), "oov_targets": int(np.isinf(ranks).sum())}
    test |= {"recall@20": float(hit.mean()), "mrr@20": float(np.where(hit, 1 / ranks, 0).mean())}
    validation = {"recall@20": validation_recall, "mrr@20": validation_recall}
    record = {"model": model, "variant": variant, "fold": fold, "seed": seed, "test": test, "validation": validation}
    return Evaluated(record, ranks)


def row(document, model, variant=None):
    return next(r for r in document["results"] if r["model"] == model and r["variant"] == variant)


def test_a_model_that_finds_every_target_against_one_that_finds_half():
    n = 400
    document = build_comparison(
        [evaluated("POP", None, [1.0] * (n // 2) + [50.0] * (n // 2), 0.5), evaluated("RIB", "sku", [1.0] * n)],
        K20,
        synthetic=True,
        data="d",
    )
    rib = row(document, "RIB", "sku")
    versus = rib["recall@20_vs_best_baseline"]
    assert versus["reference"] == "POP" and versus["difference"] == pytest.approx(0.5)
    # The difference's standard error is sqrt(0.25 / 400) = 0.025: the interval is about 0.5 ± 0.049.
    low, high = versus["ci95"]
    assert 0.44 < low < 0.47 and 0.53 < high < 0.56 and versus["significant"]


def test_identical_models_differ_by_nothing_significant_and_noise_is_not_significant():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 60, size=500).astype(float)
    same = build_comparison(
        [evaluated("S-POP", None, ranks, 0.3), evaluated("RIB", "sku", ranks)], K20, synthetic=False, data="d"
    )
    versus = row(same, "RIB", "sku")["recall@20_vs_best_baseline"]
    assert versus["difference"] == 0 and versus["ci95"] == [0.0, 0.0] and not versus["significant"]
    shuffled = rng.permutation(ranks)  # the same distribution, other targets hit: no real difference
    noisy = build_comparison(
        [evaluated("S-POP", None, ranks, 0.3), evaluated("RIB", "sku", shuffled)], K20, synthetic=False, data="d"
    )
    versus = row(noisy, "RIB", "sku")["recall@20_vs_best_baseline"]
    assert versus["ci95"][0] < 0 < versus["ci95"][1] and not versus["significant"]


def test_the_best_baseline_is_chosen_on_validation_not_test():
    better_on_test = evaluated("Item-KNN", None, [1.0] * 100, validation_recall=0.1)
    better_on_validation = evaluated("S-POP", None, [50.0] * 100, validation_recall=0.4)
    document = build_comparison(
        [better_on_test, better_on_validation, evaluated("RIB", "sku", [1.0] * 100)], K20, synthetic=False, data="d"
    )
    assert row(document, "RIB", "sku")["recall@20_vs_best_baseline"]["reference"] == "S-POP"
    assert "Best baseline chosen on validation: S-POP" in comparison_markdown(document)


def test_folds_and_seeds_and_the_other_variants_against_sku():
    items = []
    for fold, n in ((0, 100), (1, 120)):
        items.append(evaluated("POP", None, [50.0] * n, 0.1, fold=fold))
        for seed in (0, 1):
            items.append(evaluated("RIB", "sku", [1.0] * (n // 2) + [50.0] * (n - n // 2), fold=fold, seed=seed))
            items.append(evaluated("RIB", "sku_micro", [1.0] * n, fold=fold, seed=seed))
    document = build_comparison(items, K20, synthetic=False, data="d")
    micro = row(document, "RIB", "sku_micro")
    assert document["folds"] == 2 and micro["folds"] == 2 and micro["seeds"] == 2
    assert micro["n_test"] == 220 and [f["n"] for f in micro["per_fold"]] == [100, 120]
    assert micro["recall@20_vs_sku"]["reference"] == "RIB SKU"
    assert micro["recall@20_vs_sku"]["difference"] == pytest.approx(0.5)  # the mean over folds of 0.5 and 0.5
    assert "recall@20_vs_sku" not in row(document, "RIB", "sku")
    assert row(document, "RIB", "sku")["recall@20_std"] == 0.0 and row(document, "RIB", "sku")["std_over"] == "folds"
    table = comparison_markdown(document)
    assert "fold 0" in table and "fold 1" in table and "2 × 2" in table


def test_models_compared_on_other_targets_are_an_error():
    with pytest.raises(ValueError, match="not evaluated on the same targets"):
        build_comparison(
            [evaluated("POP", None, [1.0] * 10, 0.1), evaluated("RIB", "sku", [1.0] * 11)],
            K20,
            synthetic=False,
            data="d",
        )


def test_a_network_far_below_the_counted_baselines_on_validation_is_marked_possibly_collapsed():
    """Half of the best not-learned baseline's validation Recall is the line: SASRec at 0.14 against
    S-POP's 0.30 is marked, GRU4Rec at 0.16 is not, and neither is BPR-MF (no epochs: not a network)."""
    ranks = [1.0] * 50 + [90.0] * 50

    def network(model, validation_recall):
        item = evaluated(model, None, ranks, validation_recall)
        item.record["best_epoch"] = 3
        return item

    document = build_comparison(
        [
            evaluated("S-POP", None, ranks, 0.30),
            evaluated("POP", None, ranks, 0.05),
            evaluated("BPR-MF", None, ranks, 0.01),
            network("SASRec", 0.14),
            network("GRU4Rec", 0.16),
        ],
        K20,
        synthetic=False,
        data="d",
    )
    marked = {r["model"]: r.get("collapsed") for r in document["results"]}
    assert marked["SASRec"]["reference"] == "S-POP" and marked["SASRec"]["reference_validation_recall"] == 0.30
    assert marked["GRU4Rec"] is None and marked["BPR-MF"] is None and marked["S-POP"] is None
    text = comparison_markdown(document)
    assert "| SASRec (possibly collapsed: tune it on this log) |" in text and "| GRU4Rec |" in text
    assert "- SASRec -: validation Recall@20 0.1400, S-POP 0.3000" in text


def test_the_counted_baselines_are_baselines_that_are_never_trained():
    from rib.models.baselines import BASELINES, BPRMF
    from rib.schema import COUNTED_BASELINES

    assert set(COUNTED_BASELINES) <= set(BASELINES) and BPRMF.name not in COUNTED_BASELINES
