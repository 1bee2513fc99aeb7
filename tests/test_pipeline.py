import json
from pathlib import Path

import yaml
from dagster import DagsterInstance, materialize

from pipeline.definitions import ALL_ASSETS, ALL_CHECKS, defs
from pipeline.resources import RibParams
from rib.params import load_params


def tiny_params(tmp_path):
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["data"]["inputs"] = [str(tmp_path / "data" / "micro_behaviors.parquet")]
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
    assert len(list(graph.asset_check_keys)) == len(ALL_CHECKS) == 3
    job = defs.resolve_job_def("rib_pipeline")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == keys


def test_materialize_the_whole_graph_in_process(tmp_path):
    params_path = tiny_params(tmp_path)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources={"rib_params": RibParams(params_path=str(params_path))},
        instance=instance,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_row_accounted_for": True, "quarantine_share": True, "test_targets_known": True}
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
