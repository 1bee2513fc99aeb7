"""A training run killed with SIGKILL after some epochs resumes from its last epoch's state and
ends exactly as an uninterrupted run does (CPU, one thread); a kill leaves no half-written model."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from rib.config import load_params
from rib.steps import artifact_paths, generate_default_data, run_features, run_ingest, run_word2vec

REPO = Path(__file__).resolve().parents[1]


def write_params(folder: Path, data: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(inputs=[str(data)], generate_if_missing=True)
    params["artifacts_dir"] = str(folder / "artifacts")
    params["synthetic"].update(n_sessions=600, n_skus=300)
    # Every epoch runs (no early stop) so the kill lands mid-run; one thread: the same floats each run.
    params["train"].update(epochs=6, patience=6, progress=False, cpu_threads=1)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def train(params_path: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "rib.cli", "--params", str(params_path), "stage", "train"]
    command += ["--model", "RIB", "--variant", "sku_micro"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_a_killed_training_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    data = tmp_path / "data.parquet"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    params = load_params(write_params(whole, data))
    generate_default_data(params)
    paths = artifact_paths(params)
    run_ingest(params, paths)
    run_features(params, paths)
    run_word2vec(params, paths)
    killed.mkdir()
    shutil.copytree(whole / "artifacts", killed / "artifacts")  # the same inputs, no model yet

    uninterrupted = train(whole / "params.yaml")
    assert uninterrupted.wait(300) == 0, uninterrupted.stdout.read()

    model = killed / "artifacts" / "models" / "RIB-sku_micro"
    progress = model.parent / ".RIB-sku_micro-progress" / "progress.pt"
    victim = train(write_params(killed, data))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None:
        if progress.exists() and torch.load(progress, weights_only=False)["epoch"] >= 2:
            break
        time.sleep(0.2)
    assert victim.poll() is None, "training ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    saved_epoch = torch.load(progress, weights_only=False)["epoch"]
    assert 2 <= saved_epoch < 6
    assert not model.exists()  # nothing half-written where the model goes

    resumed = train(killed / "params.yaml")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert f"resumed after epoch {saved_epoch}" in output
    assert not progress.parent.exists()  # finished: the next run starts afresh

    reference = whole / "artifacts" / "models" / "RIB-sku_micro"
    ours, theirs = np.load(model / "weights.npz"), np.load(reference / "weights.npz")
    assert set(ours.files) == set(theirs.files)
    for name in ours.files:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    a, b = (json.loads((folder / "metrics.json").read_text()) for folder in (model, reference))
    assert a["best_epoch"] == b["best_epoch"] and a["validation"] == b["validation"] and a["test"] == b["test"]
    losses = [[h["train_loss"] for h in record["history"]] for record in (a, b)]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder and its bytes (hidden staging folders inside it left out)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in files if not p.relative_to(folder).parts[0].startswith(".")
    }


def test_a_step_killed_while_writing_leaves_the_previous_output_intact(tmp_path):
    """`rib stage ingest` and `rib stage features` SIGKILLed while they write (their staging folder
    exists) over a previous output: the previous output is byte for byte as it was; the next run
    succeeds and leaves no staging folder behind."""
    data = tmp_path / "data.parquet"
    params_path = write_params(tmp_path, data)
    params = load_params(params_path)
    generate_default_data(params)
    paths = artifact_paths(params)
    run_ingest(params, paths)
    run_features(params, paths)
    # A larger log for the runs to be killed: the same path, so the ingest and features would change.
    document = yaml.safe_load(params_path.read_text())
    document["synthetic"].update(n_sessions=8000)
    params_path.write_text(yaml.safe_dump(document))
    data.unlink()
    generate_default_data(load_params(params_path))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage, folder, staging in (
        ("ingest", paths.ingest, lambda: list(paths.ingest.glob(".ingest-*"))),
        # features: killed once its staging folder has its DuckDB file, mid-computation
        ("features", paths.features, lambda: list(paths.features.parent.glob(f".{paths.features.name}-*/*.duckdb"))),
    ):
        before = _files(folder)
        command = [sys.executable, "-m", "rib.cli", "--params", str(params_path), "stage", stage]
        victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not staging() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert victim.poll() is None, f"{stage} ended before it could be killed"
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        assert _files(folder) == before, stage  # the previous output, untouched

        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-2000:]
        assert _files(folder) != before, stage  # replaced
        assert not list(folder.parent.glob(f".{folder.name}-*")) and not list(folder.glob(".ingest-*")), stage
