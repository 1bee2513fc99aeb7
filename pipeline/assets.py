"""Assets: raw micro-behaviors -> features -> word2vec -> baselines and RIB models -> comparison.
Each asset calls one `rib.steps` function; heavy libraries load inside the steps."""

import json

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from pipeline.resources import DvcVersioning, MlflowTracking, RibParams
from rib.params import load_params


@asset(
    group_name="data",
    pool="duckdb",
    description="Raw logs turned into the canonical micro-behavior table, with a quarantine.",
)
def raw_micro_behaviors(
    context: AssetExecutionContext, rib_params: RibParams, dvc_versioning: DvcVersioning
) -> MaterializeResult:
    from rib.steps import generate_default_data, paths, run_ingest

    params = rib_params.load()
    generated = generate_default_data(params)
    if generated:
        context.log.info(f"wrote the synthetic default dataset to {generated}")
        # The generator is deterministic: this is the data data.dvc records; put it in the DVC cache.
        dvc_versioning.record("data.dvc", force=False)
    report = run_ingest(params)
    dvc_versioning.record("ingest")
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
    pool="duckdb",  # steps that write a DuckDB file run one at a time (dagster.yaml)
    deps=[raw_micro_behaviors],
    description="DuckDB features: splits, macro interactions, dwell buckets, vocabularies, examples.",
)
def features(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import paths, run_features

    params = rib_params.load()
    summary = run_features(params)
    dvc_versioning.record("features")
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


@asset(group_name="training", deps=[features], description="gensim word2vec of SKUs, activities and dwell buckets.")
def word2vec_embeddings(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import paths, run_word2vec

    params = rib_params.load()
    report = run_word2vec(params)
    dvc_versioning.record("word2vec")
    return MaterializeResult(
        metadata={"path": MetadataValue.path(str(paths(params).word2vec)), "kinds": MetadataValue.json(report["kinds"])}
    )


def _markdown_image(path: str, name: str) -> str:
    import base64
    from pathlib import Path

    return f"![{name}](data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()})"


def _comparison_metadata(document: dict, path) -> dict:
    from rib.compare import comparison_markdown

    k = document["k"]
    metadata = {
        "path": MetadataValue.path(str(path)),
        "table": MetadataValue.md(comparison_markdown(document)),
        "synthetic": document["synthetic"],
    }
    for row in document["results"]:
        name = row["model"] + (f" {row['variant']}" if row["variant"] else "")
        metadata[f"{name} recall@{k}"] = row[f"recall@{k}"]
        metadata[f"{name} mrr@{k}"] = row[f"mrr@{k}"]
    return metadata


@asset(
    group_name="evaluation",
    deps=[features, word2vec_embeddings],
    description="POP, S-POP, Item-KNN, BPR-MF, Word2vec and Word2vec Avg on the test split.",
)
def baseline_comparison(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.compare import COMPARISON_JSON
    from rib.steps import paths, run_baselines

    params = rib_params.load()
    document = run_baselines(params)
    dvc_versioning.record("baselines")
    return MaterializeResult(metadata=_comparison_metadata(document, paths(params).baselines / COMPARISON_JSON))


def training_asset(model: str, variant: str) -> AssetsDefinition:
    """One asset per trained model and input variant, e.g. `rib_sku_micro`."""
    from rib.experiment import model_name

    name = model_name(model, variant).lower().replace("-", "_")

    @asset(
        name=name,
        group_name="training",
        pool="training",  # one training at a time (dagster.yaml): each uses every core or the GPU
        deps=[features, word2vec_embeddings],
        description=f"{model} on input variant {variant}: trained, early-stopped on validation, tested once.",
    )
    def train(
        context: AssetExecutionContext,
        rib_params: RibParams,
        mlflow_tracking: MlflowTracking,
        dvc_versioning: DvcVersioning,
    ) -> MaterializeResult:
        import dataclasses

        from rib.experiment import rib_config, train_config
        from rib.steps import paths, run_training
        from rib.tracking import data_version, log_training, tracked_run

        params = rib_params.load()
        version = data_version(params.data.inputs)
        tags = {"model": model, "variant": variant, "data_version": version, "dagster_run_id": context.run.run_id}
        with tracked_run(mlflow_tracking.config(), f"{model}-{variant}", tags) as run:
            record = run_training(params, model, variant, log=context.log.info)
            logged = {
                f"model.{k}": v for k, v in rib_config(paths(params).features, params, model, variant).to_dict().items()
            }
            logged |= {f"train.{k}": v for k, v in dataclasses.asdict(train_config(params)).items()}
            log_training(record, logged | {"data_version": version}, paths(params).model(model, variant))
        dvc_versioning.record(f"train@{model}-{variant}")
        k = params.evaluation.ks[0]
        curve = "\n".join(
            f"| {h['epoch']} | {h['train_loss']:.4f} | {h[f'validation_recall@{k}']:.4f} "
            f"| {h[f'validation_mrr@{k}']:.4f} |"
            for h in record["history"]
        )
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(str(paths(params).model(model, variant))),
                "best_epoch": record["best_epoch"],
                f"validation recall@{k}": record["validation"][f"recall@{k}"],
                f"test recall@{k}": record["test"][f"recall@{k}"],
                f"test mrr@{k}": record["test"][f"mrr@{k}"],
                "micro_behaviors_per_second": record["micro_behaviors_per_second"],
                "device": record["device"],
                "mlflow_run_id": run.info.run_id,
                "curve": MetadataValue.md(
                    f"| epoch | loss | val recall@{k} | val mrr@{k} |\n|---:|---:|---:|---:|\n" + curve
                ),
            }
        )

    return train


def build_training_assets(params_path: str = "params.yaml") -> list[AssetsDefinition]:
    experiment = load_params(params_path).experiment
    return [training_asset(model, variant) for model in experiment.models for variant in experiment.variants]


TRAINING_ASSETS = build_training_assets()


@asset(
    group_name="evaluation",
    deps=[baseline_comparison, *TRAINING_ASSETS],
    description="The paper's Table 3 for this data: every baseline, RIB and RIB-Attention per input variant.",
)
def model_comparison(
    rib_params: RibParams, mlflow_tracking: MlflowTracking, dvc_versioning: DvcVersioning
) -> MaterializeResult:
    from rib.compare import COMPARISON_JSON, COMPARISON_MD
    from rib.steps import paths, run_comparison
    from rib.tracking import log_files

    params = rib_params.load()
    document = run_comparison(params)
    dvc_versioning.record("comparison")
    folder = paths(params).comparison
    log_files(
        mlflow_tracking.config(), "comparison", params.data.inputs, [folder / COMPARISON_JSON, folder / COMPARISON_MD]
    )
    metadata = _comparison_metadata(document, folder / COMPARISON_JSON)
    metadata["results"] = MetadataValue.json(json.loads(json.dumps(document["results"])))
    return MaterializeResult(metadata=metadata)


@asset(
    group_name="registry",
    deps=[model_comparison],
    description="The configured RIB logged as an MLflow pyfunc; `champion` moves only on test improvement.",
)
def registered_model(rib_params: RibParams, mlflow_tracking: MlflowTracking) -> MaterializeResult:
    from rib.steps import run_registration

    decision = run_registration(rib_params.load(), mlflow_tracking.config())
    return MaterializeResult(
        metadata={k: (MetadataValue.text(str(v)) if isinstance(v, str) else v) for k, v in decision.items()}
    )


@asset(
    group_name="insight",
    deps=[raw_micro_behaviors],
    description="Section 3 of the paper: conversion by activity and dwell, click source vs modules and dwell.",
)
def section3_analysis(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import run_section3

    document = run_section3(rib_params.load())
    synthetic = document["synthetic"]
    dvc_versioning.record("section3")
    conversion = "\n".join(
        f"| {r['activity_name']} | {r['occurrences']} | {r['converted']} | {r['conversion_rate']:.4f} |"
        for r in document["tables"]["conversion_by_activity"]
    )
    by_dwell = "\n".join(
        f"| {r['dwell_label']} | {r['occurrences']} | {r['converted']} | {r['conversion_rate']:.4f} |"
        for r in document["tables"]["conversion_by_dwell"]
    )
    header = "| {} | occurrences | ordered later | conversion rate |\n|---|---:|---:|---:|\n"
    label = " (SYNTHETIC data)" if synthetic else ""
    return MaterializeResult(
        metadata={
            "conversion_by_activity": MetadataValue.md(f"Figure 2{label}\n\n" + header.format("activity") + conversion),
            "conversion_by_dwell": MetadataValue.md(f"Figure 4{label}\n\n" + header.format("dwell") + by_dwell),
            **{f"figure {name}": MetadataValue.path(path) for name, path in document["figures"].items()},
            "figures": MetadataValue.md(
                "\n\n".join(_markdown_image(path, name) for name, path in document["figures"].items())
            ),
            "synthetic": synthetic,
        }
    )


CASE_STUDY_MODELS = [a for a in TRAINING_ASSETS if not a.key.to_user_string().startswith("rib_attention")]


@asset(
    group_name="insight",
    deps=CASE_STUDY_MODELS,
    description="Figure 8: each input variant's attention over a few test sessions, and its rank of the next product.",
)
def case_study(rib_params: RibParams, dvc_versioning: DvcVersioning) -> MaterializeResult:
    from rib.steps import run_case_study

    document = run_case_study(rib_params.load())
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


@asset(
    group_name="insight",
    deps=[model_comparison, section3_analysis, case_study],
    description="One self-contained HTML report: data quality, Section 3, Table 3, training curves, case study.",
)
def run_report(
    rib_params: RibParams, mlflow_tracking: MlflowTracking, dvc_versioning: DvcVersioning
) -> MaterializeResult:
    from rib.steps import run_report as build
    from rib.tracking import log_files

    params = rib_params.load()
    path = build(params)
    dvc_versioning.record("report")
    log_files(mlflow_tracking.config(), "report", params.data.inputs, [path])
    return MaterializeResult(metadata={"report": MetadataValue.path(path), "url": MetadataValue.url(f"file://{path}")})
