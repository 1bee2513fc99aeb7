"""Asset checks for data quality. Great Expectations suites come with the MLOps issue."""

import json

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from pipeline.assets import features, raw_micro_behaviors
from pipeline.resources import RibParams

MAX_QUARANTINE_SHARE = 0.05
MIN_KNOWN_TARGET_SHARE = 0.5


@asset_check(asset=raw_micro_behaviors, blocking=True, description="Every input row is kept or quarantined.")
def every_row_accounted_for(rib_params: RibParams) -> AssetCheckResult:
    from rib.ingest import REPORT_FILE
    from rib.steps import paths

    report = json.loads((paths(rib_params.load()).ingest / REPORT_FILE).read_text())
    balanced = report["read"] == report["kept"] + report["quarantined"]
    return AssetCheckResult(passed=balanced, metadata={k: report[k] for k in ("read", "kept", "quarantined")})


@asset_check(asset=raw_micro_behaviors, description=f"At most {MAX_QUARANTINE_SHARE:.0%} of input rows quarantined.")
def quarantine_share(rib_params: RibParams) -> AssetCheckResult:
    from rib.ingest import REPORT_FILE
    from rib.steps import paths

    report = json.loads((paths(rib_params.load()).ingest / REPORT_FILE).read_text())
    share = report["quarantined"] / max(report["read"], 1)
    return AssetCheckResult(
        passed=share <= MAX_QUARANTINE_SHARE,
        severity=AssetCheckSeverity.WARN,
        metadata={"quarantined_share": share, "reasons": report["reasons"]},
    )


@asset_check(asset=features, description="Most test targets were seen in training (else metrics mean little).")
def test_targets_known(rib_params: RibParams) -> AssetCheckResult:
    from rib.steps import paths

    summary = json.loads((paths(rib_params.load()).features / "summary.json").read_text())
    test = summary["splits"]["test"]
    share = 1 - test["oov_targets"] / max(test["examples"], 1)
    return AssetCheckResult(
        passed=test["examples"] > 0 and share >= MIN_KNOWN_TARGET_SHARE,
        severity=AssetCheckSeverity.WARN,
        metadata={"known_target_share": share, "test_examples": test["examples"]},
    )
