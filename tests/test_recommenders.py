"""One contract, run over every model (in the manner of benfred/implicit's recommender_base_test).

Every model is a rib.models.base.Recommender: `fit(features)`, then `score(batch) -> (B, V)`.
`RecommenderContract` checks what each must do; one subclass per model says how to build it.

Known answer: 30 groups of 3 products; a session walks its group in a fixed cycle (a -> b -> c
-> a ...). A model that learns which products go together ranks the other two members of the
last product's group first (Recall@2 = 1); a model that learns the order ranks the true next one
first (Recall@1 = 1). Popularity cannot do either.
"""

import dataclasses

import numpy as np
import pytest
from helpers import write_canonical

from rib.config import (
    BPRConfig,
    EvaluationConfig,
    FeatureConfig,
    GraphConfig,
    NARMConfig,
    RIBConfig,
    SASRecConfig,
    TrainConfig,
    Word2VecConfig,
)
from rib.evaluation.metrics import evaluate, rank_targets
from rib.features.build import build_features
from rib.features.dataset import FeatureSet
from rib.models import baselines
from rib.models.base import Recommender
from rib.models.train import NetworkRecommender
from rib.models.word2vec import load_vectors, pretrain_word2vec

GROUPS = 30
AT_1_2 = EvaluationConfig(ks=[1, 2])


@dataclasses.dataclass
class World:
    features: FeatureSet
    vectors: dict


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(0)
    sessions = {}
    for s in range(3000):
        group, start = int(rng.integers(GROUPS)), int(rng.integers(3))
        length = int(rng.integers(3, 7))
        sessions[f"s{s:05d}"] = [
            (f"p{3 * group + (start + j) % 3}", int(rng.choice([5, 7])), int(rng.integers(1, 100)))
            for j in range(length)
        ]
    build_features(write_canonical(tmp / "mb.parquet", sessions), tmp / "f", FeatureConfig())
    features = FeatureSet.load(tmp / "f")
    dims = {"sku": 16, "activity": 4, "dwell": 4}
    pretrain_word2vec(features, tmp / "w2v", dims, Word2VecConfig(epochs=10, window=2, sample=0))
    return World(features, load_vectors(tmp / "w2v"))


def some_examples(data, count: int = 24) -> np.ndarray:
    """Examples of several input lengths (so a batch has padding)."""
    lengths = np.asarray(data.example_end) - np.asarray(data.example_start)
    order = np.argsort(lengths, kind="stable")
    return np.sort(order[np.linspace(0, len(order) - 1, count).astype(int)])


class RecommenderContract:
    learns_groups = True  # known answer: the other group members first (Recall@2 >= 0.95)
    learns_order = False  # known answer: the true next product first (Recall@1 >= 0.95)
    batch_tolerance = 1e-12  # a batch scores as its sessions one by one: float64 rounding of matrix products

    def make(self, world: World) -> Recommender:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, world):
        return cls().make(world).fit(world.features)

    def test_follows_the_contract(self, fitted, world):
        assert isinstance(fitted, Recommender) and isinstance(fitted.name, str)
        batch = world.features.test.batch(some_examples(world.features.test))
        scores = fitted.score(batch)
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
        assert scores.shape == (len(batch.lengths), world.features.n_items)
        assert np.all(scores[:, :2] == -np.inf)  # padding and out-of-vocabulary are never ranked
        assert np.all(np.isfinite(scores[:, 2:]))  # every product is

    def test_an_unknown_input_product_is_read_as_out_of_vocabulary(self, fitted, world):
        batch = world.features.test.batch(some_examples(world.features.test, 4))
        batch.inputs[:, 0, 0] = 1  # the first input product was never seen in training
        scores = fitted.score(batch)
        assert np.all(scores[:, :2] == -np.inf) and np.all(np.isfinite(scores[:, 2:]))

    def test_a_batch_scores_as_its_sessions_one_by_one(self, fitted, world):
        data = world.features.test
        chosen = some_examples(data)
        together = fitted.score(data.batch(chosen))
        alone = np.concatenate([fitted.score(data.batch(np.array([i]))) for i in chosen])
        np.testing.assert_allclose(together, alone, rtol=self.batch_tolerance, atol=self.batch_tolerance)

    def test_the_same_seed_gives_the_same_scores(self, fitted, world):
        batch = world.features.test.batch(some_examples(world.features.test))
        again = self.make(world).fit(world.features)
        np.testing.assert_array_equal(fitted.score(batch), again.score(batch))

    def test_known_answer(self, fitted, world):
        figures = evaluate(fitted.score, world.features.test, AT_1_2, world.features.n_items)
        assert figures["n"] > 200 and figures["oov_targets"] == 0
        if self.learns_groups:
            assert figures["recall@2"] >= 0.95, figures
        else:
            assert figures["recall@2"] <= 0.5, figures  # the control: it cannot know the group
        if self.learns_order:
            assert figures["recall@1"] >= 0.95, figures


class TestPop(RecommenderContract):
    learns_groups = False

    def make(self, world):
        return baselines.Pop()


class TestSessionPop(RecommenderContract):
    learns_groups = False  # it ranks the session's own products: half the time the right one is there

    def make(self, world):
        return baselines.SessionPop()

    def test_known_answer(self, fitted, world):
        # Known answer of a rule: a target seen earlier in the input (not the excluded last product)
        # is among the session's at most two other products, which S-POP ranks first.
        test = world.features.test
        ranks = rank_targets(fitted.score, test, AT_1_2, world.features.n_items)
        seen = np.array(
            [
                int(test.example_target[i]) in np.asarray(test.sku[test.example_start[i] : test.example_end[i] - 1])
                for i in range(test.n_examples)
            ]
        )
        assert seen.mean() > 0.3 and (ranks[seen] <= 2).all()


class TestSessionPopVisits(TestSessionPop):
    """S-POP counting visits: the same known answer (the session's own products first)."""

    def make(self, world):
        return baselines.SessionPopVisits()


class TestItemKNN(RecommenderContract):
    def make(self, world):
        return baselines.ItemKNN()


class TestSessionPopItemKNN(RecommenderContract):
    def make(self, world):
        return baselines.SessionPopItemKNN()


class TestSKNN(RecommenderContract):
    def make(self, world):
        return baselines.SessionKNN(AT_1_2)


class TestVSKNN(RecommenderContract):
    def make(self, world):
        return baselines.VSessionKNN(AT_1_2)


class TestBPRMF(RecommenderContract):
    def make(self, world):
        return baselines.BPRMF(BPRConfig(factors=16, iterations=100, learning_rate=0.05, seed=3))


class TestWord2vec(RecommenderContract):
    batch_tolerance = 1e-5  # float32 vectors

    def make(self, world):
        return baselines.Word2VecLast(world.vectors["sku"][0])


class TestWord2vecAvg(RecommenderContract):
    batch_tolerance = 1e-5  # float32 vectors

    def make(self, world):
        return baselines.Word2VecAvg(world.vectors["sku"][0])


SMALL_RIB = RIBConfig(d_sku=16, d_activity=4, d_dwell=4, hidden=32)
QUICK = TrainConfig(epochs=8, learning_rate=0.01, batch_size=64, progress=False, device="cpu", seed=1)


class TestRIB(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5  # float32

    def make(self, world):
        return NetworkRecommender("RIB", SMALL_RIB, QUICK, AT_1_2, world.vectors, log=lambda _: None)


class TestRIBOnVisits(RecommenderContract):
    """The "visits" variant: one position per visit, the product alone (neighbourhood votes too)."""

    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        config = dataclasses.replace(SMALL_RIB, variant="visits")
        return NetworkRecommender("RIB", config, QUICK, AT_1_2, world.vectors, log=lambda _: None)


class TestRIBAttention(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5  # float32

    def make(self, world):
        config = dataclasses.replace(SMALL_RIB, attention=False, repeat=False)
        return NetworkRecommender("RIB-Attention", config, QUICK, AT_1_2, world.vectors, log=lambda _: None)


class TestRIBWithoutNeighbors(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        config = dataclasses.replace(SMALL_RIB, neighbors=False, explore_loss=0.0)
        return NetworkRecommender("RIB", config, QUICK, AT_1_2, world.vectors, log=lambda _: None)


class TestGRU4Rec(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        config = RIBConfig(d_sku=16, hidden=32, attention=False, repeat=False, variant="sku", word2vec_init=False)
        return NetworkRecommender("GRU4Rec", config, QUICK, AT_1_2, log=lambda _: None)


class TestGRU4RecOnVisits(RecommenderContract):
    """The baseline "GRU4Rec Visits" as the benchmark builds it (rib.steps.make_recommender): the
    GRU4Rec network and settings on the visits input, the sequence a shop without micro-behaviors has."""

    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        from rib.artifacts import ArtifactPaths
        from rib.config import ExperimentConfig, Params
        from rib.steps import make_recommender

        gru4rec = RIBConfig(d_sku=16, hidden=32, repeat=False, neighbors=False, word2vec_init=False)
        params = Params(ExperimentConfig(models=[], variants=[]), gru4rec=gru4rec, train=QUICK, evaluation=AT_1_2)
        paths = ArtifactPaths.under("unused")  # GRU4Rec reads no word2vec vectors
        recommender = make_recommender("GRU4Rec Visits", None, params, paths, log=lambda _: None)
        config = recommender.model_config
        assert (config.variant, config.attention, config.repeat) == ("visits", False, False)
        return recommender


class TestNARM(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        config = NARMConfig(d_sku=16, hidden=32, variant="sku")
        return NetworkRecommender("NARM", config, QUICK, AT_1_2, log=lambda _: None)


class TestSASRec(RecommenderContract):
    learns_order = True
    batch_tolerance = 1e-5

    def make(self, world):
        config = SASRecConfig(d_sku=16, variant="sku", dropout=0.1)  # the known answer in a few epochs
        return NetworkRecommender("SASRec", config, QUICK, AT_1_2, log=lambda _: None)


SMALL_GRAPH = GraphConfig(d_sku=16, d_activity=4, d_dwell=4)


class GraphContract(RecommenderContract):
    """A session-graph network (SR-GNN, MKM-SR, EMBSR) on one input variant."""

    learns_order = True
    batch_tolerance = 1e-5
    network, variant = "SR-GNN", "sku"

    def make(self, world):
        config = dataclasses.replace(SMALL_GRAPH, variant=self.variant)
        return NetworkRecommender(self.network, config, QUICK, AT_1_2, log=lambda _: None)


class TestSRGNN(GraphContract):
    pass


class TestSRGNNOnVisits(GraphContract):
    variant = "visits"


class TestMKMSR(GraphContract):
    network, variant = "MKM-SR", "sku_micro"


class TestEMBSR(GraphContract):
    network, variant = "EMBSR", "sku_micro"
