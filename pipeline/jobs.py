"""The job that materializes every asset, used by the schedule and the sensor."""

from dagster import AssetSelection, define_asset_job

rib_pipeline_job = define_asset_job(
    "rib_pipeline", selection=AssetSelection.all(), description="Raw logs to the comparison table."
)
