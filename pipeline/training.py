"""Training assets: word2vec pretraining, and one asset per trained model and input variant."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from pipeline.data import features
from pipeline.resources import DvcVersioning, MlflowTracking, RibParams
from rib.artifacts import model_folder


@asset(group_name="training", deps=[features], description="gensim word2vec of SKUs, activities and dwell buckets.")
def word2vec_embeddings(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import run_word2vec

    report = run_word2vec(rib_params.load(), rib_params.paths())
    dvc_versioning.record("word2vec")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(rib_params.paths().word2vec)),
            "kinds": MetadataValue.json(report["kinds"]),
        }
    )


def training_asset_name(model: str, variant: str) -> str:
    return model_folder(model, variant).lower().replace("-", "_")  # e.g. rib_sku_micro


def training_asset(model: str, variant: str) -> AssetsDefinition:
    """One asset per trained model and input variant: trained, early-stopped on validation, tested once."""

    @asset(
        name=training_asset_name(model, variant),
        group_name="training",
        pool="training",  # one training at a time (dagster.yaml): each uses every core or the GPU
        deps=[features, word2vec_embeddings],
        description=f"{model} on input variant {variant}: trained, early-stopped on validation, tested once.",
    )
    def train(
        context: AssetExecutionContext,
        rib_params: RibParams,
        mlflow_tracking: MlflowTracking,
        dvc_versioning: DvcVersioning,
    ) -> MaterializeResult:
        from rib.ops.tracking import log_training, tracked_run
        from rib.steps import ingest_report, run_training

        params, paths = rib_params.load(), rib_params.paths()
        report = ingest_report(paths)
        version = report["data_version"]
        tags = {"model": model, "variant": variant, "data_version": version, "dagster_run_id": context.run.run_id}
        if report.get("days"):  # daily inputs: the days of the training window
            tags["days"] = ",".join(report["days"])
        with tracked_run(mlflow_tracking.config(), model_folder(model, variant), tags) as run:
            record = run_training(params, paths, model, variant, log=context.log.info)
            log_training(record, version, paths.model(model, variant))
        dvc_versioning.record(f"train@{model}-{variant}")
        k = params.evaluation.k
        curve = "\n".join(
            f"| {h['epoch']} | {h['train_loss']:.4f} "
            f"| {h[f'validation_recall@{k}']:.4f} | {h[f'validation_mrr@{k}']:.4f} |"
            for h in record["history"]
        )
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(str(paths.model(model, variant))),
                "best_epoch": record["best_epoch"],
                f"validation recall@{k}": record["validation"][f"recall@{k}"],
                f"test recall@{k}": record["test"][f"recall@{k}"],
                f"test mrr@{k}": record["test"][f"mrr@{k}"],
                "micro_behaviors_per_second": record["micro_behaviors_per_second"],
                "device": record["device"],
                "mlflow_run_id": run.info.run_id,
                "curve": MetadataValue.md(
                    f"| epoch | loss | val recall@{k} | val mrr@{k} |\n|---:|---:|---:|---:|\n" + curve
                ),
            }
        )

    return train
