"""Evaluation protocol (documented in the README, "Evaluation protocol"):

- the targets (`evaluation.targets`): every macro interaction after a session's first (`all`,
  the default: the protocol of GRU4Rec, NARM and SR-GNN), its input the last `max_len`
  micro-behaviors before it; or only each session's last (`last`, the older protocol);
- every example is ranked against the full catalog: every SKU in the training vocabulary
  (ids 2..V-1); padding and the out-of-vocabulary id are never ranked;
- ties count pessimistically: rank = 1 + the number of other SKUs scoring at least as high
  as the target, so a constant scorer ranks every target last;
- a target never seen in training (out of vocabulary) is a miss and stays in the denominator;
- the last SKU of the input is removed from every model's ranking when `exclude_last_sku`
  is on: by construction the next macro interaction is on another SKU;
- Recall@k = share of examples with rank <= k; MRR@k = mean of 1/rank, 0 past k;
  every figure is reported with the number of examples `n` behind it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rib.config import EvaluationConfig
from rib.features.dataset import Batch, SplitData
from rib.schema import FIRST_SKU_ID


def target_ranks(scores, targets, last_sku=None) -> np.ndarray:
    """Pessimistic 1-based rank of each target among ids >= 2; inf for an unseen target.

    scores: (B, V), a numpy array (ranked in float64) or a torch tensor, ranked on its device in its
    precision (float64, or float32 for the lower ones), so that the validation of every epoch never
    copies a (B, V) block to the host. targets: (B,) int. last_sku: (B,) each input's last SKU, ranked
    out (`exclude_last_sku`). NaN scores rank above everything.
    """
    import torch

    if torch.is_tensor(scores):
        scores = scores if scores.dtype == torch.float64 else scores.float()
    else:
        scores = np.asarray(scores, dtype=np.float64)
        scores = torch.from_numpy(scores if scores.flags.writeable else scores.copy())  # torch warns on read-only
    catalog = scores[:, FIRST_SKU_ID:]  # (B, V-2), never written (a copy of it cost more than the ranking)
    targets = torch.as_tensor(targets, device=catalog.device)
    rows = torch.arange(len(targets), device=catalog.device)
    known = targets >= FIRST_SKU_ID
    target_score = catalog[rows, torch.where(known, targets, FIRST_SKU_ID) - FIRST_SKU_ID]  # (B,)
    if last_sku is not None:  # ranked out: as if it scored -inf (the target too, should it be the last SKU)
        last_sku = torch.as_tensor(last_sku, device=catalog.device)
        inside = last_sku >= FIRST_SKU_ID
        target_score = torch.where(inside & (last_sku == targets), -torch.inf, target_score)
    # rank = 1 + the others scoring at least as high = the catalog less those scoring below the target:
    # a NaN is never below (it ranks above everything), and a NaN target has nothing below it (last).
    ranks = catalog.shape[1] - (catalog < target_score[:, None]).sum(dim=1, dtype=torch.int32)
    if last_sku is not None:
        last_score = catalog[rows, torch.where(inside, last_sku, FIRST_SKU_ID) - FIRST_SKU_ID]
        counted = ~(last_score < target_score)  # the last SKU as it scored
        counted_out = ~(-torch.inf < target_score)  # as -inf
        ranks = ranks - torch.where(inside, counted.long() - counted_out.long(), 0)
    ranks = ranks.double()
    ranks[~known] = torch.inf
    return ranks.cpu().numpy()


def recall_mrr(ranks: np.ndarray, k: int) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    n = len(ranks)
    hit = ranks <= k
    return {
        f"recall@{k}": float(hit.mean()) if n else float("nan"),
        f"mrr@{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()) if n else float("nan"),
        "n": int(n),
    }


TARGETS = ("all", "last")


def evaluation_examples(data: SplitData, config: EvaluationConfig) -> np.ndarray:
    """The examples the protocol ranks: every next product (`all`) or each session's last (`last`)."""
    if config.targets not in TARGETS:
        raise ValueError(f"evaluation.targets must be one of {TARGETS}, got {config.targets!r}")
    if config.targets == "last":
        return np.flatnonzero(np.asarray(data.example_is_last))
    return np.arange(data.n_examples)


def rank_targets(
    score_batch: Callable[[Batch], np.ndarray], data: SplitData, config: EvaluationConfig, n_items: int
) -> np.ndarray:
    """The rank of the target of every evaluated example of `data` under `score_batch` (Batch -> (B, V))."""
    # Keep a (B, V) float64 block near 160 MB whatever the catalog size.
    batch_size = max(16, min(1024, 20_000_000 // max(n_items, 1)))
    ranks = []
    for batch in data.batches(batch_size, evaluation_examples(data, config)):
        last = batch.last_sku if config.exclude_last_sku else None
        ranks.append(target_ranks(score_batch(batch), batch.target, last))
    return np.concatenate(ranks) if ranks else np.zeros(0)


def summarize(ranks: np.ndarray, ks: list[int] | tuple[int, ...]) -> dict[str, float]:
    """Recall@k and MRR@k for every k, with `n` and the number of unseen (out-of-vocabulary) targets."""
    result: dict[str, float] = {"n": len(ranks), "oov_targets": int(np.isinf(ranks).sum())}
    for k in ks:
        figures = recall_mrr(ranks, k)
        result[f"recall@{k}"] = figures[f"recall@{k}"]
        result[f"mrr@{k}"] = figures[f"mrr@{k}"]
    return result


def evaluate(
    score_batch: Callable[[Batch], np.ndarray], data: SplitData, config: EvaluationConfig, n_items: int
) -> dict[str, float]:
    """Score every example of `data` with `score_batch` and summarise its ranks."""
    return summarize(rank_targets(score_batch, data, config, n_items), config.ks)
