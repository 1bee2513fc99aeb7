"""Data assets: the raw logs as the canonical table, and the features built from it.

With `data.daily_inputs` the logs arrive one day at a time: `raw_daily` is daily-partitioned
(each day ingested once; a backfill or a late correction re-materializes its days), and
`raw_micro_behaviors` is the window of the last `training_days` days, up to the run's day."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from pipeline.resources import DvcVersioning, RibParams, StepLauncher

RAW = AssetKey("raw_micro_behaviors")


def _report_metadata(report, path) -> dict:
    from pipeline.external.ingest_step import ingest_metadata

    return _from_pipes(ingest_metadata(report, str(path)))


@asset(
    name="raw_micro_behaviors",
    group_name="data",
    pool="duckdb",  # steps that write a DuckDB file run one at a time (dagster.yaml)
    description="Raw logs turned into the canonical micro-behavior table, with a quarantine (DuckDB, or "
    "Spark through Dagster Pipes).",
)
def raw_micro_behaviors(
    context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning, spark_launcher: StepLauncher
) -> MaterializeResult:
    from rib.steps import generate_default_data, run_ingest

    params, paths = rib_params.load(), rib_params.paths()
    if generate_default_data(params):
        context.log.info(f"wrote the synthetic default dataset to {params.data.inputs[0]}")
        dvc_versioning.record("data.dvc", force=False)  # deterministic: the data data.dvc records
    if params.data.engine == "spark":  # a Spark driver process of its own (pipeline/external/ingest_step.py)
        extras = {"params_path": rib_params.params_path, "artifacts_dir": rib_params.artifacts_dir}
        result = spark_launcher.run(context, extras, module="pipeline.external.ingest_step").get_materialize_result()
    else:
        result = MaterializeResult(metadata=_report_metadata(run_ingest(params, paths), paths.ingest))
    dvc_versioning.record("ingest")
    return result


def daily_assets(first_day: str) -> list[AssetsDefinition]:
    """`raw_daily` (one partition per day) and the window asset that replaces raw_micro_behaviors."""
    days = DailyPartitionsDefinition(start_date=first_day)

    @asset(
        group_name="data",
        pool="duckdb",
        partitions_def=days,
        description="One day of raw logs (data.daily_inputs) as its canonical table, with a quarantine.",
    )
    def raw_daily(context: AssetExecutionContext, rib_params: RibParams) -> MaterializeResult:
        from rib.data.daily import day_folder
        from rib.steps import run_ingest_day

        report = run_ingest_day(rib_params.load(), rib_params.paths(), context.partition_key)
        return MaterializeResult(
            metadata=_report_metadata(report, day_folder(rib_params.paths().ingest, context.partition_key))
        )

    @asset(
        name="raw_micro_behaviors",
        group_name="data",
        pool="duckdb",
        deps=[raw_daily],
        description="The last training_days ingested days (up to the run's day) as the canonical table.",
    )
    def window(
        context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning
    ) -> MaterializeResult:
        from rib.steps import run_window

        end_day = context.run.tags.get("dagster/partition")  # a run for a day trains on the window up to it
        report = run_window(rib_params.load(), rib_params.paths(), end_day)
        dvc_versioning.record("ingest")
        return MaterializeResult(metadata=_report_metadata(report, rib_params.paths().ingest) | {"days": report.days})

    return [raw_daily, window]


@asset(
    group_name="features",
    pool="duckdb",
    deps=[RAW],
    description="Features (DuckDB, or Spark through Dagster Pipes): splits, macro interactions, dwell "
    "buckets, vocabularies, examples.",
)
def features(
    context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning, spark_launcher: StepLauncher
) -> MaterializeResult:
    from pipeline.external.features_step import features_metadata
    from rib.steps import run_features

    params, paths = rib_params.load(), rib_params.paths()
    if params.features.engine == "spark":  # a Spark driver process of its own (pipeline/external/features_step.py)
        extras = {"params_path": rib_params.params_path, "artifacts_dir": rib_params.artifacts_dir}
        result = spark_launcher.run(context, extras).get_materialize_result()
    else:
        summary = run_features(params, paths)
        result = MaterializeResult(metadata=_from_pipes(features_metadata(summary, str(paths.features))))
    dvc_versioning.record("features")
    return result


def _from_pipes(metadata: dict) -> dict:
    """Pipes' {raw_value, type} entries as Dagster metadata values (the in-process path)."""
    kinds = {"path": MetadataValue.path, "json": MetadataValue.json, "md": MetadataValue.md}
    return {k: kinds[v["type"]](v["raw_value"]) if isinstance(v, dict) else v for k, v in metadata.items()}
