"""Great Expectations on the canonical table, from a quality folder left by an earlier version."""

import json

from rib.config import SyntheticConfig
from rib.data.synthetic import generate
from rib.ops.quality import prepare_raw, validate


def test_a_stale_validation_definition_is_rebuilt_not_fatal(tmp_path):
    source = generate(SyntheticConfig(n_sessions=60, n_skus=80), tmp_path / "mb.parquet")
    assert source["micro_behaviors"] > 0
    database = prepare_raw(tmp_path / "mb.parquet", tmp_path / "quality")
    first = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", tmp_path / "quality")
    assert first["evaluated"] > 0 and first["critical_failed"] == 0

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
