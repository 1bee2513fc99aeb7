"""One self-contained HTML report per run: images embedded as data URIs, no network needed."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from rib.artifacts import ArtifactPaths
from rib.evaluation.comparison import comparison_markdown, difference_text
from rib.insight.plots import png_data_uri, training_curve

SECTIONS = (
    "Data quality",
    "Micro-behaviors (Section 3)",
    "What micro-behaviors are worth here, before training",
    "Comparison (Table 3)",
    "Training curves",
    "Case study",
)


def unexpected_sample_text(expectation: dict, shown: int = 5) -> str:
    """A summary expectation's sample of unexpected values as one short cell (fetched for failures only)."""
    return ", ".join(map(str, (expectation.get("unexpected_sample") or [])[:shown])) or "-"


def _image(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _read(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.exists() else None


def build_report(paths: ArtifactPaths, k: int, title: str = "RIB run report") -> str:
    """report.html under `paths.report`, from what the other steps wrote under `paths`."""
    ingest = _read(paths.ingest_report) or {}
    synthetic = bool(ingest.get("synthetic"))
    parts = [f"<h1>{escape(title)}</h1>"]
    if synthetic:
        parts.append(
            '<p class="synthetic">SYNTHETIC data: every figure below comes from the generated default dataset.</p>'
        )
    parts.append(f"<p>Inputs: {escape(', '.join(ingest.get('inputs', [])))}</p>")

    parts.append(f"<h2>{SECTIONS[0]}</h2>")
    parts.append(
        f"<p>Read {ingest.get('read', 0):,} records: kept {ingest.get('kept', 0):,}, "
        f"quarantined {ingest.get('quarantined', 0):,}.</p>"
    )
    reasons = ingest.get("reasons") or {}
    parts.append(
        _table(["quarantine reason", "rows"], [[k, v] for k, v in reasons.items()])
        if reasons
        else "<p>No row quarantined.</p>"
    )
    for suite in ("raw_micro_behaviors", "features", "dwell_buckets"):
        summary = _read(paths.quality / f"{suite}.json")
        if summary:
            parts.append(f"<h3>Great Expectations: {suite} ({summary['passed']}/{summary['evaluated']} passed)</h3>")
            rows = [
                [
                    e["type"],
                    e["column"] or "-",
                    e["severity"],
                    "pass" if e["success"] else "FAIL",
                    e["unexpected_count"] or 0,
                    unexpected_sample_text(e),
                ]
                for e in summary["expectations"]
            ]
            parts.append(_table(["expectation", "column", "severity", "result", "unexpected", "sample"], rows))

    parts.append(f"<h2>{SECTIONS[1]}</h2>")
    section3 = _read(paths.section3 / "section3.json")
    if section3:
        for name, path in section3["figures"].items():
            parts.append(_image(path, name))
        rows = [
            [r["activity_name"], r["occurrences"], r["converted"], f"{r['conversion_rate']:.4f}"]
            for r in section3["tables"]["conversion_by_activity"]
        ]
        parts.append(_table(["activity", "occurrences", "ordered later", "conversion rate"], rows))
        rows = [
            [r["dwell_label"], r["occurrences"], r["converted"], f"{r['conversion_rate']:.4f}"]
            for r in section3["tables"]["conversion_by_dwell"]
        ]
        parts.append(_table(["dwell", "occurrences", "ordered later", "conversion rate"], rows))

    parts.append(f"<h2>{SECTIONS[2]}</h2>")
    value = _read(paths.micro_value / "micro_value.json")
    if value:
        parts.append(f"<p>{escape(value['description'])}</p>")
        scorers = list(next(iter(value["splits"].values()))[f"mrr@{k}_contribution"]) if value["splits"] else []
        rows = [
            [split, s["targets"], f"{s['revisit_share']:.1%}"]
            + [f"{s[f'mrr@{k}_contribution'][n]:.4f}" if n in s[f"mrr@{k}_contribution"] else "-" for n in scorers]
            for split, s in value["splits"].items()
        ]
        parts.append(_table(["split", "targets", "revisit share", *scorers], rows))
        rows = [
            [split, name, difference_text({"d": d}, "d")]
            for split, s in value["splits"].items()
            for name, d in s["differences"].items()
        ]
        parts.append(_table(["split", "comparison", "paired difference [95% interval]"], rows))
        switch = value.get("revisit_switch")
        if switch:
            parts.append(
                f"<p>Is the next product a revisit? Validation, {switch['targets']} targets, "
                f"{switch['revisit_share']:.1%} revisits (training {switch['train_revisit_share']:.1%}); "
                "logistic regressions fitted on training; log-likelihood: mean per target.</p>"
            )
            rows = [[n, f"{p['auc']:.4f}", f"{p['log_likelihood']:.4f}"] for n, p in switch["predictors"].items()]
            parts.append(_table(["predictor", "AUC", "log-likelihood"], rows))
            rows = [[name, difference_text({"d": d}, "d")] for name, d in switch["differences"].items()]
            parts.append(_table(["comparison", "paired difference in log-likelihood [95% interval]"], rows))

    parts.append(f"<h2>{SECTIONS[3]}</h2>")
    comparison = _read(paths.comparison / "comparison.json")
    if comparison:
        parts.append(f"<p>{escape(comparison_markdown(comparison).split(chr(10))[0])}</p>")  # the protocol line
        rows = [
            [
                r["model"],
                r["variant_name"],
                f"{r[f'recall@{k}']:.4f} ± {r[f'recall@{k}_std']:.4f}",
                difference_text(r, f"recall@{k}_vs_best_baseline"),
                f"{r[f'mrr@{k}']:.4f} ± {r[f'mrr@{k}_std']:.4f}",
                difference_text(r, f"mrr@{k}_vs_best_baseline"),
                difference_text(r, f"recall@{k}_vs_sku"),
                r["n_test"],
                f"{r['folds']} × {r['seeds']}",
            ]
            for r in comparison["results"]
        ]
        header = ["model", "input", f"Recall@{k}", "Δ vs best baseline", f"MRR@{k}", "Δ vs best baseline"]
        parts.append(_table([*header, "Δ Recall vs SKU", "n test", "folds × seeds"], rows))

    parts.append(f"<h2>{SECTIONS[4]}</h2>")
    for history_path in sorted(paths.models.glob("*/history.json")):
        history = _read(history_path)
        if history:
            figure = training_curve(history, k, title=f"{history_path.parent.name}: validation per epoch")
            parts.append(f'<img alt="{escape(history_path.parent.name)}" src="{png_data_uri(figure)}">')

    parts.append(f"<h2>{SECTIONS[5]}</h2>")
    parts.append(
        "<p>Each heatmap: a row per input variant's RIB, a column per input micro-behavior (SKU, activity, "
        "dwell bucket); the colour is the attention weight RIB puts on that micro-behavior (each row sums "
        "to 1), the scale on the right.</p>"
    )
    cases = _read(paths.case_study / "case_study.json")
    for case in (cases or {}).get("cases", []):
        parts.append(f"<h3>Test example {case['example']}: next product {escape(case['target'])}</h3>")
        parts.append(_image(case["figure"], f"case {case['example']}"))
        ranks = [[variant, info["rank"] or "miss"] for variant, info in case["variants"].items()]
        parts.append(_table(["input variant", "rank of the true next product"], ranks))

    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f3f3f3}img{max-width:100%;display:block;margin:0.5em 0}"
        ".synthetic{background:#fff3cd;padding:0.5em;border:1px solid #e0c36b}"
    )
    head = f'<meta charset="utf-8"><title>{escape(title)}</title><style>{style}</style>'
    html = f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"
    out_path = paths.report / "report.html"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(html)
    return str(out_path)
