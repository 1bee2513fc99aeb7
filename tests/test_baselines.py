import math

import numpy as np
import pytest
from helpers import write_canonical

from rib.config import EvaluationConfig, FeatureConfig
from rib.evaluation.metrics import evaluate
from rib.features.build import build_features
from rib.features.dataset import Batch, FeatureSet
from rib.models.baselines import ItemKNN, Pop, SessionKNN, SessionPop, VSessionKNN, keep_k_largest

ALL_TRAIN = FeatureConfig(validation_fraction=0.0, test_fraction=0.0)


@pytest.fixture
def tiny(tmp_path):
    sessions = {
        "s1": [("A", 5, 1), ("B", 5, 1), ("A", 6, 1)],  # sets: {A, B}
        "s2": [("A", 5, 1), ("C", 5, 1)],  # {A, C}
        "s3": [("B", 5, 1), ("C", 5, 1), ("C", 9, 1)],  # {B, C}, C one visit of two micro-behaviors
        "s4": [("A", 5, 1), ("B", 5, 1)],  # {A, B}
    }
    build_features(write_canonical(tmp_path / "mb.parquet", sessions), tmp_path / "f", ALL_TRAIN)
    features = FeatureSet.load(tmp_path / "f")
    ids = {sku: i for i, sku in enumerate(features.vocab["sku"])}
    return features, ids


def test_pop_counts_visits(tiny):
    features, ids = tiny
    pop = Pop().fit(features)
    assert pop.scores[ids["A"]] == 4  # A visited twice in s1
    assert pop.scores[ids["B"]] == 3 and pop.scores[ids["C"]] == 2
    assert pop.scores[0] == pop.scores[1] == 0


def test_item_knn_matches_the_papers_formula(tiny):
    features, ids = tiny
    knn = ItemKNN().fit(features)
    sim = knn.similarity.toarray()
    freq = {"A": 3, "B": 3, "C": 2}  # sessions containing each SKU
    together = {("A", "B"): 2, ("A", "C"): 1, ("B", "C"): 1}
    for (i, j), n in together.items():
        expected = n / math.sqrt(freq[i] * freq[j])
        assert sim[ids[i], ids[j]] == pytest.approx(expected)
        assert sim[ids[j], ids[i]] == pytest.approx(expected)
    assert sim[ids["A"], ids["A"]] == 0  # never recommends the SKU the session is on


def test_session_pop_ranks_session_items_by_count_then_recency_then_pop(tiny):
    features, ids = tiny
    train = features.train
    spop = SessionPop().fit(features)
    batch = train.batch(np.array([1]))  # s1's second example: input [A, B], target A
    assert batch.sku[0].tolist() == [ids["A"], ids["B"]]
    scores = spop.score(batch)[0]
    assert scores[ids["B"]] > scores[ids["A"]] > scores[ids["C"]]  # same count: B more recent
    repeated = train.batch(np.array([0, 1]))  # inputs [A] and [A, B]
    both = spop.score(repeated)
    assert both[0][ids["A"]] > both[0][ids["B"]] > both[0][ids["C"]]  # outside the session: POP order


def test_a_known_answer_that_item_knn_gets_right_and_pop_does_not(tmp_path):
    # The next SKU is always the partner of the current one: item i -> i + 100.
    rng = np.random.default_rng(0)
    sessions = {}
    for s in range(600):
        first = int(rng.integers(0, 50))
        sessions[f"s{s:04d}"] = [(f"p{first}", 5, 1), (f"p{first + 100}", 5, 1)]
    build_features(write_canonical(tmp_path / "mb.parquet", sessions), tmp_path / "f")
    features = FeatureSet.load(tmp_path / "f")
    at_1 = EvaluationConfig(ks=[1])
    knn = evaluate(ItemKNN().fit(features).score, features.test, at_1, features.n_items)
    pop = evaluate(Pop().fit(features).score, features.test, at_1, features.n_items)
    known = 1 - knn["oov_targets"] / knn["n"]
    assert knn["recall@1"] == pytest.approx(known) and known > 0.9
    assert pop["recall@1"] < 0.1


def test_session_knn_keeps_each_inputs_k_most_similar_sessions_with_ties_at_the_cut():
    similarity = np.array(
        [
            [0.0, 0.9, 0.2, 0.5, 0.5, 0.0],  # four positive: the 2nd largest is 0.5, both 0.5s stay
            [0.0, 0.3, 0.0, 0.0, 0.0, 0.0],  # fewer positive than k: all kept
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        ]
    )
    expected = np.array(
        [
            [0.0, 0.9, 0.0, 0.5, 0.5, 0.0],
            [0.0, 0.3, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.5, 0.6],
        ]
    )
    np.testing.assert_array_equal(keep_k_largest(similarity.copy(), 2), expected)
    rng = np.random.default_rng(0)  # against a full partition of every row, zeros included
    dense = np.round(rng.random((64, 300)) * (rng.random((64, 300)) < 0.3), 2)
    cut = np.partition(dense, -20, axis=1)[:, -20][:, None]
    np.testing.assert_array_equal(keep_k_largest(dense.copy(), 20), np.where(dense >= cut, dense, 0.0))


def test_v_sknn_weighs_each_product_by_its_last_visit_decayed_per_visit_back(tiny, tmp_path):
    features, ids = tiny
    a, b, c = ids["A"], ids["B"], ids["C"]
    # visits A (2 micro-behaviors), B, C (3), A again: the last visit A, C one back, B two back
    sku = np.array([[a, a, b, c, c, c, a, 0]])
    knn = VSessionKNN(EvaluationConfig()).fit(features)
    batch = Batch(
        inputs=np.stack([sku] + [np.zeros_like(sku)] * 3, axis=-1), lengths=np.array([7]), target=np.array([b])
    )
    np.testing.assert_array_equal(batch.visits_back()[0, :7], [3, 3, 2, 1, 1, 1, 0])
    knn.decay = 0.5
    query = knn.query(batch).toarray()[0]
    assert (query[a], query[b], query[c]) == (1.0, 0.25, 0.5)  # A's latest visit counts, not its first
    knn.decay = "linear"  # by position instead: the last 1, B at position 3 of 7
    query = knn.query(batch).toarray()[0]
    assert (query[a], query[b], query[c]) == (1.0, pytest.approx(3 / 7), pytest.approx(6 / 7))
    knn.decay = 0.7  # saved and loaded with the index
    knn.save(tmp_path / "knn.npz")
    loaded = SessionKNN.load(tmp_path / "knn.npz")
    assert isinstance(loaded, VSessionKNN) and loaded.decay == 0.7 and loaded.k == knn.k
    np.testing.assert_array_equal(loaded.score(batch), knn.score(batch))
    assert knn.chosen_on_validation["decay"] in VSessionKNN.DECAYS and SessionKNN(EvaluationConfig()).decay == "linear"
