"""The same tuning budget for every learned model, on a lent GPU, then 3-fold test runs of each
study's choice, and the table with paired intervals against RIB.

Three steps, the middle one on the GPU machine (torch, numpy and PyYAML alone: no DuckDB, gensim,
MLflow or Optuna there):

    # here: folds and word2vec from `rib benchmark` (features of each split, seed0/word2vec)
    rib benchmark ../shared/data/jd/computers.txt --format jd --folds 3 --out bench/computers \\
        --models V-SKNN RIB --variants sku_micro
    python benchmarks/tuning_study.py plan .device/study --bench appliances=bench/appliances \\
        computers=bench/computers --studies RIB/sku_micro SR-GNN/sku MKM-SR/sku_micro EMBSR/sku_micro --trials 6
    # on the GPU machine (`run` with carry [".device"]; .device/pkgs: a copy of PyYAML, where it has none):
    # one process per trial, 15 at once
    PYTHONPATH=.device/pkgs python benchmarks/tuning_study.py run .device/study   # writes $OUT/results.jsonl
    # here: the table, RIB minus each model paired on the same targets; every trial to MLflow
    python benchmarks/tuning_study.py table .device/study RESULTS.jsonl --bench appliances=... --mlflow sqlite:///mlflow.db

A study is `rib tune`'s: its search space (rib.tuning.SEARCH_SPACES) and scoring (validation
Recall@20 + MRR@20 of the best epoch, fold 0's validation split; the test split never chooses).
Trial 0 is the shipped setting (params.yaml); trials 1.. are the first draws of `rib tune`'s TPE
sampler (seed 0), which are its random start-up draws, the same whatever the results, so the
trials can run at once. No pruning (`rib tune` prunes with a median rule). Each study's best trial
then trains folds 1 and 2; its fold-0 test ranks are the best trial's own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
import traceback
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START = float(os.environ.setdefault("TUNING_STUDY_START", str(time.time())))  # the parent's, in every worker


def plan(out: Path, bench: dict[str, Path], studies: list[str], trials: int, params_path: Path) -> None:
    """Copy each log's folds (features, word2vec) under `out/data`, and write the trials and params."""
    import optuna
    import yaml

    from rib.tuning import SEARCH_SPACES, _training

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for log, folder in bench.items():
        for fold in sorted(p.name for p in folder.glob("fold*")):
            target = out / "data" / log / fold
            shutil.copytree(
                folder / fold / "features",
                target / "features",
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("*.duckdb"),
            )
            shutil.copytree(folder / fold / "seed0" / "word2vec", target / "seed0" / "word2vec", dirs_exist_ok=True)
    planned = []
    for log in bench:
        for study in studies:
            model, _, variant = study.partition("/")  # GRU4Rec, NARM, SASRec: no variant (they read SKUs)
            variant = variant or None
            sampler = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
            drawn = []
            for _ in range(trials - 1):  # `rib tune`'s draws, in its order: the model's space, then training
                trial = sampler.ask()
                drawn.append({"model": SEARCH_SPACES[model](trial), "train": _training(trial)})
            planned.append({"log": log, "study": study, "model": model, "variant": variant, "trials": [{}, *drawn]})
    (out / "tasks.json").write_text(json.dumps({"studies": planned}, indent=1) + "\n")
    params = yaml.safe_load(params_path.read_text())
    params["train"].update(progress=False, compile_loss="false", cpu_threads=1)
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    print(f"{len(planned)} studies, {sum(len(s['trials']) for s in planned)} trials under {out}")


def run_one(task: dict) -> dict:
    """Train one trial (or one test run) and write its figures and test ranks to results.jsonl."""
    import numpy as np
    import torch

    from rib import steps
    from rib.artifacts import ArtifactPaths
    from rib.config import load_params
    from rib.evaluation.metrics import rank_targets, summarize
    from rib.features.dataset import FeatureSet
    from rib.models.train import selection_figure
    from rib.tuning import tuned_key

    torch.set_num_threads(1)
    study_dir, out = Path(task.pop("study_dir")), Path(task.pop("out"))
    if time.time() - START > task.pop("start_before"):
        return {**task, "skipped": True}
    started, lines = time.time(), []
    try:
        data = study_dir / "data" / task["log"] / f"fold{task['fold']}"
        paths = ArtifactPaths.under(data / "seed0").replace(features=data / "features")
        params = steps.with_seed(
            load_params(study_dir / "params.yaml"), task["fold"]
        )  # as `rib benchmark` seeds a fold
        key = tuned_key(task["model"], task["variant"])
        params = dataclasses.replace(params, tuned={**params.tuned, key: task["settings"]})
        features = FeatureSet.load(paths.features)
        recommender = steps.make_recommender(task["model"], task["variant"], params, paths, log=lines.append)
        recommender.fit(features)
        k = params.evaluation.k
        validation = summarize(
            rank_targets(recommender.score, features.validation, params.evaluation, features.n_items), [k]
        )
        test_ranks = rank_targets(recommender.score, features.test, params.evaluation, features.n_items)
        result = {
            **task,
            "validation": validation,
            "value": selection_figure(validation, k),
            "test": summarize(test_ranks, [k]),
            "best_epoch": recommender.result.best_epoch,
            "history": recommender.result.history,
            "seconds": round(time.time() - started, 1),
            "device": recommender.result.device,
            "test_ranks": np.where(np.isinf(test_ranks), -1.0, test_ranks).tolist(),  # -1: an unseen target
        }
    except Exception:
        result = {**task, "error": traceback.format_exc()[-2000:], "log": lines[-5:]}
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    figures = (
        f"validation {result['value']:.4f}, test Recall@20 {result['test']['recall@20']:.4f}, best epoch "
        f"{result['best_epoch']}, {result['seconds']} s"
        if "value" in result
        else "ERROR " + result["error"][-300:]
    )
    print(
        f"{time.time() - START:5.0f} s {task['phase']} {task['log']} {task['study']} trial {task['trial']} "
        f"fold {task['fold']}: {figures}",
        flush=True,
    )
    return result


def run(study_dir: Path, out: Path, workers: int, tune_until: float, test_until: float) -> None:
    """Every trial (round-robin over the studies), then each study's best on folds 1 and 2."""
    out.mkdir(parents=True, exist_ok=True)
    studies = json.loads((study_dir / "tasks.json").read_text())["studies"]
    common = {"study_dir": str(study_dir), "out": str(out)}
    tuning = [
        {
            **common,
            "phase": "tune",
            "log": s["log"],
            "study": s["study"],
            "model": s["model"],
            "variant": s["variant"],
            "trial": i,
            "fold": 0,
            "settings": s["trials"][i],
            "start_before": tune_until,
        }
        for i in range(max(len(s["trials"]) for s in studies))
        for s in studies
        if i < len(s["trials"])
    ]
    with get_context("spawn").Pool(workers) as pool:
        done = [r for r in pool.imap_unordered(run_one, tuning) if "value" in r]
        tests = []
        for s in studies:
            tried = [r for r in done if (r["log"], r["study"]) == (s["log"], s["study"])]
            if tried:
                best = max(tried, key=lambda r: r["value"])
                print(f"best {s['log']} {s['study']}: trial {best['trial']} of {len(tried)}", flush=True)
                tests += [
                    {
                        **common,
                        **{k: best[k] for k in ("log", "study", "model", "variant", "trial", "settings")},
                        "phase": "test",
                        "fold": fold,
                        "start_before": test_until,
                    }
                    for fold in (1, 2)
                ]
        list(pool.imap_unordered(run_one, tests))
    print(f"done in {time.time() - START:.0f} s", flush=True)


def table(study_dir: Path, results: Path, bench: dict[str, Path], tracking_uri: str | None) -> None:
    """Per log: each study's trials (validation), the 3-fold test rows, RIB minus each, paired."""
    import numpy as np

    from rib.config import EvaluationConfig
    from rib.evaluation.comparison import Evaluated, _paired, _resamples, build_comparison, difference_text, per_target

    evaluation = EvaluationConfig()
    k = evaluation.k
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows = [r for r in rows if "value" in r]
    for log, folder in bench.items():
        items, chosen = [], {}
        for fold in range(3):  # the best non-learned baseline, from `rib benchmark`'s own run
            base = folder / f"fold{fold}" / "seed0" / "baselines"
            for record in json.loads((base / "records.json").read_text()):
                if record["model"] == "V-SKNN":
                    items.append(Evaluated(record | {"fold": fold}, np.load(base / "ranks" / "V-SKNN.npz")["test"]))
        print(f"\n## {log}\n")
        for study in dict.fromkeys(r["study"] for r in rows if r["log"] == log):
            trials = sorted(
                (r for r in rows if (r["log"], r["study"], r["phase"]) == (log, study, "tune")),
                key=lambda r: r["trial"],
            )
            best = max(trials, key=lambda r: r["value"])
            print(
                f"- {study}: "
                + "; ".join(
                    f"{'**' if r is best else ''}trial {r['trial']} {r['validation'][f'recall@{k}']:.4f} / "
                    f"{r['validation'][f'mrr@{k}']:.4f}{'**' if r is best else ''}"
                    for r in trials
                )
            )
            tested = {  # the chosen setting's test runs (with their ranks); fold 0: the best trial itself if none
                r["fold"]: r
                for r in [best, *rows]
                if "test_ranks" in r
                and (r["log"], r["study"], r["trial"]) == (log, study, best["trial"])
                and (r["phase"] == "test" or r is best)
            }
            if len(tested) < 3:  # a study without its test runs (`run --test-until 0`): its trials alone
                continue
            for r in tested.values():
                ranks = np.array(r["test_ranks"], dtype=float)
                ranks[ranks < 0] = np.inf
                record = {"model": r["model"], "variant": r["variant"], "seed": 0, "fold": r["fold"]}
                items.append(Evaluated(record | {"validation": r["validation"], "test": r["test"]}, ranks))
                chosen[(r["model"], r["fold"])] = r
            if tracking_uri:
                log_trials(tracking_uri, log, study, trials)
        document = build_comparison(items, evaluation, synthetic=False, data=log)
        print(f"\n| model | input | Recall@{k} | MRR@{k} | best epochs |\n|---|---|---:|---:|---|")
        for row in document["results"]:
            epochs = [chosen[(row["model"], f)]["best_epoch"] for f in range(3) if (row["model"], f) in chosen]
            print(
                f"| {row['model']} | {row['variant'] or '-'} | {row[f'recall@{k}']:.4f} ± {row[f'recall@{k}_std']:.4f} "
                f"| {row[f'mrr@{k}']:.4f} | {epochs or '-'} |"
            )
        vectors: dict = {}
        for item in items:
            key = (item.record["model"], item.record["variant"])
            for metric, values in per_target(item.ranks, k).items():
                vectors.setdefault(key, {}).setdefault(metric, {})[item.record["fold"]] = values
        resamples = _resamples(vectors, [0, 1, 2], evaluation)
        rib = next((key for key in vectors if key[0] == "RIB"), None)
        if rib is None:
            continue
        for other in (key for key in vectors if key != rib):
            figures = [_paired(vectors, rib, other, m, resamples) for m in (f"recall@{k}", f"mrr@{k}")]
            print(
                f"- RIB {rib[1]} minus {other[0]} {other[1] or ''}: "
                + ", ".join(
                    f"{m} {difference_text({m: p}, m)}"
                    for m, p in zip((f"Recall@{k}", f"MRR@{k}"), figures, strict=True)
                )
            )


def across_logs(results: list[Path]) -> None:
    """Each study's trials on every log at once (the same settings: the same draws): the setting
    with the best sum of validation Recall@20 + MRR@20 over the logs is the default that holds."""
    rows = [json.loads(line) for path in results for line in path.read_text().splitlines()]
    by_study: dict = {}
    for r in rows:
        if "value" in r and r["phase"] == "tune":
            by_study.setdefault(r["study"], {}).setdefault(r["trial"], {})[r["log"]] = r
    for study, trials in by_study.items():
        logs = sorted({log for by_log in trials.values() for log in by_log})
        complete = {t: by_log for t, by_log in trials.items() if len(by_log) == len(logs)}
        best = max(complete, key=lambda t: sum(r["value"] for r in complete[t].values()))
        print(f"\n{study} over {', '.join(logs)} (validation Recall@20 / MRR@20; trial 0: the shipped setting)")
        for t in sorted(complete):
            cells = "  ".join(
                f"{complete[t][log]['validation']['recall@20']:.4f}/{complete[t][log]['validation']['mrr@20']:.4f}"
                for log in logs
            )
            total = sum(r["value"] for r in complete[t].values())
            print(
                f"  {'*' if t == best else ' '} trial {t}: {cells}  sum {total:.4f}  "
                + json.dumps(complete[t][logs[0]]["settings"])
            )


def log_trials(tracking_uri: str, log: str, study: str, trials: list[dict]) -> None:
    """Every trial of a study as an MLflow run of experiment `rib-tuning`, as `rib tune` logs its own."""
    import mlflow

    from rib.ops.tracking import TrackingConfig, tracked_run

    config = TrackingConfig(tracking_uri=tracking_uri, experiment="rib-tuning")
    for trial in trials:
        tags = {"study": f"{log}:{study}", "where": trial.get("device", "")}
        with tracked_run(config, f"{log} {study} trial {trial['trial']}", tags):
            settings = trial["settings"] or {"model": {"shipped": True}}
            mlflow.log_params({f"model.{k}": v for k, v in settings.get("model", {}).items()})
            mlflow.log_params({f"train.{k}": v for k, v in settings.get("train", {}).items()})
            mlflow.log_metrics(
                {f"validation_{m.replace('@', '_at_')}": float(v) for m, v in trial["validation"].items()}
                | {"best_epoch": trial["best_epoch"]}
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("plan")
    p.add_argument("study_dir", type=Path)
    p.add_argument("--bench", nargs="+", required=True, help="LOG=FOLDER of `rib benchmark --out FOLDER`")
    p.add_argument("--studies", nargs="+", required=True, help="MODEL/VARIANT, or MODEL for a baseline network")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    r = sub.add_parser("run")
    r.add_argument("study_dir", type=Path)
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "study_out")))
    r.add_argument("--workers", type=int, default=15)
    r.add_argument("--tune-until", type=float, default=200, help="seconds: no trial starts after")
    r.add_argument("--test-until", type=float, default=400, help="seconds: no test run starts after")
    t = sub.add_parser("table")
    t.add_argument("study_dir", type=Path)
    t.add_argument("results", type=Path, nargs="+")
    t.add_argument("--bench", nargs="+", required=True)
    t.add_argument("--mlflow", default=None, help="a tracking URI: every trial becomes a run of rib-tuning")
    a = sub.add_parser("across", help="each study's trials over every log at once: the default that holds")
    a.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    if args.step == "plan":
        plan(args.study_dir, _pairs(args.bench), args.studies, args.trials, args.params)
    elif args.step == "run":
        run(args.study_dir.resolve(), args.out.resolve(), args.workers, args.tune_until, args.test_until)
    elif args.step == "across":
        across_logs(args.results)
    else:
        merged = args.study_dir / "results.jsonl"
        merged.write_text("".join(path.read_text() for path in args.results))
        table(args.study_dir, merged, _pairs(args.bench), args.mlflow)


def _pairs(values: list[str]) -> dict[str, Path]:
    return {name: Path(folder) for name, folder in (value.split("=", 1) for value in values)}


if __name__ == "__main__":
    main()
