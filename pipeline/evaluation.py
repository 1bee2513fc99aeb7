"""Evaluation assets: the baselines, the comparison table over every model, and the registration
of the configured model in MLflow."""

from collections.abc import Sequence

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from pipeline.data import features
from pipeline.resources import TRAINING_POOL, DvcVersioning, MlflowTracking, RibParams, training_threads
from pipeline.training import word2vec_embeddings


def comparison_table(document: dict) -> MetadataValue:
    """The comparison as a Dagster table, shown in the asset's page as it is (figures to 4 decimals;
    comparison.json and MLflow keep full precision)."""
    from dagster import TableColumn, TableRecord, TableSchema

    from rib.evaluation.comparison import difference_text

    k = document["k"]
    columns = ["model", "input", f"Recall@{k}", "Δ Recall vs best baseline", f"MRR@{k}", "Δ MRR vs best baseline"]
    columns += ["Δ MRR vs Visits", "Δ MRR vs SKU", "n test"]
    records = [
        TableRecord(
            dict(
                zip(
                    columns,
                    [
                        r["model"],
                        r["variant_name"],
                        round(r[f"recall@{k}"], 4),
                        difference_text(r, f"recall@{k}_vs_best_baseline"),
                        round(r[f"mrr@{k}"], 4),
                        difference_text(r, f"mrr@{k}_vs_best_baseline"),
                        difference_text(r, f"mrr@{k}_vs_visits"),
                        difference_text(r, f"mrr@{k}_vs_sku"),
                        r["n_test"],
                    ],
                    strict=True,
                )
            )
        )
        for r in document["results"]
    ]
    types = {f"Recall@{k}": "float", f"MRR@{k}": "float", "n test": "int"}
    schema = TableSchema(columns=[TableColumn(name, types.get(name, "string")) for name in columns])
    return MetadataValue.table(records, schema)


def comparison_metadata(document: dict, path) -> dict:
    from rib.evaluation.comparison import comparison_markdown

    k = document["k"]
    metadata = {
        "comparison": comparison_table(document),
        "data": ("SYNTHETIC " if document["synthetic"] else "real ") + f"({document['data']})",
        "path": MetadataValue.path(str(path)),
        "table": MetadataValue.md(comparison_markdown(document)),  # with the protocol and the per-fold columns
        "synthetic": document["synthetic"],
    }
    for row in document["results"]:
        name = row["model"] + (f" {row['variant']}" if row["variant"] else "")
        metadata[f"{name} recall@{k}"] = round(row[f"recall@{k}"], 4)
        metadata[f"{name} mrr@{k}"] = round(row[f"mrr@{k}"], 4)
    return metadata


@asset(
    group_name="evaluation",
    pool=TRAINING_POOL,  # GRU4Rec, NARM and SASRec train here: a step of the training pool
    deps=[features, word2vec_embeddings],
    description="Every baseline of experiment.baselines (neighbourhoods, factorisation, word2vec, trained networks).",
)
def baseline_comparison(
    context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning
) -> MaterializeResult:
    from rib.evaluation.comparison import COMPARISON_JSON
    from rib.steps import run_baselines

    document = run_baselines(rib_params.load(training_threads(context.instance)), rib_params.paths())
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
        return MaterializeResult(metadata=comparison_metadata(document, paths.comparison / COMPARISON_JSON))

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
