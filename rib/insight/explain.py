"""The case study of the paper's Figure 8: for one session, the attention each input variant
puts on every micro-behavior, and the rank each variant gives the true next product."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rib.evaluation.metrics import target_ranks
from rib.features.dataset import Batch, FeatureSet
from rib.models.checkpoint import Checkpoint, load_checkpoint
from rib.schema import ACTIVITY_NAMES, OOV, VARIANT_NAMES


@torch.no_grad()
def explain(checkpoints: dict[str, Checkpoint], inputs: np.ndarray, target: int) -> dict:
    """checkpoints: variant -> RIB checkpoint (same features). inputs: (L, F) feature ids of one session."""
    inputs = np.asarray(inputs, np.int64)
    x = torch.as_tensor(inputs)[None]  # (1, L, F)
    lengths = torch.tensor([len(inputs)])
    result = {}
    for variant, checkpoint in checkpoints.items():
        model = checkpoint.model.eval()
        prior = None
        if checkpoint.neighbors is not None:
            batch = Batch(inputs[None], np.array([len(inputs)]), np.array([target]))
            prior = torch.as_tensor(checkpoint.neighbors.distribution(batch))
        scores, attention = model.score_and_attention(x, lengths, prior)
        scores = scores.numpy().astype(np.float64)
        scores[0, int(inputs[-1, 0])] = -np.inf  # the evaluation protocol: the last SKU is never next
        rank = target_ranks(scores, np.array([target]))[0]
        weights = attention[0].tolist()
        result[variant] = {"attention": weights, "rank": None if np.isinf(rank) else int(rank)}
    return result


def case_study_sessions(features: FeatureSet, count: int = 3) -> list[int]:
    """Deterministic choice: the test examples with a known target and the shortest inputs
    (at least 4 micro-behaviors), so the heatmaps stay readable."""
    test = features.test
    lengths = np.asarray(test.example_end) - np.asarray(test.example_start)
    candidates = np.flatnonzero((np.asarray(test.example_target) > OOV) & (lengths >= 4))
    order = candidates[np.argsort(lengths[candidates], kind="stable")]
    return [int(i) for i in order[:count]]


HEATMAP_SCALE = "attention weight (each row sums to 1)"


def heatmap_png(explanation: dict, labels: list[str], path: str | Path, title: str) -> str:
    import matplotlib.pyplot as plt

    fig = heatmap_figure(explanation, labels, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def heatmap_figure(explanation: dict, labels: list[str], title: str):
    """Figure 8: rows are input variants, columns the input's micro-behaviors, colour the attention weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(explanation)
    matrix = np.array([explanation[v]["attention"] for v in variants])
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(labels) + 3), 2.2 + 0.45 * len(variants)))
    image = ax.imshow(matrix, cmap="Reds", aspect="auto", vmin=0)
    ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=75, ha="right")
    rank_text = [f"{VARIANT_NAMES.get(v, v)} (rank {explanation[v]['rank'] or 'miss'})" for v in variants]
    ax.set_yticks(range(len(variants)), rank_text, fontsize=8)
    ax.set_title(title, fontsize=9)
    colorbar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    colorbar.set_label(HEATMAP_SCALE, fontsize=7)
    fig.tight_layout()
    return fig


def write_case_study(features: FeatureSet, model_dirs: dict[str, str | Path], out_dir: str | Path) -> dict:
    """Explain a few test sessions with every variant's RIB checkpoint; heatmaps and JSON in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    synthetic = features.synthetic
    vocab = features.vocab
    edges = vocab["dwell_edges"]
    bounds = [0, *edges]
    dwell_names = [f"{bounds[i]:g}-{bounds[i + 1]:g}s" for i in range(len(edges))] + [f">{edges[-1]:g}s"]
    checkpoints = {variant: load_checkpoint(folder) for variant, folder in model_dirs.items()}
    test = features.test
    cases = []
    for example in case_study_sessions(features):
        batch = test.batch(np.array([example]))
        inputs = batch.inputs[0, : int(batch.lengths[0])]  # (L, F)
        target = int(batch.target[0])
        explanation = explain(checkpoints, inputs, target)
        labels = [f"{vocab['sku'][s]} {ACTIVITY_NAMES[int(a)]} {dwell_names[int(d) - 1]}" for s, a, d, _ in inputs]
        title = f"test example {example}: next product {vocab['sku'][target]}" + (" (SYNTHETIC)" if synthetic else "")
        figure = heatmap_png(explanation, labels, out_dir / f"case_{example}.png", title)
        cases.append(
            {
                "example": example,
                "labels": labels,
                "target": vocab["sku"][target],
                "variants": explanation,
                "figure": figure,
            }
        )
    document = {"synthetic": synthetic, "cases": cases}
    (out_dir / "case_study.json").write_text(json.dumps(document, indent=2) + "\n")
    return document
