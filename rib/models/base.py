"""The contract every recommender implements, baselines and RIB alike (in the manner of
benfred/implicit's RecommenderBase): fit on a features folder, then score a batch of sessions
against the full catalog.

    model = SomeRecommender(...).fit(features)     # features: rib.features.dataset.FeatureSet
    scores = model.score(batch)                     # batch: rib.features.dataset.Batch -> (B, V)

`score` returns one float score per SKU id for the next product after each input, higher is
better; the ids that are not products (0 = padding, 1 = out of vocabulary) score -inf, so they
are never ranked. A batch scores exactly as its sessions one by one, and the same seed gives the
same scores. tests/test_recommenders.py runs these checks over every model.
"""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable

import numpy as np

from rib.features.dataset import Batch, FeatureSet
from rib.schema import FIRST_SKU_ID


@runtime_checkable
class Recommender(Protocol):
    name: str

    def fit(self, features: FeatureSet) -> Self:
        """Learn from the training split (and choose epochs on validation, where there are epochs)."""
        ...

    def score(self, batch: Batch) -> np.ndarray:
        """(B, V) scores of every SKU id for the next product after each input; -inf for non-products."""
        ...


def only_products(scores: np.ndarray) -> np.ndarray:
    """A float64 copy of (B, V) scores where padding and the out-of-vocabulary id score -inf."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[:, :FIRST_SKU_ID] = -np.inf
    return scores
