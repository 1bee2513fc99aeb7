"""The pipeline's steps, each reading params.yaml's settings and writing under artifacts/.

One implementation, several entry points: the Dagster assets, the `rib` CLI and (later)
DVC stages all call these functions.
"""

from __future__ import annotations

import dataclasses
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

    @property
    def quality(self) -> Path:
        return self.root / "quality"

    @property
    def word2vec(self) -> Path:
        return self.root / "word2vec"

    def model(self, model: str, variant: str) -> Path:
        from rib.experiment import model_name

        return self.root / "models" / model_name(model, variant)

    @property
    def comparison(self) -> Path:
        return self.root / "comparison"

    @property
    def section3(self) -> Path:
        return self.root / "section3"


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


def run_raw_quality(params: Params) -> dict:
    """Great Expectations on the canonical table (expectations/raw_micro_behaviors.json)."""
    from rib.quality import raw_frame, validate

    artifact_paths = paths(params)
    return validate(raw_frame(artifact_paths.micro_behaviors), "raw_micro_behaviors", artifact_paths.quality)


def run_features_quality(params: Params) -> list[dict]:
    """Great Expectations on the built features (expectations/features.json, dwell_buckets.json)."""
    from rib.quality import features_frames, validate

    artifact_paths = paths(params)
    sessions, buckets = features_frames(artifact_paths.features)
    return [
        validate(sessions, "features", artifact_paths.quality),
        validate(buckets, "dwell_buckets", artifact_paths.quality),
    ]


def run_baselines(params: Params) -> dict:
    """Every baseline (the Word2vec ones from the pretrained vectors), written as a comparison."""
    from rib.compare import aggregate, evaluate_baselines, write_comparison
    from rib.word2vec import load_vectors

    artifact_paths = paths(params)
    summary = json.loads((artifact_paths.features / "summary.json").read_text())
    vectors = load_vectors(artifact_paths.word2vec, ("sku",)).get("sku")
    records = evaluate_baselines(
        artifact_paths.features,
        params.evaluation.baselines,
        params.evaluation.ks,
        params.evaluation.exclude_last_sku,
        word2vec_sku=vectors[0] if vectors else None,
        bpr=dataclasses.asdict(params.bpr),
        seed=params.train.seed,
    )
    document = aggregate(records, synthetic=summary["synthetic"], data=_data_label(params), k=params.evaluation.ks[0])
    write_comparison(document, artifact_paths.baselines)
    (artifact_paths.baselines / "records.json").write_text(json.dumps(records, indent=2) + "\n")
    return document


def run_word2vec(params: Params) -> dict:
    from rib.experiment import run_word2vec as pretrain

    artifact_paths = paths(params)
    return pretrain(artifact_paths.features, artifact_paths.word2vec, params)


def run_training(params: Params, model: str, variant: str, log=print, on_epoch=None) -> dict:
    from rib.experiment import train_one

    artifact_paths = paths(params)
    return train_one(
        artifact_paths.features,
        artifact_paths.word2vec,
        artifact_paths.model(model, variant),
        params,
        model,
        variant,
        log=log,
        on_epoch=on_epoch,
    )


def run_comparison(params: Params) -> dict:
    """The comparison table from the baselines' and every trained model's metrics."""
    from rib.compare import aggregate, write_comparison

    artifact_paths = paths(params)
    baselines = json.loads((artifact_paths.baselines / "records.json").read_text())
    records = list(baselines)
    for model in params.experiment.models:
        for variant in params.experiment.variants:
            records.append(json.loads((artifact_paths.model(model, variant) / "metrics.json").read_text()))
    summary = json.loads((artifact_paths.features / "summary.json").read_text())
    k = params.evaluation.ks[0]
    document = aggregate(records, synthetic=summary["synthetic"], data=_data_label(params), k=k)
    write_comparison(document, artifact_paths.comparison)
    flat = {  # what `dvc metrics show` prints
        f"{row['model']}/{row['variant'] or 'baseline'}": {
            f"recall@{k}": row[f"recall@{k}"],
            f"mrr@{k}": row[f"mrr@{k}"],
        }
        for row in document["results"]
    }
    (artifact_paths.comparison / "metrics.json").write_text(json.dumps(flat, indent=2) + "\n")
    return document


def run_registration(params: Params, tracking) -> dict:
    """Log the configured model as an MLflow pyfunc version; move `champion` only on improvement."""
    from rib.serving.registry import register_model
    from rib.tracking import data_version

    artifact_paths = paths(params)
    registry = params.registry
    checkpoint = artifact_paths.model(registry.model, registry.variant)
    record = json.loads((checkpoint / "metrics.json").read_text())
    metric = f"recall@{params.evaluation.ks[0]}"
    return register_model(
        checkpoint,
        tracking,
        registry.model_name,
        data_version(params.data.inputs),
        metric,
        record["test"][metric],
        artifact_paths.features,
        params.evaluation.exclude_last_sku,
    )


def run_section3(params: Params) -> dict:
    """The paper's Section 3 tables and figures for the ingested data."""
    from rib.analysis import run_section3 as analyse

    artifact_paths = paths(params)
    synthetic = json.loads((artifact_paths.ingest / "ingest_report.json").read_text())["synthetic"]
    return analyse(artifact_paths.micro_behaviors, artifact_paths.section3, synthetic)


def run_case_study(params: Params) -> dict:
    """Figure 8: attention of every input variant's RIB on a few test sessions."""
    from rib.explain import run_case_study as explain_cases

    artifact_paths = paths(params)
    synthetic = json.loads((artifact_paths.features / "summary.json").read_text())["synthetic"]
    model_dirs = {variant: artifact_paths.model("RIB", variant) for variant in params.experiment.variants}
    return explain_cases(artifact_paths.features, model_dirs, artifact_paths.root / "case_study", synthetic)


def run_report(params: Params) -> str:
    """The self-contained HTML report of this run."""
    from rib.report import build_report

    artifact_paths = paths(params)
    return build_report(artifact_paths.root, artifact_paths.root / "report" / "report.html")


def _data_label(params: Params) -> str:
    return ", ".join(params.data.inputs)
