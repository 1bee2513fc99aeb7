"""Logs arriving one file per day: each day ingested once (a daily Dagster partition), the window of
the last `training_days` days as the canonical table, the nightly schedule and the new-day sensor."""

import json
from datetime import UTC
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from dagster import DagsterInstance, build_schedule_context, build_sensor_context, materialize

from pipeline.definitions import build_definitions
from pipeline.resources import DvcVersioning, MlflowTracking
from rib.artifacts import ArtifactPaths
from rib.config import DataConfig, load_params
from rib.data.daily import available_days, build_window, ingest_day

REPO = Path(__file__).resolve().parents[1]
TAOBAO = str(REPO / "docs" / "examples" / "taobao.yaml")
DAY0 = 1_767_225_600  # 2026-01-01 00:00 UTC


def write_day(folder: Path, day: int, users: int = 30, events: int = 8, shift: int = 0) -> Path:
    """A day of Taobao-layout events: each user views `events` products, a minute apart."""
    path = folder / f"2026-01-{day:02d}.csv"
    lines = []
    for user in range(users):
        for n in range(events):
            item = (user * 7 + n * 3 + shift) % 40
            behaviour = "cart" if n == 3 else "pv"
            lines.append(f"{user},{item},{item % 5},{behaviour},{DAY0 + (day - 1) * 86400 + user * 600 + n * 60}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_days_are_ingested_once_each_and_the_window_takes_the_last_ones(tmp_path):
    daily = tmp_path / "data" / "daily"
    daily.mkdir(parents=True)
    for day in (1, 2, 3):
        write_day(daily, day)
    (daily / "notes.txt").write_text("not a day")
    config = DataConfig(format="events", events_config=TAOBAO, daily_inputs=str(daily / "{date}.csv"), training_days=2)
    assert list(available_days(config)) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    for date in available_days(config):
        report = ingest_day(config, date, tmp_path / "ingest")
        assert report.read == report.kept == 240
    window = build_window(config, tmp_path / "ingest")
    assert window.days == ["2026-01-02", "2026-01-03"] and window.read == window.kept == 480
    sessions = {r["session_id"] for r in pq.read_table(tmp_path / "ingest" / "micro_behaviors.parquet").to_pylist()}
    assert len(sessions) == 60 and all(s.startswith(("2026-01-02/", "2026-01-03/")) for s in sessions)
    earlier = build_window(config, tmp_path / "ingest", end_date="2026-01-02")
    assert earlier.days == ["2026-01-01", "2026-01-02"] and earlier.data_version != window.data_version


def daily_params(tmp_path: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {
        "format": "events",
        "events_config": TAOBAO,
        "daily_inputs": str(tmp_path / "daily" / "{date}.csv"),
        "training_days": 2,
        "first_day": "2026-01-01",
        "generate_if_missing": False,
    }
    params["artifacts_dir"] = str(tmp_path / "artifacts")
    params["experiment"] = {"models": ["RIB"], "variants": ["sku"], "baselines": ["POP", "S-POP"]}
    params["train"] = {"epochs": 1, "progress": False}
    params["registry"] = {"variant": "sku"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_daily_partitions_a_backfill_a_late_correction_and_the_nightly_job(tmp_path):
    (tmp_path / "daily").mkdir()
    for day in (1, 2):
        write_day(tmp_path / "daily", day, users=60)
    params_path = daily_params(tmp_path)
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "mlartifacts")
    )
    defs = build_definitions(params_path, mlflow_tracking=tracking, dvc_versioning=DvcVersioning(enabled=False))
    instance = DagsterInstance.ephemeral()
    raw_daily = next(a for a in defs.assets if a.key.to_user_string() == "raw_daily")

    # Two daily partitions, one run each: only that day is ingested.
    for date in ("2026-01-01", "2026-01-02"):
        result = materialize([raw_daily], partition_key=date, resources=defs.resources, instance=instance)
        assert [e.partition for e in result.get_asset_materialization_events()] == [date]
    days = ArtifactPaths.under(tmp_path / "artifacts").ingest / "days"
    assert sorted(p.name for p in days.iterdir()) == ["2026-01-01", "2026-01-02"]

    # A late correction of day 1 re-materializes that partition alone (a backfill of one day).
    write_day(tmp_path / "daily", 1, users=60, shift=1)
    before = json.loads((days / "2026-01-02" / "ingest_report.json").read_text())
    materialize([raw_daily], partition_key="2026-01-01", resources=defs.resources, instance=instance)
    assert json.loads((days / "2026-01-02" / "ingest_report.json").read_text()) == before

    # The nightly schedule runs yesterday's partition; the job ingests it and retrains on the window.
    write_day(tmp_path / "daily", 3, users=60)
    schedule = defs.get_schedule_def("nightly_retraining")
    from datetime import datetime

    tick = build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 1, 4, 2, tzinfo=UTC))
    (request,) = schedule.evaluate_tick(tick).run_requests
    assert request.partition_key == "2026-01-03"
    job = defs.resolve_job_def("rib_pipeline")
    run = job.execute_in_process(partition_key=request.partition_key, instance=instance)
    assert run.success
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert {"raw_daily", "raw_micro_behaviors", "features", "rib_sku", "model_comparison"} <= materialized
    window = run.asset_materializations_for_node("raw_micro_behaviors")[0].metadata
    assert window["days"].value == ["2026-01-02", "2026-01-03"]  # training_days: 2

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    (training,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("rib").experiment_id])
        if r.info.run_name == "RIB-sku"
    ]
    assert training.data.tags["days"] == "2026-01-02,2026-01-03"
    assert (
        training.data.tags["data_version"]
        == json.loads((days.parent / "ingest_report.json").read_text())["data_version"]
    )


def test_the_sensor_asks_for_a_run_of_each_new_or_changed_day(tmp_path):
    (tmp_path / "daily").mkdir()
    write_day(tmp_path / "daily", 1)
    defs = build_definitions(daily_params(tmp_path))
    sensor = defs.get_sensor_def("raw_data_changed")
    resources = {"rib_params": defs.resources["rib_params"]}
    first = build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources)
    assert "recorded the 1 days" in sensor.evaluate_tick(first).skip_message
    write_day(tmp_path / "daily", 2)
    repository = defs.get_repository_def()
    second = build_sensor_context(cursor=first.cursor, resources=resources, repository_def=repository)
    (request,) = sensor.evaluate_tick(second).run_requests
    assert request.partition_key == "2026-01-02"
    assert load_params(tmp_path / "params.yaml").data.training_days == 2
