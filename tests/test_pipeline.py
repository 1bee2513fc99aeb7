import json
from pathlib import Path

import yaml
from dagster import DagsterInstance, materialize
from helpers import write_canonical

from pipeline.definitions import ALL_ASSETS, ALL_CHECKS, defs
from pipeline.resources import MlflowTracking, RibParams
from rib.params import load_params

REPO = Path(__file__).resolve().parents[1]


def tiny_params(tmp_path, data: dict | None = None):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["inputs"] = [str(tmp_path / "data" / "micro_behaviors.parquet")]
    params["data"].update(data or {})
    params["artifacts_dir"] = str(tmp_path / "artifacts")
    params["synthetic"].update(n_sessions=400, n_skus=300)
    params["train"].update(epochs=2, progress=False)
    params["bpr"].update(iterations=5)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_definitions_load_with_every_asset_and_check():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    trained = {f"{m}_{v}" for m in ("rib", "rib_attention") for v in ("sku", "sku_activity", "sku_dwell", "sku_micro")}
    assert (
        keys
        == {"raw_micro_behaviors", "features", "word2vec_embeddings", "baseline_comparison", "model_comparison"}
        | trained
    )
    check_names = {key.name for key in graph.asset_check_keys}
    assert check_names == {
        "every_row_accounted_for",
        "quarantine_share",
        "raw_critical_expectations",
        "raw_warning_expectations",
        "features_critical_expectations",
        "features_warning_expectations",
    }
    job = defs.resolve_job_def("rib_pipeline")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == keys


def test_materialize_the_whole_graph_in_process(tmp_path):
    params_path = tiny_params(tmp_path)
    instance = DagsterInstance.ephemeral()
    tracking = MlflowTracking(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "mlartifacts")
    )
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={"rib_params": RibParams(params_path=str(params_path)), "mlflow_tracking": tracking},
        instance=instance,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert len(checks) == 6 and all(checks.values()), checks
    gx_metadata = next(
        e.metadata for e in result.get_asset_check_evaluations() if e.check_name == "raw_critical_expectations"
    )
    assert Path(gx_metadata["data_docs"].value).exists()  # Data Docs built on each validation
    assert gx_metadata["failed"].value == 0 and gx_metadata["passed"].value > 10
    params = load_params(params_path)
    assert (tmp_path / "data" / "micro_behaviors.parquet").exists()  # the default data was written

    ingest = result.asset_materializations_for_node("raw_micro_behaviors")[0].metadata
    assert ingest["read"].value == ingest["kept"].value > 0 and ingest["synthetic"].value is True

    comparison = json.loads((tmp_path / "artifacts" / "comparison" / "comparison.json").read_text())
    assert comparison["synthetic"] is True
    rows = {(r["model"], r["variant"]) for r in comparison["results"]}
    assert {model for model, _ in rows} == set(params.evaluation.baselines) | {"RIB", "RIB-Attention"}
    assert len(rows) == len(params.evaluation.baselines) + 8
    assert all(r["n_test"] > 0 and 0 <= r["recall@20"] <= 1 for r in comparison["results"])
    table = result.asset_materializations_for_node("model_comparison")[0].metadata["table"].value
    assert "SYNTHETIC" in table and "SKU+Micro-behaviors" in table
    assert (tmp_path / "artifacts" / "models" / "rib-sku_micro" / "weights.npz").exists()

    # MLflow: one run per trained model with per-epoch validation curves, plus the comparison.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rib").experiment_id])
    assert len(runs) == 9 and not (tmp_path / "mlruns").exists()
    rib_run = next(r for r in runs if r.info.run_name == "RIB-sku_micro")
    assert rib_run.data.tags["data_version"] == rib_run.data.params["data_version"]
    assert "test_recall_at_20" in rib_run.data.metrics and rib_run.data.params["model.variant"] == "sku_micro"
    curve = client.get_metric_history(rib_run.info.run_id, "validation_recall_at_20")
    assert [m.step for m in curve] == list(range(1, len(curve) + 1)) and len(curve) >= 1


def test_a_raw_log_failing_a_critical_expectation_stops_everything_downstream(tmp_path):
    # A mis-mapped session column: every micro-behavior is its own session. Ingest keeps every
    # row (nothing is malformed), Great Expectations' critical session-length expectation fails.
    broken = tmp_path / "broken.parquet"
    write_canonical(broken, {f"s{i}": [(f"p{i % 7}", 5, 10)] for i in range(200)})
    params_path = tiny_params(tmp_path, {"inputs": [str(broken)], "generate_if_missing": False})
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "art"))
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={"rib_params": RibParams(params_path=str(params_path)), "mlflow_tracking": tracking},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["raw_critical_expectations"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_micro_behaviors"}
    assert not (tmp_path / "artifacts" / "features").exists()
    assert not (tmp_path / "artifacts" / "models").exists()


def test_nightly_schedule_and_raw_data_sensor(tmp_path, monkeypatch):
    from dagster import DefaultScheduleStatus, RunRequest, SkipReason, build_sensor_context

    from pipeline.schedules import raw_data_changed

    schedule = defs.get_schedule_def("nightly_retraining")
    assert schedule.cron_schedule == load_params(REPO / "params.yaml").schedule.retrain_cron == "0 2 * * *"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "rib_pipeline"

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("data:\n  inputs: [raw.txt]\n")
    (tmp_path / "raw.txt").write_text("1+5+9+3+10 2+5+9+3+10\n")
    context = build_sensor_context(instance=DagsterInstance.ephemeral())
    assert isinstance(raw_data_changed(context), SkipReason)  # first look: remember what is there
    unchanged = build_sensor_context(cursor=context.cursor)
    assert isinstance(raw_data_changed(unchanged), SkipReason)
    (tmp_path / "raw.txt").write_text("1+5+9+3+10 2+5+9+3+10\n3+5+9+3+10 4+5+9+3+10\n")
    changed = build_sensor_context(cursor=context.cursor)
    request = raw_data_changed(changed)
    assert isinstance(request, RunRequest) and changed.cursor != context.cursor
