"""One training step as its own process, launched by a training asset through Dagster Pipes:
`python -m pipeline.external.train_step`, its inputs in the Pipes extras. The step (and the
`torchrun` it starts when `train.distributed` > 1) runs outside the Dagster process, on this machine
with `PipesSubprocessClient`, in a GPU pod with a cluster client; it reports its log lines and the
materialization's metadata back over Pipes."""

from __future__ import annotations

import os

from dagster_pipes import PipesContext, open_dagster_pipes


def training_metadata(record: dict, checkpoint: str, k: int, mlflow_run_id: str) -> dict:
    """What the training asset shows: the checkpoint, the figures and the training curve."""
    curve = "\n".join(
        f"| {h['epoch']} | {h['train_loss']:.4f} | {h[f'validation_recall@{k}']:.4f} | {h[f'validation_mrr@{k}']:.4f} |"
        for h in record["history"]
    )
    header = f"| epoch | loss | val recall@{k} | val mrr@{k} |\n|---:|---:|---:|---:|\n"
    if "untrained" in record:  # epoch 0: the mixture at its initialization
        start = record["untrained"]["validation"]
        header += f"| 0 (untrained) | - | {start[f'recall@{k}']:.4f} | {start[f'mrr@{k}']:.4f} |\n"
    return {
        "checkpoint": {"raw_value": checkpoint, "type": "path"},
        "best_epoch": record["best_epoch"],
        f"validation recall@{k}": round(record["validation"][f"recall@{k}"], 4),
        f"test recall@{k}": round(record["test"][f"recall@{k}"], 4),
        f"test mrr@{k}": round(record["test"][f"mrr@{k}"], 4),
        "micro_behaviors_per_second": record["micro_behaviors_per_second"],
        "device": record["device"],
        "mlflow_run_id": mlflow_run_id,
        "process": os.getpid(),  # the step's own process, not Dagster's
        "curve": {"raw_value": header + curve, "type": "md"},
    }


def run(pipes: PipesContext) -> None:
    from pipeline.external import step_params
    from rib.artifacts import model_folder
    from rib.ops.tracking import TrackingConfig, log_training, tracked_run
    from rib.steps import ingest_report, run_training

    extras = pipes.extras
    model, variant = extras["model"], extras["variant"]
    params, paths = step_params(extras)
    report = ingest_report(paths)
    tags = {"model": model, "variant": variant, "data_version": report["data_version"]}
    tags["dagster_run_id"] = pipes.run_id or ""
    if report.get("days"):  # daily inputs: the days of the training window
        tags["days"] = ",".join(report["days"])
    with tracked_run(TrackingConfig(**extras["tracking"]), model_folder(model, variant), tags) as mlflow_run:
        record = run_training(params, paths, model, variant, log=pipes.log.info)
        log_training(record, report["data_version"], paths.model(model, variant))
    k = params.evaluation.k
    checkpoint = str(paths.model(model, variant))
    pipes.report_asset_materialization(metadata=training_metadata(record, checkpoint, k, mlflow_run.info.run_id))


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
