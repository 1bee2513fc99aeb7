"""`dagster dev -m pipeline.definitions` loads this. Heavy libraries are imported inside assets."""

from dagster import Definitions

from pipeline.assets import (
    TRAINING_ASSETS,
    baseline_comparison,
    case_study,
    features,
    model_comparison,
    raw_micro_behaviors,
    registered_model,
    run_report,
    section3_analysis,
    word2vec_embeddings,
)
from pipeline.checks import every_row_accounted_for, features_expectations, quarantine_share, raw_expectations
from pipeline.jobs import rib_pipeline_job
from pipeline.resources import DvcVersioning, MlflowTracking, RibParams
from pipeline.schedules import nightly_retraining, raw_data_changed

ALL_ASSETS = [
    raw_micro_behaviors,
    features,
    word2vec_embeddings,
    baseline_comparison,
    *TRAINING_ASSETS,
    model_comparison,
    registered_model,
    section3_analysis,
    case_study,
    run_report,
]
ALL_CHECKS = [every_row_accounted_for, quarantine_share, raw_expectations, features_expectations]


defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[rib_pipeline_job],
    schedules=[nightly_retraining()],
    sensors=[raw_data_changed],
    resources={"rib_params": RibParams(), "mlflow_tracking": MlflowTracking(), "dvc_versioning": DvcVersioning()},
)
