"""What micro-behaviors are worth on this log, before any training (`rib micro-value`).

A shop reads here whether its micro-behavior logging pays. Only the revisits are looked at: the
targets whose product is one of the session's earlier products (the current one left out, as
evaluation leaves it out). For each, the earlier products are ranked by a score and the
revisited product's reciprocal rank is taken (pessimistic ties, 0 past `k`); summed over the
revisit targets and divided by *all* targets, that is the MRR@k a perfect explore part would
add to this ranking of the session's products. Scorers, every visit discounted by 0.8^age (age:
visits from it to the end of the input):

- recency:     Σ_visits 0.8^age                                  (the visits alone)
- micro-count: Σ_micro-behaviors 0.8^age                         (what a model reading SKU ids per micro-behavior sees)
- engagement:  Σ_visits 0.8^age (1 + 3 carts + 0.5 detail modules + [dwell above ~60 s])
               (a fixed rule, nothing fitted to the log; "above ~60 s" is the dwell bucket edge nearest 60 s)
- logit-sequence / logit-micro: a conditional logit (softmax over the earlier products), fitted
  on the training split's revisit targets and scored on validation, over what a SKU sequence
  shows (log visits, log micro-behaviors, log age, the micro-count score) and, for
  logit-micro, the same plus the micro-behaviors (carted, ordered, detail modules read, the
  longest dwell bucket, the entry source of the last visit).

Whether the next product is a revisit at all is the other half of what a repeat part does (its
gate). Over every target: a logistic regression fitted on training and scored on validation, over
what a SKU sequence shows (visits, micro-behaviors, distinct products, the last visit's length,
earlier visits to the current product) and over that plus the micro-behaviors (the last visit's
activities, entry source and dwell; carts and orders in the session), the very features RIB's
gates read (`model.gate_features`): the AUC of each and the paired difference of their
log-likelihoods per target.

Every difference comes with its paired 95% bootstrap interval over the targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rib.config import EvaluationConfig
from rib.evaluation.comparison import difference_text
from rib.evaluation.metrics import evaluation_examples
from rib.features.dataset import FeatureSet, SplitData
from rib.models.repeat import switch_features
from rib.schema import BROWSING_MODULES, CART, CLICK_SOURCES, OOV, ORDER

DECAY = 0.8
RULES = ("recency", "micro-count", "engagement")
LOGITS = ("logit-sequence", "logit-micro")
COMPARISONS = (
    ("engagement", "recency"),
    ("micro-count", "recency"),
    ("engagement", "micro-count"),
    ("logit-micro", "logit-sequence"),
    ("logit-micro", "micro-count"),
)
N_SEQUENCE = 4  # the first candidate features are the ones a SKU sequence shows
N_SWITCH_SEQUENCE = 6  # and the first features of whether the next product is a revisit


def long_dwell_bucket(edges: list[float]) -> tuple[int, int]:
    """(the first dwell bucket counted as a long dwell, the index of its edge): the buckets above the
    edge nearest 60 s (bucket ids start at 2; without edges every bucket is 2 and none is long)."""
    nearest = min(range(len(edges)), key=lambda i: abs(edges[i] - 60.0)) if edges else 0
    return (nearest + 2 if edges else 2), nearest


def _candidates(data: SplitData, examples: np.ndarray, long_bucket: int, n_dwell: int):
    """Per example: the earlier products' features (E, L, D), which positions are candidates
    (E, L), which candidate is the target (E, L). Each product stands at its last occurrence."""
    batch = data.batch(examples)
    x = torch.as_tensor(batch.inputs)
    sku, activity, dwell = x[..., 0], x[..., 1], x[..., 2]
    E, L = sku.shape
    steps = torch.arange(L)
    lengths = torch.as_tensor(batch.lengths)
    real = steps[None, :] < lengths[:, None]
    start = torch.ones_like(sku, dtype=torch.bool)
    start[:, 1:] = sku[:, 1:] != sku[:, :-1]
    last = sku[torch.arange(E), lengths - 1]
    age = torch.as_tensor(batch.visits_back()).clamp_min(0).float()  # (E, L)
    decay = DECAY**age * real
    first_of_visit = torch.where(start, steps[None, :], 0).cummax(dim=1).values  # (E, L)
    entry = activity.gather(1, first_of_visit)  # the visit's first activity
    detail = sum(activity == m for m in BROWSING_MODULES).float()
    long = (start & (dwell >= long_bucket)).float()
    per_position = torch.stack(
        [
            start.float() * decay,  # recency
            decay,  # micro-count
            decay * (start.float() + 3 * (activity == CART).float() + 0.5 * detail + long),  # engagement
            start.float() * real,  # visits
            real.float(),  # micro-behaviors
            (activity == CART).float(),
            (activity == ORDER).float(),
            detail,
        ],
        dim=-1,
    )  # (E, L, 8)
    same = (sku[:, :, None] == sku[:, None, :]) & real[:, :, None] & real[:, None, :]
    sums = same.float() @ per_position  # (E, L, 8): each position's product's totals
    later = same & (steps[None, None, :] > steps[None, :, None])
    candidate = real & ~later.any(dim=2) & (sku != last[:, None]) & (sku > OOV)
    longest = torch.where(same, dwell[:, None, :], 0).max(dim=2).values  # the product's longest dwell bucket
    features = torch.cat(
        [
            torch.log1p(sums[..., 3:5]),  # log visits, log micro-behaviors
            torch.log1p(age)[..., None],  # at its last occurrence: the age of the product's last visit
            torch.log(sums[..., 1:2].clamp_min(1e-6)),  # log of the micro-count score
            (sums[..., 5:7] > 0).float(),  # carted, ordered
            torch.log1p(sums[..., 7:8]),  # detail modules read
            torch.nn.functional.one_hot(longest.clamp(0, n_dwell), n_dwell + 1)[..., 1:].float(),
            torch.stack([(entry == s).float() for s in CLICK_SOURCES], dim=-1),
        ],
        dim=-1,
    )
    target = candidate & (sku == torch.as_tensor(batch.target)[:, None])
    return sums[..., :3], features, candidate, target


def _switch_features(data: SplitData, examples: np.ndarray, n_dwell: int) -> torch.Tensor:
    """(E, D) per example what RIB's gates read of whether the next product is a revisit
    (rib.models.repeat.switch_features at the input's last position): the first
    N_SWITCH_SEQUENCE features are what a SKU sequence shows, the rest the micro-behaviors."""
    batch = data.batch(examples)
    x, lengths = torch.as_tensor(batch.inputs), torch.as_tensor(batch.lengths)
    return switch_features(x, activity=True, dwell=True, n_dwell=n_dwell + 1)[torch.arange(len(x)), lengths - 1]


def _fit_logistic(features: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, scale, weights with the bias last) of an L2-regularised logistic regression."""
    mean, scale = features.mean(dim=0), features.std(dim=0)
    scale = torch.where(scale > 1e-6, scale, 1.0)  # a feature constant in training keeps its weight at 0
    standard = torch.cat([(features - mean) / scale, torch.ones(len(features), 1)], dim=1)
    weight = torch.zeros(standard.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(standard @ weight, label)
        loss = loss + 1e-3 * weight[:-1].square().sum()
        loss.backward()
        return loss

    if len(label):
        optimizer.step(closure)
    return mean, scale, weight.detach()


def _log_likelihood(fitted: tuple, features: torch.Tensor, label: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per example: (probability of a revisit, log-likelihood of what happened)."""
    mean, scale, weight = fitted
    logit = torch.cat([(features - mean) / scale, torch.ones(len(features), 1)], dim=1) @ weight
    ll = -torch.nn.functional.binary_cross_entropy_with_logits(logit, label, reduction="none")
    return torch.sigmoid(logit).numpy(), ll.numpy()


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """The area under the ROC curve (ties count half)."""
    from scipy.stats import rankdata

    positive = label > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((rankdata(score)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _switch(built: dict, evaluation: EvaluationConfig) -> dict:
    """Is the next product a revisit? Fitted on training, scored on validation. The two splits'
    revisit shares differ where validation's products are new to training (out of vocabulary,
    never a revisit here), so the regressions are compared with each other, not with a constant."""
    (train_x, train_y), (x, y) = built["train"], built["validation"]
    result = {"targets": len(y), "revisit_share": float(y.mean()), "train_revisit_share": float(train_y.mean())}
    ll, result["predictors"] = {}, {}
    for name, width in (("logit-sequence", N_SWITCH_SEQUENCE), ("logit-micro", x.shape[1])):
        probability, ll[name] = _log_likelihood(_fit_logistic(train_x[:, :width], train_y), x[:, :width], y)
        result["predictors"][name] = {"auc": _auc(probability, y.numpy()), "log_likelihood": float(ll[name].mean())}
    difference = _interval(ll["logit-micro"], ll["logit-sequence"], evaluation.bootstrap, evaluation.bootstrap_seed)
    result["differences"] = {"logit-micro - logit-sequence": difference}
    return result


def _pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """(E, L, ...) padded with zeros (False) to (E, width, ...)."""
    pad = torch.zeros((tensor.shape[0], width - tensor.shape[1], *tensor.shape[2:]), dtype=tensor.dtype)
    return torch.cat([tensor, pad], dim=1)


def _reciprocal_ranks(score: torch.Tensor, candidate: torch.Tensor, target: torch.Tensor, k: int) -> np.ndarray:
    """(E,) 1/rank of the target among the candidates (pessimistic ties), 0 past k or without a revisit."""
    score = score.masked_fill(~candidate, float("-inf"))
    own = torch.where(target, score, float("-inf")).max(dim=1).values  # (E,)
    rank = ((score >= own[:, None]) & candidate).sum(dim=1).float()
    hit = target.any(dim=1) & (rank <= k)
    return torch.where(hit, 1.0 / rank.clamp_min(1), 0.0).numpy()


def _fit_logit(features: torch.Tensor, candidate: torch.Tensor, target: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Weights (D,) of a conditional logit fitted on the revisit examples (softmax over candidates)."""
    keep = target.any(dim=1)
    features, candidate, target = features[keep], candidate[keep], target[keep]
    mean = (features * candidate[..., None]).sum((0, 1)) / candidate.sum().clamp_min(1)
    torch.manual_seed(seed)
    weight = torch.zeros(features.shape[-1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = ((features - mean) @ weight).masked_fill(~candidate, float("-inf"))
        picked = torch.where(target, torch.log_softmax(logits, dim=1), 0.0)  # masked candidates are -inf
        loss = -picked.sum() / len(target) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    if len(target):
        optimizer.step(closure)
    return weight.detach()


def _interval(ours: np.ndarray, theirs: np.ndarray, resamples: int, seed: int) -> dict:
    difference = ours - theirs
    index = np.random.default_rng(seed).integers(0, len(difference), size=(resamples, len(difference)))
    low, high = np.percentile(difference[index].mean(axis=1), [2.5, 97.5]) if len(difference) else (0.0, 0.0)
    return {
        "difference": float(difference.mean()) if len(difference) else 0.0,
        "ci95": [float(low), float(high)],
        "significant": bool(low > 0 or high < 0),
    }


def micro_value(features: FeatureSet, evaluation: EvaluationConfig, max_examples: int = 200_000) -> dict:
    """The diagnostic on the training and validation splits of a features folder."""
    edges = features.vocab["dwell_edges"]
    long_bucket, nearest = long_dwell_bucket(edges)
    n_dwell = features.n_dwell_buckets
    k = evaluation.k
    rng = np.random.default_rng(evaluation.bootstrap_seed)
    built, switch = {}, {}
    for split in ("train", "validation"):
        data = features.split(split)
        examples = evaluation_examples(data, evaluation)
        if len(examples) > max_examples:  # a seeded sample keeps the diagnostic quick on large logs
            examples = np.sort(rng.choice(examples, max_examples, replace=False))
        parts = [_candidates(data, examples[i : i + 4096], long_bucket, n_dwell) for i in range(0, len(examples), 4096)]
        width = max((p[0].shape[1] for p in parts), default=0)  # inputs padded to one width (not a candidate)
        built[split] = [torch.cat([_pad(p[j], width) for p in parts]) for j in range(4)] if parts else None
        if parts:
            chunks = [_switch_features(data, examples[i : i + 4096], n_dwell) for i in range(0, len(examples), 4096)]
            switch[split] = (torch.cat(chunks), built[split][3].any(dim=1).float())
    weights = {}
    if built["train"] is not None:
        _, train_features, train_candidate, train_target = built["train"]
        weights["logit-sequence"] = _fit_logit(train_features[..., :N_SEQUENCE], train_candidate, train_target)
        weights["logit-micro"] = _fit_logit(train_features, train_candidate, train_target)
    long_dwell = f"dwell bucket >= {long_bucket} (above {edges[nearest]:g} s)" if edges else "none"
    result = {
        "k": k,
        "description": (
            f"Revisits only: the revisited product's reciprocal rank among the session's earlier products "
            f"(0 past {k}), summed over revisit targets and divided by all targets (what it is worth in "
            f"MRR@{k}); visits discounted by {DECAY}^age; long dwell: {long_dwell}. Logits fitted on "
            f"training, scored on validation. Δ: paired difference, 95% bootstrap interval, * where it excludes 0."
        ),
        "splits": {},
    }
    for split, tensors in built.items():
        if tensors is None:
            continue
        rules, features_, candidate, target = tensors
        scores = {name: rules[..., i] for i, name in enumerate(RULES)}
        if split == "validation":  # fitted on training, scored here
            scores["logit-sequence"] = features_[..., :N_SEQUENCE] @ weights["logit-sequence"]
            scores["logit-micro"] = features_ @ weights["logit-micro"]
        reciprocal = {name: _reciprocal_ranks(score, candidate, target, k) for name, score in scores.items()}
        n = len(target)
        result["splits"][split] = {
            "targets": n,
            "revisit_targets": int(target.any(dim=1).sum()),
            "revisit_share": float(target.any(dim=1).float().mean()) if n else 0.0,
            f"mrr@{k}_contribution": {name: float(r.mean()) for name, r in reciprocal.items()},
            "differences": {
                f"{a} - {b}": _interval(reciprocal[a], reciprocal[b], evaluation.bootstrap, evaluation.bootstrap_seed)
                for a, b in COMPARISONS
                if a in reciprocal and b in reciprocal
            },
        }
    if len(switch) == 2:
        result["revisit_switch"] = _switch(switch, evaluation)
    return result


def micro_value_markdown(result: dict) -> str:
    k = result["k"]
    lines = [
        result["description"],
        "",
        "| split | targets | revisit share | " + " | ".join(RULES + LOGITS) + " |",
        "|---|---:|---:|" + "---:|" * len(RULES + LOGITS),
    ]
    for split, s in result["splits"].items():
        figures = s[f"mrr@{k}_contribution"]
        cells = [f"{figures[name]:.4f}" if name in figures else "-" for name in RULES + LOGITS]
        lines.append(f"| {split} | {s['targets']} | {s['revisit_share']:.1%} | " + " | ".join(cells) + " |")
    lines += ["", "| split | comparison | Δ |", "|---|---|---:|"]
    for split, s in result["splits"].items():
        for name, d in s["differences"].items():
            lines.append(f"| {split} | {name} | {difference_text({'d': d}, 'd')} |")
    switch = result.get("revisit_switch")
    if switch:
        lines += [
            "",
            f"Is the next product a revisit? Validation, {switch['targets']} targets, "
            f"{switch['revisit_share']:.1%} revisits (training {switch['train_revisit_share']:.1%}); "
            "logistic regressions fitted on training. Log-likelihood: mean per target.",
            "",
            "| predictor | AUC | log-likelihood |",
            "|---|---:|---:|",
        ]
        lines += [f"| {n} | {p['auc']:.4f} | {p['log_likelihood']:.4f} |" for n, p in switch["predictors"].items()]
        lines += ["", "| comparison | Δ log-likelihood |", "|---|---:|"]
        lines += [f"| {name} | {difference_text({'d': d}, 'd')} |" for name, d in switch["differences"].items()]
    return "\n".join(lines)


def write_micro_value(features: FeatureSet, evaluation: EvaluationConfig, out: str | Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = micro_value(features, evaluation)
    result["synthetic"] = features.synthetic
    (out / "micro_value.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "micro_value.md").write_text(micro_value_markdown(result) + "\n")
    return result
