"""The ingest as its own process, launched by the `raw_micro_behaviors` asset through Dagster Pipes
when `data.engine` is spark: `python -m pipeline.external.ingest_step`, its inputs in the Pipes
extras. The process is the Spark driver (`features.spark_master`: local[N] here, a cluster's master
in production, where the `spark_launcher` resource runs it in a pod), so a log past one machine
goes from raw files to the canonical table and its quarantine on the cluster; it reports the
materialization's metadata back over Pipes, the same metadata the in-process ingest shows."""

from __future__ import annotations

import os

from dagster_pipes import PipesContext, open_dagster_pipes


def ingest_metadata(report, path: str) -> dict:
    """What the raw_micro_behaviors asset shows, in Pipes' form ({raw_value, type}), for either engine."""
    return {
        "path": {"raw_value": path, "type": "path"},
        **{key: getattr(report, key) for key in ("read", "kept", "quarantined", "sessions", "synthetic")},
        "data_version": report.data_version,
        "quarantine_reasons": {"raw_value": report.reasons, "type": "json"},
        "profile": {"raw_value": report.profile, "type": "json"},
    }


def run(pipes: PipesContext) -> None:
    from pipeline.external import step_params
    from rib.steps import run_ingest

    params, paths = step_params(pipes.extras)
    pipes.log.info(f"ingesting {len(params.data.inputs)} file(s) on spark ({params.features.spark_master})")
    report = run_ingest(params, paths)
    metadata = ingest_metadata(report, str(paths.ingest)) | {"engine": "spark", "process": os.getpid()}
    pipes.report_asset_materialization(metadata=metadata)


def main() -> None:
    with open_dagster_pipes() as pipes:
        run(pipes)


if __name__ == "__main__":
    main()
