"""The baselines, each a `rib.models.base.Recommender`: `fit(features)`, then `score(batch) -> (B, V)`.

- POP: training popularity, counted in macro interactions (product visits).
- S-POP: the session's own SKUs by how often they occur in the input (micro-behaviors), ties broken
  by recency (latest first), then every other SKU by POP; S-POP Visits counts visits instead.
- Item-KNN (the paper's definition): sim(i, j) = freq(ij) / sqrt(freq(i) * freq(j)), where
  freq counts training sessions as sets of SKUs; a session is scored by its last SKU's row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rib.config import BPRConfig, EvaluationConfig
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


class SessionPopVisits(SessionPop):
    """S-POP on visits: the session's products by their number of visits (not micro-behaviors)."""

    name = "S-POP Visits"

    def score(self, batch: Batch) -> np.ndarray:
        return super().score(batch.visits_only())


def item_similarity(train: SplitData, n_items: int) -> sp.csr_matrix:
    """(V, V) Item-KNN similarity: freq(ij) / sqrt(freq(i) freq(j)) over sessions as sets, no diagonal."""
    sessions_by_item = session_item_matrix(train, n_items)
    co = (sessions_by_item.T @ sessions_by_item).tocsr()  # (V, V) freq(ij), diagonal freq(i)
    freq = co.diagonal()
    norm = np.sqrt(np.where(freq > 0, freq, 1.0))
    similarity = (sp.diags(1.0 / norm) @ co @ sp.diags(1.0 / norm)).tocsr()
    similarity = (similarity - sp.diags(similarity.diagonal())).tocsr()  # no self-similarity
    similarity.eliminate_zeros()
    return similarity


class ItemKNN:
    name = "Item-KNN"

    def fit(self, features: FeatureSet) -> ItemKNN:
        self.similarity = item_similarity(features.train, features.n_items)
        return self

    def score(self, batch: Batch) -> np.ndarray:
        return only_products(self.similarity[batch.last_sku].toarray())


class SessionPopItemKNN:
    """S-POP, then Item-KNN: the session's own products by S-POP's order first, then the Item-KNN
    neighbours of the last product by similarity, then everything else by popularity."""

    name = "S-POP+Item-KNN"

    def fit(self, features: FeatureSet) -> SessionPopItemKNN:
        self.session_pop = SessionPop().fit(features)
        self.item_knn = ItemKNN().fit(features)
        return self

    def score(self, batch: Batch) -> np.ndarray:
        spop = self.session_pop.score(batch)  # session products >= 2, others popularity in [0, 1)
        neighbours = self.item_knn.similarity[batch.last_sku].toarray()  # (B, V) in [0, 1]
        outside = (spop < 2) & (neighbours > 0)
        return np.where(outside, 1.0 + neighbours, spop)  # neighbours in (1, 2]: between the two


def keep_k_largest(similarity: np.ndarray, k: int) -> np.ndarray:
    """(B, S) nonnegative: each row's k largest entries (ties with the k-th kept), 0 elsewhere.
    Only the positive entries are partitioned: a row is mostly zeros, and np.partition over many
    equal values is slow (5 s for 2048 x 20,000)."""
    positive = similarity > 0
    for row in np.flatnonzero(positive.sum(axis=1) > k):
        values = similarity[row, positive[row]]
        cut = np.partition(values, -k)[-k]
        similarity[row, similarity[row] < cut] = 0.0
    return similarity


class SessionKNN:
    """SKNN (Jannach & Ludewig, RecSys 2017; Ludewig & Jannach 2018): the k training sessions most
    similar to the input (cosine between sets of products) vote for their products, each with its
    similarity. V-SKNN weighs the input's products by how recent they are: a linear decay over the
    input's positions from the last one (Ludewig & Jannach's), or decay ** (visits back), the current
    visit 1. Nothing is trained; k, and V-SKNN's decay, are chosen together on the validation split
    among `K_CHOICES` x `DECAYS`."""

    name = "SKNN"
    K_CHOICES = (20, 30, 50, 100, 200, 500)
    DECAYS = ("linear", 0.9, 0.8, 0.7)
    positional = False
    decay: str | float = "linear"
    visits = False  # read the inputs as visits (one position per macro interaction): the "visits" variant

    def __init__(self, evaluation: EvaluationConfig) -> None:
        self.evaluation = evaluation

    def fit(self, features: FeatureSet) -> SessionKNN:
        from rib.evaluation.metrics import evaluate

        sessions = session_item_matrix(features.train, features.n_items)  # (S, V) binary
        self.sessions = sessions
        self.session_norm = np.sqrt(np.asarray(sessions.sum(axis=1)).ravel())  # (S,)
        self.n_items = features.n_items
        chosen = None
        for decay in self.DECAYS if self.positional else ("linear",):
            for k in self.K_CHOICES:
                self.k, self.decay = k, decay
                figures = evaluate(self.score, features.validation, self.evaluation, features.n_items)
                key = (figures[f"recall@{self.evaluation.k}"], figures[f"mrr@{self.evaluation.k}"])
                if chosen is None or key > chosen[0]:
                    chosen = (key, k, decay)
        _, self.k, self.decay = chosen
        self.chosen_on_validation = {"k": self.k, "choices": list(self.K_CHOICES), "decay": self.decay}
        return self

    def query(self, batch: Batch) -> sp.csr_matrix:
        """(B, V) the inputs as product vectors: 1 per product, or V-SKNN's position weights."""
        if self.visits:
            batch = batch.visits_only()
        B, L = batch.sku.shape
        real = ((np.arange(L)[None, :] < batch.lengths[:, None]) & (batch.sku > OOV)).ravel()
        weights = np.ones((B, L))
        if self.positional and self.decay == "linear":  # the last position 1, the one before (n-1)/n, ...
            weights = (np.arange(1, L + 1)[None, :] / batch.lengths[:, None]).clip(max=1.0)
        elif self.positional:  # the current visit 1, the one before `decay`, then decay ** 2, ...
            weights = float(self.decay) ** batch.visits_back()
        rows = np.repeat(np.arange(B), L)[real]
        matrix = sp.coo_matrix((weights.ravel()[real], (rows, batch.sku.ravel()[real])), shape=(B, self.n_items))
        return _row_max(matrix)  # a product seen twice counts once, with its latest (largest) weight

    def similarities(self, batch: Batch, own_session: np.ndarray | None = None) -> np.ndarray:
        """(B, S) cosine similarity of each input to the training sessions, 0 outside its k nearest
        (and for its own session, `own_session`, where the input comes from the training split)."""
        query = self.query(batch)  # (B, V)
        query_norm = np.sqrt(np.asarray(query.multiply(query).sum(axis=1)).ravel())  # (B,)
        overlap = (query @ self.sessions.T).toarray()  # (B, S)
        similarity = overlap / np.maximum(query_norm[:, None] * self.session_norm[None, :], 1e-12)  # cosine
        if own_session is not None:
            similarity[np.arange(len(similarity)), own_session] = 0.0  # leave the session itself out
        return keep_k_largest(similarity, self.k)  # the k most similar sessions of each input

    def score(self, batch: Batch) -> np.ndarray:
        return only_products(self.similarities(batch) @ self.sessions)  # (B, V): each neighbour votes

    def distribution(self, batch: Batch) -> np.ndarray:
        """(B, V) the votes as probabilities over the catalog (a row of 0 where no session is similar)."""
        votes = np.asarray(self.similarities(batch) @ self.sessions)  # (B, V)
        votes[:, :FIRST_SKU_ID] = 0.0
        return votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)

    def target_probabilities(
        self, data: SplitData, own_sessions: bool, outside_input: bool = False, batch_size: int = 2048
    ) -> np.ndarray:
        """The probability `distribution` gives each example's target in `data` (N,); with
        `own_sessions` (the training split itself) each input's own session is left out; with
        `outside_input`, the distribution over the products outside the input (renormalised; 0
        for a target inside it)."""
        sizes = np.asarray(self.sessions.sum(axis=1)).ravel()  # (S,) products per session
        columns = self.sessions.tocsc()
        result = []
        for first in range(0, data.n_examples, batch_size):
            index = np.arange(first, min(first + batch_size, data.n_examples))
            batch = data.batch(index)
            own = np.asarray(data.example_session[index]) if own_sessions else None
            similarity = self.similarities(batch, own)  # (B, S)
            votes = np.asarray(columns[:, batch.target].multiply(similarity.T).sum(axis=0)).ravel()  # (B,)
            votes[batch.target < FIRST_SKU_ID] = 0.0
            total = similarity @ sizes  # (B,) every vote
            if outside_input:  # the votes for the input's own products leave the total
                products = self.query(batch).tocoo()  # (B, V): each input's products once
                cast = np.asarray(columns[:, products.col].multiply(similarity[products.row].T).sum(axis=0)).ravel()
                total = total - np.bincount(products.row, weights=cast, minlength=len(index))
                inside = np.asarray(products.tocsr()[np.arange(len(index)), batch.target]).ravel() > 0
                votes[inside] = 0.0
            result.append(votes / np.maximum(total, 1e-12))
        return np.concatenate(result) if result else np.zeros(0)

    def save(self, path: Path) -> None:
        """The index (training sessions as product sets, k) for a checkpoint."""
        np.savez(
            path,
            data=self.sessions.data,
            indices=self.sessions.indices,
            indptr=self.sessions.indptr,
            shape=np.array(self.sessions.shape),
            k=np.array(self.k),
            positional=np.array(self.positional),
            visits=np.array(self.visits),
            decay=np.array(str(self.decay)),
        )

    @classmethod
    def load(cls, path: Path) -> SessionKNN:
        with np.load(path, allow_pickle=False) as saved:
            model = (VSessionKNN if bool(saved["positional"]) else SessionKNN)(EvaluationConfig())
            model.sessions = sp.csr_matrix(
                (saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"])
            )
            model.k = int(saved["k"])
            model.visits = bool(saved["visits"]) if "visits" in saved else False
            decay = str(saved["decay"]) if "decay" in saved else "linear"  # an index saved before decays
            model.decay = decay if decay == "linear" else float(decay)
        model.n_items = model.sessions.shape[1]
        model.session_norm = np.sqrt(np.asarray(model.sessions.sum(axis=1)).ravel())
        return model


class VSessionKNN(SessionKNN):
    name = "V-SKNN"
    positional = True


def _row_max(matrix: sp.coo_matrix | sp.csr_matrix) -> sp.csr_matrix:
    """Duplicate (row, column) entries reduced by their maximum."""
    coo = matrix.tocoo()
    order = np.lexsort((-coo.data, coo.col, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    return sp.csr_matrix((data[first], (rows[first], cols[first])), shape=matrix.shape)


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


BASELINES = {
    model.name: model
    for model in (
        Pop,
        SessionPop,
        SessionPopVisits,
        ItemKNN,
        SessionPopItemKNN,
        SessionKNN,
        VSessionKNN,
        BPRMF,
        Word2VecLast,
        Word2VecAvg,
    )
}
NEEDS_WORD2VEC = {Word2VecLast.name, Word2VecAvg.name}


def make_baseline(name: str, bpr: BPRConfig, evaluation: EvaluationConfig, word2vec_sku: np.ndarray | None = None):
    """An unfitted baseline (one that needs no training loop) by its name in the comparison table."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {list(BASELINES)}")
    if name in NEEDS_WORD2VEC:
        if word2vec_sku is None:
            raise ValueError(f"{name} needs the word2vec SKU vectors (run pretraining first)")
        return BASELINES[name](word2vec_sku)
    if name == BPRMF.name:
        return BPRMF(bpr)
    if issubclass(BASELINES[name], SessionKNN):
        return BASELINES[name](evaluation)
    return BASELINES[name]()
