import dataclasses

import pyarrow.parquet as pq
import pytest

from rib.config import SyntheticConfig
from rib.data.profile import profile
from rib.data.synthetic import generate
from rib.schema import MICRO_BEHAVIOR_SCHEMA, is_synthetic

SMALL = SyntheticConfig(n_sessions=1500, n_skus=3000, seed=21)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    generate(SMALL, tmp_path / "a.parquet")
    generate(SMALL, tmp_path / "b.parquet")
    generate(dataclasses.replace(SMALL, seed=22), tmp_path / "c.parquet")
    a, b, c = ((tmp_path / f"{n}.parquet").read_bytes() for n in "abc")
    assert a == b and a != c


def test_schema_label_and_chunking(tmp_path):
    counts = generate(dataclasses.replace(SMALL, chunk_sessions=400), tmp_path / "s.parquet")
    file = pq.ParquetFile(tmp_path / "s.parquet")
    assert file.metadata.num_row_groups == 4  # 1500 sessions in chunks of 400
    assert file.schema_arrow.remove_metadata() == MICRO_BEHAVIOR_SCHEMA
    assert is_synthetic(str(tmp_path / "s.parquet"))
    table = file.read()
    assert table.num_rows == counts["micro_behaviors"]
    assert len(table["session_id"].unique()) == 1500
    assert not list(tmp_path.glob(".*tmp"))


def test_calibrated_to_the_jd_samples(tmp_path):
    """Ranges span what the two real JD samples show (benchmarks/synthetic_vs_jd.py prints both)."""
    generate(SMALL, tmp_path / "s.parquet")
    stats = profile(tmp_path / "s.parquet")
    share = {int(k): v for k, v in stats["activity_share"].items()}
    assert set(share) == set(range(1, 11))
    assert 0.40 < share[5] < 0.60  # SearchList2Product dominates
    assert 0.04 < share[4] < 0.10  # Cart2Product
    assert 0.04 < share[9] < 0.09  # Cart
    assert share[10] < 0.01  # Order is rare
    assert 0.20 < share[6] + share[7] + share[8] < 0.35  # browsing modules
    p10, _, p50, _, p90 = stats["dwell_p10_p25_p50_p75_p90"]
    assert 3 <= p10 <= 10 and 25 <= p50 <= 45 and 130 <= p90 <= 250
    assert stats["micro_per_macro"] > 1.5 and stats["micro_per_macro"] < 1.8
    assert 0.2 < stats["next_visit_seen_before_share"] < 0.4


@pytest.mark.parametrize("field", ["n_sessions", "n_skus"])
def test_counts_follow_the_config(tmp_path, field):
    config = dataclasses.replace(SMALL, **{field: 300})
    generate(config, tmp_path / "s.parquet")
    stats = profile(tmp_path / "s.parquet")
    assert stats["sessions" if field == "n_sessions" else "skus"] <= 300


def test_a_large_table_is_profiled_on_a_sample_of_whole_sessions_with_exact_totals(tmp_path):
    generate(SMALL, tmp_path / "s.parquet")
    full = profile(tmp_path / "s.parquet")
    sampled = profile(tmp_path / "s.parquet", sample_rows=full["micro_behaviors"] // 4)
    assert full["sample"] is None and 0.2 < sampled["sample"]["sessions_share"] < 0.3
    assert (sampled["micro_behaviors"], sampled["sessions"]) == (full["micro_behaviors"], full["sessions"])
    assert abs(sampled["skus"] - full["skus"]) < 0.1 * full["skus"]  # HyperLogLog
    assert abs(sampled["micro_per_macro"] - full["micro_per_macro"]) < 0.1
    assert abs(sampled["activity_share"]["5"] - full["activity_share"]["5"]) < 0.05
