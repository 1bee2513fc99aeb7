"""Assets: raw micro-behaviors -> features -> baseline comparison. Each calls one `rib.steps` function."""

import json

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from pipeline.resources import RibParams


@asset(group_name="data", description="Raw logs turned into the canonical micro-behavior table, with a quarantine.")
def raw_micro_behaviors(context: AssetExecutionContext, rib_params: RibParams) -> MaterializeResult:
    from rib.steps import generate_default_data, paths, run_ingest

    params = rib_params.load()
    generated = generate_default_data(params)
    if generated:
        context.log.info(f"wrote the synthetic default dataset to {generated}")
    report = run_ingest(params)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths(params).micro_behaviors)),
            "read": report.read,
            "kept": report.kept,
            "quarantined": report.quarantined,
            "sessions": report.sessions,
            "synthetic": report.synthetic,
            "quarantine_reasons": MetadataValue.json(report.reasons),
        }
    )


@asset(
    group_name="features",
    deps=[raw_micro_behaviors],
    description="DuckDB features: splits, macro interactions, dwell buckets, vocabularies, examples.",
)
def features(rib_params: RibParams) -> MaterializeResult:
    from rib.steps import paths, run_features

    params = rib_params.load()
    summary = run_features(params)
    rows = "\n".join(
        f"| {split} | {s['sessions']} | {s['micro_behaviors']} | {s['examples']} | {s['oov_targets']} |"
        for split, s in summary["splits"].items()
    )
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths(params).features)),
            "n_skus": summary["n_skus"],
            "dwell_edges": MetadataValue.json(summary["dwell_edges"]),
            "synthetic": summary["synthetic"],
            "splits": MetadataValue.md(
                "| split | sessions | micro-behaviors | examples | unseen targets |\n|---|---:|---:|---:|---:|\n" + rows
            ),
        }
    )


@asset(group_name="evaluation", deps=[features], description="POP, S-POP and Item-KNN on the test split.")
def baseline_comparison(rib_params: RibParams) -> MaterializeResult:
    from rib.compare import COMPARISON_JSON, comparison_markdown
    from rib.steps import paths, run_baselines

    params = rib_params.load()
    document = run_baselines(params)
    k = document["k"]
    metadata = {
        "path": MetadataValue.path(str(paths(params).baselines / COMPARISON_JSON)),
        "table": MetadataValue.md(comparison_markdown(document)),
        "synthetic": document["synthetic"],
    }
    for record in document["results"]:
        metadata[f"{record['model']} recall@{k}"] = record[f"recall@{k}"]
        metadata[f"{record['model']} mrr@{k}"] = record[f"mrr@{k}"]
    metadata["results"] = MetadataValue.json(json.loads(json.dumps(document["results"])))
    return MaterializeResult(metadata=metadata)
