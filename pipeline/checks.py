"""Asset checks for data quality and for every trained model. Great Expectations suites
(expectations/*.json) run here: their critical expectations are blocking checks, so a raw log that
fails them stops feature building and training downstream; warnings are reported without
blocking. Every trained model passes the gates of rib/ops/gates.py before anything downstream."""

from collections.abc import Iterable

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetsDefinition,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from pipeline.data import RAW, features
from pipeline.resources import RibParams

MAX_QUARANTINE_SHARE = 0.05


@asset_check(asset=RAW, blocking=True, description="Every input row is kept or quarantined.")
def every_row_accounted_for(rib_params: RibParams) -> AssetCheckResult:
    from rib.steps import ingest_report

    report = ingest_report(rib_params.paths())
    balanced = report["read"] == report["kept"] + report["quarantined"]
    return AssetCheckResult(passed=balanced, metadata={k: report[k] for k in ("read", "kept", "quarantined")})


@asset_check(asset=RAW, description=f"At most {MAX_QUARANTINE_SHARE:.0%} of input rows quarantined.")
def quarantine_share(rib_params: RibParams) -> AssetCheckResult:
    from rib.steps import ingest_report

    report = ingest_report(rib_params.paths())
    share = report["quarantined"] / max(report["read"], 1)
    return AssetCheckResult(
        passed=share <= MAX_QUARANTINE_SHARE,
        severity=AssetCheckSeverity.WARN,
        metadata={"quarantined_share": share, "reasons": report["reasons"]},
    )


def _gx_results(summaries: list[dict], prefix: str) -> Iterable[AssetCheckResult]:
    """One blocking result for the critical expectations, one warning result for the rest."""
    from rib.insight.report import unexpected_sample_text  # not at import: the definitions load without numpy

    rows = [
        f"| {s['suite']} | {e['type']} | {e['column'] or '-'} | {e['severity']} | {'pass' if e['success'] else 'FAIL'} "
        f"| {e['unexpected_count'] if e['unexpected_count'] is not None else '-'} | {unexpected_sample_text(e)} |"
        for s in summaries
        for e in s["expectations"]
    ]
    table = (
        "| suite | expectation | column | severity | result | unexpected | sample |\n|---|---|---|---|---|---:|---|\n"
    )
    metadata = {
        "data_docs": MetadataValue.path(summaries[0]["data_docs"]),
        "evaluated": sum(s["evaluated"] for s in summaries),
        "passed": sum(s["passed"] for s in summaries),
        "failed": sum(s["failed"] for s in summaries),
        "expectations": MetadataValue.md(table + "\n".join(rows)),
    }
    critical = sum(s["critical_failed"] for s in summaries)
    warnings = sum(s["warnings_failed"] for s in summaries)
    yield AssetCheckResult(
        check_name=f"{prefix}_critical_expectations",
        passed=critical == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={**metadata, "critical_failed": critical},
    )
    yield AssetCheckResult(
        check_name=f"{prefix}_warning_expectations",
        passed=warnings == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={**metadata, "warnings_failed": warnings},
    )


@multi_asset_check(
    specs=[
        AssetCheckSpec("raw_critical_expectations", asset=RAW, blocking=True),
        AssetCheckSpec("raw_warning_expectations", asset=RAW),
    ],
    description="Great Expectations suite expectations/raw_micro_behaviors.json.",
)
def raw_expectations(rib_params: RibParams) -> Iterable[AssetCheckResult]:
    from rib.steps import run_raw_quality

    yield from _gx_results([run_raw_quality(rib_params.load(), rib_params.paths())], "raw")


@multi_asset_check(
    specs=[
        AssetCheckSpec("features_critical_expectations", asset=features, blocking=True),
        AssetCheckSpec("features_warning_expectations", asset=features),
    ],
    description="Great Expectations suites expectations/features.json and dwell_buckets.json.",
)
def features_expectations(rib_params: RibParams) -> Iterable[AssetCheckResult]:
    from rib.steps import run_features_quality

    yield from _gx_results(run_features_quality(rib_params.load(), rib_params.paths()), "features")


DATA_CHECKS = [every_row_accounted_for, quarantine_share, raw_expectations, features_expectations]

MODEL_GATES = ("finite_loss", "reload_identical", "not_below_baseline")


def model_gate_checks(trained: AssetsDefinition, model: str, variant: str, baselines: AssetsDefinition):
    """The gates of rib/ops/gates.py as blocking checks of one training asset: a model that fails one
    stops everything downstream (the comparison, the registration), so the champion stays."""

    @multi_asset_check(
        name=f"{trained.key.to_python_identifier()}_gates",
        specs=[AssetCheckSpec(name, asset=trained, blocking=True, additional_deps=[baselines]) for name in MODEL_GATES],
        description="Finite loss, identical scores after reloading, validation recall not below the baseline's.",
    )
    def gates(rib_params: RibParams) -> Iterable[AssetCheckResult]:
        from rib.ops.gates import model_gates

        params, paths = rib_params.load(), rib_params.paths()
        folder = paths.model(model, variant)
        for gate in model_gates(folder, paths.features, paths.baselines, params.evaluation, params.registry):
            yield AssetCheckResult(
                check_name=gate.name,
                asset_key=trained.key,
                passed=gate.passed,
                metadata={"reason": MetadataValue.text(gate.reason), **gate.metadata},
            )

    return gates
