"""The pipeline's steps, each reading params.yaml's settings and writing under artifacts/.

One implementation, several entry points: the Dagster assets, the `rib` CLI and (later)
DVC stages all call these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rib.params import Params


@dataclass(frozen=True)
class ArtifactPaths:
    root: Path

    @property
    def ingest(self) -> Path:
        return self.root / "ingest"

    @property
    def micro_behaviors(self) -> Path:
        from rib.ingest import MICRO_BEHAVIORS_FILE

        return self.ingest / MICRO_BEHAVIORS_FILE

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"


def paths(params: Params) -> ArtifactPaths:
    return ArtifactPaths(Path(params.artifacts_dir))


def generate_default_data(params: Params, overwrite: bool = False) -> Path | None:
    """Write the synthetic default dataset to the first input path if it is missing
    (only with `data.generate_if_missing` and the canonical format)."""
    from rib.synthetic import generate

    target = Path(params.data.inputs[0])
    wanted = params.data.generate_if_missing and params.data.format == "canonical"
    if not wanted or (target.exists() and not overwrite):
        return None
    generate(params.synthetic, target)
    return target


def run_ingest(params: Params):
    from rib.ingest import ingest

    return ingest(params.data.format, params.data.inputs, paths(params).ingest, params.data.events_config)


def run_features(params: Params) -> dict:
    from rib.features import build_features

    artifact_paths = paths(params)
    return build_features(artifact_paths.micro_behaviors, artifact_paths.features, params.features)


def run_baselines(params: Params) -> dict:
    from rib.compare import evaluate_baselines, write_comparison

    artifact_paths = paths(params)
    summary = json.loads((artifact_paths.features / "summary.json").read_text())
    records = evaluate_baselines(
        artifact_paths.features,
        params.evaluation.baselines,
        params.evaluation.ks,
        params.evaluation.exclude_last_sku,
    )
    return write_comparison(
        records,
        artifact_paths.baselines,
        synthetic=summary["synthetic"],
        data=", ".join(params.data.inputs),
        k=params.evaluation.ks[0],
    )
