import json

import pyarrow.parquet as pq
import pytest
from helpers import ingest

from rib.cli import main
from rib.errors import InputFileError


@pytest.mark.parametrize("name", ["appliances", "computers"])
def test_real_sample_counts_match_a_plain_token_count(jd_file, tmp_path, name):
    path = jd_file(name)
    lines = path.read_text().splitlines()
    n_tokens = sum(len(line.split()) for line in lines)

    report = ingest("jd", [path], tmp_path)

    assert report.read == report.kept == n_tokens
    assert report.quarantined == 0
    assert report.sessions == len([line for line in lines if line.strip()])
    table = pq.read_table(tmp_path / "micro_behaviors.parquet")
    assert table.num_rows == n_tokens
    first = lines[0].split()[0].split("+")
    row = table.slice(0, 1).to_pylist()[0]
    assert (row["sku"], row["activity"], row["category"]) == (first[0], int(first[1]), first[2])
    assert (row["time_interval_seconds"], row["dwell_seconds"]) == (float(first[3]), float(first[4]))
    assert json.loads((tmp_path / "ingest_report.json").read_text())["read"] == n_tokens


def test_corrupted_real_sample_accounts_for_every_token(jd_file, tmp_path):
    lines = jd_file("computers").read_text().splitlines()[:50]
    corrupt = {
        "12345+7+870+22": "wrong_field_count",
        "abc+7+870+22+27": "non_numeric_field",
        "12345+11+870+22+27": "activity_out_of_range",
        "12345+0+870+22+27": "activity_out_of_range",
        "12345+7+870+22+-3": "negative_dwell",
        "12345+7+870+22+": "missing_dwell",
        "12345+7+870+-1+5": "negative_time_interval",
    }
    lines[3] = lines[3] + " " + " ".join(corrupt)  # appended to line 4
    lines.insert(10, "")  # an empty session becomes line 11
    bad = tmp_path / "corrupted.txt"
    bad.write_text("\n".join(lines) + "\n")
    n_tokens = sum(len(line.split()) for line in lines)

    report = ingest("jd", [bad], tmp_path / "out")

    assert report.read == n_tokens + 1  # every token, plus the empty line
    assert report.read == report.kept + report.quarantined
    assert report.quarantined == len(corrupt) + 1
    expected_reasons = {"empty_session": 1}
    for reason in corrupt.values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert report.reasons == expected_reasons
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    by_raw = {row["raw"]: row for row in quarantine}
    for raw, reason in corrupt.items():
        assert by_raw[raw]["reason"] == reason
        assert by_raw[raw]["line_number"] == 4
        assert by_raw[raw]["source_file"] == str(bad)
    assert [row["line_number"] for row in quarantine if row["reason"] == "empty_session"] == [11]


def test_positions_are_renumbered_over_kept_tokens(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1+5+9+3+10 x+5+9+3+10 2+6+9+4+12\n")
    ingest("jd", [path], tmp_path / "out")
    rows = pq.read_table(tmp_path / "out" / "micro_behaviors.parquet").to_pylist()
    assert [(r["session_id"], r["position"], r["sku"]) for r in rows] == [("s:1", 0, "1"), ("s:1", 1, "2")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "file not found"), (b"", "file is empty"), (b"\x00\x01\x02binary", "not a text file")],
)
def test_unusable_file_stops_with_one_clear_error_and_no_output(tmp_path, capsys, content, problem):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(InputFileError, match=problem):
        ingest("jd", [path], out)
    assert not list(out.iterdir())  # nothing half-written, no staging folder left

    assert main(["ingest", "--format", "jd", "--out", str(out), str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error and problem in error


def test_a_file_with_no_valid_token_is_an_error(tmp_path):
    path = tmp_path / "prose.txt"
    path.write_text("this is not a micro-behavior log\n")
    with pytest.raises(InputFileError, match="no usable micro-behavior"):
        ingest("jd", [path], tmp_path / "out")
    assert not (tmp_path / "out" / "micro_behaviors.parquet").exists()


def test_a_line_that_is_not_utf8_or_cut_mid_token_costs_only_itself(tmp_path):
    path = tmp_path / "shop.txt"
    good = "1+5+9+3+10 2+5+9+3+10"
    path.write_bytes((good + "\n1+5+9+3+10 2+5+9\xff+3+10\n" + good + "\n1+5+9+3+10 2+5+").encode("latin-1"))
    report = ingest("jd", [path], tmp_path / "out")
    assert report.read == report.kept + report.quarantined == 2 + 1 + 2 + 2
    assert report.reasons == {"invalid_encoding": 1, "wrong_field_count": 1}  # the last token was cut off
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(q["line_number"], q["reason"]) for q in quarantine] == [(2, "invalid_encoding"), (4, "wrong_field_count")]
