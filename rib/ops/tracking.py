"""MLflow tracking: a SQLite store inside the project by default (never the deprecated ./mlruns file
store), or a shared `mlflow server` (PostgreSQL backend store, its own artifact root) by URI.

Each training run logs its parameters, the data version (md5 of the raw input files, as DVC
computes it, from the ingest report), per-epoch validation metrics, test metrics, its training
curve and its checkpoint files; the comparison run logs the table. Telemetry is off
(MLFLOW_DISABLE_TELEMETRY).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrackingConfig:
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: str = "mlartifacts"
    experiment: str = "rib"


@contextmanager
def tracked_run(config: TrackingConfig, run_name: str, tags: dict[str, str] | None = None) -> Iterator[object]:
    """Start an MLflow run in `config.experiment` (created with its artifacts under artifact_root)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    with _store_lock(config.tracking_uri):  # the first access creates a SQLite store's tables
        experiment = mlflow.get_experiment_by_name(config.experiment)
        if experiment is None:  # a tracking server keeps artifacts where it was told (--artifacts-destination)
            server = config.tracking_uri.startswith(("http://", "https://"))
            artifact_location = None if server else Path(config.artifact_root).resolve().as_uri()
            experiment_id = mlflow.create_experiment(config.experiment, artifact_location=artifact_location)
        else:
            experiment_id = experiment.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags or {}) as run:
        yield run


@contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Held while a SQLite store is created and its experiment looked up or made, so that steps
    starting at once (two trainings of the training pool) neither create the tables twice nor the
    experiment. A server or database store needs none."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(tracking_uri.removeprefix("sqlite:///"))
    with open(database.parent / f".{database.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log_files(config: TrackingConfig, run_name: str, data_version: str, files: list[str | Path]) -> None:
    """A run that holds files (the comparison table, the report), tagged with the data version."""
    import mlflow

    with tracked_run(config, run_name, {"data_version": data_version}):
        for path in files:
            mlflow.log_artifact(str(path))


def log_training(record: dict, data_version: str, checkpoint_dir: str | Path | None = None) -> None:
    """Log one finished training record (its resolved configurations, history, validation and test
    figures, training curve) to the active run."""
    import mlflow

    params = {f"model.{k}": v for k, v in record["model_config"].items()}
    params |= {f"train.{k}": v for k, v in record["train_config"].items()}
    params |= {"data_version": data_version, "evaluation.targets": record["test"]["targets"]}
    mlflow.log_params({k: v for k, v in params.items() if v is not None})
    for epoch in record["history"]:
        step = epoch["epoch"]
        mlflow.log_metrics(
            {k.replace("@", "_at_"): float(v) for k, v in epoch.items() if k != "epoch" and isinstance(v, int | float)},
            step=step,
        )
    mlflow.log_metrics(
        {f"test_{k.replace('@', '_at_')}": float(v) for k, v in record["test"].items() if not isinstance(v, str)}
        | {"best_epoch": record["best_epoch"], "micro_behaviors_per_second": record["micro_behaviors_per_second"]}
    )
    for split, figures in record.get("untrained", {}).items():  # the mixture at its initialization (epoch 0)
        mlflow.log_metrics(
            {
                f"untrained_{split}_{k.replace('@', '_at_')}": float(v)
                for k, v in figures.items()
                if not isinstance(v, str)
            }
        )
    from rib.insight.plots import training_curve

    k = next(int(key.split("@")[1]) for key in record["test"] if key.startswith("recall@"))
    mlflow.log_figure(training_curve(record["history"], k), "plots/training_curve.png")
    if checkpoint_dir is not None:
        for name in ("config.json", "metrics.json"):
            path = Path(checkpoint_dir) / name
            if path.exists():
                mlflow.log_artifact(str(path), artifact_path="checkpoint")
