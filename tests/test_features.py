import dataclasses
import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import write_canonical

from rib.config import FeatureConfig, SyntheticConfig
from rib.data.synthetic import generate
from rib.features.build import SPLITS, build_features
from rib.features.dataset import SplitData, load_vocab
from rib.schema import OOV

ALL_TRAIN = FeatureConfig(validation_fraction=0.0, test_fraction=0.0)


def test_examples_of_a_hand_made_session(tmp_path):
    # Macro interactions: A(2 micro) B(1) A(1) C(2): targets B, A, C in training.
    events = [("A", 5, 10), ("A", 7, 10), ("B", 5, 3), ("A", 4, 40), ("C", 5, 8), ("C", 9, 8)]
    src = write_canonical(tmp_path / "mb.parquet", {"s1": events, "s2": [("A", 5, 1)]})
    summary = build_features(src, tmp_path / "f", ALL_TRAIN)

    train = SplitData.load(tmp_path / "f", "train")
    vocab = load_vocab(tmp_path / "f")
    ids = {sku: i for i, sku in enumerate(vocab["sku"])}
    assert vocab["sku"][:2] == ["<pad>", "<oov>"] and ids["A"] == 2  # most frequent first
    assert summary["splits"]["train"]["sessions_without_example"] == 1  # s2 has one macro
    s1 = 0  # sessions are indexed in session_id order
    start = train.session_offsets[s1]
    assert train.macro[start : start + 6].tolist() == [0, 0, 1, 2, 3, 3]
    assert (train.example_end - start).tolist() == [2, 3, 4]
    assert (train.example_start - start).tolist() == [0, 0, 0]
    assert train.example_target.tolist() == [ids["B"], ids["A"], ids["C"]]
    batch = train.batch(np.array([2]))
    assert batch.sku[0].tolist() == [ids["A"], ids["A"], ids["B"], ids["A"]]
    assert batch.inputs[0, :, 1].tolist() == [5, 7, 5, 4]  # activities


def test_inputs_are_truncated_to_the_last_max_len(tmp_path):
    events = [(f"p{i}", 5, i) for i in range(30)]
    src = write_canonical(tmp_path / "mb.parquet", {"s": events})
    build_features(src, tmp_path / "f", dataclasses.replace(ALL_TRAIN, max_len=4))
    train = SplitData.load(tmp_path / "f", "train")
    lengths = train.example_end - train.example_start
    assert lengths.max() == 4 and lengths[:3].tolist() == [1, 2, 3]


def test_evaluation_has_every_next_product_and_marks_each_sessions_last(tmp_path):
    sessions = {f"s{i}": [("A", 5, 1), ("B", 5, 2), (f"new{i}" if i % 2 else "A", 5, 3)] for i in range(400)}
    src = write_canonical(tmp_path / "mb.parquet", sessions)
    summary = build_features(src, tmp_path / "f")
    for split in ("validation", "test"):
        data = SplitData.load(tmp_path / "f", split)
        # Targets B (input [A]) and the third product (input [A, B]) in every session.
        assert data.n_examples == 2 * data.n_sessions > 0
        assert (np.asarray(data.example_end) - np.asarray(data.example_start)).tolist() == [1, 2] * data.n_sessions
        last = np.asarray(data.example_is_last)
        assert last.tolist() == [False, True] * data.n_sessions  # the older protocol: one per session
        unseen = data.example_target == OOV
        assert unseen.sum() == summary["splits"][split]["oov_targets"] > 0
        assert unseen[last].sum() == summary["splits"][split]["last_oov_targets"] == unseen.sum()  # only new{i}
    train = SplitData.load(tmp_path / "f", "train")
    assert train.n_examples == 2 * train.n_sessions


def test_no_session_in_two_splits_and_every_session_in_one(tmp_path):
    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=600, n_skus=300, seed=3), src)
    build_features(src, tmp_path / "f")
    con = duckdb.connect(str(tmp_path / "f" / "features.duckdb"), read_only=True)
    split_of = dict(con.sql("SELECT session_id, split FROM sessions").fetchall())
    per_split = con.sql("SELECT split, count(*) FROM sessions GROUP BY split").fetchall()
    assert len(split_of) == 600 == sum(n for _, n in per_split)
    assert set(split_of.values()) == set(SPLITS)
    # The arrays hold exactly each split's sessions' micro-behaviors.
    lengths = dict(con.sql("SELECT split, sum(n_micro) FROM sessions GROUP BY split").fetchall())
    for split in SPLITS:
        data = SplitData.load(tmp_path / "f", split)
        assert len(data.sku) == data.session_offsets[-1] == lengths[split]
    assert sum(lengths.values()) == pq.read_metadata(src).num_rows


def test_hash_split_is_stable_when_data_is_appended(tmp_path):
    full = tmp_path / "full.parquet"
    generate(SyntheticConfig(n_sessions=500, n_skus=200, seed=5), full)
    table = pq.read_table(full)
    first_half = table.filter(pc.less(table["session_id"], "100000250"))
    pq.write_table(first_half, tmp_path / "half.parquet")
    build_features(tmp_path / "half.parquet", tmp_path / "f_half")
    build_features(full, tmp_path / "f_full")

    def splits(folder):
        con = duckdb.connect(str(folder / "features.duckdb"), read_only=True)
        return dict(con.sql("SELECT session_id, split FROM sessions").fetchall())

    half, whole = splits(tmp_path / "f_half"), splits(tmp_path / "f_full")
    assert len(half) == 250 and all(whole[s] == split for s, split in half.items())


def test_the_hash_split_is_the_md5_of_seed_and_session_as_a_little_endian_integer(tmp_path):
    """The rule written out with hashlib: u = (MD5 digest of "seed:session_id", read as a
    little-endian 128-bit integer) mod 10^6 / 10^6; training below 1 - validation - test, then
    validation, then test. The Spark engine computes the same integer from the hex digest."""
    import hashlib

    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=400, n_skus=200, seed=11), src)
    config = FeatureConfig(split_seed=7, validation_fraction=0.2, test_fraction=0.3)
    build_features(src, tmp_path / "f", config)
    con = duckdb.connect(str(tmp_path / "f" / "features.duckdb"), read_only=True)
    for session_id, split in con.sql("SELECT session_id, split FROM sessions").fetchall():
        digest = hashlib.md5(f"7:{session_id}".encode()).digest()
        u = int.from_bytes(digest, "little") % 1_000_000 / 1_000_000
        assert split == ("train" if u < 0.5 else "validation" if u < 0.7 else "test"), session_id


def test_dwell_cut_points_are_learned_on_training_data_only(tmp_path):
    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=800, n_skus=300, seed=11), src)
    summary = build_features(src, tmp_path / "f")
    con = duckdb.connect(str(tmp_path / "f" / "features.duckdb"), read_only=True)
    held_out = {s for (s,) in con.sql("SELECT session_id FROM sessions WHERE split != 'train'").fetchall()}
    con.close()

    table = pq.read_table(src)
    is_held_out = pc.is_in(table["session_id"], value_set=pa.array(sorted(held_out)))
    train_dwell = table.filter(pc.invert(is_held_out))["dwell_seconds"].to_numpy()
    expected = [float(np.quantile(train_dwell, q, method="inverted_cdf")) for q in (0.2, 0.4, 0.6, 0.8)]
    assert summary["dwell_edges"] == expected

    # Changing validation and test dwell times changes nothing in the edges.
    dwell = table["dwell_seconds"]
    shifted = table.set_column(
        table.schema.get_field_index("dwell_seconds"),
        "dwell_seconds",
        pc.if_else(is_held_out, pc.multiply(dwell, 1000.0), dwell),
    )
    pq.write_table(shifted, tmp_path / "shifted.parquet")
    assert build_features(tmp_path / "shifted.parquet", tmp_path / "g")["dwell_edges"] == expected

    buckets = SplitData.load(tmp_path / "f", "train").dwell
    shares = np.bincount(buckets, minlength=6)[1:] / len(buckets)
    assert np.all(np.abs(shares - 0.2) < 0.08)  # about equal frequency


def test_fixed_dwell_edges_and_time_split(tmp_path):
    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=300, n_skus=200, seed=2), src)
    config = FeatureConfig(dwell_edges=[9, 24, 60, 120], split_method="time")
    summary = build_features(src, tmp_path / "f", config)
    assert summary["dwell_edges"] == [9.0, 24.0, 60.0, 120.0]
    con = duckdb.connect(str(tmp_path / "f" / "features.duckdb"), read_only=True)
    latest_train, earliest_test = con.sql(
        "SELECT max(start_ts) FILTER (split = 'train'), min(start_ts) FILTER (split = 'test') FROM sessions"
    ).fetchall()[0]
    assert latest_train < earliest_test


def test_time_split_needs_timestamps(tmp_path):
    src = write_canonical(tmp_path / "mb.parquet", {"s": [("A", 5, 1), ("B", 5, 1)]})
    with pytest.raises(ValueError, match="needs timestamps"):
        build_features(src, tmp_path / "f", FeatureConfig(split_method="time"))


def test_synthetic_label_travels_into_the_summary(tmp_path):
    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=50, n_skus=50), src)
    build_features(src, tmp_path / "f")
    assert json.loads((tmp_path / "f" / "summary.json").read_text())["synthetic"] is True


def test_paths_with_quotes_reach_duckdb_as_parameters(tmp_path):
    from helpers import ingest

    folder = tmp_path / "shop's logs"
    folder.mkdir()
    sessions = {f"s{i}": [("A", 5, 1), ("B", 5, 2), ("C", 9, 3)] for i in range(50)}
    src = write_canonical(folder / "it's.parquet", sessions)
    report = ingest("canonical", [src], folder / "ingest's")
    assert report.read == report.kept == 150
    summary = build_features(folder / "ingest's" / "micro_behaviors.parquet", folder / "feat'ures", ALL_TRAIN)
    assert summary["splits"]["train"]["sessions"] == 50


def test_a_table_out_of_session_order_gives_the_features_of_the_ordered_one(tmp_path):
    """The builder reads what needs a micro-behavior's neighbours (macro interactions, gaps) from
    one pass in session order; a table written in another order is sorted first, to the same
    features, array for array."""
    generate(SyntheticConfig(n_sessions=300, n_skus=120), tmp_path / "ordered.parquet")
    table = pq.read_table(tmp_path / "ordered.parquet")
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    pq.write_table(shuffled, tmp_path / "shuffled.parquet")
    built = {}
    for name in ("ordered", "shuffled"):
        summary = build_features(tmp_path / f"{name}.parquet", tmp_path / name)
        built[name] = (summary["splits"], summary["dwell_edges"], summary["interval_edges"])
    assert built["ordered"] == built["shuffled"] and built["ordered"][0]["train"]["examples"] > 0
    for split in SPLITS:
        for array in sorted((tmp_path / "ordered" / split).glob("*.npy")):
            assert np.array_equal(np.load(array), np.load(tmp_path / "shuffled" / split / array.name)), array.name
    assert load_vocab(tmp_path / "ordered") == load_vocab(tmp_path / "shuffled")


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 50])
def test_session_ranges_give_every_row_to_one_range_and_never_cut_a_session(tmp_path, parts):
    from rib.io import session_ranges

    ids = [f"u{n // 3}#{n % 3}" for n in range(40)]  # 40 sessions, 1 to 4 rows each, and rows without a session
    rows = [(s, p) for n, s in enumerate(ids) for p in range(1 + n % 4)] + [(None, 0), (None, 1)]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"session_id": [s for s, _ in rows], "position": [p for _, p in rows]}), path)
    con = duckdb.connect()
    ranges = session_ranges(con, str(path), parts)
    met = con.execute(
        "SELECT " + ", ".join(f"count(*) FILTER ({where})" for where in ranges) + " FROM read_parquet(?)", [str(path)]
    ).fetchone()
    assert sum(met) == len(rows) and met[-1] == 2  # the last range: the rows without a session

    def sessions(where: str) -> set:
        found = con.execute(f"SELECT session_id FROM read_parquet(?) WHERE {where}", [str(path)]).fetchall()
        return {s for (s,) in found}

    for where in ranges:
        assert not sessions(where) & sessions(f"NOT ({where})")  # no session in two ranges
    assert len(ranges) == parts + 1 if parts <= 7 else len(ranges) <= 41  # cuts in one session merge


def test_features_are_the_same_from_one_pass_or_several_at_once(tmp_path):
    src = tmp_path / "syn.parquet"
    generate(SyntheticConfig(n_sessions=300, n_skus=150, seed=9), src)
    for threads in (1, 3):
        build_features(src, tmp_path / f"f{threads}", FeatureConfig(duckdb_threads=threads))
    for split in SPLITS:
        one, several = (SplitData.load(tmp_path / f"f{t}", split) for t in (1, 3))
        for name in ("sku", "activity", "dwell", "interval", "macro", "example_target", "example_start"):
            assert np.array_equal(getattr(one, name), getattr(several, name)), (split, name)
