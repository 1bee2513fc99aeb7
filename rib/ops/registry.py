"""Log a trained RIB as an MLflow pyfunc, register it, and move the `champion` alias only on
improvement: a new version becomes champion when there is none, or when its test Recall@k
beats the champion's on the same data version."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from rib.config import EvaluationConfig

MODEL_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"
CHAMPION = "champion"
DEFAULT_TOP_K = 20  # `k` of a request that names none (the signature's parameter default)


def _signature_and_example(vocab: dict):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    micro = Object([Property("sku", "string"), Property("activity", "long"), Property("dwell", "double")])
    inputs = Schema([ColSpec(Array(micro), "session")])
    outputs = Schema(
        [ColSpec(Array("string"), "skus"), ColSpec(Array("double"), "scores"), ColSpec(Array("double"), "attention")]
    )
    params = ParamSchema([ParamSpec("k", "long", DEFAULT_TOP_K)])
    known = [sku for sku in vocab["sku"][2:5]]
    example = {"session": [{"sku": sku, "activity": 5, "dwell": 30.0} for sku in known]}
    return ModelSignature(inputs=inputs, outputs=outputs, params=params), [example]


def evaluate_checkpoint_on(checkpoint_dir: str | Path, features_dir: str | Path, evaluation: EvaluationConfig) -> dict:
    """Test Recall@k / MRR@k of a checkpoint trained on other data, on these features' test split.

    SKUs are matched by their raw ids: inputs the checkpoint never saw read as out-of-vocabulary,
    products it cannot score rank last (a miss), as for any unseen target."""
    import numpy as np
    import torch

    from rib.evaluation.metrics import evaluate
    from rib.features.dataset import SplitData, load_vocab
    from rib.models.checkpoint import load_checkpoint
    from rib.schema import OOV

    checkpoint = load_checkpoint(checkpoint_dir)
    model, theirs = checkpoint.model, checkpoint.vocab
    ours_vocab = load_vocab(features_dir)
    ours = ours_vocab["sku"]
    their_index = {sku: i for i, sku in enumerate(theirs["sku"])}
    to_theirs = np.array([their_index.get(sku, OOV) if i > OOV else i for i, sku in enumerate(ours)])
    our_index = {sku: i for i, sku in enumerate(ours)}
    from_theirs = np.array([our_index.get(sku, -1) if i > OOV else -1 for i, sku in enumerate(theirs["sku"])])
    scorable = from_theirs >= 0
    to_their_dwell = _bucket_map(ours_vocab["dwell_edges"], theirs["dwell_edges"], first=1)
    to_their_interval = _bucket_map(ours_vocab["interval_edges"], theirs.get("interval_edges", []), first=2)

    @torch.no_grad()
    def score(batch):
        inputs = batch.inputs.copy()
        inputs[..., 0] = to_theirs[inputs[..., 0]]
        inputs[..., 2] = to_their_dwell[inputs[..., 2]]
        inputs[..., 3] = to_their_interval[inputs[..., 3]]
        prior = None
        if checkpoint.neighbors is not None:  # their index votes on their ids
            prior = torch.as_tensor(checkpoint.neighbors.distribution(dataclasses.replace(batch, inputs=inputs)))
        their_scores = model.score_all(torch.as_tensor(inputs), torch.as_tensor(batch.lengths), prior).float().numpy()
        scores = np.full((len(batch.lengths), len(ours)), -np.inf)
        scores[:, from_theirs[scorable]] = their_scores[:, scorable]
        return scores

    return evaluate(score, SplitData.load(features_dir, "test"), evaluation, n_items=len(ours))


def _bucket_map(our_edges: list[float], their_edges: list[float], first: int):
    """Our bucket ids -> the checkpoint's, through each bucket's midpoint (buckets are re-cut on new
    data). Ids below `first` (padding, and the interval's "none") map to themselves."""
    import numpy as np

    if our_edges == their_edges:
        return np.arange(len(our_edges) + first + 1)
    upper = [*our_edges, (our_edges[-1] * 2) if our_edges else 1.0]
    mids = [(a + b) / 2 for a, b in zip([0.0, *our_edges], upper, strict=True)]
    mapped = [first + int((m > np.asarray(their_edges)).sum()) for m in mids]
    return np.array(list(range(first)) + mapped)


def register_model(
    checkpoint_dir: str | Path,
    tracking,  # rib.tracking.TrackingConfig
    model_name: str,
    data_version: str,
    metric: str,
    value: float,
    features_dir: str | Path,
    evaluation: EvaluationConfig,
    run_name: str = "register",
) -> dict:
    """Log the checkpoint as a pyfunc version of `model_name`; move `champion` if it is better
    on this data version (a champion from other data is first evaluated on this test split)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    from rib.models.checkpoint import SERVING_FILES
    from rib.ops.tracking import tracked_run

    vocab = json.loads((Path(checkpoint_dir) / "vocab.json").read_text())
    signature, example = _signature_and_example(vocab)
    metric_key = "test_" + metric.replace("@", "_at_")  # MLflow names allow no "@"
    with tracked_run(tracking, run_name, {"data_version": data_version}) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_metric(metric_key, value)
        serving = Path(tmp) / "checkpoint"  # what serving reads: weights, config, vocabulary (no optimizer state)
        serving.mkdir()
        for name in SERVING_FILES:
            if (Path(checkpoint_dir) / name).exists():
                shutil.copy2(Path(checkpoint_dir) / name, serving / name)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"checkpoint": str(serving)},
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the rib package travels with the model
            signature=signature,
            input_example=example,
            pip_requirements=["mlflow", "torch", "numpy", "pandas", "pyarrow"],
        )
    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    tags = {"data_version": data_version, metric_key: str(value)}
    version = mlflow.register_model(info.model_uri, model_name, tags=tags)
    client.update_registered_model(model_name, description=MODEL_DESCRIPTION.format(name=model_name))
    record_file = Path(checkpoint_dir) / "metrics.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    client.update_model_version(model_name, version.version, description=version_description(record, data_version))
    champion = _champion(client, model_name)
    decision = {"model": model_name, "version": int(version.version), "run_id": run.info.run_id, metric: value}
    if champion is None:
        promote, reason = True, "no champion yet"
    else:
        if champion.tags.get("data_version") == data_version:
            previous = float(champion.tags.get(metric_key, "-inf"))
        else:  # evaluate the champion on this data version's test split
            champion_dir = mlflow.artifacts.download_artifacts(f"models:/{model_name}@{CHAMPION}")
            champion_checkpoint = next(Path(champion_dir).rglob("weights.npz")).parent
            figures = evaluate_checkpoint_on(champion_checkpoint, features_dir, evaluation)
            previous = figures[metric]
            decision["champion_data_version"] = champion.tags.get("data_version")
        decision[f"champion_{metric}"] = previous
        decision["champion_version"] = int(champion.version)
        promote = value > previous
        reason = f"{value:.4f} {'>' if promote else '<='} champion's {previous:.4f} on data {data_version[:8]}"
    if promote:
        client.set_registered_model_alias(model_name, CHAMPION, version.version)
    decision.update(promoted=promote, reason=reason)
    return decision


MODEL_DESCRIPTION = """RIB (Zhou et al., WSDM 2018): a session recommender over micro-behaviors (product, \
activity, dwell). Input: one session, its micro-behaviors in order, each {{"sku", "activity" (1..10, \
the paper's Table 1), "dwell" (seconds)}}; output: the top-k next products with their scores and the \
attention weight of every input micro-behavior. The alias `champion` is the version to serve: it moves \
only when a new version beats it on the test split of the same data.

Call it: `rib serve` (or `make serve`), then
curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
  -d '{{"dataframe_records": [{{"session": [{{"sku": "1000007", "activity": 5, "dwell": 30.0}}]}}], \\
       "params": {{"k": 5}}}}'
or in Python: mlflow.pyfunc.load_model("models:/{name}@champion").predict([{{"session": [...]}}], params={{"k": 5}})."""


def version_description(record: dict, data_version: str) -> str:
    """What one registered version is: the model and input variant, the data it was trained on, its
    test figures with the number of targets behind them, and its training."""
    from rib.schema import VARIANT_NAMES

    lines = [
        f"{record.get('model', 'RIB')} on {VARIANT_NAMES.get(record.get('variant'), record.get('variant'))} "
        f"(variant {record.get('variant')}), trained on data version {data_version}."
    ]
    test = record.get("test")
    if test:
        figures = ", ".join(f"{key} {value:.4f}" for key, value in test.items() if "@" in key)
        unseen = test.get("oov_targets", 0)
        lines.append(f"Test ({test.get('targets', 'all')} targets, n = {test['n']}, {unseen} unseen): {figures}.")
    if record.get("validation"):
        best = record["validation"]
        lines.append(
            f"Best epoch {record.get('best_epoch')} on validation (n = {best['n']}): "
            + ", ".join(f"{key} {value:.4f}" for key, value in best.items() if "@" in key)
            + "."
        )
    untrained = (record.get("untrained") or {}).get("test")
    if untrained:
        lines.append(
            "The same mixture untrained, test: "
            + ", ".join(f"{key} {value:.4f}" for key, value in untrained.items() if "@" in key)
            + "."
        )
    lines.append("Serve it with `rib serve` / `make serve`; the request format is in the model's description.")
    return "\n".join(lines)


def _champion(client, model_name: str):
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except Exception:  # MlflowException when the alias does not exist yet
        return None
