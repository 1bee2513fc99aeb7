"""Load params.yaml into the library's configuration objects."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from rib.features import FeatureConfig
from rib.synthetic import SyntheticConfig
from rib.word2vec import Word2VecConfig

DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class TrainParams:
    """TrainConfig fields that params.yaml sets (window, k and exclude_last_sku flow from
    features.max_len and evaluation)."""

    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    patience: int = 3
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    loss_chunk: int = 0
    compile_loss: str = "auto"
    cpu_threads: int | None = None
    progress: bool = True


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
    baselines: list[str] = field(
        default_factory=lambda: ["POP", "S-POP", "Item-KNN", "BPR-MF", "Word2vec", "Word2vec Avg"]
    )


@dataclass
class BPRParams:
    factors: int = 64
    iterations: int = 100
    learning_rate: float = 0.01
    regularization: float = 0.01


@dataclass
class ModelParams:
    """RIBConfig fields that params.yaml sets; vocabulary sizes come from the features."""

    d_sku: int = 64
    d_activity: int = 16
    d_dwell: int = 16
    hidden: int = 100
    rnn: str = "gru"
    dropout: float = 0.1
    tied_output: bool = False
    repeat: bool = True


@dataclass
class ExperimentParams:
    models: list[str] = field(default_factory=lambda: ["RIB", "RIB-Attention"])
    variants: list[str] = field(default_factory=lambda: ["sku", "sku_activity", "sku_dwell", "sku_micro"])
    seeds: int = 1


@dataclass
class RegistryParams:
    model_name: str = "rib"
    model: str = "RIB"
    variant: str = "sku_micro"


@dataclass
class ScheduleParams:
    retrain_cron: str = "0 2 * * *"  # nightly retraining, 02:00


@dataclass
class Params:
    data: DataParams = field(default_factory=DataParams)
    artifacts_dir: str = "artifacts"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    word2vec: Word2VecConfig = field(default_factory=Word2VecConfig)
    bpr: BPRParams = field(default_factory=BPRParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=lambda: TrainParams())
    experiment: ExperimentParams = field(default_factory=ExperimentParams)
    schedule: ScheduleParams = field(default_factory=ScheduleParams)
    registry: RegistryParams = field(default_factory=RegistryParams)


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
        word2vec=_build(Word2VecConfig, raw.get("word2vec"), f"{path}: word2vec"),
        bpr=_build(BPRParams, raw.get("bpr"), f"{path}: bpr"),
        model=_build(ModelParams, raw.get("model"), f"{path}: model"),
        train=_build(TrainParams, raw.get("train"), f"{path}: train"),
        experiment=_build(ExperimentParams, raw.get("experiment"), f"{path}: experiment"),
        schedule=_build(ScheduleParams, raw.get("schedule"), f"{path}: schedule"),
        registry=_build(RegistryParams, raw.get("registry"), f"{path}: registry"),
    )
