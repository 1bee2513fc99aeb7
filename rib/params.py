"""Load params.yaml into the library's configuration objects."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from rib.features import FeatureConfig
from rib.synthetic import SyntheticConfig

DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class DataParams:
    format: str = "canonical"
    inputs: list[str] = field(default_factory=lambda: ["data/micro_behaviors.parquet"])
    events_config: str | None = None
    generate_if_missing: bool = True  # write the synthetic default data when inputs[0] is absent


@dataclass
class EvaluationParams:
    ks: list[int] = field(default_factory=lambda: [20])
    exclude_last_sku: bool = True
    baselines: list[str] = field(default_factory=lambda: ["POP", "S-POP", "Item-KNN"])


@dataclass
class Params:
    data: DataParams = field(default_factory=DataParams)
    artifacts_dir: str = "artifacts"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)


def _build(cls, raw: dict | None, where: str):
    raw = raw or {}
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**raw)


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read params.yaml; a missing file gives the defaults, an unknown key is an error."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) if path.exists() else {}
    raw = raw or {}
    return Params(
        data=_build(DataParams, raw.get("data"), f"{path}: data"),
        artifacts_dir=raw.get("artifacts_dir", "artifacts"),
        synthetic=_build(SyntheticConfig, raw.get("synthetic"), f"{path}: synthetic"),
        features=_build(FeatureConfig, raw.get("features"), f"{path}: features"),
        evaluation=_build(EvaluationParams, raw.get("evaluation"), f"{path}: evaluation"),
    )
