import json
import subprocess
import sys

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
