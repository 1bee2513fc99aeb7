"""Non-neural baselines with the common recommender contract: `fit(train, n_items)`, then
`score_all(batch) -> (B, V)` scores for every SKU id (0 = padding, 1 = OOV are ignored).

- POP: training popularity, counted in macro interactions (product visits).
- S-POP: the session's own SKUs by how often they occur in the input, ties broken by
  recency (latest first), then every other SKU by POP.
- Item-KNN (the paper's definition): sim(i, j) = freq(ij) / sqrt(freq(i) * freq(j)), where
  freq counts training sessions as sets of SKUs; a session is scored by its last SKU's row.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rib.dataset import Batch, SplitData
from rib.features import OOV


def visit_counts(train: SplitData, n_items: int) -> np.ndarray:
    """Macro interactions per SKU id in the training split."""
    macro = np.asarray(train.macro)
    sku = np.asarray(train.sku)
    first = np.ones(len(sku), bool)
    first[1:] = macro[1:] != macro[:-1]
    first[np.asarray(train.session_offsets[:-1])[np.diff(train.session_offsets) > 0]] = True
    return np.bincount(sku[first], minlength=n_items).astype(np.float64)


class Pop:
    name = "POP"

    def fit(self, train: SplitData, n_items: int) -> Pop:
        counts = visit_counts(train, n_items)
        counts[: OOV + 1] = 0
        self.scores = counts
        return self

    def score_all(self, batch: Batch) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(batch.lengths), len(self.scores)))


class SessionPop:
    name = "S-POP"

    def fit(self, train: SplitData, n_items: int) -> SessionPop:
        counts = visit_counts(train, n_items)
        counts[: OOV + 1] = 0
        self.pop = counts / (counts.max() + 1.0)  # in [0, 1): below every session SKU
        self.n_items = n_items
        return self

    def score_all(self, batch: Batch) -> np.ndarray:
        B, L = batch.sku.shape
        scores = np.tile(self.pop, (B, 1))
        rows = np.repeat(np.arange(B), L)
        valid = (np.arange(L)[None, :] < batch.lengths[:, None]).ravel()
        items = batch.sku.ravel()
        counts = np.zeros((B, self.n_items))
        np.add.at(counts, (rows[valid], items[valid]), 1.0)
        recency = np.zeros((B, self.n_items))
        positions = np.tile(np.arange(1, L + 1, dtype=np.float64), B)
        np.maximum.at(recency, (rows[valid], items[valid]), positions[valid] / (L + 1))  # in (0, 1)
        in_session = counts > 0
        scores[in_session] = 2.0 + counts[in_session] + recency[in_session]
        scores[:, : OOV + 1] = 0.0
        return scores


class ItemKNN:
    name = "Item-KNN"

    def fit(self, train: SplitData, n_items: int) -> ItemKNN:
        sku = np.asarray(train.sku)
        session = np.repeat(np.arange(train.n_sessions), np.diff(train.session_offsets))
        keep = sku > OOV
        sessions_by_item = sp.csr_matrix(
            (np.ones(int(keep.sum())), (session[keep], sku[keep])), shape=(train.n_sessions, n_items)
        )
        sessions_by_item.data[:] = 1.0  # repeats were summed: back to a set of SKUs per session
        co = (sessions_by_item.T @ sessions_by_item).tocsr()  # (V, V) freq(ij), diagonal freq(i)
        freq = co.diagonal()
        norm = np.sqrt(np.where(freq > 0, freq, 1.0))
        similarity = (sp.diags(1.0 / norm) @ co @ sp.diags(1.0 / norm)).tocsr()
        similarity = (similarity - sp.diags(similarity.diagonal())).tocsr()  # no self-similarity
        similarity.eliminate_zeros()
        self.similarity = similarity
        return self

    def score_all(self, batch: Batch) -> np.ndarray:
        return self.similarity[batch.last_sku].toarray()


BASELINES = {model.name: model for model in (Pop, SessionPop, ItemKNN)}
