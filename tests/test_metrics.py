import numpy as np
import pytest
from helpers import write_canonical

from rib.config import EvaluationConfig, FeatureConfig
from rib.evaluation.metrics import evaluate, recall_mrr, target_ranks
from rib.features.build import build_features
from rib.features.dataset import SplitData

NEG = -np.inf


def test_rank_is_one_plus_items_scoring_at_least_as_high():
    #                  pad  oov   2    3    4    5
    scores = np.array([[9.0, 9.0, 0.5, 0.9, 0.1, 0.7]])
    assert target_ranks(scores, np.array([3])).tolist() == [1.0]  # pad and OOV never count
    assert target_ranks(scores, np.array([5])).tolist() == [2.0]
    assert target_ranks(scores, np.array([4])).tolist() == [4.0]


def test_ties_count_pessimistically():
    scores = np.array([[0, 0, 0.5, 0.5, 0.5, 0.2], [0, 0, 1.0, 1.0, 1.0, 1.0]])
    # Target 3 ties with 2 and 4: rank 3, not 1. A constant scorer ranks the target last.
    assert target_ranks(scores, np.array([3, 2])).tolist() == [3.0, 4.0]


def test_unseen_target_is_a_miss_that_stays_in_the_denominator():
    scores = np.array([[0, 10.0, 0.3, 0.2], [0, 0, 0.3, 0.2]])
    ranks = target_ranks(scores, np.array([1, 2]))  # first target out of vocabulary
    assert ranks[0] == np.inf and ranks[1] == 1.0
    assert recall_mrr(ranks, k=1) == {"recall@1": 0.5, "mrr@1": 0.5, "n": 2}


def test_nan_scores_rank_above_the_target():
    scores = np.array([[0, 0, np.nan, 0.9, 0.1]])
    assert target_ranks(scores, np.array([3])).tolist() == [2.0]


def test_ranks_of_a_tensor_are_those_of_the_array_with_ties_nan_unseen_and_the_last_sku_ranked_out():
    """Validation ranks torch tensors where they are, the baselines numpy arrays: one rule. Ranking the
    last SKU out equals scoring it -inf, and leaves the caller's scores as they were."""
    import torch

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(64, 12)).astype(np.float32)  # many ties
    scores[3, 7] = scores[9, 2] = np.nan
    scores[5, :] = -np.inf  # a row of -inf: the target ties with everything, the last SKU included
    targets = rng.integers(0, 12, size=64)  # ids 0 and 1 (padding, OOV): unseen
    last = rng.integers(0, 12, size=64)
    last[:8] = targets[:8]  # the last SKU is the target: ranked out with it
    excluded = scores.astype(np.float64)
    excluded[np.arange(64), last] = -np.inf
    kept = scores.copy()
    on_device = target_ranks(torch.as_tensor(scores), torch.as_tensor(targets), torch.as_tensor(last))
    np.testing.assert_array_equal(on_device, target_ranks(excluded, targets))
    np.testing.assert_array_equal(target_ranks(scores, targets, last), on_device)
    np.testing.assert_array_equal(scores, kept)  # not written
    np.testing.assert_array_equal(target_ranks(torch.as_tensor(scores), targets), target_ranks(scores, targets))
    assert np.isinf(on_device[targets < 2]).all() and (on_device[targets >= 2] >= 1).all()
    assert (target_ranks(excluded, targets) != target_ranks(scores, targets)).any()  # the exclusion matters here


def test_recall_and_mrr_hand_computed():
    ranks = np.array([1.0, 2.0, 5.0, 21.0, np.inf])
    figures = recall_mrr(ranks, k=20)
    assert figures["recall@20"] == pytest.approx(3 / 5)
    assert figures["mrr@20"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 5)
    assert figures["n"] == 5
    assert recall_mrr(ranks, k=1) == {"recall@1": 0.2, "mrr@1": 0.2, "n": 5}


def test_evaluate_over_a_split_with_last_sku_excluded(tmp_path):
    # Every session: A then B. In test the input is [A], the target B.
    sessions = {f"s{i}": [("A", 5, 1), ("B", 5, 1)] for i in range(50)}
    src = write_canonical(tmp_path / "mb.parquet", sessions)
    build_features(src, tmp_path / "f", FeatureConfig(validation_fraction=0.2, test_fraction=0.2))
    test = SplitData.load(tmp_path / "f", "test")
    a, b = 2, 3  # equal counts; the tie is broken by sku order: A=2, B=3

    def prefers_last_item(batch):
        scores = np.zeros((len(batch.lengths), 4))
        scores[:, a] = 2.0  # the input's own last SKU
        scores[:, b] = 1.0
        return scores

    with_rule = evaluate(prefers_last_item, test, EvaluationConfig(ks=[1]), n_items=4)
    without = evaluate(prefers_last_item, test, EvaluationConfig(ks=[1], exclude_last_sku=False), n_items=4)
    assert with_rule["n"] == without["n"] == test.n_examples > 0
    assert with_rule["recall@1"] == 1.0 and without["recall@1"] == 0.0
    assert without["mrr@1"] == 0.0


def test_the_protocol_ranks_every_next_product_or_only_each_sessions_last(tmp_path):
    from rib.evaluation.metrics import evaluation_examples

    sessions = {f"s{i}": [("A", 5, 1), ("B", 5, 1), ("A", 5, 1), ("C", 5, 1)] for i in range(40)}
    build_features(write_canonical(tmp_path / "mb.parquet", sessions), tmp_path / "f", FeatureConfig(test_fraction=0.5))
    test = SplitData.load(tmp_path / "f", "test")
    every = evaluation_examples(test, EvaluationConfig())
    last = evaluation_examples(test, EvaluationConfig(targets="last"))
    assert len(every) == 3 * test.n_sessions and len(last) == test.n_sessions
    assert (np.asarray(test.example_target)[last] == 4).all()  # C: id 4 after A=2, B=3 by frequency

    def knows_the_cycle(batch):  # after A comes B, then A, then C: a perfect model of this data
        scores = np.zeros((len(batch.lengths), 5))
        scores[np.arange(len(batch.lengths)), np.array([3, 2, 4])[batch.lengths - 1]] = 1
        return scores

    assert evaluate(knows_the_cycle, test, EvaluationConfig(ks=[1]), 5)["recall@1"] == 1.0
    assert evaluate(knows_the_cycle, test, EvaluationConfig(ks=[1], targets="last"), 5)["n"] == test.n_sessions
    with pytest.raises(ValueError, match=r"evaluation\.targets must be one of"):
        evaluation_examples(test, EvaluationConfig(targets="first"))
