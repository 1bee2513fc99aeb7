"""Nightly retraining and a sensor that starts the pipeline when the raw data changes."""

import hashlib
import json
from pathlib import Path

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from pipeline.jobs import rib_pipeline_job
from rib.params import load_params


def nightly_retraining(params_path: str = "params.yaml") -> ScheduleDefinition:
    cron = load_params(params_path).schedule.retrain_cron
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
def raw_data_changed(context: SensorEvaluationContext):
    params = load_params()
    signature = raw_data_signature(params.data.inputs)
    if context.cursor is None:
        context.update_cursor(signature)  # the first look only remembers what is there
        return SkipReason("recorded the current raw data")
    if signature == context.cursor:
        return SkipReason("raw data unchanged")
    context.update_cursor(signature)
    return RunRequest(run_key=signature)
