"""Insight assets: the paper's Section 3 on the ingested data, the case study of Figure 8, and one
self-contained HTML report per run."""

from collections.abc import Sequence

from dagster import AssetsDefinition, MaterializeResult, MetadataValue, asset

from pipeline.data import RAW
from pipeline.resources import DvcVersioning, MlflowTracking, RibParams


def _markdown_image(path: str, name: str) -> str:
    import base64
    from pathlib import Path

    return f"![{name}](data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()})"


@asset(
    group_name="insight",
    deps=[RAW],
    description="Section 3 of the paper: conversion by activity and dwell, click source vs modules and dwell.",
)
def section3_analysis(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import run_section3

    document = run_section3(rib_params.load(), rib_params.paths())
    dvc_versioning.record("section3")
    header = "| {} | occurrences | ordered later | conversion rate |\n|---|---:|---:|---:|\n"
    label = " (SYNTHETIC data)" if document["synthetic"] else ""

    def table(name: str, key: str, title: str) -> MetadataValue:
        rows = "\n".join(
            f"| {r[key]} | {r['occurrences']} | {r['converted']} | {r['conversion_rate']:.4f} |"
            for r in document["tables"][name]
        )
        return MetadataValue.md(f"{title}{label}\n\n" + header.format(key.split("_")[0]) + rows)

    return MaterializeResult(
        metadata={
            "conversion_by_activity": table("conversion_by_activity", "activity_name", "Figure 2"),
            "conversion_by_dwell": table("conversion_by_dwell", "dwell_label", "Figure 4"),
            **{f"figure {name}": MetadataValue.path(path) for name, path in document["figures"].items()},
            "figures": MetadataValue.md(
                "\n\n".join(_markdown_image(path, name) for name, path in document["figures"].items())
            ),
            "synthetic": document["synthetic"],
        }
    )


@asset(
    group_name="insight",
    deps=["features"],
    description="What micro-behaviors are worth on this log before any training: revisits ranked by "
    "recency, micro-behavior counts and micro-behavior features, in MRR@k, with paired intervals.",
)
def micro_value(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.insight.micro_value import micro_value_markdown
    from rib.steps import run_micro_value

    result = run_micro_value(rib_params.load(), rib_params.paths())
    dvc_versioning.record("micro_value")
    validation = result["splits"].get("validation", {})
    return MaterializeResult(
        metadata={
            "micro_value": MetadataValue.md(micro_value_markdown(result)),
            "revisit_share": round(validation.get("revisit_share", 0.0), 4),
            "synthetic": result["synthetic"],
        }
    )


def case_study_asset(rib_models: Sequence[AssetsDefinition]) -> AssetsDefinition:
    @asset(
        group_name="insight",
        deps=rib_models,
        description="Figure 8: each input variant's attention over a few test sessions, and its rank of the target.",
    )
    def case_study(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
        from rib.steps import run_case_study

        document = run_case_study(rib_params.load(), rib_params.paths())
        dvc_versioning.record("case_study")
        ranks = "\n".join(
            f"| {case['example']} | {variant} | {info['rank'] or 'miss'} |"
            for case in document["cases"]
            for variant, info in case["variants"].items()
        )
        return MaterializeResult(
            metadata={
                "ranks": MetadataValue.md("| test example | variant | rank |\n|---:|---|---:|\n" + ranks),
                **{f"heatmap {case['example']}": MetadataValue.path(case["figure"]) for case in document["cases"]},
            }
        )

    return case_study


def report_asset(upstream: Sequence[AssetsDefinition]) -> AssetsDefinition:
    @asset(
        group_name="insight",
        deps=upstream,
        description="One self-contained HTML report: data quality, Section 3, Table 3, training curves, case study.",
    )
    def report(
        rib_params: RibParams, mlflow_tracking: MlflowTracking, dvc_versioning: DvcVersioning
    ) -> MaterializeResult:
        from rib import steps
        from rib.ops.tracking import log_files

        paths = rib_params.paths()
        path = steps.run_report(rib_params.load(), paths)
        dvc_versioning.record("report")
        log_files(mlflow_tracking.config(), "report", steps.ingest_report(paths)["data_version"], [path])
        return MaterializeResult(
            metadata={"report": MetadataValue.path(path), "url": MetadataValue.url(f"file://{path}")}
        )

    return report
