"""Feature building as its own process, launched by the `features` asset through Dagster Pipes when
`features.engine` is spark: `python -m pipeline.external.features_step`, its inputs in the Pipes
extras. The process is the Spark driver (`features.spark_master`: local[N] here, a cluster's master
in production, where the `spark_launcher` resource runs it in a pod); it reports the
materialization's metadata back over Pipes, the same metadata the in-process DuckDB build shows."""

from __future__ import annotations

import os

from dagster_pipes import PipesContext, open_dagster_pipes


def features_metadata(summary: dict, path: str) -> dict:
    """What the features asset shows, in Pipes' form ({raw_value, type}) for either engine."""
    rows = "\n".join(
        f"| {split} | {s['sessions']} | {s['micro_behaviors']} | {s['examples']} | {s['oov_targets']} |"
        for split, s in summary["splits"].items()
    )
    header = "| split | sessions | micro-behaviors | examples | unseen targets |\n|---|---:|---:|---:|---:|\n"
    return {
        "path": {"raw_value": path, "type": "path"},
        "engine": summary["config"]["engine"],
        "n_skus": summary["n_skus"],
        "dwell_edges": {"raw_value": summary["dwell_edges"], "type": "json"},
        "synthetic": summary["synthetic"],
        "splits": {"raw_value": header + rows, "type": "md"},
    }


def run(pipes: PipesContext) -> None:
    from pipeline.external import step_params
    from rib.steps import run_features

    params, paths = step_params(pipes.extras)
    pipes.log.info(f"building features on {params.features.engine} ({params.features.spark_master})")
    summary = run_features(params, paths)
    metadata = features_metadata(summary, str(paths.features)) | {"process": os.getpid()}  # this process
    pipes.report_asset_materialization(metadata=metadata)


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
