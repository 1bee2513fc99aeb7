"""The job that materializes every asset, the nightly retraining schedule, and a sensor that starts
the job when the raw data changes. Both read their settings through the RibParams resource's file."""

import hashlib
import json
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from pipeline.resources import RibParams
from rib.config import Params

rib_pipeline_job = define_asset_job(
    "rib_pipeline", selection=AssetSelection.all(), description="Raw logs to the comparison table."
)


def nightly_retraining(params: Params) -> ScheduleDefinition:
    cron = params.schedule.retrain_cron
    return ScheduleDefinition(
        name="nightly_retraining",
        job=rib_pipeline_job,
        cron_schedule=cron,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Re-materializes the whole chain from the raw data ({cron}).",
    )


def raw_data_signature(inputs: list[str]) -> str:
    """Cheap change detection: path, size and modification time of every raw input."""
    entries = []
    for name in sorted(inputs):
        path = Path(name)
        stat = path.stat() if path.exists() else None
        entries.append([name, stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    return hashlib.md5(json.dumps(entries).encode()).hexdigest()


@sensor(
    job=rib_pipeline_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts the pipeline when a raw input file changes (size or modification time).",
)
def raw_data_changed(context: SensorEvaluationContext, rib_params: RibParams):
    signature = raw_data_signature(rib_params.load().data.inputs)
    if context.cursor is None:
        context.update_cursor(signature)  # the first look only remembers what is there
        return SkipReason("recorded the current raw data")
    if signature == context.cursor:
        return SkipReason("raw data unchanged")
    context.update_cursor(signature)
    return RunRequest(run_key=signature)
