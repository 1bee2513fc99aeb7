"""Training assets: word2vec pretraining, and one asset per trained model and input variant."""

import dataclasses

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from pipeline.data import features
from pipeline.resources import TRAINING_POOL, DvcVersioning, MlflowTracking, RibParams, StepLauncher, training_threads
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
        pool=TRAINING_POOL,  # as many trainings at once as the pool's limit, sharing the cores (training_threads)
        # A killed step (preempted pod, OOM) is retried, and resumes after its last finished epoch.
        retry_policy=RetryPolicy(max_retries=2, delay=10),
        deps=[features, word2vec_embeddings],
        description=f"{model} on input variant {variant}: trained, early-stopped on validation, tested once.",
    )
    def train(
        context: AssetExecutionContext,
        rib_params: RibParams,
        mlflow_tracking: MlflowTracking,
        dvc_versioning: DvcVersioning,
        training_launcher: StepLauncher,
    ) -> MaterializeResult:
        # The step runs as its own process (pipeline/external/train_step.py) through Dagster Pipes,
        # here or in a GPU pod (StepLauncher); its log and metadata come back here.
        tracking = mlflow_tracking.config()  # a TrackingConfig dataclass
        extras = {
            "params_path": rib_params.params_path,
            "artifacts_dir": rib_params.artifacts_dir,
            "model": model,
            "variant": variant,
            "tracking": dataclasses.asdict(tracking),
            "cpu_threads": training_threads(context.instance),
        }
        result = training_launcher.run(context, extras).get_materialize_result()
        dvc_versioning.record(f"train@{model}-{variant}")
        return result

    return train
