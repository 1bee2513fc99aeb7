"""`dagster dev -m pipeline.definitions` loads this. Heavy libraries are imported inside assets."""

from dagster import Definitions, define_asset_job

from pipeline.assets import (
    TRAINING_ASSETS,
    baseline_comparison,
    features,
    model_comparison,
    raw_micro_behaviors,
    word2vec_embeddings,
)
from pipeline.checks import every_row_accounted_for, features_expectations, quarantine_share, raw_expectations
from pipeline.resources import MlflowTracking, RibParams

ALL_ASSETS = [
    raw_micro_behaviors,
    features,
    word2vec_embeddings,
    baseline_comparison,
    *TRAINING_ASSETS,
    model_comparison,
]
ALL_CHECKS = [every_row_accounted_for, quarantine_share, raw_expectations, features_expectations]

rib_pipeline_job = define_asset_job("rib_pipeline", selection=ALL_ASSETS, description="Raw logs to comparison table.")

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[rib_pipeline_job],
    resources={"rib_params": RibParams(), "mlflow_tracking": MlflowTracking()},
)
