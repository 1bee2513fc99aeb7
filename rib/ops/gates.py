"""Gates a trained model must pass before it may be registered: Dagster runs them as blocking asset
checks on every training asset, and `run_registration` (the DVC stage and CLI path) refuses a
model that fails one, so the `champion` stays where it is.

- finite_loss: every epoch's training loss is a finite number;
- reload_identical: the checkpoint, loaded from disk as serving loads it, ranks every validation
  target exactly where the trained model did (its saved ranks);
- not_below_baseline: validation Recall@k at least the baseline's (S-POP by default) minus
  `registry.gate_margin`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rib.config import EvaluationConfig, RegistryConfig


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str
    metadata: dict = field(default_factory=dict)


def finite_loss(record: dict) -> GateResult:
    losses = [h["train_loss"] for h in record["history"]]
    bad = [h["epoch"] for h in record["history"] if not math.isfinite(h["train_loss"])]
    reason = f"{len(losses)} epochs, every loss finite" if not bad else f"loss not finite at epochs {bad}"
    return GateResult("finite_loss", not bad and bool(losses), reason, {"epochs": len(losses)})


def reload_identical(checkpoint_dir: Path, features_dir: Path, evaluation: EvaluationConfig) -> GateResult:
    import numpy as np

    from rib.evaluation.metrics import rank_targets
    from rib.features.dataset import SplitData
    from rib.models.checkpoint import load_checkpoint
    from rib.models.train import score_batch

    saved = np.load(checkpoint_dir / "ranks.npz")["validation"]
    checkpoint = load_checkpoint(checkpoint_dir)
    n_items = len(checkpoint.vocab["sku"])

    def score(batch):
        return score_batch(checkpoint.model, batch, bf16=False, neighbors=checkpoint.neighbors)

    reloaded = rank_targets(score, SplitData.load(features_dir, "validation"), evaluation, n_items).astype(saved.dtype)
    differ = int((reloaded != saved).sum()) if len(reloaded) == len(saved) else max(len(reloaded), len(saved))
    reason = (
        f"all {len(saved)} validation ranks identical after reloading"
        if differ == 0
        else f"{differ} of {len(saved)} validation ranks differ after reloading the checkpoint"
    )
    return GateResult("reload_identical", differ == 0, reason, {"targets": len(saved), "differ": differ})


def not_below_baseline(record: dict, baselines_dir: Path, k: int, registry: RegistryConfig) -> GateResult:
    metric = f"recall@{k}"
    records = json.loads((baselines_dir / "records.json").read_text())
    baseline = next((r for r in records if r["model"] == registry.gate_baseline), None)
    if baseline is None:
        return GateResult("not_below_baseline", False, f"baseline {registry.gate_baseline} was not run")
    ours, theirs = record["validation"][metric], baseline["validation"][metric]
    floor = theirs - registry.gate_margin
    passed = ours >= floor
    reason = (
        f"validation {metric} {ours:.4f} {'>=' if passed else '<'} {registry.gate_baseline}'s {theirs:.4f} "
        f"- margin {registry.gate_margin}"
    )
    return GateResult("not_below_baseline", passed, reason, {"model": ours, "baseline": theirs, "floor": floor})


def model_gates(
    checkpoint_dir: str | Path,
    features_dir: str | Path,
    baselines_dir: str | Path,
    evaluation: EvaluationConfig,
    registry: RegistryConfig,
) -> list[GateResult]:
    """Every gate of one trained model (its checkpoint folder with metrics.json and ranks.npz)."""
    checkpoint_dir = Path(checkpoint_dir)
    record = json.loads((checkpoint_dir / "metrics.json").read_text())
    return [
        finite_loss(record),
        reload_identical(checkpoint_dir, Path(features_dir), evaluation),
        not_below_baseline(record, Path(baselines_dir), evaluation.k, registry),
    ]
