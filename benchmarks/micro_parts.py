"""Where RIB's micro-behavior signal goes: each part of the mixture, read on its own, on the revisits.

For a finished benchmark run (`benchmarks/micro_ladder.py --out DIR`: DIR/<log>, or the `--out` of
`rib benchmark` / `benchmarks/micro_signal.py`), for each trained RIB input: how each part ranks the
revisited product among the input's earlier products (the current one left out, as evaluation
leaves it out), as `rib micro-value` ranks them by its rules. Scorers:

- repeat:      the repeat part alone (rib/models/repeat.py: where the variant reads micro-behaviors)
- neighbours:  the V-SKNN neighbourhood's votes alone (the same for every input)
- explore:     the explore softmax alone
- mixture:     the mixture as the model ranks (its chosen repeat and explore shifts)
- catalog:     the same mixture over the whole catalog: the revisited product's reciprocal rank among
               every product, new ones included (what the revisit targets give MRR@k)
- new, catalog: the other targets, a product new to the input: its reciprocal rank in the catalog
               (catalog + new, catalog = all targets)
- new, outside the input: the same target ranked among the products outside the input alone (the
               input's own products left out): how the explore half and the neighbourhood rank the
               new products, whatever weight the gates put on the input's own. The gap to "new,
               catalog" is what the input's products, ranked above a new target, cost it.
- all targets: MRR@k itself (new products' targets too)
- Recall@k, revisits / new: whether the target is in the top k of the catalog (1 or 0), split the
               same way; the two sum to Recall@k

Each is a reciprocal rank per target (0 past k; 0 for a target the row does not cover), summed over
the split's targets and divided by all of them: what it is worth in MRR@k (pooled over the folds'
targets; the comparison's headline figure is the mean of the folds'). A target's figure in a fold is
the mean over that fold's seeds (the comparison's rule), folds side by side; each input's
difference to SKU (`--against` another input) is paired on the same targets, with a 95% bootstrap
interval, * where it excludes 0.
Also printed: the mean gate of each part (rep, nbr, exp) under the chosen shifts, and how well the
mixture's probability mass on the input's earlier products tells a revisit (AUC over the targets,
each fold's seeds' mass averaged; `rib micro-value` fits logistic regressions to the same question).

    .venv/bin/python benchmarks/micro_parts.py DIR [--split validation|test] [--variants visits sku sku_micro]
        [--against sku]

Reads the checkpoints; trains nothing: a few seconds per model on JD Appliances on this machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rib import steps
from rib.config import EvaluationConfig
from rib.evaluation.comparison import per_target
from rib.evaluation.metrics import evaluation_examples, target_ranks
from rib.features.dataset import FeatureSet
from rib.insight.micro_value import _auc, _candidates, _interval, _reciprocal_ranks, long_dwell_bucket
from rib.models.checkpoint import load_checkpoint
from rib.models.network import _repeat_shifted, shifted_mixtures

SCORERS = (
    *("repeat", "neighbours", "explore", "mixture"),  # the revisits, ranked among the input's products
    *("catalog", "new, catalog", "new, outside the input", "all targets"),  # MRR@k, split by target
    *("Recall@k, revisits", "Recall@k, new"),
)
RULES = ("micro-count", "engagement")  # rib micro-value's fixed rules, for scale (the same for every input)
SWITCH = ("mass", "revisit")  # per target: the mixture's mass on the input's earlier products; whether it is a revisit


@torch.no_grad()
def reciprocal_ranks(
    folder: Path, features: FeatureSet, split: str, k: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """name -> (E,) per-target figures of one trained model (each scorer's reciprocal rank, the
    Recall@k hits, the rules', the mass on the input's products, whether a revisit); its mean gates (3,)."""
    checkpoint = load_checkpoint(folder)
    model = checkpoint.model
    shift = (float(model.repeat_shift), float(model.explore_shift))
    data = features.split(split)
    examples = evaluation_examples(data, EvaluationConfig())
    long_bucket, _ = long_dwell_bucket(features.vocab["dwell_edges"])
    found, gates = {name: [] for name in SCORERS + RULES + SWITCH}, []
    for i in range(0, len(examples), 1024):
        chunk = examples[i : i + 1024]
        rules, _, candidate, target = _candidates(data, chunk, long_bucket, features.n_dwell_buckets)
        for j, name in ((1, "micro-count"), (2, "engagement")):  # rules[..., 0] is recency
            found[name].append(_reciprocal_ranks(rules[..., j], candidate, target, k))
        batch = data.batch(chunk)
        x, lengths = torch.as_tensor(batch.inputs), torch.as_tensor(batch.lengths)
        prior = torch.as_tensor(checkpoint.neighbors.distribution(batch))
        (gate, parts, explore_log_prob), _ = model._mixture_read(x, lengths, prior)  # visits: one position per visit
        scores = next(shifted_mixtures(gate, parts, explore_log_prob, [shift]))  # (B, V)
        sku = x[:, : candidate.shape[1], 0]  # (B, L): each candidate position's product
        for name, score in (
            ("repeat", parts[0]),
            ("neighbours", parts[1]),
            ("explore", explore_log_prob),
            ("mixture", scores),
        ):
            found[name].append(_reciprocal_ranks(score.gather(1, sku).float(), candidate, target, k))
        revisit = target.any(dim=1).numpy()  # (B,)
        inputs = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, x[..., 0], True)  # (B, V) the input's products
        outside = scores.masked_fill(inputs, -torch.inf)  # the products new to the input alone
        catalog, new_only = (
            per_target(target_ranks(r.numpy(), batch.target, batch.last_sku), k) for r in (scores, outside)
        )
        reciprocal, hit = catalog[f"mrr@{k}"], catalog[f"recall@{k}"]
        found["catalog"].append(np.where(revisit, reciprocal, 0.0))
        found["new, catalog"].append(np.where(revisit, 0.0, reciprocal))
        found["new, outside the input"].append(np.where(revisit, 0.0, new_only[f"mrr@{k}"]))
        found["all targets"].append(reciprocal)
        found["Recall@k, revisits"].append(np.where(revisit, hit, 0.0))
        found["Recall@k, new"].append(np.where(revisit, 0.0, hit))
        mass = (scores.gather(1, sku).exp() * candidate).sum(dim=1)  # (B,) on the earlier products (not the current)
        found["mass"].append(mass.numpy())
        found["revisit"].append(revisit.astype(np.float64))
        shifted = _repeat_shifted(gate.squeeze(1), shift[0])  # (B, 2): rep, nbr as the scorer weighs them
        explore = torch.full_like(shifted[:, :1], shift[1])  # the explore part's logit: its shift (0 in the loss)
        gates.append(torch.softmax(torch.cat([shifted, explore], dim=1), dim=1))  # (B, 3): rep, nbr, exp
    weights = torch.cat(gates).mean(dim=0).numpy()
    return {name: np.concatenate(values) for name, values in found.items()}, weights


def figures_of(out: Path, split: str, variants: list[str], k: int) -> tuple[dict, dict]:
    """variant -> scorer -> (E,) per-target figures, each fold's seeds averaged, folds side by side;
    and variant -> the mean gates (rep, nbr, exp) over its trainings."""
    runs = steps.benchmark_runs(out)
    figures: dict[str, dict[str, list[np.ndarray]]] = {}
    gates: dict[str, list[np.ndarray]] = {}
    for fold in sorted({run.fold for run in runs}):
        in_fold = [run for run in runs if run.fold == fold]
        features = FeatureSet.load(in_fold[0].paths.features)
        for variant in variants:
            folders = [run.paths.model("RIB", variant) for run in in_fold]
            per_seed = [reciprocal_ranks(folder, features, split, k) for folder in folders if folder.exists()]
            for name in SCORERS + RULES + SWITCH if per_seed else ():
                figures.setdefault(variant, {}).setdefault(name, []).append(
                    np.mean([found[name] for found, _ in per_seed], axis=0)
                )
            gates.setdefault(variant, []).extend(weights for _, weights in per_seed)
    joined = {v: {name: np.concatenate(folds) for name, folds in scorers.items()} for v, scorers in figures.items()}
    return joined, {v: np.mean(weights, axis=0) for v, weights in gates.items() if weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="a finished benchmark's folder (fold*/seed*/models)")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    parser.add_argument("--variants", nargs="+", default=["visits", "sku", "sku_micro"])
    parser.add_argument("--against", default="sku", help="the input every other is paired against")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    evaluation = EvaluationConfig()
    figures, gates = figures_of(args.out, args.split, args.variants, args.k)
    variants = [v for v in args.variants if v in figures]
    reference = args.against
    against = [v for v in variants if v != reference] if reference in figures else []
    n = len(figures[variants[0]]["all targets"])
    print(
        f"{args.out}, {args.split}: {n} targets; MRR@{args.k} contribution (Recall@{args.k}'s where named), "
        f"and minus {reference} (paired 95% interval)\n"
    )
    print("| scorer | " + " | ".join(variants) + "".join(f" | {v} - {reference}" for v in against) + " |")
    print("|---" * (1 + len(variants) + len(against)) + "|")
    for name in SCORERS:
        cells = [f"{figures[v][name].mean():.4f}" for v in variants]
        for v in against:
            d = _interval(figures[v][name], figures[reference][name], evaluation.bootstrap, evaluation.bootstrap_seed)
            cells.append(
                f"{d['difference']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]{'*' if d['significant'] else ''}"
            )
        print(f"| {name.replace('@k', f'@{args.k}')} | " + " | ".join(cells) + " |")
    print(
        "| mean gates rep / nbr / exp | "
        + " | ".join(" / ".join(f"{g:.3f}" for g in gates[v]) for v in variants)
        + " |"
    )
    aucs = ", ".join(f"{v} {_auc(figures[v]['mass'], figures[v]['revisit']):.3f}" for v in variants)
    print(f"\nrevisit or not, AUC of the mixture's mass on the input's earlier products: {aucs}")
    some = figures[variants[0]]
    d = _interval(some["engagement"], some["micro-count"], evaluation.bootstrap, evaluation.bootstrap_seed)
    rules = ", ".join(f"{name} {some[name].mean():.4f}" for name in RULES)
    print(
        f"\nrib micro-value's rules on the same targets: {rules}; engagement - micro-count "
        f"{d['difference']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"
    )


if __name__ == "__main__":
    main()
