"""Data assets: the raw logs as the canonical table, and the features built from it."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipeline.resources import DvcVersioning, RibParams


@asset(
    group_name="data",
    pool="duckdb",  # steps that write a DuckDB file run one at a time (dagster.yaml)
    description="Raw logs turned into the canonical micro-behavior table, with a quarantine.",
)
def raw_micro_behaviors(
    context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning
) -> MaterializeResult:
    from rib.steps import generate_default_data, run_ingest

    params, paths = rib_params.load(), rib_params.paths()
    if generate_default_data(params):
        context.log.info(f"wrote the synthetic default dataset to {params.data.inputs[0]}")
        dvc_versioning.record("data.dvc", force=False)  # deterministic: the data data.dvc records
    report = run_ingest(params, paths)
    dvc_versioning.record("ingest")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths.ingest)),
            **{key: getattr(report, key) for key in ("read", "kept", "quarantined", "sessions", "synthetic")},
            "data_version": report.data_version,
            "quarantine_reasons": MetadataValue.json(report.reasons),
            "profile": MetadataValue.json(report.profile),
        }
    )


@asset(
    group_name="features",
    pool="duckdb",
    deps=[raw_micro_behaviors],
    description="DuckDB features: splits, macro interactions, dwell buckets, vocabularies, examples.",
)
def features(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import run_features

    summary = run_features(rib_params.load(), rib_params.paths())
    dvc_versioning.record("features")
    rows = "\n".join(
        f"| {split} | {s['sessions']} | {s['micro_behaviors']} | {s['examples']} | {s['oov_targets']} |"
        for split, s in summary["splits"].items()
    )
    header = "| split | sessions | micro-behaviors | examples | unseen targets |\n|---|---:|---:|---:|---:|\n"
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(rib_params.paths().features)),
            "n_skus": summary["n_skus"],
            "dwell_edges": MetadataValue.json(summary["dwell_edges"]),
            "synthetic": summary["synthetic"],
            "splits": MetadataValue.md(header + rows),
        }
    )
