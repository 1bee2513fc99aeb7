"""Great Expectations on the canonical table, from a quality folder left by an earlier version."""

import json

from pandas import concat as pd_concat

from rib.config import SyntheticConfig
from rib.data.synthetic import generate
from rib.ops.quality import prepare_raw, validate


def test_a_stale_validation_definition_is_rebuilt_not_fatal(tmp_path):
    source = generate(SyntheticConfig(n_sessions=60, n_skus=80), tmp_path / "mb.parquet")
    assert source["micro_behaviors"] > 0
    database = prepare_raw(tmp_path / "mb.parquet", tmp_path / "quality")
    first = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", tmp_path / "quality")
    assert first["evaluated"] > 0 and first["critical_failed"] == 0
    # a clean table: no expectation fetched a sample of unexpected values (a scan each)
    assert all(not e["unexpected_sample"] for e in first["expectations"])

    # What an older version stored: the definition names a datasource that no longer exists
    # (GX then cannot load it at all: "Could not find asset ... within 'rib' datasource").
    stored = tmp_path / "quality" / "gx" / "validation_definitions" / "raw_micro_behaviors.json"
    document = json.loads(stored.read_text())
    document["data"]["datasource"] = {"id": "d5766869-03a1-4793-bf6e-c6bb940bd438", "name": "rib"}
    stored.write_text(json.dumps(document))
    again = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", tmp_path / "quality")
    assert again["rows"] == first["rows"] and again["passed"] == first["passed"]


def test_a_position_given_twice_in_a_session_fails_the_critical_gate(tmp_path):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    generate(SyntheticConfig(n_sessions=60, n_skus=80), tmp_path / "mb.parquet")
    table = pq.read_table(tmp_path / "mb.parquet")
    second = pc.index(table["position"], 1).as_py()  # a session's second micro-behavior gets the first's position
    positions = table["position"].to_pylist()
    positions[second] = 0
    pq.write_table(
        table.set_column(table.schema.get_field_index("position"), "position", [positions]), tmp_path / "bad.parquet"
    )
    database = prepare_raw(tmp_path / "bad.parquet", tmp_path / "quality")
    summary = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", tmp_path / "quality")
    (failed,) = [e for e in summary["expectations"] if not e["success"]]
    assert failed["column"] == "repeats_position" and failed["severity"] == "critical"
    assert failed["unexpected_count"] == 1 and summary["critical_failed"] == 1
    assert failed["unexpected_sample"] == [True]  # something failed: the validation ran again with samples


def test_a_table_out_of_session_order_gets_the_derived_columns_of_the_ordered_one(tmp_path):
    """The derived columns come from each row's neighbours in its session: a file written in
    another order (shuffled here, with a duplicate row, a repeated position and a session of one)
    is sorted first, and every column and count comes out as for the file in session order."""
    import duckdb
    import numpy as np
    import pyarrow.parquet as pq

    generate(SyntheticConfig(n_sessions=60, n_skus=80), tmp_path / "mb.parquet")
    table = pq.read_table(tmp_path / "mb.parquet").to_pandas()
    first = table.iloc[[0]].copy()
    alone = first.assign(session_id="alone", position=0)
    repeat = table.iloc[[5]].assign(sku=table.sku.iloc[4], dwell_seconds=table.dwell_seconds.iloc[4] + 1)
    table = pd_concat([table, first, alone, repeat])  # a duplicate row, a session of one, a repeated position
    table.sort_values(["session_id", "position"], kind="stable").to_parquet(tmp_path / "ordered.parquet", index=False)
    table.sample(frac=1.0, random_state=np.random.RandomState(0)).to_parquet(tmp_path / "shuffled.parquet", index=False)

    columns = "session_id, position, sku, alone_in_session, repeats_previous_row, repeats_position"
    derived = {}
    for name in ("mb", "ordered", "shuffled"):
        database = prepare_raw(tmp_path / f"{name}.parquet", tmp_path / name)
        with duckdb.connect(str(database), read_only=True) as con:
            kind = con.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_name = 'raw_micro_behaviors'"
            ).fetchone()[0]
            rows = con.execute(f"SELECT {columns} FROM raw_micro_behaviors").fetchall()
        derived[name] = (kind, sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3:])))
    assert derived["ordered"][0] == "VIEW" and derived["shuffled"][0] == "BASE TABLE"  # the copy only when needed
    assert derived["ordered"][1] == derived["shuffled"][1]
    counts = {name: np.array([r[3:] for r in rows]).sum(axis=0) for name, (_, rows) in derived.items()}
    assert counts["ordered"].tolist() == (counts["mb"] + [1, 1, 2]).tolist()
    summary = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", tmp_path / "shuffled")
    failed = {e["column"] for e in summary["expectations"] if not e["success"]}
    assert failed == {"repeats_position"}
