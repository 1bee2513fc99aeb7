import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rib.cli import main


def test_benchmark_on_a_real_sample(jd_file, tmp_path, capsys):
    argv = ["benchmark", "--format", "jd", "--out", str(tmp_path), str(jd_file("appliances"))]
    assert main([*argv, "--models", "POP", "S-POP", "Item-KNN"]) == 0
    printed = capsys.readouterr().out
    document = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert document["synthetic"] is False and "real data" in printed
    assert [r["model"] for r in document["results"]] == ["POP", "S-POP", "Item-KNN"]
    spop, pop = document["results"][1], document["results"][0]
    assert spop["recall@20"] > pop["recall@20"]  # 30-60% of JD targets were already seen in the session
    assert (tmp_path / "ingest" / "ingest_report.json").exists() and (
        tmp_path / "comparison" / "comparison.md"
    ).exists()


def test_console_script_reports_a_missing_file_and_exits_non_zero(tmp_path):
    missing = tmp_path / "nope.txt"
    run = subprocess.run(
        [sys.executable, "-m", "rib.cli", "ingest", "--format", "jd", "--out", str(tmp_path / "o"), str(missing)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert f"{missing}: file not found" in run.stderr and "Traceback" not in run.stderr


def test_generate_writes_synthetic_default_data(tmp_path, capsys):
    out = tmp_path / "d" / "mb.parquet"
    assert main(["generate", "--out", str(out), "--n-sessions", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["sessions"] == 20 and out.exists()


def test_benchmark_over_folds_with_a_trained_model(tmp_path, capsys):
    from rib.config import SyntheticConfig
    from rib.data.synthetic import generate

    data = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=300, n_skus=200, seed=3), data)
    params = tmp_path / "params.yaml"
    params.write_text(
        "experiment: {models: [RIB], variants: [sku, sku_micro]}\n"
        "train: {epochs: 1, progress: false}\nbpr: {iterations: 5}\nevaluation: {bootstrap: 200}\n"
    )
    argv = ["--params", str(params), "benchmark", "--format", "canonical", "--out", str(tmp_path / "b"), str(data)]
    assert main([*argv, "--folds", "2", "--models", "S-POP", "Item-KNN", "RIB"]) == 0
    document = json.loads((tmp_path / "b" / "comparison" / "comparison.json").read_text())
    assert document["folds"] == 2 and document["synthetic"] is True and document["targets"] == "all"
    rows = {(r["model"], r["variant"]): r for r in document["results"]}
    # every RIB training also ranks the test targets with its mixture at initialization: RIB-untrained
    trained = {("RIB", "sku"), ("RIB", "sku_micro"), ("RIB-untrained", "sku"), ("RIB-untrained", "sku_micro")}
    assert set(rows) == {("S-POP", None), ("Item-KNN", None), *trained}
    micro = rows[("RIB", "sku_micro")]
    assert micro["mrr@20_vs_untrained"]["reference"] == "RIB-untrained SKU+Micro-behaviors"
    assert [f["fold"] for f in micro["per_fold"]] == [0, 1]
    assert micro["per_fold"][0]["n"] != micro["per_fold"][1]["n"]  # two different session splits
    assert "recall@20_vs_best_baseline" in micro and "mrr@20_vs_sku" in micro
    for name in ("ranks.npz", "untrained_ranks.npz"):
        assert (tmp_path / "b" / "fold1" / "seed0" / "models" / "RIB-sku" / name).exists()
    assert "fold 1" in capsys.readouterr().out

    # the same table read back from the run's folders, on test and on validation
    from rib import steps
    from rib.config import load_params

    runs = steps.benchmark_runs(tmp_path / "b")
    assert [(r.fold, r.seed) for r in runs] == [(0, 0), (1, 0)]
    models, variants = ["S-POP", "Item-KNN", "RIB"], ["sku", "sku_micro"]
    again = steps.comparison_of(load_params(params), runs, models, variants)
    assert {(r["model"], r["variant"]): r["mrr@20"] for r in again["results"]} == {
        key: row["mrr@20"] for key, row in rows.items()
    }
    validation = steps.comparison_of(load_params(params), runs, models, variants, "validation")
    on_validation = {(r["model"], r["variant"]): r for r in validation["results"]}
    for key, row in on_validation.items():  # its figures are the records' validation figures, paired there
        assert row["recall@20"] == pytest.approx(rows[key]["validation_recall@20"])
        assert row["n_test"] != rows[key]["n_test"]  # the validation split's targets, not the test's
    assert "mrr@20_vs_untrained" in on_validation[("RIB", "sku_micro")]

    # benchmarks/micro_parts.py reads the same checkpoints part by part: its "all targets" figure is
    # the model's own MRR@20, split between the revisit targets ("catalog") and the new products';
    # a new product ranked among the products outside the input alone can only rank higher
    script = Path(__file__).parents[1] / "benchmarks" / "micro_parts.py"
    spec = importlib.util.spec_from_file_location("micro_parts", script)
    micro_parts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(micro_parts)
    parts, gates = micro_parts.figures_of(tmp_path / "b", "validation", variants, 20)
    for variant in variants:
        found = parts[variant]
        folds = on_validation[("RIB", variant)]["per_fold"]  # its folds' targets side by side
        pooled = sum(f["mrr@20"] * f["n"] for f in folds) / sum(f["n"] for f in folds)
        assert found["all targets"].mean() == pytest.approx(pooled, abs=1e-6)
        recall = sum(f["recall@20"] * f["n"] for f in folds) / sum(f["n"] for f in folds)
        assert (found["Recall@k, revisits"] + found["Recall@k, new"]).mean() == pytest.approx(recall, abs=1e-6)
        assert (found["catalog"] <= found["all targets"] + 1e-9).all() and found["catalog"].sum() > 0
        assert found["catalog"] + found["new, catalog"] == pytest.approx(found["all targets"])
        assert (found["catalog"][found["revisit"] == 0] == 0).all() and found["new, catalog"].sum() > 0
        outside = found["new, outside the input"]
        assert (outside >= found["new, catalog"] - 1e-9).all() and outside.sum() > found["new, catalog"].sum()
        assert ((found["mass"] >= 0) & (found["mass"] <= 1 + 1e-5)).all()
        assert found["mass"][found["revisit"] == 1].mean() > found["mass"][found["revisit"] == 0].mean()
        assert gates[variant].sum() == pytest.approx(1.0)
    assert (parts["sku"]["neighbours"] == parts["sku_micro"]["neighbours"]).all()  # one neighbourhood for both


def test_benchmark_tunes_each_learned_model_on_the_logs_validation_split_first(tmp_path, capsys):
    """`--tune N`: N trials per learned model on the variants it reads (SR-GNN the products, MKM-SR
    the operations), logged to MLflow, kept in tuned.json and used for every fold."""
    import mlflow

    from rib.config import SyntheticConfig
    from rib.data.synthetic import generate

    data = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=150, n_skus=80, mean_visits=6, max_visits=15, seed=5), data)
    params = tmp_path / "params.yaml"
    params.write_text(
        "experiment: {models: [], variants: [sku, sku_micro]}\n"
        "srgnn: {d_sku: 16}\nmkmsr: {d_sku: 16}\ntrain: {epochs: 1, progress: false}\nevaluation: {bootstrap: 50}\n"
    )
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["--params", str(params), "benchmark", "--format", "canonical", "--out", str(tmp_path / "b"), str(data)]
    models = ["S-POP", "GRU4Rec", "SR-GNN", "MKM-SR"]
    assert main([*argv, "--folds", "2", "--models", *models, "--tune", "2", "--mlflow", store]) == 0
    tuned = json.loads((tmp_path / "b" / "tuned.json").read_text())
    assert set(tuned) == {"GRU4Rec", "SR-GNN/sku", "MKM-SR/sku_micro"}
    records = json.loads((tmp_path / "b" / "fold1" / "seed0" / "baselines" / "records.json").read_text())
    gru4rec = next(r for r in records if r["model"] == "GRU4Rec")
    assert gru4rec["best_epoch"] == 1 and len(gru4rec["history"]) == 1  # a trained network: its collapse is judged
    assert {"d_sku", "steps", "dropout"} <= set(tuned["SR-GNN/sku"]["model"])
    document = json.loads((tmp_path / "b" / "comparison" / "comparison.json").read_text())
    rows = {(r["model"], r["variant"]): r for r in document["results"]}
    assert set(rows) == {("S-POP", None), ("GRU4Rec", None), ("SR-GNN", "sku"), ("MKM-SR", "sku_micro")}
    for fold in ("fold0", "fold1"):  # every fold trained with the tuned settings
        record = json.loads((tmp_path / "b" / fold / "seed0" / "models" / "SR-GNN-sku" / "metrics.json").read_text())
        assert record["model_config"]["d_sku"] == tuned["SR-GNN/sku"]["model"]["d_sku"]
    mlflow.set_tracking_uri(store)
    trials = mlflow.search_runs(experiment_names=["rib-tuning"])
    studies = sorted(trials["tags.study"].value_counts().to_dict().items())
    assert studies == [("GRU4Rec", 2), ("MKM-SR/sku_micro", 2), ("SR-GNN/sku", 2)]
    assert "tuning SR-GNN/sku: 2 trials" in capsys.readouterr().out


def test_outside_a_project_folder_only_commands_that_need_its_settings_ask_for_them(tmp_path):
    """No params.yaml here and none named: ingest and features run on the defaults; a pipeline stage
    says which file it needs and how to name one."""
    import os

    from helpers import write_canonical

    env = {k: v for k, v in os.environ.items() if k != "RIB_PARAMS"}
    data = write_canonical(
        tmp_path / "mb.parquet", {f"s{i}": [("p1", 5, 3), ("p2", 9, 4), ("p3", 5, 1)] for i in range(30)}
    )

    def rib(*argv):
        return subprocess.run(
            [sys.executable, "-m", "rib.cli", *argv], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    assert rib("ingest", "--format", "canonical", "--out", "ingest", str(data)).returncode == 0
    built = rib("features", "--ingest", "ingest", "--out", "features")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["train"]["sessions"] > 0
    stage = rib("stage", "features")
    assert stage.returncode == 2 and "Traceback" not in stage.stderr
    assert "params.yaml: params file not found" in stage.stderr and "--params FILE" in stage.stderr
