"""Where each pipeline step writes: one folder per step under an artifacts root.

The pipeline uses `ArtifactPaths.under(params.artifacts_dir)`; `rib benchmark` gives each fold
its own root and shares one ingest; the CLI can point any single folder elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

# What an ingest writes (rib.data.ingest), named here so readers need not import the ingest.
MICRO_BEHAVIORS_FILE = "micro_behaviors.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest_report.json"


@dataclass(frozen=True)
class ArtifactPaths:
    ingest: Path  # micro_behaviors.parquet, quarantine.parquet, ingest_report.json
    quality: Path  # Great Expectations summaries and Data Docs
    features: Path  # the DuckDB file and the example arrays
    word2vec: Path  # <kind>.npz
    baselines: Path  # records.json and the baselines' comparison
    models: Path  # one checkpoint folder per trained model and variant
    comparison: Path  # comparison.json / .md, metrics.json (DVC)
    section3: Path
    micro_value: Path  # what micro-behaviors are worth on this log (rib/insight/micro_value.py)
    case_study: Path
    report: Path

    @classmethod
    def under(cls, root: str | Path) -> ArtifactPaths:
        root = Path(root)
        return cls(**{f.name: root / f.name for f in dataclasses.fields(cls)})

    @property
    def micro_behaviors(self) -> Path:
        return self.ingest / MICRO_BEHAVIORS_FILE

    @property
    def ingest_report(self) -> Path:
        return self.ingest / REPORT_FILE

    def model(self, model: str, variant: str) -> Path:
        return self.models / model_folder(model, variant)

    def replace(self, **folders: str | Path) -> ArtifactPaths:
        return dataclasses.replace(self, **{name: Path(folder) for name, folder in folders.items()})


def model_folder(model: str, variant: str) -> str:
    """Folder name of a trained model, e.g. RIB-sku_micro (dvc.yaml builds the same from params)."""
    return f"{model}-{variant}"
