"""DVC versions what Dagster makes: dvc.yaml mirrors the asset graph, and after a Dagster run in a
fresh copy of the repository `dvc status` is clean and `dvc repro` has nothing to do."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGE_OF_ASSET = {
    "raw_micro_behaviors": "ingest",
    "features": "features",
    "word2vec_embeddings": "word2vec",
    "baseline_comparison": "baselines",
    "model_comparison": "comparison",
    "section3_analysis": "section3",
    "case_study": "case_study",
    "run_report": "report",
    "registered_model": None,  # writes to the MLflow registry, not to files
}


def dvc(*args: str, cwd: Path) -> str:
    # Stage commands are `rib stage ...`: the venv's console script, importing the code under cwd.
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_dvc_yaml_has_one_stage_per_asset_that_writes_files():
    stages = set(dvc("stage", "list", "--name-only", cwd=REPO).split())
    expected = set()
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        name = key.to_user_string()
        if name.startswith("rib_"):
            model = "RIB-Attention" if name.startswith("rib_attention_") else "RIB"
            variant = name.removeprefix("rib_attention_").removeprefix("rib_")
            expected.add(f"train@{model}-{variant}")
        else:
            assert name in STAGE_OF_ASSET, f"asset {name} has no stage in dvc.yaml"
            expected.add(STAGE_OF_ASSET[name])
    assert stages == expected - {None}


def copy_of_repository(tmp_path: Path) -> Path:
    """The working tree's tracked and untracked-not-ignored files, as a fresh git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    clone = tmp_path / "clone"
    for name in files:
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
    ):
        subprocess.run(["git", *command], cwd=clone, check=True)
    return clone


def test_a_dagster_run_leaves_dvc_with_nothing_to_do(tmp_path):
    clone = copy_of_repository(tmp_path)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["experiment"].update(models=["RIB"], variants=["sku_micro"])
    params["train"].update(epochs=1, progress=False)
    params["bpr"].update(iterations=5)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(clone / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(clone), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.definitions", "--select", "*"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (clone / "data" / "micro_behaviors.parquet").exists()

    assert "up to date" in dvc("status", cwd=clone)  # data.dvc matches the generated default data too
    repro = dvc("repro", cwd=clone)
    assert "Running stage" not in repro, repro
    metrics = json.loads(dvc("metrics", "show", "--json", cwd=clone))
    shown = json.dumps(metrics)
    assert "RIB/sku_micro" in shown and "recall@20" in shown and "mrr@20" in shown

    # One training parameter changes: only the training stage and what is built from models rerun.
    params["train"]["learning_rate"] = 0.003
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro = dvc("repro", cwd=clone)
    ran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running stage")}
    assert ran == {"train@RIB-sku_micro", "comparison", "case_study", "report"}, repro
