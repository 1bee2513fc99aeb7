"""Evaluation assets: the baselines, the comparison table over every model, and the registration
of the configured model in MLflow."""

from collections.abc import Sequence

from dagster import AssetsDefinition, MaterializeResult, MetadataValue, asset

from pipeline.data import features
from pipeline.resources import DvcVersioning, MlflowTracking, RibParams
from pipeline.training import word2vec_embeddings


def comparison_metadata(document: dict, path) -> dict:
    from rib.evaluation.comparison import comparison_markdown

    k = document["k"]
    metadata = {
        "path": MetadataValue.path(str(path)),
        "table": MetadataValue.md(comparison_markdown(document)),
        "synthetic": document["synthetic"],
    }
    for row in document["results"]:
        name = row["model"] + (f" {row['variant']}" if row["variant"] else "")
        metadata[f"{name} recall@{k}"] = row[f"recall@{k}"]
        metadata[f"{name} mrr@{k}"] = row[f"mrr@{k}"]
    return metadata


@asset(
    group_name="evaluation",
    pool="training",  # GRU4Rec, NARM and SASRec train here: one training step at a time (dagster.yaml)
    deps=[features, word2vec_embeddings],
    description="Every baseline of experiment.baselines (neighbourhoods, factorisation, word2vec, trained networks).",
)
def baseline_comparison(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.evaluation.comparison import COMPARISON_JSON
    from rib.steps import run_baselines

    document = run_baselines(rib_params.load(), rib_params.paths())
    dvc_versioning.record("baselines")
    return MaterializeResult(metadata=comparison_metadata(document, rib_params.paths().baselines / COMPARISON_JSON))


def model_comparison_asset(trained: Sequence[AssetsDefinition]) -> AssetsDefinition:
    @asset(
        group_name="evaluation",
        deps=[baseline_comparison, *trained],
        description="The paper's Table 3 for this data: every baseline, RIB and RIB-Attention per input variant.",
    )
    def model_comparison(
        rib_params: RibParams, mlflow_tracking: MlflowTracking, dvc_versioning: DvcVersioning
    ) -> MaterializeResult:
        from rib.evaluation.comparison import COMPARISON_JSON, COMPARISON_MD
        from rib.ops.tracking import log_files
        from rib.steps import ingest_report, run_comparison

        paths = rib_params.paths()
        document = run_comparison(rib_params.load(), paths)
        dvc_versioning.record("comparison")
        files = [paths.comparison / COMPARISON_JSON, paths.comparison / COMPARISON_MD]
        log_files(mlflow_tracking.config(), "comparison", ingest_report(paths)["data_version"], files)
        metadata = comparison_metadata(document, paths.comparison / COMPARISON_JSON)
        return MaterializeResult(metadata=metadata | {"results": MetadataValue.json(document["results"])})

    return model_comparison


def registered_model_asset(comparison: AssetsDefinition) -> AssetsDefinition:
    @asset(
        group_name="registry",
        deps=[comparison],
        description="The configured RIB logged as an MLflow pyfunc; `champion` moves only on test improvement.",
    )
    def registered_model(rib_params: RibParams, mlflow_tracking: MlflowTracking) -> MaterializeResult:
        from rib.steps import run_registration

        decision = run_registration(rib_params.load(), rib_params.paths(), mlflow_tracking.config())
        return MaterializeResult(
            metadata={k: (MetadataValue.text(str(v)) if isinstance(v, str) else v) for k, v in decision.items()}
        )

    return registered_model
