"""Training past one process: `torchrun` with the gloo backend on CPU, and the sampled softmax."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import write_canonical

from rib.models.loss import NegativeSampler, linear_cross_entropy, sampled_cross_entropy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Features and word2vec of a small log, and a params file for one deterministic epoch."""
    from rib import steps
    from rib.artifacts import ArtifactPaths
    from rib.config import load_params

    tmp = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    sessions = {
        f"s{i:03d}": [(f"p{rng.integers(40)}", int(rng.integers(1, 11)), int(rng.integers(1, 200))) for _ in range(n)]
        for i, n in enumerate(rng.integers(3, 70, size=150))
    }
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {
        "format": "canonical",
        "inputs": [str(write_canonical(tmp / "mb.parquet", sessions))],
        "generate_if_missing": False,
    }
    params["artifacts_dir"] = str(tmp / "artifacts")
    params["features"] = {"max_len": 20}
    params["model"] = {"dropout": 0.0, "hidden": 32, "d_sku": 16, "d_activity": 4, "d_dwell": 4, "neighbors": False}
    params["train"] = {"epochs": 1, "batch_size": 32, "progress": False, "cpu_threads": 1}
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    loaded = load_params(path)
    paths = ArtifactPaths.under(loaded.artifacts_dir)
    steps.run_ingest(loaded, paths)
    steps.run_features(loaded, paths)
    steps.run_word2vec(loaded, paths)
    return path, paths


def train(params_path, paths, out, processes: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "rib.cli",
        "--params",
        str(params_path),
        "train",
        "--features",
        str(paths.features),
        "--word2vec",
        str(paths.word2vec),
        "--out",
        str(out),
        "--variant",
        "sku_micro",
    ]
    if processes > 1:
        command[1:2] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out / "RIB-sku_micro" / "weights.npz") as weights:
        state = {name: weights[name] for name in weights.files}
    return state | {"metrics": json.loads((out / "RIB-sku_micro" / "metrics.json").read_text())}


def test_two_gloo_processes_end_an_epoch_like_one_with_the_same_global_batch(prepared, tmp_path):
    params_path, paths = prepared
    alone = train(params_path, paths, tmp_path / "one", 1)
    pair = train(params_path, paths, tmp_path / "two", 2)
    names = [n for n in alone if n != "metrics"]
    assert names and set(names) == {n for n in pair if n != "metrics"}
    mismatched = {}
    for name in names:
        gap = np.abs(pair[name] - alone[name]).max()
        if gap > 1e-4 + 1e-4 * np.abs(alone[name]).max():
            mismatched[name] = float(gap)
    assert mismatched == {}, mismatched
    one, two = alone["metrics"], pair["metrics"]
    assert two["validation"]["n"] == one["validation"]["n"] > 0  # every validation target, counted once
    for key in ("recall@20", "mrr@20"):
        assert two["validation"][key] == pytest.approx(one["validation"][key], abs=2 / one["validation"]["n"])
    assert two["history"][0]["train_loss"] == pytest.approx(one["history"][0]["train_loss"], rel=1e-4)
    assert not (tmp_path / "two" / "RIB-sku_micro-rank1").exists()


def test_the_training_step_launches_torchrun_itself(prepared, tmp_path):
    from rib import steps
    from rib.config import load_params

    params_path, paths = prepared
    params = load_params(params_path)
    import dataclasses

    params = dataclasses.replace(params, train=dataclasses.replace(params.train, distributed=2))
    record = steps.run_training(params, paths.replace(models=tmp_path / "models"), "RIB", "sku")
    assert record["model"] == "RIB" and record["test"]["n"] > 0
    assert (tmp_path / "models" / "RIB-sku" / "weights.npz").exists()


def test_the_sampled_softmax_gradient_approaches_the_full_one():
    g = torch.Generator().manual_seed(0)
    V, H, N = 400, 16, 64
    x = torch.randn(N, H, generator=g, requires_grad=True)
    weight = torch.randn(V, H, generator=g, requires_grad=True)
    bias = torch.zeros(V, requires_grad=True)
    target = torch.randint(2, V, (N,), generator=g)
    full = linear_cross_entropy(x, weight, bias, target).mean()
    full_grad = torch.autograd.grad(full, x)[0]
    counts = torch.rand(V, generator=g) * 100
    similarity = []
    for size in (8, 64, 512, 4096):
        sampler = NegativeSampler(counts, size, alpha=0.75, generator=torch.Generator().manual_seed(1))
        grads = []
        for _ in range(4):  # the expected gradient over a few draws
            loss = sampled_cross_entropy(x, weight, bias, target, sampler.sample(x.device), sampler.log_expected).mean()
            grads.append(torch.autograd.grad(loss, x)[0])
        similarity.append(F.cosine_similarity(torch.stack(grads).mean(0).flatten(), full_grad.flatten(), dim=0).item())
    assert similarity == sorted(similarity) and similarity[-1] > 0.99 and similarity[0] < 0.95, similarity


def test_a_network_trains_with_the_sampled_softmax(prepared, tmp_path):
    from rib import steps
    from rib.config import load_params

    params_path, paths = prepared
    params = load_params(params_path)
    import dataclasses

    params = dataclasses.replace(params, train=dataclasses.replace(params.train, sampled_softmax=16, epochs=2))
    record = steps.run_training(params, paths.replace(models=tmp_path / "models"), "RIB", "sku_micro")
    losses = [h["train_loss"] for h in record["history"]]
    assert np.isfinite(losses).all() and record["test"]["n"] > 0  # evaluation still ranks the full catalog
