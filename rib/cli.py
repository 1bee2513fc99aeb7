"""The `rib` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from rib.errors import InputFileError
from rib.model import VARIANTS
from rib.params import DEFAULT_PARAMS, load_params


def _cmd_generate(args: argparse.Namespace) -> None:
    from rib.synthetic import generate

    params = load_params(args.params)
    config = params.synthetic
    if args.n_sessions is not None:
        config = dataclasses.replace(config, n_sessions=args.n_sessions)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    out = Path(args.out or params.data.inputs[0])
    counts = generate(config, out)
    print(json.dumps({"out": str(out), **counts}))


def _cmd_ingest(args: argparse.Namespace) -> None:
    from rib.ingest import ingest

    report = ingest(args.format, args.inputs, args.out, args.config)
    print(report.to_json())


def _cmd_features(args: argparse.Namespace) -> None:
    from rib.features import build_features

    summary = build_features(args.input, args.out, load_params(args.params).features)
    print(json.dumps(summary["splits"], indent=2))


def _cmd_baselines(args: argparse.Namespace) -> None:
    from rib.compare import aggregate, comparison_markdown, evaluate_baselines, write_comparison
    from rib.word2vec import load_vectors

    params = load_params(args.params)
    evaluation = params.evaluation
    summary = json.loads((Path(args.features) / "summary.json").read_text())
    vectors = load_vectors(args.word2vec, ("sku",)).get("sku") if args.word2vec else None
    records = evaluate_baselines(
        args.features,
        args.models or evaluation.baselines,
        evaluation.ks,
        evaluation.exclude_last_sku,
        word2vec_sku=vectors[0] if vectors else None,
        bpr=dataclasses.asdict(params.bpr),
    )
    document = aggregate(records, synthetic=summary["synthetic"], data=summary["input"], k=evaluation.ks[0])
    print(comparison_markdown(write_comparison(document, args.out)))


def _cmd_train(args: argparse.Namespace) -> None:
    from rib.experiment import run_word2vec, train_one

    params = load_params(args.params)
    word2vec_dir = Path(args.out) / "word2vec"
    run_word2vec(args.features, word2vec_dir, params)
    record = train_one(args.features, word2vec_dir, args.out, params, args.model, args.variant)
    print(json.dumps({k: record[k] for k in ("model", "variant", "best_epoch", "validation", "test")}, indent=2))


def _cmd_recommend(args: argparse.Namespace) -> None:
    from rib.recommend import load_checkpoint, recommend

    model, vocab, config = load_checkpoint(args.checkpoint)
    session = []
    for token in args.session:  # sku+activity+dwell_seconds
        sku, activity, dwell = token.rsplit("+", 2)
        session.append((sku, int(activity), float(dwell)))
    result = recommend(model, vocab, [session], k=args.k, max_len=config.get("max_len", 50))[0]
    print(json.dumps(dataclasses.asdict(result), indent=2))


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from rib.compare import aggregate, comparison_markdown, write_comparison
    from rib.experiment import run_experiment
    from rib.features import build_features
    from rib.ingest import ingest

    params = load_params(args.params)
    out = Path(args.out)
    report = ingest(args.format, args.inputs, out / "ingest", args.config)
    summary = build_features(out / "ingest" / "micro_behaviors.parquet", out / "features", params.features)
    experiment = params.experiment
    baselines = (
        params.evaluation.baselines
        if args.models is None
        else [m for m in args.models if m not in ("RIB", "RIB-Attention")]
    )
    models = experiment.models if args.models is None else [m for m in args.models if m in ("RIB", "RIB-Attention")]
    records = run_experiment(
        out / "features",
        out,
        params,
        seeds=args.seeds or experiment.seeds,
        models=models,
        variants=args.variants or experiment.variants,
        baselines=baselines,
    )
    data = ", ".join(Path(p).name for p in args.inputs)
    synthetic = summary["synthetic"] or report.synthetic
    document = aggregate(records, synthetic=synthetic, data=data, k=params.evaluation.ks[0])
    print(comparison_markdown(write_comparison(document, out)))


def _cmd_stage(args: argparse.Namespace) -> None:
    """One pipeline step, as dvc.yaml runs it: the same functions the Dagster assets call."""
    from rib import steps

    params = load_params(args.params)
    if args.name == "ingest":
        steps.generate_default_data(params)
        report = steps.run_ingest(params)
        _gate(steps.run_raw_quality(params))
        print(report.to_json())
    elif args.name == "features":
        summary = steps.run_features(params)
        for result in steps.run_features_quality(params):
            _gate(result)
        print(json.dumps(summary["splits"], indent=2))
    elif args.name == "word2vec":
        print(json.dumps(steps.run_word2vec(params)["kinds"], indent=2))
    elif args.name == "baselines":
        steps.run_baselines(params)
    elif args.name == "train":
        record = steps.run_training(params, args.model, args.variant)
        print(json.dumps({k: record[k] for k in ("model", "variant", "best_epoch", "test")}, indent=2))
    elif args.name == "section3":
        steps.run_section3(params)
    elif args.name == "case_study":
        steps.run_case_study(params)
    elif args.name == "report":
        print(steps.run_report(params))
    elif args.name == "comparison":
        from rib.compare import comparison_markdown

        print(comparison_markdown(steps.run_comparison(params)))


def _cmd_explain(args: argparse.Namespace) -> None:
    """Figure 8 for any session: attention of each input variant's RIB and the target's rank."""
    import numpy as np

    from rib.explain import explain, heatmap_png
    from rib.recommend import encode_session, load_checkpoint
    from rib.steps import paths

    params = load_params(args.params)
    models, vocab = {}, None
    for variant in params.experiment.variants:
        models[variant], vocab, _ = load_checkpoint(paths(params).model("RIB", variant))
    index = {sku: i for i, sku in enumerate(vocab["sku"])}
    session = []
    for token in args.session:
        sku, activity, dwell = token.rsplit("+", 2)
        session.append((sku, int(activity), float(dwell)))
    sku_ids, activities, dwells, _ = encode_session(session, index, np.asarray(vocab["dwell_edges"]), len(session))
    target = index.get(args.target, 1) if args.target else 1
    explanation = explain(models, np.array(sku_ids), np.array(activities), np.array(dwells), target)
    labels = [f"{s} a{a} d{d}" for (s, a, _), d in zip(session, dwells, strict=True)]
    if args.out:
        heatmap_png(explanation, labels, args.out, f"next product {args.target or '?'}")
    print(json.dumps(explanation, indent=2))


def _gate(summary: dict) -> None:
    if summary["critical_failed"]:
        failed = [e for e in summary["expectations"] if not e["success"] and e["severity"] == "critical"]
        raise ValueError(f"data quality gate {summary['suite']} failed: {failed}; Data Docs: {summary['data_docs']}")


def _cmd_table(args: argparse.Namespace) -> None:
    from rib.compare import COMPARISON_JSON, comparison_markdown

    print(comparison_markdown(json.loads((Path(args.dir) / COMPARISON_JSON).read_text())))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rib", description="Micro-behavior session recommendation (RIB).")
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params.yaml to read (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write the synthetic default dataset (canonical Parquet)")
    generate.add_argument("--out", help="output Parquet file (default: the first data input of params.yaml)")
    generate.add_argument("--n-sessions", type=int)
    generate.add_argument("--seed", type=int)
    generate.set_defaults(run=_cmd_generate)

    ingest = commands.add_parser("ingest", help="raw logs -> micro_behaviors.parquet, quarantine, report")
    ingest.add_argument("--format", required=True, choices=["jd", "events", "canonical"])
    ingest.add_argument("--config", help="YAML describing an event log (required with --format events)")
    ingest.add_argument("--out", required=True, help="output folder")
    ingest.add_argument("inputs", nargs="+", metavar="INPUT")
    ingest.set_defaults(run=_cmd_ingest)

    features = commands.add_parser("features", help="canonical table -> features folder (DuckDB)")
    features.add_argument("--input", required=True, help="micro_behaviors.parquet")
    features.add_argument("--out", required=True)
    features.set_defaults(run=_cmd_features)

    baselines = commands.add_parser("baselines", help="evaluate the baselines on a features folder")
    baselines.add_argument("--features", required=True)
    baselines.add_argument("--out", required=True)
    baselines.add_argument("--word2vec", help="folder of word2vec vectors (for the Word2vec baselines)")
    baselines.add_argument("--models", nargs="+")
    baselines.set_defaults(run=_cmd_baselines)

    train = commands.add_parser("train", help="pretrain word2vec and train one RIB model on a features folder")
    train.add_argument("--features", required=True)
    train.add_argument("--out", required=True, help="checkpoint folder")
    train.add_argument("--model", default="RIB", choices=["RIB", "RIB-Attention"])
    train.add_argument("--variant", default="sku_micro", choices=list(VARIANTS))
    train.set_defaults(run=_cmd_train)

    rec = commands.add_parser("recommend", help="top-k next products for one session")
    rec.add_argument("--checkpoint", required=True)
    rec.add_argument("-k", type=int, default=20)
    rec.add_argument("session", nargs="+", metavar="SKU+ACTIVITY+DWELL")
    rec.set_defaults(run=_cmd_recommend)

    benchmark = commands.add_parser("benchmark", help="ingest, features, every baseline and RIB: comparison.json/.md")
    benchmark.add_argument("--format", required=True, choices=["jd", "events", "canonical"])
    benchmark.add_argument("--config")
    benchmark.add_argument("--out", required=True)
    benchmark.add_argument("--seeds", type=int, help="seeds per model (default: experiment.seeds)")
    benchmark.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    benchmark.add_argument("--models", nargs="+", help="baselines and/or RIB, RIB-Attention (default: all)")
    benchmark.add_argument("inputs", nargs="+", metavar="INPUT")
    benchmark.set_defaults(run=_cmd_benchmark)

    stage = commands.add_parser("stage", help="run one pipeline step under artifacts/ (what dvc.yaml calls)")
    stage.add_argument(
        "name",
        choices=[
            "ingest",
            "features",
            "word2vec",
            "baselines",
            "train",
            "comparison",
            "section3",
            "case_study",
            "report",
        ],
    )
    stage.add_argument("--model", default="RIB", choices=["RIB", "RIB-Attention"])
    stage.add_argument("--variant", default="sku_micro", choices=list(VARIANTS))
    stage.set_defaults(run=_cmd_stage)

    explain_cmd = commands.add_parser("explain", help="attention of each variant's RIB on one session (Figure 8)")
    explain_cmd.add_argument("--target", help="the true next SKU, to report its rank")
    explain_cmd.add_argument("--out", help="write the heatmap PNG here")
    explain_cmd.add_argument("session", nargs="+", metavar="SKU+ACTIVITY+DWELL")
    explain_cmd.set_defaults(run=_cmd_explain)

    table = commands.add_parser("table", help="print the comparison table of a results folder")
    table.add_argument("dir")
    table.set_defaults(run=_cmd_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputFileError as error:
        print(f"rib: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f"rib: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
