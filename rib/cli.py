"""The `rib` command line: each command resolves params.yaml, points the artifact folders where its
arguments say, and calls the same rib.steps function as the Dagster asset and the DVC stage."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import yaml

from rib import steps
from rib.config import load_params, params_as_dict
from rib.errors import InputFileError
from rib.schema import VARIANTS

MODELS = list(steps.LEARNED_MODELS)


# Commands that need the project's params file (its experiment, or a file to write); the others run
# on the defaults of rib/config.py where no file is named and params.yaml is absent.
NEEDS_PARAMS_FILE = {"stage", "tune", "explain"}


def _load(args: argparse.Namespace):
    return load_params(args.params, required=args.command in NEEDS_PARAMS_FILE)


def _setup(args: argparse.Namespace):
    """(params, artifact paths) for a command: params.yaml, with the folders its arguments name."""
    from rib.artifacts import ArtifactPaths

    params = _load(args)
    folders = {name: getattr(args, name) for name in ("ingest", "features", "word2vec") if getattr(args, name, None)}
    return params, ArtifactPaths.under(params.artifacts_dir).replace(**folders)


def _print(document: object) -> None:
    print(json.dumps(document, indent=2, default=str))


def _cmd_params(args: argparse.Namespace) -> None:
    print(yaml.safe_dump(params_as_dict(_load(args)), sort_keys=False), end="")


def _cmd_generate(args: argparse.Namespace) -> None:
    from rib.data.synthetic import generate

    params = _load(args)
    overrides = {k: v for k, v in (("n_sessions", args.n_sessions), ("seed", args.seed)) if v is not None}
    out = Path(args.out or params.data.inputs[0])
    _print({"out": str(out), **generate(dataclasses.replace(params.synthetic, **overrides), out)})


def _cmd_ingest(args: argparse.Namespace) -> None:
    params, paths = _setup(args)
    engine = args.engine or params.data.engine
    data = dataclasses.replace(
        params.data, format=args.format, inputs=args.inputs, events_config=args.config, engine=engine
    )
    print(steps.run_ingest(dataclasses.replace(params, data=data), paths.replace(ingest=args.out)).to_json())


def _cmd_features(args: argparse.Namespace) -> None:
    params, paths = _setup(args)
    _print(steps.run_features(params, paths.replace(features=args.out))["splits"])


def _cmd_word2vec(args: argparse.Namespace) -> None:
    params, paths = _setup(args)
    _print(steps.run_word2vec(params, paths.replace(word2vec=args.out))["kinds"])


def _cmd_baselines(args: argparse.Namespace) -> None:
    from rib.evaluation.comparison import comparison_markdown

    params, paths = _setup(args)
    print(comparison_markdown(steps.run_baselines(params, paths.replace(baselines=args.out), args.models)))


def _cmd_micro_value(args: argparse.Namespace) -> None:
    from rib.insight.micro_value import micro_value_markdown

    params, paths = _setup(args)
    print(micro_value_markdown(steps.run_micro_value(params, paths.replace(micro_value=args.out))))


def _cmd_train(args: argparse.Namespace) -> None:
    from rib.models.train import is_primary, stop_distributed

    params, paths = _setup(args)
    record = steps.run_training(params, paths.replace(models=args.out), args.model, args.variant)
    if is_primary():  # under torchrun every rank runs this command; rank 0 reports
        _print({k: record[k] for k in ("model", "variant", "best_epoch", "validation", "test")})
    stop_distributed()


def _parse_session(tokens: list[str]) -> list[tuple[str, int, float]]:
    """SKU+ACTIVITY+DWELL tokens -> (sku, activity, dwell seconds) micro-behaviors."""
    session = []
    for token in tokens:
        parts = token.rsplit("+", 2)
        if len(parts) != 3:
            raise ValueError(f"{token!r}: expected SKU+ACTIVITY+DWELL, e.g. 1000007+5+30")
        sku, activity, dwell = parts
        try:
            session.append((sku, int(activity), float(dwell)))
        except ValueError:
            raise ValueError(f"{token!r}: ACTIVITY must be an integer and DWELL a number of seconds") from None
    return session


def _cmd_recommend(args: argparse.Namespace) -> None:
    from rib.models.checkpoint import load_checkpoint, recommend

    result = recommend(load_checkpoint(args.checkpoint), [_parse_session(args.session)], k=args.k)[0]
    _print(dataclasses.asdict(result))


def _cmd_explain(args: argparse.Namespace) -> None:
    """Figure 8 for any session: attention of each input variant's RIB and the target's rank."""
    from rib.insight.explain import explain, heatmap_png
    from rib.models.checkpoint import encode_session, load_checkpoint

    params, paths = _setup(args)
    checkpoints = {variant: load_checkpoint(paths.model("RIB", variant)) for variant in params.experiment.variants}
    vocab = next(iter(checkpoints.values())).vocab
    session = _parse_session(args.session)
    inputs, _ = encode_session(session, vocab, len(session))
    target = vocab["sku"].index(args.target) if args.target in vocab["sku"] else 1
    explanation = explain(checkpoints, inputs, target)
    labels = [f"{s} a{a} d{d}" for (s, a, _), d in zip(session, inputs[:, 2], strict=True)]
    if args.out:
        heatmap_png(explanation, labels, args.out, f"next product {args.target or '?'}")
    _print(explanation)


def _cmd_serve(args: argparse.Namespace) -> None:
    from rib.ops.registry import CHAMPION
    from rib.ops.serve import serve

    params = _load(args)
    overrides = {name: getattr(args, name) for name in ("model_uri", "host", "port") if getattr(args, name)}
    config = dataclasses.replace(params.serving, **overrides)
    config.model_uri = config.model_uri or f"models:/{params.registry.model_name}@{CHAMPION}"
    serve(config, args.tracking_uri)


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from rib.evaluation.comparison import comparison_markdown

    params = _load(args)
    data = dataclasses.replace(params.data, format=args.format, inputs=args.inputs, events_config=args.config)
    experiment = params.experiment
    chosen = args.models or [*experiment.baselines, *experiment.models]
    document = steps.run_benchmark(
        dataclasses.replace(params, data=data),
        args.out,
        folds=args.folds,
        seeds=args.seeds or experiment.seeds,
        baselines=[m for m in chosen if m not in MODELS],
        models=[m for m in chosen if m in MODELS],
        variants=args.variants or experiment.variants,
        tune=_benchmark_tuning(args, chosen, args.variants or experiment.variants) if args.tune else None,
    )
    print(comparison_markdown(document))


def _benchmark_tuning(args: argparse.Namespace, models: list[str], variants: list[str]):
    """`rib benchmark --tune N`: N trials per learned model, logged to --mlflow (rib.tuning.tune_benchmark)."""
    import functools

    from rib.ops.tracking import TrackingConfig
    from rib.tuning import tune_benchmark

    tracking = TrackingConfig(tracking_uri=args.mlflow)
    return functools.partial(
        tune_benchmark, models=models, variants=variants, trials=args.tune, tracking=tracking, log=print
    )


def _cmd_tune(args: argparse.Namespace) -> None:
    """An Optuna study on validation for one model (and variant); --write puts the best in the params file."""
    from rib.artifacts import ArtifactPaths
    from rib.config import default_params_path
    from rib.ops.tracking import TrackingConfig
    from rib.tuning import tune, tuned_key, write_tuned

    params = _load(args)
    paths = ArtifactPaths.under(params.artifacts_dir)
    if args.inputs:  # tune on these logs: ingest, features and word2vec under --out first
        data = dataclasses.replace(params.data, format=args.format, inputs=args.inputs, events_config=args.config)
        params = dataclasses.replace(params, data=data, artifacts_dir=args.out)
        paths = ArtifactPaths.under(args.out)
        steps.run_ingest(params, paths)
        steps.run_features(params, paths)
        steps.run_word2vec(params, paths)
    tracking = TrackingConfig(tracking_uri=args.mlflow)
    variant = None
    if args.model in steps.LEARNED_MODELS:
        readable = [v for v in ("sku_micro", *steps.READS.get(args.model, ())) if steps.reads(args.model, v)]
        variant = args.variant or readable[0]
    best = tune(params, paths, args.model, variant, args.trials, tracking, seed=args.seed)
    if args.write:
        key = args.model if args.all_variants else tuned_key(args.model, variant)
        write_tuned(args.params or default_params_path(), key, best)
    _print(best)


def _cmd_stage(args: argparse.Namespace) -> None:
    """One pipeline step, as dvc.yaml runs it: the same function the Dagster asset calls."""
    params = _load(args)
    options = {"model": args.model, "variant": args.variant} if args.name == "train" else {}
    steps.STAGES[args.name](params, steps.artifact_paths(params), **options)
    print(f"rib stage {args.name}: done")


def _cmd_table(args: argparse.Namespace) -> None:
    from rib.evaluation.comparison import COMPARISON_JSON, comparison_markdown

    print(comparison_markdown(json.loads((Path(args.dir) / COMPARISON_JSON).read_text())))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rib", description="Micro-behavior session recommendation (RIB).")
    parser.add_argument("--params", help="the params file to read (default: $RIB_PARAMS or params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.set_defaults(run=run)
        return sub

    command("params", _cmd_params, "print every setting: params.yaml over the defaults of rib/config.py")

    generate = command("generate", _cmd_generate, "write the synthetic default dataset (canonical Parquet)")
    generate.add_argument("--out", help="output Parquet file (default: the first data input of params.yaml)")
    generate.add_argument("--n-sessions", type=int)
    generate.add_argument("--seed", type=int)

    ingest = command("ingest", _cmd_ingest, "raw logs -> micro_behaviors.parquet, quarantine, report")
    ingest.add_argument("--format", required=True, choices=["jd", "events", "canonical"])
    ingest.add_argument("--config", help="YAML describing an event log (required with --format events)")
    ingest.add_argument("--out", required=True, help="output folder")
    ingest.add_argument("--engine", choices=["duckdb", "spark"], help="default: data.engine of the params file")
    ingest.add_argument("inputs", nargs="+", metavar="INPUT")

    features = command("features", _cmd_features, "an ingest folder -> features folder (features.engine)")
    features.add_argument("--ingest", required=True, help="folder written by `rib ingest`")
    features.add_argument("--out", required=True)

    word2vec = command("word2vec", _cmd_word2vec, "word2vec pretraining on a features folder")
    word2vec.add_argument("--features", required=True)
    word2vec.add_argument("--out", required=True)

    baselines = command("baselines", _cmd_baselines, "fit and evaluate the baselines on a features folder")
    baselines.add_argument("--features", required=True)
    baselines.add_argument("--word2vec", help="folder of word2vec vectors (for the Word2vec baselines)")
    baselines.add_argument("--out", required=True)
    baselines.add_argument("--models", nargs="+", help="baselines to run (default: experiment.baselines)")

    value = command("micro-value", _cmd_micro_value, "what micro-behaviors are worth on a log, before any training")
    value.add_argument("--features", required=True, help="folder written by `rib features`")
    value.add_argument("--out", required=True, help="writes micro_value.json and micro_value.md there")

    train = command("train", _cmd_train, "train one model on a features folder (word2vec-initialised)")
    train.add_argument("--features", required=True)
    train.add_argument("--word2vec", required=True, help="folder written by `rib word2vec`")
    train.add_argument("--out", required=True, help="folder of checkpoints: writes OUT/<model>-<variant>")
    train.add_argument("--model", default="RIB", choices=MODELS)
    train.add_argument("--variant", default="sku_micro", choices=list(VARIANTS))

    rec = command("recommend", _cmd_recommend, "top-k next products for one session")
    rec.add_argument("--checkpoint", required=True)
    rec.add_argument("-k", type=int, default=20)
    rec.add_argument("session", nargs="+", metavar="SKU+ACTIVITY+DWELL")

    serve = command("serve", _cmd_serve, "serve the registered model over HTTP, batching requests (MLflow's API)")
    serve.add_argument("--model-uri", help="default: serving.model_uri, else the registered champion")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")

    benchmark = command("benchmark", _cmd_benchmark, "ingest, features, every baseline and model: comparison.json/.md")
    benchmark.add_argument("--format", required=True, choices=["jd", "events", "canonical"])
    benchmark.add_argument("--config", help="YAML describing an event log (with --format events)")
    benchmark.add_argument("--out", required=True)
    benchmark.add_argument("--folds", type=int, default=1, help="session splits, each with its own split seed")
    benchmark.add_argument("--seeds", type=int, help="seeds per model and fold (default: experiment.seeds)")
    benchmark.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    benchmark.add_argument("--models", nargs="+", help="baselines and/or trained models (default: all configured)")
    benchmark.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="N",
        help="first N trials per learned model on this log's validation split",
    )
    benchmark.add_argument("--mlflow", default="sqlite:///mlflow.db", help="with --tune: where the trials are logged")
    benchmark.add_argument("inputs", nargs="+", metavar="INPUT")

    tune = command("tune", _cmd_tune, "tune one learned model on validation (Optuna); --write keeps the best")
    tune.add_argument(
        "--model", required=True, help="RIB, RIB-Attention, SR-GNN, MKM-SR, EMBSR, GRU4Rec, NARM or SASRec"
    )
    tune.add_argument(
        "--variant", choices=list(VARIANTS), help="for a model on input variants (default: sku_micro where it reads it)"
    )
    tune.add_argument("--trials", type=int, default=20, help="the study's budget: the same for every model")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--write", action="store_true", help="write the best configuration to the params file")
    tune.add_argument("--all-variants", action="store_true", help="write it for every input variant of the model")
    tune.add_argument("--mlflow", default="sqlite:///mlflow.db", help="where the trials are logged")
    tune.add_argument("--format", choices=["jd", "events", "canonical"], help="with INPUT: tune on these logs")
    tune.add_argument("--config", help="YAML describing an event log (with --format events)")
    tune.add_argument("--out", default="artifacts/tuning", help="with INPUT: where their features go")
    tune.add_argument("inputs", nargs="*", metavar="INPUT")

    stage = command("stage", _cmd_stage, "run one pipeline step under artifacts/ (what dvc.yaml calls)")
    stage.add_argument("name", choices=list(steps.STAGES))
    stage.add_argument("--model", default="RIB", choices=MODELS)
    stage.add_argument("--variant", default="sku_micro", choices=list(VARIANTS))

    explain = command("explain", _cmd_explain, "attention of each variant's RIB on one session (Figure 8)")
    explain.add_argument("--target", help="the true next SKU, to report its rank")
    explain.add_argument("--out", help="write the heatmap PNG here")
    explain.add_argument("session", nargs="+", metavar="SKU+ACTIVITY+DWELL")

    table = command("table", _cmd_table, "print the comparison table of a results folder")
    table.add_argument("dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (InputFileError, ValueError, FileNotFoundError) as error:  # ParamsError is a ValueError
        print(f"rib: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
