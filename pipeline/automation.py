"""The job that materializes every asset, the nightly retraining schedule, and a sensor that starts
the job when the raw data changes. The sensor reads its settings through the RibParams resource.

With daily inputs (`data.daily_inputs`) the job is daily-partitioned: the schedule runs it each
night for yesterday's partition (that day ingested, then the window up to it retrained), and the
sensor asks for a run of each day whose input has appeared since its last look."""

import hashlib
import json
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    sensor,
)

from pipeline.resources import RibParams
from rib.config import Params


def raw_data_signature(inputs: list[str]) -> str:
    """Cheap change detection: path, size and modification time of every raw input."""
    entries = []
    for name in sorted(inputs):
        path = Path(name)
        stat = path.stat() if path.exists() else None
        entries.append([name, stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    return hashlib.md5(json.dumps(entries).encode()).hexdigest()


def automation(params: Params, partitions_def=None) -> tuple:
    """(the job, the nightly schedule, the raw-data sensor) for these parameters."""
    job = define_asset_job(
        "rib_pipeline",
        selection=AssetSelection.all(),
        partitions_def=partitions_def,
        description="Raw logs to the comparison table.",
    )
    cron = params.schedule.retrain_cron
    if partitions_def is None:
        schedule = ScheduleDefinition(
            name="nightly_retraining",
            job=job,
            cron_schedule=cron,
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"Re-materializes the whole chain from the raw data ({cron}).",
        )
        return job, schedule, _changed_sensor(job)
    minute, hour = cron.split()[:2]
    schedule = build_schedule_from_partitioned_job(
        job,
        name="nightly_retraining",
        hour_of_day=int(hour),
        minute_of_hour=int(minute),
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Each night ({hour}:{minute}): yesterday's partition, then the window up to it retrained.",
    )
    return job, schedule, _new_day_sensor(job)


def _changed_sensor(job) -> SensorDefinition:
    @sensor(
        name="raw_data_changed",
        job=job,
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

    return raw_data_changed


def _new_day_sensor(job) -> SensorDefinition:
    @sensor(
        name="raw_data_changed",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs the pipeline for each day whose input appeared or changed since the last look.",
    )
    def raw_data_changed(context: SensorEvaluationContext, rib_params: RibParams):
        from rib.data.daily import available_days

        seen = json.loads(context.cursor) if context.cursor else None
        now = {
            day: raw_data_signature([str(f) for f in files])
            for day, files in available_days(rib_params.load().data).items()
        }
        context.update_cursor(json.dumps(now))
        if seen is None:
            return SkipReason(f"recorded the {len(now)} days present")
        new = [day for day, signature in now.items() if seen.get(day) != signature]
        if not new:
            return SkipReason("no new or changed day")
        return [RunRequest(run_key=f"{day}:{now[day]}", partition_key=day) for day in new]

    return raw_data_changed
