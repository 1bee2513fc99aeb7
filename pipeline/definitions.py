"""`dagster dev -m pipeline.definitions` loads `defs`. Heavy libraries are imported inside assets.

The asset graph depends on the params file (one training asset per model and variant in
`experiment`), so the definitions are built from it: params.yaml, or the file $RIB_PARAMS names.
"""

import os

from dagster import Definitions, multiprocess_executor

from pipeline.automation import automation
from pipeline.checks import DATA_CHECKS, model_gate_checks
from pipeline.data import daily_assets, features, raw_micro_behaviors
from pipeline.evaluation import baseline_comparison, model_comparison_asset, registered_model_asset
from pipeline.insight import case_study_asset, micro_value, report_asset, section3_analysis
from pipeline.resources import DvcVersioning, MlflowTracking, RibParams, StepLauncher
from pipeline.training import training_asset, training_asset_name, word2vec_embeddings
from rib.config import default_params_path, load_params
from rib.steps import trained_pairs


def build_definitions(params_path: str | None = None, **resources) -> Definitions:
    """Every asset, check, job, schedule and sensor for one params file; `resources` replace the defaults."""
    params_path = str(params_path or default_params_path())
    params = load_params(params_path)
    experiment = params.experiment
    pairs = trained_pairs(experiment.models, experiment.variants)  # each model on the variants it reads
    trained = [training_asset(model, variant) for model, variant in pairs]
    gate_checks = [
        model_gate_checks(asset, model, variant, baseline_comparison)
        for asset, (model, variant) in zip(trained, pairs, strict=True)
    ]
    comparison = model_comparison_asset(trained)
    rib_names = {training_asset_name("RIB", variant) for variant in experiment.variants}
    case_study = case_study_asset([a for a in trained if a.key.to_user_string() in rib_names])
    raw = [raw_micro_behaviors]
    partitions_def = None
    if params.data.daily_inputs:  # one partition per day, then the window of days as the canonical table
        raw = daily_assets(params.data.first_day)
        partitions_def = raw[0].partitions_def
    job, schedule, sensor = automation(params, partitions_def)
    assets = [
        *raw,
        features,
        word2vec_embeddings,
        baseline_comparison,
        *trained,
        comparison,
        registered_model_asset(comparison),
        section3_analysis,
        micro_value,
        case_study,
        report_asset([comparison, section3_analysis, micro_value, case_study]),
    ]
    return Definitions(
        assets=assets,
        asset_checks=[*DATA_CHECKS, *gate_checks],
        jobs=[job],
        schedules=[schedule],
        sensors=[sensor],
        # Each step a process forked from one that has imported Dagster and these definitions: a step
        # starts in about 1 s instead of 2-3 s (a fresh interpreter each), 20 s less for make run's
        # 20 steps. Steps at once: the cores, or $DAGSTER_MULTIPROCESS_EXECUTOR_MAX_CONCURRENT (Makefile).
        executor=multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
        resources={
            "rib_params": RibParams(params_path=params_path),
            "mlflow_tracking": MlflowTracking(),
            "dvc_versioning": DvcVersioning(),
            # Heavy steps as their own processes (Dagster Pipes): on this machine, or pods (kind k8s)
            "training_launcher": StepLauncher(
                module="pipeline.external.train_step",
                kind=os.environ.get("RIB_TRAINING_LAUNCHER", "subprocess"),
                gpus=1,
            ),
            "spark_launcher": StepLauncher(
                module="pipeline.external.features_step", kind=os.environ.get("RIB_SPARK_LAUNCHER", "subprocess")
            ),
            **resources,
        },
    )


defs = build_definitions()
