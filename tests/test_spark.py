"""features.engine: spark gives what DuckDB gives, output for output (Spark in local[2], for real)."""

import dataclasses
import hashlib
import json
import os

import duckdb
import numpy as np
import pytest
import yaml
from conftest import REPO
from dagster import DagsterInstance, materialize
from helpers import ingest

from pipeline.checks import DATA_CHECKS
from pipeline.data import features, raw_micro_behaviors
from pipeline.definitions import build_definitions
from pipeline.resources import DvcVersioning
from rib.config import FeatureConfig, SyntheticConfig
from rib.data.synthetic import generate
from rib.features.build import SPLITS, build_features
from rib.features.spark import _md5_mod_sql

SPARK = FeatureConfig(engine="spark")  # every test here takes the `spark` fixture (conftest.py)


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "micro_behaviors.parquet"
    generate(SyntheticConfig(n_sessions=300, n_skus=400, seed=3), path)
    return path


def assert_same_features(a, b):
    """Every output of two feature folders: summary, vocabulary, edges, each array (values and
    dtype), and the sessions and sku_vocab tables of features.duckdb (values and types)."""
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (a, b)]
    assert [s["config"].pop("engine") for s in summaries] == ["duckdb", "spark"]
    assert summaries[0] == summaries[1]
    assert (a / "vocab.json").read_text() == (b / "vocab.json").read_text()
    for split in SPLITS:
        names = sorted(p.name for p in (a / split).glob("*.npy"))
        assert names == sorted(p.name for p in (b / split).glob("*.npy")) and len(names) == 11
        for name in names:
            x, y = np.load(a / split / name), np.load(b / split / name)
            assert x.dtype == y.dtype and np.array_equal(x, y), f"{split}/{name}"
    for table in ("sessions", "sku_vocab"):
        query = f"SELECT * FROM {table} ORDER BY ALL"
        tables = []
        for folder in (a, b):
            con = duckdb.connect(str(folder / "features.duckdb"), read_only=True)
            tables.append((con.sql(f"DESCRIBE {table}").fetchall(), con.sql(query).fetchall()))
            con.close()
        assert tables[0] == tables[1], table
    return summaries[0]


def test_the_hash_split_is_the_same_number_on_both_engines(spark):
    ids = ["13:1", "13:100000009", "13:", "7:商品-ü", "13:a'b", "13:" + "x" * 300]
    expected = [int.from_bytes(hashlib.md5(i.encode()).digest(), "little") % 1_000_000 for i in ids]
    con = duckdb.connect()
    assert [con.execute("SELECT (md5_number(?) % 1000000)::BIGINT", [i]).fetchall()[0][0] for i in ids] == expected
    frame = spark.createDataFrame([(i,) for i in ids], "id STRING")
    rows = frame.selectExpr("id", f"{_md5_mod_sql('md5(id)')} AS u").collect()
    assert [r["u"] for r in rows] == expected


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),  # the defaults: hash split, learned dwell and interval buckets
        FeatureConfig(split_method="time", min_sku_count=2, max_len=7),
        FeatureConfig(dwell_edges=[9, 24, 60, 120], interval_buckets=1, split_seed=5, validation_fraction=0.3),
    ],
    ids=["defaults", "time-split", "fixed-edges"],
)
def test_engines_agree_on_a_synthetic_log(spark, synthetic_log, tmp_path, config):
    build_features(synthetic_log, tmp_path / "duckdb", config)
    build_features(synthetic_log, tmp_path / "spark", dataclasses.replace(config, engine="spark"))
    summary = assert_same_features(tmp_path / "duckdb", tmp_path / "spark")
    assert all(summary["splits"][split]["examples"] > 0 for split in SPLITS)


def test_engines_agree_on_the_jd_sample(spark, jd_file, tmp_path):
    report = ingest("jd", [jd_file("appliances")], tmp_path / "ingest")
    canonical = tmp_path / "ingest" / "micro_behaviors.parquet"
    assert report.kept > 50_000 and canonical.exists()  # 57,332 micro-behaviors
    build_features(canonical, tmp_path / "duckdb")
    build_features(canonical, tmp_path / "spark", SPARK)
    summary = assert_same_features(tmp_path / "duckdb", tmp_path / "spark")
    assert summary["splits"]["test"]["examples"] > 1000


def test_spark_features_run_as_their_own_process_through_dagster_pipes(spark, tmp_path):
    """The features asset with engine spark launches pipeline/external/features_step.py through
    PipesSubprocessClient (its own Spark driver); the asset shows the usual metadata, the data
    checks pass on its output, and the output is the DuckDB build's."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["inputs"] = [str(tmp_path / "data" / "micro_behaviors.parquet")]
    params["artifacts_dir"] = str(tmp_path / "artifacts")
    params["synthetic"].update(n_sessions=200, n_skus=200)
    params["features"] = {"engine": "spark", "spark_master": "local[1]"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    definitions = build_definitions(tmp_path / "params.yaml", dvc_versioning=DvcVersioning(enabled=False))
    result = materialize(
        [raw_micro_behaviors, features, *DATA_CHECKS],
        resources=definitions.resources,
        instance=DagsterInstance.ephemeral(),
    )

    metadata = result.asset_materializations_for_node("features")[0].metadata
    assert metadata["engine"].value == "spark" and metadata["process"].value != os.getpid()
    assert "| train |" in metadata["splits"].value and metadata["n_skus"].value > 0
    assert all(e.passed for e in result.get_asset_check_evaluations())
    canonical = tmp_path / "artifacts" / "ingest" / "micro_behaviors.parquet"
    build_features(canonical, tmp_path / "duckdb", FeatureConfig(spark_master="local[1]"))
    assert_same_features(tmp_path / "duckdb", tmp_path / "artifacts" / "features")
