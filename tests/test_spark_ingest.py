"""data.engine: spark ingests an event log as the DuckDB engine does: the same canonical table, row
for row, and the same quarantine (file, line and reason of every row), on small logs in the Taobao,
REES46, Diginetica and JSON-lines layouts with damaged lines (Spark in local[2], for real)."""

import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import yaml
from conftest import REPO
from dagster import DagsterInstance, materialize

from pipeline.checks import DATA_CHECKS
from pipeline.data import raw_micro_behaviors
from pipeline.definitions import build_definitions
from pipeline.resources import DvcVersioning
from rib.config import DataConfig, FeatureConfig
from rib.data.ingest import ingest_logs
from rib.io import parquet_source

EXAMPLES = REPO / "docs" / "examples"
T0 = 1_700_000_000  # every test here takes the `spark` fixture (conftest.py)


def taobao_log(folder: Path, users: int = 6) -> Path:
    """Header-less CSV, unix seconds, sessions cut at 30-minute gaps, dwell derived; damage: a blank
    line, an unmapped behaviour, a timestamp that is not a number, a line with a column too few."""
    rows = []
    for user in range(1, users + 1):
        t = T0 + user * 11
        for n in range(12):
            t += 7 + (n * user) % 23 + (4000 if n == 6 and user % 2 else 0)  # a gap past 30 minutes
            item = 100 + (n * 7 + user) % 9 if n % 4 else 100 + user  # revisits of one product
            rows.append(f"{user},{item},{item % 5},{['pv', 'pv', 'cart', 'fav', 'buy'][n % 5]},{t}")
    rows[5] = "3,104,4,pv," + str(T0 + 40)  # out of time order in the file: ordered by time
    rows[9] = ""
    rows[14] = rows[14].replace(",pv,", ",share,").replace(",cart,", ",share,")
    rows[20] = "4,102,2,pv,yesterday"
    rows[31] = "5,103,3,pv"
    path = folder / "UserBehavior.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def rees46_log(folder: Path) -> Path:
    """A header, ' UTC' timestamps, a session column, excluded and unmapped events, a column too
    many, a line that is not UTF-8, and the last line cut short (a file copied while written)."""
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
    events = ["view", "view", "cart", "view", "remove_from_cart", "purchase", "view"]
    lines = [
        f"2019-10-01 00:{i // 60:02d}:{i % 60:02d} UTC,{events[i % 7]},{100 + i % 5},7,electronics.phone,"
        f"acme,9.99,{i % 3},s{i // 6}\n"
        for i in range(40)
    ]
    lines[3] = lines[3].rstrip("\n") + ",extra\n"
    lines[10] = lines[10].replace("view", "teleport")
    lines[17] = lines[17].replace("acme", '"acme, inc."')  # a quoted field with the delimiter in it
    lines[22] = lines[22].replace(",s3", ",s\xff3")
    data = (header + "".join(lines) + lines[0][:25]).encode("utf-8", "surrogateescape")
    path = folder / "2019-Oct.csv"
    path.write_bytes(data.replace(b"\xc3\xbf", b"\xff"))
    return path


def diginetica_log(folder: Path) -> Path:
    """';'-delimited, view-only (every event the default activity), unix milliseconds, sessions given."""
    rows = ["session_id;user_id;item_id;timeframe;eventdate"]
    for n in range(30):
        rows.append(f"{n // 7 + 1};{'' if n % 3 else n};{81000 + (n * 13) % 11};{(n * 104729) % 900000};2016-05-09")
    rows[8] = "2;;;526309;2016-05-09"  # no item
    rows[15] = "3;;31331;;2016-05-09"  # no timestamp
    path = folder / "train-item-views.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def jsonl_log(folder: Path) -> tuple[Path, Path]:
    """JSON lines with a dwell column and a session column; damage: an array, a broken object, a
    blank line, a negative dwell, a dwell that is not a number."""
    lines = [
        json.dumps({"s": f"u{n % 4}", "i": f"p{n % 6}", "e": ["view", "cart"][n % 2], "t": T0 + n * 9, "d": n % 5})
        for n in range(24)
    ]
    lines[2], lines[6], lines[9] = "[1, 2, 3]", "{not json", ""
    lines[12] = lines[12].replace('"d": 2', '"d": -2')
    lines[15] = lines[15].replace('"d": 0', '"d": "long"')
    path = folder / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = folder / "jsonl.yaml"
    config.write_text(
        "format: jsonl\ncolumns: {session: s, item: i, event_type: e, timestamp: t, dwell: d}\n"
        "timestamp_format: unix_s\nactivity_map: {view: 1, cart: 9}\n"
    )
    return path, config


def both_engines(tmp_path: Path, inputs: list[Path], config: Path):
    reports = {}
    for engine in ("duckdb", "spark"):
        data = DataConfig(format="events", inputs=[str(p) for p in inputs], events_config=str(config), engine=engine)
        reports[engine] = ingest_logs(data, tmp_path / engine, FeatureConfig(spark_master="local[2]"))
    return reports


def table(path: Path, query: str = "SELECT * FROM t ORDER BY session_id, position") -> tuple[list, list]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{parquet_source(path)}')")
    return con.sql("DESCRIBE t").fetchall(), con.sql(query).fetchall()


def assert_same_ingest(tmp_path: Path, reports: dict) -> None:
    a, b = reports["duckdb"], reports["spark"]
    for key in ("read", "kept", "quarantined", "sessions", "reasons", "per_file", "data_version"):
        assert getattr(a, key) == getattr(b, key), key
    assert a.profile == b.profile
    assert (tmp_path / "spark" / "micro_behaviors.parquet").is_dir()  # part files, written in parallel
    duck, spark = (table(tmp_path / engine / "micro_behaviors.parquet") for engine in ("duckdb", "spark"))
    assert duck[0] == spark[0]  # the same column names and types
    assert duck[1] == spark[1] and len(duck[1]) == a.kept
    where = "SELECT source_file, line_number, reason FROM t ORDER BY ALL"
    quarantine = [table(tmp_path / engine / "quarantine.parquet", where)[1] for engine in ("duckdb", "spark")]
    assert quarantine[0] == quarantine[1] and len(quarantine[0]) == a.quarantined


def test_a_taobao_layout_log(spark, tmp_path):
    reports = both_engines(tmp_path, [taobao_log(tmp_path)], EXAMPLES / "taobao.yaml")
    assert_same_ingest(tmp_path, reports)
    assert reports["spark"].reasons == {
        "bad_timestamp": 1,
        "blank_line": 1,
        "unmapped_event_type": 1,
        "unparsable_line": 1,
    }
    assert reports["spark"].sessions > 6  # the gaps cut sessions


def test_a_rees46_layout_log_cut_short(spark, tmp_path):
    reports = both_engines(tmp_path, [rees46_log(tmp_path)], EXAMPLES / "rees46.yaml")
    assert_same_ingest(tmp_path, reports)
    assert reports["spark"].reasons == {
        "excluded_event_type": 6,
        "unmapped_event_type": 1,
        "unparsable_line": 3,  # a column too many, not UTF-8, cut short
    }
    quarantine = pq.read_table(tmp_path / "spark" / "quarantine.parquet").to_pylist()
    (cut,) = [row for row in quarantine if row["line_number"] == 42]  # the last line, cut short
    assert cut["reason"] == "unparsable_line" and "missing columns" in cut["detail"]


def test_a_view_only_diginetica_log(spark, tmp_path):
    reports = both_engines(tmp_path, [diginetica_log(tmp_path)], EXAMPLES / "diginetica.yaml")
    assert_same_ingest(tmp_path, reports)
    assert reports["spark"].reasons == {"missing_item": 1, "missing_timestamp": 1}
    assert table(tmp_path / "spark" / "micro_behaviors.parquet", "SELECT DISTINCT activity FROM t")[1] == [(1,)]


def test_a_json_lines_log_and_two_files_at_once(spark, tmp_path):
    log, config = jsonl_log(tmp_path)
    second = tmp_path / "more.jsonl"
    second.write_text(log.read_text().replace('"u', '"v'))  # other sessions, a second file
    reports = both_engines(tmp_path, [log, second], config)
    assert_same_ingest(tmp_path, reports)
    assert reports["spark"].reasons == {
        "blank_line": 2,
        "negative_dwell": 2,
        "non_numeric_field": 2,
        "unparsable_json": 4,
    }


def test_the_spark_ingest_runs_as_its_own_process_through_dagster_pipes(spark, tmp_path):
    """The raw_micro_behaviors asset with data.engine spark launches pipeline/external/ingest_step.py
    through PipesSubprocessClient; its data checks (rows accounted for, quarantine share, the Great
    Expectations suite) pass on the Spark output, and `rib ingest` on DuckDB gives the same table."""
    log = taobao_log(tmp_path, users=12)  # four damaged lines of 144: under the quarantine share's warning
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {
        "format": "events",
        "inputs": [str(log)],
        "events_config": str(EXAMPLES / "taobao.yaml"),
        "engine": "spark",
    }
    params["artifacts_dir"] = str(tmp_path / "artifacts")
    params["features"] = {"spark_master": "local[1]"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    definitions = build_definitions(tmp_path / "params.yaml", dvc_versioning=DvcVersioning(enabled=False))
    checks = [c for c in DATA_CHECKS if all(k.asset_key == raw_micro_behaviors.key for k in c.check_keys)]
    result = materialize(
        [raw_micro_behaviors, *checks], resources=definitions.resources, instance=DagsterInstance.ephemeral()
    )
    metadata = result.asset_materializations_for_node("raw_micro_behaviors")[0].metadata
    assert metadata["engine"].value == "spark" and metadata["process"].value != os.getpid()
    assert metadata["read"].value == metadata["kept"].value + metadata["quarantined"].value == 144
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 3 and all(e.passed for e in evaluations)
    duck = ingest_logs(
        DataConfig(format="events", inputs=[str(log)], events_config=str(EXAMPLES / "taobao.yaml")), tmp_path / "d"
    )
    assert metadata["kept"].value == duck.kept
    spark_rows = table(tmp_path / "artifacts" / "ingest" / "micro_behaviors.parquet")
    assert spark_rows == table(tmp_path / "d" / "micro_behaviors.parquet")


def test_an_output_folder_can_change_engine_both_ways(spark, tmp_path):
    """Publishing replaces the canonical file by Spark's folder and back (a rename cannot replace a folder)."""
    log = taobao_log(tmp_path)
    shapes = []
    for engine in ("duckdb", "spark", "duckdb"):
        data = DataConfig(
            format="events", inputs=[str(log)], events_config=str(EXAMPLES / "taobao.yaml"), engine=engine
        )
        report = ingest_logs(data, tmp_path / "out", FeatureConfig(spark_master="local[2]"))
        shapes.append((report.kept, (tmp_path / "out" / "micro_behaviors.parquet").is_dir()))
    assert shapes == [(68, False), (68, True), (68, False)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ingest_report.json",
        "micro_behaviors.parquet",
        "quarantine.parquet",
    ]
