"""The pipeline's steps: one function per step, the one path from every entry point to the library.

The Dagster assets (pipeline/), the DVC stages (`rib stage NAME` in dvc.yaml, through `STAGES`)
and the CLI call these functions; `rib benchmark` loops over the same functions with its own
artifact paths. Each takes the resolved parameters (rib.config.Params) and where to read and
write (rib.artifacts.ArtifactPaths), and returns what it wrote as a plain dict.

    ingest -> (raw quality) -> features -> (features quality) -> word2vec -> baselines
                                                                         -> training (per model and variant)
    baselines + trainings -> comparison -> registration;  section3, case study -> report
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rib.artifacts import ArtifactPaths
from rib.config import MODEL_SECTIONS, Params
from rib.schema import VISITS

# Trained models on the input variants: name -> the settings fixed for it (its params section:
# rib.config.MODEL_SECTIONS). RIB-Attention is the paper's ablation: no attention, so no repeat part.
# SR-GNN, MKM-SR and EMBSR (rib/models/graph.py) are the published micro-behavior models, trained
# and compared on the variants they read like RIB (`READS`: a pair outside it is not trained).
LEARNED_MODELS: dict[str, dict] = {
    "RIB": {"attention": True},
    "RIB-Attention": {"attention": False, "repeat": False, "neighbors": False},
    "SR-GNN": {},
    "MKM-SR": {},
    "EMBSR": {},
}
READS: dict[str, tuple[str, ...]] = {
    "SR-GNN": ("visits", "sku"),  # the product sequence alone
    "MKM-SR": ("sku_activity", "sku_micro"),  # the operations beside the products (with dwell: sku_micro)
    "EMBSR": ("sku_activity", "sku_micro"),
}


def reads(model: str, variant: str) -> bool:
    """Whether `model` is trained on input `variant` (RIB and RIB-Attention read every variant)."""
    return variant in READS.get(model, (variant,))


def trained_pairs(models: list[str], variants: list[str]) -> list[tuple[str, str]]:
    """Every (model, variant) of the experiment that is trained: each model on the variants it reads."""
    return [(model, variant) for model in models for variant in variants if reads(model, variant)]


# Trained baselines, on SKUs alone: GRU4Rec is the RIB network without attention on SKUs, trained
# from a random start with its own settings (params section gru4rec). "<name> Visits" is the same
# network on the visits input (one position per macro interaction, the product alone): the sequence
# a shop without micro-behavior logging has, as S-POP Visits is S-POP's.
_GRU4REC = {"attention": False, "repeat": False, "neighbors": False}
LEARNED_BASELINES: dict[str, dict] = {
    "GRU4Rec": _GRU4REC,
    "NARM": {},
    "SASRec": {},
    "GRU4Rec Visits": _GRU4REC | {"variant": VISITS},
    "NARM Visits": {"variant": VISITS},
    "SASRec Visits": {"variant": VISITS},
}
DETERMINISTIC_BASELINES = ("POP", "S-POP", "Item-KNN")  # the same figures for every seed


def artifact_paths(params: Params) -> ArtifactPaths:
    return ArtifactPaths.under(params.artifacts_dir)


def with_seed(params: Params, seed: int) -> Params:
    """The parameters of the `seed`-th repetition: every seed (training, word2vec, BPR) moves by `seed`."""
    if seed == 0:
        return params
    return dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, seed=params.train.seed + seed),
        word2vec=dataclasses.replace(params.word2vec, seed=params.word2vec.seed + seed),
        bpr=dataclasses.replace(params.bpr, seed=params.bpr.seed + seed),
    )


# ---------------------------------------------------------------------------------------------
# Data


def generate_default_data(params: Params, overwrite: bool = False) -> Path | None:
    """Write the synthetic default dataset to the first input path if it is missing
    (only with `data.generate_if_missing` and the canonical format)."""
    from rib.data.synthetic import generate

    target = Path(params.data.inputs[0])
    wanted = params.data.generate_if_missing and params.data.format == "canonical" and not params.data.daily_inputs
    if not wanted or (target.exists() and not overwrite):
        return None
    generate(params.synthetic, target)
    return target


def run_ingest(params: Params, paths: ArtifactPaths):
    """Raw logs -> the canonical table, quarantine and report (rib.data.report.IngestReport). With
    daily inputs: every day of the training window not ingested yet, then the window."""
    from rib.data.ingest import ingest_logs

    if params.data.daily_inputs is None:
        return ingest_logs(params.data, paths.ingest, params.features)
    if params.data.engine != "duckdb":
        raise ValueError("data.daily_inputs are ingested by the duckdb engine (data.engine); spark reads `inputs`")
    from rib.data.daily import available_days, day_folder

    for date in list(available_days(params.data))[-params.data.training_days :]:
        if not (day_folder(paths.ingest, date) / "ingest_report.json").exists():
            run_ingest_day(params, paths, date)
    return run_window(params, paths)


def run_ingest_day(params: Params, paths: ArtifactPaths, date: str):
    """One day of daily inputs -> <ingest>/days/<date>/ (a daily Dagster partition)."""
    from rib.data.daily import ingest_day

    return ingest_day(params.data, date, paths.ingest)


def run_window(params: Params, paths: ArtifactPaths, end_date: str | None = None):
    """The last `training_days` ingested days (up to `end_date`) as the canonical table under <ingest>."""
    from rib.data.daily import build_window

    return build_window(params.data, paths.ingest, end_date)


def ingest_report(paths: ArtifactPaths) -> dict:
    return json.loads(paths.ingest_report.read_text())


def run_raw_quality(params: Params, paths: ArtifactPaths) -> dict:
    """Great Expectations on the canonical table (expectations/raw_micro_behaviors.json)."""
    from rib.ops.quality import prepare_raw, validate

    database = prepare_raw(paths.micro_behaviors, paths.quality)
    return validate(database, "raw_micro_behaviors", "raw_micro_behaviors", paths.quality)


def run_features(params: Params, paths: ArtifactPaths) -> dict:
    from rib.features.build import build_features

    return build_features(paths.micro_behaviors, paths.features, params.features)


def run_features_quality(params: Params, paths: ArtifactPaths) -> list[dict]:
    """Great Expectations on the built features (expectations/features.json, dwell_buckets.json)."""
    from rib.ops.quality import prepare_features, validate

    database = prepare_features(paths.features, paths.quality)
    return [
        validate(database, "feature_sessions", "features", paths.quality),
        validate(database, "dwell_buckets", "dwell_buckets", paths.quality),
    ]


# ---------------------------------------------------------------------------------------------
# Models


def run_word2vec(params: Params, paths: ArtifactPaths) -> dict:
    """gensim word2vec of SKUs, activities and dwell buckets on the training split."""
    from rib.features.dataset import FeatureSet
    from rib.models.word2vec import pretrain_word2vec

    dims = {"sku": params.model.d_sku, "activity": params.model.d_activity, "dwell": params.model.d_dwell}
    return pretrain_word2vec(FeatureSet.load(paths.features), paths.word2vec, dims, params.word2vec)


def make_recommender(name: str, variant: str | None, params: Params, paths: ArtifactPaths, log=print):
    """An unfitted model by its name in the comparison table (a baseline, or a learned model with its variant)."""
    from rib.models.baselines import NEEDS_WORD2VEC, make_baseline
    from rib.models.word2vec import load_vectors

    if name in LEARNED_MODELS or name in LEARNED_BASELINES:
        from rib.models.train import NetworkRecommender

        fixed = {"variant": variant or "sku"} | LEARNED_MODELS.get(name, LEARNED_BASELINES.get(name))
        model_config, train_config = params.for_model(name, variant, MODEL_SECTIONS[name])
        model_config = dataclasses.replace(model_config, **fixed)
        vectors = load_vectors(paths.word2vec) if model_config.word2vec_init else None
        return NetworkRecommender(name, model_config, train_config, params.evaluation, vectors, log=log)
    vectors = load_vectors(paths.word2vec, ("sku",))["sku"][0] if name in NEEDS_WORD2VEC else None
    return make_baseline(name, params.bpr, params.evaluation, vectors)


def evaluate_recommender(recommender, features, params: Params, ranks_file: Path) -> dict:
    """Validation and test figures of a fitted recommender (the same protocol for every model);
    the rank of every target goes to `ranks_file` (.npz), for paired comparisons later."""
    import numpy as np

    from rib.evaluation.metrics import rank_targets, summarize

    ranks = {
        split: rank_targets(recommender.score, features.split(split), params.evaluation, features.n_items)
        for split in ("validation", "test")
    }
    ranks_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(ranks_file, **{split: r.astype(np.float32) for split, r in ranks.items()})
    return {
        split: summarize(r, params.evaluation.ks) | {"targets": params.evaluation.targets} for split, r in ranks.items()
    }


def baseline_ranks_file(paths: ArtifactPaths, name: str) -> Path:
    return paths.baselines / "ranks" / f"{name.replace(' ', '_')}.npz"


def run_baselines(params: Params, paths: ArtifactPaths, names: list[str] | None = None) -> dict:
    """Fit and evaluate every baseline; records.json, each one's ranks, and the baselines' comparison."""
    import time

    from rib.evaluation.comparison import write_comparison
    from rib.features.dataset import FeatureSet

    features = FeatureSet.load(paths.features)
    records = []
    for name in params.experiment.baselines if names is None else names:
        started = time.perf_counter()
        recommender = make_recommender(name, None, params, paths).fit(features)
        record = {"model": name, "variant": None, "seed": params.bpr.seed if name == "BPR-MF" else None}
        record["fit_seconds"] = round(time.perf_counter() - started, 3)
        if hasattr(recommender, "chosen_on_validation"):  # a session kNN: its k (and decay) chosen on validation
            record["chosen"] = recommender.chosen_on_validation
        if getattr(recommender, "result", None) is not None:  # a trained network (GRU4Rec, NARM, SASRec)
            record |= {"seed": params.train.seed, "best_epoch": recommender.result.best_epoch}
            record["history"] = recommender.result.history
        records.append(record | evaluate_recommender(recommender, features, params, baseline_ranks_file(paths, name)))
    paths.baselines.mkdir(parents=True, exist_ok=True)
    (paths.baselines / "records.json").write_text(json.dumps(records, indent=2) + "\n")
    return write_comparison(comparison_of(params, [Run(paths)], [r["model"] for r in records], []), paths.baselines)


def run_training(
    params: Params, paths: ArtifactPaths, model: str, variant: str, log: Callable[[str], None] = print
) -> dict:
    """Train one model on one input variant; its checkpoint, metrics.json and history.json.

    Returns the record (figures, history) with the resolved configurations the run used."""
    from rib.features.dataset import FeatureSet
    from rib.io import staged_folder
    from rib.models.checkpoint import save_checkpoint
    from rib.models.train import distributed_context, is_primary

    if model not in LEARNED_MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {list(LEARNED_MODELS)}")
    if not reads(model, variant):
        raise ValueError(f"{model} does not read the {variant} input; it reads {', '.join(READS[model])}")
    if params.train.distributed > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_distributed(params, paths, model, variant, log)
    features = FeatureSet.load(paths.features)
    folder = paths.model(model, variant)
    recommender = make_recommender(model, variant, params, paths, log)
    recommender.progress_dir = folder.parent / f".{folder.name}-progress"  # a killed run resumes from here
    recommender.fit(features)
    result = recommender.result
    if not is_primary():  # under torchrun, rank 0 alone evaluates and writes
        return {"model": model, "variant": variant, "rank": distributed_context()[0]}
    ranks = folder.parent / f".{folder.name}-ranks.npz"  # moved into the checkpoint folder with it
    record = {
        "model": model,
        "variant": variant,
        "seed": params.train.seed,
        "best_epoch": result.best_epoch,
        **evaluate_recommender(recommender, features, params, ranks),
        "history": result.history,
        "train_seconds": result.train_seconds,
        "micro_behaviors_per_second": result.micro_behaviors_per_second,
        "device": result.device,
        "max_len": features.max_len,
        "model_config": dataclasses.asdict(result.model_config),
        "train_config": dataclasses.asdict(result.train_config),
    }
    if getattr(recommender, "neighbors", None) is not None:  # the neighbourhood's k and decay (validation)
        record["neighbors"] = recommender.neighbors.chosen_on_validation
    extra = {
        "train": record["train_config"],
        "max_len": features.max_len,
        "exclude_last_sku": params.evaluation.exclude_last_sku,
    }
    untrained_ranks = folder.parent / f".{folder.name}-untrained-ranks.npz"
    if result.model.repeat:  # the same mixture at its initialization: what its parts that are not learned give
        trained_state = {name: tensor.clone() for name, tensor in result.model.state_dict().items()}
        result.model.load_state_dict(result.initial_state)
        record["untrained"] = evaluate_recommender(recommender, features, params, untrained_ranks)
        result.model.load_state_dict(trained_state)
    with staged_folder(folder) as staging:
        if untrained_ranks.exists():
            untrained_ranks.replace(staging / UNTRAINED_RANKS_FILE)
        training_state = {"epoch": result.best_epoch, "optimizer": result.optimizer_state}
        save_checkpoint(result.model, staging, features.vocab, extra, training_state, recommender.neighbors)
        ranks.replace(staging / RANKS_FILE)
        (staging / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
        (staging / "history.json").write_text(json.dumps(record["history"], indent=2) + "\n")  # DVC plots
    shutil.rmtree(recommender.progress_dir, ignore_errors=True)  # finished: the next run starts afresh
    return record


def _launch_distributed(params: Params, paths: ArtifactPaths, model: str, variant: str, log) -> dict:
    """`train.distributed` N: the same training step in N processes launched by torchrun (DDP;
    rank 0 writes), this process waiting for them; returns the record rank 0 wrote."""
    import subprocess
    import sys
    import tempfile

    import yaml

    from rib.config import params_as_dict

    with tempfile.TemporaryDirectory() as tmp:
        resolved = dataclasses.replace(params, train=dataclasses.replace(params.train, distributed=0))
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_as_dict(resolved), sort_keys=False))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]  # torchrun
        command += [f"--nproc_per_node={params.train.distributed}", "-m", "rib.cli", "--params", str(params_file)]
        command += ["train", "--features", str(paths.features), "--word2vec", str(paths.word2vec)]
        command += ["--out", str(paths.models), "--model", model, "--variant", variant]
        log(f"launching {params.train.distributed} training processes: {' '.join(command)}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"distributed training failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads((paths.model(model, variant) / "metrics.json").read_text())


# ---------------------------------------------------------------------------------------------
# Evaluation and registration


RANKS_FILE = "ranks.npz"  # in a trained model's folder: the rank of every validation and test target
UNTRAINED_RANKS_FILE = "untrained_ranks.npz"  # the same for the model at its initialization (a mixture's)


@dataclass(frozen=True)
class Run:
    """One repetition of an experiment: its artifact folders, its fold (session split) and seed."""

    paths: ArtifactPaths
    fold: int = 0
    seed: int = 0


def _evaluated(run: Run, models: list[str], variants: list[str], split: str = "test") -> list:
    """The records and ranks of the baselines and trained models a run wrote, on `split`: "test",
    or "validation" (its figures and ranks stand in for the test's: the same table on the split
    where the epochs and settings were chosen)."""
    import numpy as np

    from rib.evaluation.comparison import UNTRAINED_SUFFIX, Evaluated

    def evaluated(record: dict, ranks_file: Path) -> Evaluated:
        return Evaluated(record | {"fold": run.fold, "test": record[split]}, np.load(ranks_file)[split])

    found = []
    for record in json.loads((run.paths.baselines / "records.json").read_text()):
        if record["model"] in models:
            found.append(evaluated(record, baseline_ranks_file(run.paths, record["model"])))
    for model, variant in trained_pairs([m for m in models if m in LEARNED_MODELS], variants):
        folder = run.paths.model(model, variant)
        record = json.loads((folder / "metrics.json").read_text())
        found.append(evaluated(record, folder / RANKS_FILE))
        if "untrained" in record:  # a row of its own: "<model>-untrained", what training adds is paired to it
            untrained = {"model": model + UNTRAINED_SUFFIX, "variant": variant, "seed": record["seed"]}
            found.append(evaluated(untrained | record["untrained"], folder / UNTRAINED_RANKS_FILE))
    return found


def comparison_of(params: Params, runs: list[Run], models: list[str], variants: list[str], split: str = "test") -> dict:
    """The comparison document over `runs` (rib.evaluation.comparison.build_comparison), on `split`."""
    from rib.evaluation.comparison import build_comparison
    from rib.features.dataset import load_summary

    synthetic = load_summary(runs[0].paths.features)["synthetic"]
    evaluated = [item for run in runs for item in _evaluated(run, models, variants, split)]
    return build_comparison(evaluated, params.evaluation, synthetic=synthetic, data=", ".join(params.data.inputs))


def _fold_paths(out: Path, fold: int) -> ArtifactPaths:
    """A benchmark fold's folders: out/fold<F>, sharing the ingest under `out`."""
    return ArtifactPaths.under(out / f"fold{fold}").replace(ingest=ArtifactPaths.under(out).ingest)


def _benchmark_run(out: Path, fold: int, seed: int) -> Run:
    """One repetition of a benchmark: out/fold<F>/seed<S>, reading its fold's features."""
    fold_paths = _fold_paths(out, fold)
    paths = ArtifactPaths.under(out / f"fold{fold}" / f"seed{seed}")
    return Run(paths.replace(ingest=fold_paths.ingest, features=fold_paths.features), fold, seed)


def benchmark_runs(out: str | Path) -> list[Run]:
    """The runs `run_benchmark` wrote under `out`, in order of fold and seed."""
    out = Path(out)

    def number(folder: Path) -> int:  # fold<F> or seed<S>
        return int(folder.name.removeprefix("fold").removeprefix("seed"))

    return [
        _benchmark_run(out, number(fold), number(seed))
        for fold in sorted(out.glob("fold*"), key=number)
        for seed in sorted(fold.glob("seed*"), key=number)
    ]


def run_comparison(params: Params, paths: ArtifactPaths, runs: list[Run] | None = None) -> dict:
    """The comparison table from the baselines' and every trained model's records and ranks (over
    `runs`: one per fold and seed in `rib benchmark`), with paired intervals; metrics.json for DVC."""
    from rib.evaluation.comparison import write_comparison

    experiment = params.experiment
    runs = runs or [Run(paths)]
    models = [*experiment.baselines, *experiment.models]
    document = write_comparison(comparison_of(params, runs, models, experiment.variants), paths.comparison)
    k = params.evaluation.k
    flat = {  # what `dvc metrics show` prints
        f"{row['model']}/{row['variant'] or 'baseline'}": {
            f"recall@{k}": row[f"recall@{k}"],
            f"mrr@{k}": row[f"mrr@{k}"],
        }
        for row in document["results"]
    }
    (paths.comparison / "metrics.json").write_text(json.dumps(flat, indent=2) + "\n")
    return document


def run_registration(params: Params, paths: ArtifactPaths, tracking) -> dict:
    """Log the configured model as an MLflow pyfunc version; move `champion` only on improvement.
    A model failing a gate (rib/ops/gates.py) is not registered: the reason comes back instead."""
    from rib.ops.gates import model_gates
    from rib.ops.registry import register_model

    registry = params.registry
    checkpoint = paths.model(registry.model, registry.variant)
    gates = model_gates(checkpoint, paths.features, paths.baselines, params.evaluation, registry)
    failed = [gate for gate in gates if not gate.passed]
    if failed:  # the champion stays
        reasons = "; ".join(f"{g.name}: {g.reason}" for g in failed)
        return {"model": registry.model_name, "registered": False, "promoted": False, "reason": reasons}
    record = json.loads((checkpoint / "metrics.json").read_text())
    metric = f"recall@{params.evaluation.k}"
    version = ingest_report(paths)["data_version"]
    return register_model(
        checkpoint,
        tracking,
        registry.model_name,
        version,
        metric,
        record["test"][metric],
        paths.features,
        params.evaluation,
    )


# ---------------------------------------------------------------------------------------------
# Insight


def run_section3(params: Params, paths: ArtifactPaths) -> dict:
    """The paper's Section 3 tables and figures for the ingested data."""
    from rib.insight.section3 import write_section3

    return write_section3(paths.micro_behaviors, paths.section3, ingest_report(paths)["synthetic"])


def run_micro_value(params: Params, paths: ArtifactPaths) -> dict:
    """What micro-behaviors are worth on this log before any training: revisits ranked by recency,
    micro-behavior counts and micro-behavior features, with paired intervals."""
    from rib.features.dataset import FeatureSet
    from rib.insight.micro_value import write_micro_value

    return write_micro_value(FeatureSet.load(paths.features), params.evaluation, paths.micro_value)


def run_case_study(params: Params, paths: ArtifactPaths) -> dict:
    """Figure 8: attention of every input variant's RIB on a few test sessions."""
    from rib.features.dataset import FeatureSet
    from rib.insight.explain import write_case_study

    model_dirs = {variant: paths.model("RIB", variant) for variant in params.experiment.variants}
    return write_case_study(FeatureSet.load(paths.features), model_dirs, paths.case_study)


def run_report(params: Params, paths: ArtifactPaths) -> str:
    """The self-contained HTML report of this run."""
    from rib.insight.report import build_report

    return build_report(paths, params.evaluation.k)


# ---------------------------------------------------------------------------------------------
# A whole experiment: the same steps, one artifact root per seed


def run_benchmark(
    params: Params,
    out: str | Path,
    folds: int,
    seeds: int,
    baselines: list[str],
    models: list[str],
    variants: list[str],
    log: Callable[[str], None] = print,
    tune: Callable[[Params, ArtifactPaths], dict] | None = None,
) -> dict:
    """The same steps as the pipeline, repeated: ingest once under `out`; for each fold (a session
    split with its own split seed) features under `out/fold<F>`; for each seed word2vec, every
    baseline and every model under `out/fold<F>/seed<S>` (model seeds move with fold and seed);
    the comparison over every fold and seed in `out/comparison`.

    `tune` (`rib benchmark --tune N`: rib.tuning.tune_benchmark): called once, on the first fold's
    paths, before any model trains; the `tuned` entries it returns (settings chosen on that fold's
    validation split, its test split never read) are written to `out/tuned.json` and used for every fold."""
    out = Path(out)
    paths = ArtifactPaths.under(out)
    params = dataclasses.replace(
        params,
        artifacts_dir=str(out),
        experiment=dataclasses.replace(params.experiment, baselines=baselines, models=models, variants=variants),
    )
    run_ingest(params, paths)
    runs = []
    for fold in range(folds):
        split = dataclasses.replace(params.features, split_seed=params.features.split_seed + fold)
        fold_params = dataclasses.replace(params, features=split)
        fold_paths = _fold_paths(out, fold)
        run_features(fold_params, fold_paths)
        for seed in range(seeds):
            seeded = with_seed(fold_params, fold * seeds + seed)
            runs.append(_benchmark_run(out, fold, seed))
            run = runs[-1].paths
            run_word2vec(seeded, run)
            if tune is not None and not (out / "tuned.json").exists():  # once, on the first fold's validation split
                (out / "tuned.json").write_text(json.dumps(tune(seeded, run), indent=2) + "\n")
            if tune is not None:
                tuned = json.loads((out / "tuned.json").read_text())
                seeded = dataclasses.replace(seeded, tuned={**seeded.tuned, **tuned})
            run_baselines(seeded, run, [b for b in baselines if seed == 0 or b not in DETERMINISTIC_BASELINES])
            for model, variant in trained_pairs(models, variants):
                log(f"fold {fold}, seed {seed}: training {model} on {variant}")
                run_training(seeded, run, model, variant, log=log)
    return run_comparison(params, paths, runs)


# `rib stage NAME` (dvc.yaml): each DVC stage is one of these, writing under params.artifacts_dir.
def stage_ingest(params: Params, paths: ArtifactPaths):
    """The default data where it is missing, the ingest, and its blocking data-quality gate."""
    generate_default_data(params)
    report = run_ingest(params, paths)
    gate(run_raw_quality(params, paths))
    return report


def stage_features(params: Params, paths: ArtifactPaths) -> dict:
    """The features and their blocking data-quality gates."""
    summary = run_features(params, paths)
    for result in run_features_quality(params, paths):
        gate(result)
    return summary


def gate(summary: dict) -> None:
    """Stop when a Great Expectations suite's critical expectations failed (what the Dagster check blocks on)."""
    if summary["critical_failed"]:
        failed = [e for e in summary["expectations"] if not e["success"] and e["severity"] == "critical"]
        raise ValueError(f"data quality gate {summary['suite']} failed: {failed}; Data Docs: {summary['data_docs']}")


STAGES: dict[str, Callable[..., object]] = {
    "ingest": stage_ingest,
    "features": stage_features,
    "word2vec": run_word2vec,
    "baselines": run_baselines,
    "train": run_training,  # with model= and variant=
    "comparison": run_comparison,
    "section3": run_section3,
    "micro_value": run_micro_value,
    "case_study": run_case_study,
    "report": run_report,
}
