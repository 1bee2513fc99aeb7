"""The baselines, each a `rib.models.base.Recommender`: `fit(features)`, then `score(batch) -> (B, V)`.

- POP: training popularity, counted in macro interactions (product visits).
- S-POP: the session's own SKUs by how often they occur in the input, ties broken by
  recency (latest first), then every other SKU by POP.
- Item-KNN (the paper's definition): sim(i, j) = freq(ij) / sqrt(freq(i) * freq(j)), where
  freq counts training sessions as sets of SKUs; a session is scored by its last SKU's row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rib.config import BPRConfig
from rib.features.dataset import Batch, FeatureSet, SplitData
from rib.models.base import only_products
from rib.schema import FIRST_SKU_ID, OOV


def visit_counts(train: SplitData, n_items: int) -> np.ndarray:
    """Macro interactions per SKU id in the training split (0 for padding and out of vocabulary)."""
    macro = np.asarray(train.macro)
    sku = np.asarray(train.sku)
    first = np.ones(len(sku), bool)
    first[1:] = macro[1:] != macro[:-1]
    first[np.asarray(train.session_offsets[:-1])[np.diff(train.session_offsets) > 0]] = True
    counts = np.bincount(sku[first], minlength=n_items).astype(np.float64)
    counts[:FIRST_SKU_ID] = 0  # padding and out-of-vocabulary visits are no product's
    return counts


class Pop:
    name = "POP"

    def fit(self, features: FeatureSet) -> Pop:
        self.scores = visit_counts(features.train, features.n_items)
        return self

    def score(self, batch: Batch) -> np.ndarray:
        return only_products(np.broadcast_to(self.scores, (len(batch.lengths), len(self.scores))))


class SessionPop:
    name = "S-POP"

    def fit(self, features: FeatureSet) -> SessionPop:
        counts = visit_counts(features.train, features.n_items)
        self.pop = counts / (counts.max() + 1.0)  # in [0, 1): below every session SKU
        self.n_items = features.n_items
        return self

    def score(self, batch: Batch) -> np.ndarray:
        B, L = batch.sku.shape
        scores = np.tile(self.pop, (B, 1))
        rows = np.repeat(np.arange(B), L)
        valid = (np.arange(L)[None, :] < batch.lengths[:, None]).ravel()
        items = batch.sku.ravel()
        counts = np.zeros((B, self.n_items))
        np.add.at(counts, (rows[valid], items[valid]), 1.0)
        recency = np.zeros((B, self.n_items))
        positions = np.arange(1, L + 1)[None, :] / (batch.lengths[:, None] + 1.0)  # (B, L) in (0, 1)
        np.maximum.at(recency, (rows[valid], items[valid]), positions.ravel()[valid])
        in_session = counts > 0
        scores[in_session] = 2.0 + counts[in_session] + recency[in_session]
        return only_products(scores)


class ItemKNN:
    name = "Item-KNN"

    def fit(self, features: FeatureSet) -> ItemKNN:
        sessions_by_item = session_item_matrix(features.train, features.n_items)
        co = (sessions_by_item.T @ sessions_by_item).tocsr()  # (V, V) freq(ij), diagonal freq(i)
        freq = co.diagonal()
        norm = np.sqrt(np.where(freq > 0, freq, 1.0))
        similarity = (sp.diags(1.0 / norm) @ co @ sp.diags(1.0 / norm)).tocsr()
        similarity = (similarity - sp.diags(similarity.diagonal())).tocsr()  # no self-similarity
        similarity.eliminate_zeros()
        self.similarity = similarity
        return self

    def score(self, batch: Batch) -> np.ndarray:
        return only_products(self.similarity[batch.last_sku].toarray())


def session_item_matrix(train: SplitData, n_items: int) -> sp.csr_matrix:
    """Training sessions x SKUs, 1 where the SKU occurs in the session."""
    sku = np.asarray(train.sku)
    session = np.repeat(np.arange(train.n_sessions), np.diff(train.session_offsets))
    keep = sku > OOV
    matrix = sp.csr_matrix((np.ones(int(keep.sum())), (session[keep], sku[keep])), shape=(train.n_sessions, n_items))
    matrix.data[:] = 1.0  # repeats were summed: back to a set of SKUs per session
    return matrix


def _mean_rows(vectors: np.ndarray, batch: Batch) -> np.ndarray:
    """Mean of the vectors of each input's known SKUs. (B, d)"""
    real = (np.arange(batch.sku.shape[1])[None, :] < batch.lengths[:, None]) & (batch.sku > OOV)
    summed = (vectors[batch.sku] * real[..., None]).sum(axis=1)
    return summed / np.maximum(real.sum(axis=1, keepdims=True), 1)


class BPRMF:
    name = "BPR-MF"

    def __init__(self, config: BPRConfig) -> None:
        self.config = config

    def fit(self, features: FeatureSet) -> BPRMF:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(
            factors=self.config.factors,
            iterations=self.config.iterations,
            learning_rate=self.config.learning_rate,
            regularization=self.config.regularization,
            random_state=self.config.seed,
            num_threads=1,
        )
        model.fit(session_item_matrix(features.train, features.n_items).astype(np.float32), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, np.float64)  # (V, f + 1), last column: bias
        return self

    def score(self, batch: Batch) -> np.ndarray:
        session = _mean_rows(self.item_factors[:, :-1], batch)  # (B, f)
        return only_products(session @ self.item_factors[:, :-1].T + self.item_factors[:, -1])


class Word2VecLast:
    name = "Word2vec"

    def __init__(self, vectors: np.ndarray) -> None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0)  # (V, d)

    def fit(self, features: FeatureSet) -> Word2VecLast:
        return self  # the vectors were learned by word2vec pretraining on the same training split

    def query(self, batch: Batch) -> np.ndarray:
        return self.unit[batch.last_sku]  # (B, d)

    def score(self, batch: Batch) -> np.ndarray:
        return only_products(self.query(batch) @ self.unit.T)  # cosine, (B, V)


class Word2VecAvg(Word2VecLast):
    name = "Word2vec Avg"

    def query(self, batch: Batch) -> np.ndarray:
        mean = _mean_rows(self.unit, batch)
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


BASELINES = {model.name: model for model in (Pop, SessionPop, ItemKNN, BPRMF, Word2VecLast, Word2VecAvg)}
NEEDS_WORD2VEC = {Word2VecLast.name, Word2VecAvg.name}


def make_baseline(name: str, bpr: BPRConfig, word2vec_sku: np.ndarray | None = None):
    """An unfitted baseline by its name in the comparison table."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {list(BASELINES)}")
    if name in NEEDS_WORD2VEC:
        if word2vec_sku is None:
            raise ValueError(f"{name} needs the word2vec SKU vectors (run pretraining first)")
        return BASELINES[name](word2vec_sku)
    if name == BPRMF.name:
        return BPRMF(bpr)
    return BASELINES[name]()
