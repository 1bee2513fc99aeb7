"""The corpus of damaged inputs (docs/damaged_inputs.md lists each kind with its behaviour).

Every case writes a small broken file in one of the three formats and ingests it through
`rib ingest` (the CLI, as a user would). Either the ingest succeeds and every row is accounted for
(read = kept + quarantined, with the counts and reasons each case expects), or it stops with one
clear message naming the file and the problem, exit status 2, and nothing written where the
output goes."""

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
T0 = 1_700_000_000
REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


def taobao(n: int = 6, user: int = 1, start: int = T0) -> list[str]:
    """Taobao UserBehavior lines (no header): one user's views, 10 s apart, one session."""
    return [f"{user},{100 + i},7,pv,{start + 10 * i}\n" for i in range(n)]


def rees46(i: int) -> str:
    return f"2019-10-01 00:00:{i:02d} UTC,view,{100 + i % 3},7,electronics.phone,acme,9.99,5,s{i // 4}\n"


def jd_line(n: int = 4, sku: int = 1000) -> str:
    return " ".join(f"{sku + i}+5+7+10+30" for i in range(n)) + "\n"


@dataclass
class Case:
    """A damaged input: its files are written by `write(folder) -> inputs`; the expected outcome is
    `error` (a phrase of the message), or the counts (None: not checked) and quarantine reasons."""

    name: str
    format: str
    write: object
    config: str | None = None
    error: str | None = None
    read: int | None = None
    kept: int | None = None
    reasons: dict = field(default_factory=dict)


def text(name: str, content: str | bytes):
    def write(folder: Path) -> list[Path]:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return [path]

    return write


def canonical(name: str, table: pa.Table | None = None, damage=None):
    def write(folder: Path) -> list[Path]:
        path = folder / name
        rows = table or pa.table(
            {
                "session_id": ["a"] * 3 + ["b"] * 3,
                "sku": ["p1", "p2", "p1", "p3", "p4", "p3"],
                "activity": pa.array([5, 9, 10, 5, 5, 10], pa.int8()),
                "dwell_seconds": [3.0, 10.0, 1.0, 4.0, 5.0, 2.0],
                "category": ["c"] * 6,
                "time_interval_seconds": [0.0] * 6,
            }
        )
        pq.write_table(rows, path)
        if damage:
            damage(path)
        return [path]

    return write


def cut_footer(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-12] + b"\x00" * 12)


HUGE = 10 * 1024 * 1024
BIG_SESSION = 200_000  # one user's session of that many events, 1 s apart

CASES = [
    # Events CSV, Taobao layout (docs/examples/taobao.yaml: no header)
    Case("cut_off_last_line", "events", text("t.csv", "".join(taobao()) + "1,999,7,p"), "taobao", read=7, kept=6,
         reasons={"unparsable_line": 1}),
    Case("wrong_delimiter", "events", text("t.csv", "".join(taobao()).replace(",", ";")), "taobao",
         error="no usable event"),
    Case("crlf_line_ends", "events", text("t.csv", "".join(taobao()).replace("\n", "\r\n")), "taobao", read=6, kept=6),
    Case("latin1_bytes", "events", text("t.csv", "".join(taobao()).encode() + "1,caf\xe9,7,pv,1700000100\n".encode(
        "latin-1")), "taobao", read=7, kept=6, reasons={"unparsable_line": 1}),
    Case("nul_bytes", "events", text("t.csv", "".join(taobao()).encode() + b"1,10\x001,7,pv,1700000100\n"), "taobao",
         error="NUL bytes"),
    Case("ten_mb_line", "events", text("t.csv", "".join(taobao()) + "1," + "9" * HUGE + ",7,pv,1700000100\n"),
         "taobao", read=7, kept=7),  # a well-formed line: its 10 MB product id is kept as written
    Case("truncated_gzip", "events", text("t.csv.gz", gzip.compress("".join(taobao(200)).encode())[:-40]), "taobao",
         error="t.csv.gz"),
    Case("empty_file", "events", text("t.csv", ""), "taobao", error="t.csv"),
    Case("header_only", "events", text("r.csv", REES46_HEADER), "rees46", error="r.csv"),
    Case("header_repeated_mid_file", "events", text("r.csv", REES46_HEADER + "".join(rees46(i) for i in range(4))
         + REES46_HEADER + "".join(rees46(i) for i in range(4, 8))), "rees46", read=9, kept=8),
    Case("extra_column", "events", text("t.csv", "".join(taobao()) + "1,999,7,pv,1700000100,surplus\n"), "taobao",
         read=7, kept=6, reasons={"unparsable_line": 1}),
    Case("missing_column", "events", text("t.csv", "".join(taobao()) + "1,999,7,1700000100\n"), "taobao", read=7,
         kept=6, reasons={"unparsable_line": 1}),
    Case("open_quote", "events", text("t.csv", "".join(taobao()) + '1,"999,7,pv,1700000100\n'), "taobao", read=7,
         kept=6),
    Case("id_too_large_for_64_bits", "events", text("t.csv", "".join(taobao()) + f"1,{10**25},7,pv,1700000100\n"),
         "taobao", read=7, kept=7),
    Case("negative_and_zero_ids", "events", text("t.csv", "".join(taobao()) + "1,0,7,pv,1700000100\n1,-5,7,pv,"
         "1700000110\n"), "taobao", read=8, kept=8),
    Case("timestamp_at_epoch_0", "events", text("t.csv", "".join(taobao()) + "2,5,7,pv,0\n"), "taobao", read=7),
    Case("timestamp_in_year_3000", "events", text("t.csv", "".join(taobao()) + "2,5,7,pv,32503680000\n"), "taobao",
         read=7),
    Case("nan_and_inf_timestamps", "events", text("t.csv", "".join(taobao()) + "2,5,7,pv,NaN\n2,6,7,pv,inf\n"),
         "taobao", read=8, kept=6, reasons={"bad_timestamp": 2}),
    Case("timestamp_past_what_a_timestamp_holds", "events", text("t.csv", "".join(taobao()) + "2,5,7,pv,1e300\n"),
         "taobao", read=7, kept=6, reasons={"bad_timestamp": 1}),
    Case("duplicated_rows", "events", text("t.csv", "".join(taobao()) + taobao()[2]), "taobao", read=7),
    Case("one_event_sessions", "events", text("t.csv", "".join(f"{u},{u},7,pv,{T0}\n" for u in range(1, 6))), "taobao",
         read=5),
    Case("a_session_of_many_events", "events", text("t.csv", "".join(f"1,{i % 5000},7,pv,{T0 + i}\n"
         for i in range(BIG_SESSION))), "taobao", read=BIG_SESSION, kept=BIG_SESSION),
    Case("non_ascii_product_ids", "events", text("t.csv", "".join(taobao()) + "1,商品-7,7,pv,1700000100\n"),
         "taobao", read=7, kept=7),
    Case("unknown_event_type", "events", text("t.csv", "".join(taobao()) + "1,9,7,teleport,1700000100\n"), "taobao",
         read=7, kept=6, reasons={"unmapped_event_type": 1}),
    # Events JSON lines
    Case("json_array_and_broken_lines", "events", text("e.jsonl", "\n".join(
        [json.dumps({"s": "a", "i": f"p{n}", "e": "view", "t": T0 + n}) for n in range(3)]
        + ["[1, 2]", "{not json", '"a string"']) + "\n"), "jsonl", read=6, kept=3),
    Case("json_nested_objects", "events", text("e.jsonl", "\n".join(
        [json.dumps({"s": "a", "i": f"p{n}", "e": "view", "t": T0 + n}) for n in range(3)]
        + [json.dumps({"s": "a", "i": {"id": 7}, "e": "view", "t": T0 + 9})]) + "\n"), "jsonl", read=4),
    Case("json_value_changing_type", "events", text("e.jsonl", "\n".join(
        [json.dumps({"s": "a", "i": n, "e": "view", "t": T0 + n}) for n in range(3)]
        + [json.dumps({"s": "a", "i": "p-text", "e": "view", "t": "yesterday"})]) + "\n"), "jsonl", read=4, kept=3),
    # JD token lines
    Case("jd_line_cut_mid_token", "jd", text("jd.txt", jd_line() + jd_line()[:-9] + "\n"), read=8, kept=7,
         reasons={"wrong_field_count": 1}),
    Case("jd_utf8_bom", "jd", text("jd.txt", "\ufeff" + jd_line() + jd_line(sku=2000)), read=8, kept=8),
    Case("jd_crlf", "jd", text("jd.txt", (jd_line() + jd_line(sku=2000)).replace("\n", "\r\n")), read=8, kept=8),
    Case("jd_empty_file", "jd", text("jd.txt", ""), error="jd.txt"),
    Case("jd_superscript_digit_in_dwell", "jd", text("jd.txt", jd_line() + "1005+5+7+10+3\u00b2 " + jd_line(sku=2000)),
         read=9, kept=8, reasons={"non_numeric_field": 1}),
    # Canonical Parquet
    Case("parquet_wrong_column_types", "canonical", canonical("c.parquet", pa.table(
        {"session_id": ["a", "a"], "sku": ["p1", "p2"], "activity": ["five", "nine"], "dwell_seconds": [1.0, 2.0],
         "category": ["c", "c"], "time_interval_seconds": [0.0, 0.0]})), error="c.parquet"),
    Case("parquet_non_finite_dwell_and_interval", "canonical", canonical("c.parquet", pa.table(
        {"session_id": ["a"] * 6, "position": list(range(6)), "sku": ["p1", "p2", "p3", "p4", "p5", "p6"],
         "activity": pa.array([5] * 6, pa.int8()),
         "dwell_seconds": [1.0, float("nan"), float("inf"), float("-inf"), 2.0, 3.0], "category": ["c"] * 6,
         "time_interval_seconds": [0.0, 0.0, 0.0, 0.0, float("nan"), 0.0]})), read=6, kept=2,
         reasons={"non_finite_dwell": 3, "non_finite_time_interval": 1}),
    Case("parquet_corrupted_footer", "canonical", canonical("c.parquet", damage=cut_footer), error="c.parquet"),
    Case("parquet_that_is_text", "canonical", text("c.parquet", "session_id,sku\na,p1\n"), error="c.parquet"),
    # Files
    Case("a_directory_instead_of_a_file", "events", lambda folder: [folder], "taobao", error=""),
    Case("missing_file", "events", lambda folder: [folder / "nope.csv"], "taobao", error="nope.csv"),
]  # fmt: skip

CONFIGS = {
    "taobao": EXAMPLES / "taobao.yaml",
    "rees46": EXAMPLES / "rees46.yaml",
    "jsonl": "format: jsonl\ncolumns: {session: s, item: i, event_type: e, timestamp: t}\n"
    "timestamp_format: unix_s\nactivity_map: {view: 1}\n",
}


def run_ingest(case: Case, folder: Path) -> tuple[subprocess.CompletedProcess, list[Path], Path]:
    inputs = case.write(folder)
    out = folder / "out"
    command = [sys.executable, "-m", "rib.cli", "ingest", "--format", case.format, "--out", str(out)]
    if case.config:
        config = CONFIGS[case.config]
        if isinstance(config, str):
            (folder / "config.yaml").write_text(config)
            config = folder / "config.yaml"
        command += ["--config", str(config)]
    run = subprocess.run([*command, *map(str, inputs)], capture_output=True, text=True, timeout=300)
    return run, inputs, out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_damaged_input(case: Case, tmp_path):
    run, inputs, out = run_ingest(case, tmp_path)
    if case.error is not None:
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Traceback" not in run.stderr and str(inputs[0].name) in run.stderr and case.error in run.stderr
        assert not (out / "micro_behaviors.parquet").exists()  # nothing half-written
        assert not any(p.name.startswith(".ingest-") for p in out.glob(".*")) if out.exists() else True
        return
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["read"] == report["kept"] + report["quarantined"]
    quarantine = pq.read_table(out / "quarantine.parquet")
    assert quarantine.num_rows == report["quarantined"]
    table = pq.read_table(out / "micro_behaviors.parquet")
    assert table.num_rows == report["kept"]
    if case.read is not None:
        assert report["read"] == case.read
    if case.kept is not None:
        assert report["kept"] == case.kept, report["reasons"]
    for reason, count in case.reasons.items():
        assert report["reasons"].get(reason) == count, report["reasons"]
    assert all(r for r in quarantine.column("reason").to_pylist())  # every quarantined row says why
    assert not any(p.name.startswith(".ingest-") for p in out.glob(".*"))  # no staging left behind


def test_a_file_given_twice_is_refused(tmp_path):
    (path,) = text("t.csv", "".join(taobao()))(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "rib.cli", "ingest", "--format", "events", "--config", str(CONFIGS["taobao"]),
         "--out", str(tmp_path / "out"), str(path), str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "t.csv" in run.stderr and "twice" in run.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: a permission cannot be denied to it")
def test_an_unreadable_file_is_named(tmp_path):
    (path,) = text("t.csv", "".join(taobao()))(tmp_path)
    path.chmod(0)
    run = subprocess.run(
        [sys.executable, "-m", "rib.cli", "ingest", "--format", "events", "--config", str(CONFIGS["taobao"]),
         "--out", str(tmp_path / "out"), str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "t.csv" in run.stderr and "Traceback" not in run.stderr
