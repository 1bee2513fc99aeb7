"""Data quality gates with Great Expectations 1.x.

Suites are versioned JSON in `expectations/` (GX's own suite format). Each expectation has a
severity: a failed `critical` one fails the gate (the Dagster check blocks everything
downstream), a failed `warning` one is reported. Every validation rebuilds the Data Docs
(HTML, offline: unstyled without the CDN stylesheet) under `<artifacts>/quality/gx/`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"


def raw_frame(micro_behaviors: str | Path):
    """The canonical table plus two derived columns the raw suite checks."""
    import pyarrow.parquet as pq

    frame = pq.read_table(micro_behaviors).to_pandas()
    frame["session_length"] = frame.groupby("session_id")["position"].transform("size")
    compared = ["session_id", "sku", "activity", "dwell_seconds", "time_interval_seconds", "timestamp"]
    previous = frame[compared].shift(1)
    same = (frame[compared] == previous) | (frame[compared].isna() & previous.isna())
    frame["repeats_previous_row"] = same.all(axis=1)
    return frame


def features_frames(features_dir: str | Path):
    """(one row per session with split and the share of its targets seen in training (validation
    and test), one row per training dwell bucket)."""
    import duckdb
    import pandas as pd

    from rib.features.dataset import SplitData, load_vocab
    from rib.schema import OOV

    con = duckdb.connect(str(Path(features_dir) / "features.duckdb"), read_only=True)
    sessions = con.sql("SELECT session_id, split, session_index FROM sessions").df()
    con.close()
    sessions["target_known"] = np.nan
    for split in ("validation", "test"):
        data = SplitData.load(features_dir, split)
        known = pd.Series(np.asarray(data.example_target) > OOV).groupby(np.asarray(data.example_session)).mean()
        rows = sessions["split"] == split
        sessions.loc[rows, "target_known"] = sessions.loc[rows, "session_index"].map(known).astype(float)
    k = load_vocab(features_dir)["n_dwell_buckets"]
    counts = np.bincount(np.asarray(SplitData.load(features_dir, "train").dwell), minlength=k + 1)[1:]
    buckets = pd.DataFrame({"bucket": np.arange(1, k + 1), "share_vs_equal": counts / max(counts.sum(), 1) * k})
    return sessions.drop(columns="session_index"), buckets


def validate(frame, suite_name: str, root: str | Path) -> dict:
    """Validate `frame` against expectations/<suite_name>.json; build Data Docs under root/gx."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(**json.loads((EXPECTATIONS_DIR / f"{suite_name}.json").read_text()))
    )
    source = context.data_sources.add_or_update_pandas("rib")
    asset = next((a for a in source.assets if a.name == suite_name), None) or source.add_dataframe_asset(suite_name)
    batch = next((b for b in asset.batch_definitions if b.name == "whole"), None)
    batch = batch or asset.add_batch_definition_whole_dataframe("whole")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    expectations = []
    for validation in result.run_results.values():
        for outcome in validation.results:
            config = outcome.expectation_config
            expectations.append(
                {
                    "type": config.type,
                    "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                    "severity": getattr(config.severity, "value", str(config.severity)),
                    "success": bool(outcome.success),
                    "unexpected_count": (outcome.result or {}).get("unexpected_count"),
                    "unexpected_percent": (outcome.result or {}).get("unexpected_percent"),
                    "observed_value": _plain((outcome.result or {}).get("observed_value")),
                }
            )
    failed = [e for e in expectations if not e["success"]]
    summary = {
        "suite": suite_name,
        "rows": len(frame),
        "evaluated": len(expectations),
        "passed": len(expectations) - len(failed),
        "failed": len(failed),
        "critical_failed": sum(e["severity"] == "critical" for e in failed),
        "warnings_failed": sum(e["severity"] != "critical" for e in failed),
        "expectations": expectations,
        "data_docs": str(root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"),
    }
    (root / f"{suite_name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
