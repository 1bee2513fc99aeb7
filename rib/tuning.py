"""`rib tune`: the same tuning budget for every learned model, on the validation split only.

One Optuna study per model and input variant: a seeded TPE sampler draws settings from the model's
search space (`SEARCH_SPACES`, below: the same training settings for every network plus its own
architecture), each trial trains on the training split with early stopping, reports its
validation Recall@k after every epoch (a median pruner stops trials far behind), and is scored by
its best epoch's validation Recall@k + MRR@k. The test split is never read. Every trial is an
MLflow run (experiment `rib-tuning`, tagged with the study); the best configuration goes to the
`tuned` section of the params file (comments kept), where the pipeline and `rib benchmark` read it.

Search spaces (the trial count is the same for every model: `--trials`):

    every network   learning_rate log-uniform [2e-4, 3e-2]; weight_decay log-uniform [1e-4, 1e-1];
                    batch_size {32, 64, 128, 256}; dropout uniform [0, 0.5]
    RIB             hidden {50, 100, 200}; neighbors {on, off}; explore_loss {0, 0.25, 0.5, 1};
                    recency {on, off}; attention_inputs {on, off}; repeat_scorer {on, off};
                    gate_holdout {0, 0.1, 0.2}; explore_new_only {on, off}; explore_own {on, off};
                    repeat_lr_scale {1, 10, 30};
                    explore_pooling {attention, last} (last: repeat_scorer on); explore_ranking
                    {gates, validation}  (d_sku etc. follow word2vec)
    RIB-Attention   hidden {50, 100, 200}
    GRU4Rec, NARM   hidden {50, 100, 200}; d_sku {32, 64, 128}
    SASRec          d_sku {32, 64, 128}; blocks {1, 2, 3}; heads {1, 2}
    SR-GNN, MKM-SR, EMBSR   d_sku {50, 100, 200} (every node state); steps {1, 2}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from rib import steps
from rib.artifacts import ArtifactPaths
from rib.config import Params


def _training(trial) -> dict:
    # Wide enough to hold every model's shipped settings (NARM 2e-2 / 64, SASRec and the graph
    # networks 5e-3 / 64, the train section's 2e-3 / 256): a study could not find what a hand
    # search had found outside [2e-4, 5e-3].
    return {
        "learning_rate": trial.suggest_float("learning_rate", 2e-4, 3e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-4, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
    }


def _rib(trial) -> dict:
    pooling = trial.suggest_categorical("explore_pooling", ["attention", "last"])
    scorer = True if pooling == "last" else trial.suggest_categorical("repeat_scorer", [True, False])
    return {
        "explore_pooling": pooling,
        "explore_own": trial.suggest_categorical("explore_own", [True, False]),
        "explore_ranking": trial.suggest_categorical("explore_ranking", ["gates", "validation"]),
        "hidden": trial.suggest_categorical("hidden", [50, 100, 200]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "neighbors": trial.suggest_categorical("neighbors", [True, False]),
        "explore_loss": trial.suggest_categorical("explore_loss", [0.0, 0.25, 0.5, 1.0]),
        "recency": trial.suggest_categorical("recency", [True, False]),
        "attention_inputs": trial.suggest_categorical("attention_inputs", [True, False]),
        "repeat_scorer": scorer,
        "gate_holdout": trial.suggest_categorical("gate_holdout", [0.0, 0.1, 0.2]),
        "explore_new_only": trial.suggest_categorical("explore_new_only", [True, False]),
        "repeat_lr_scale": trial.suggest_categorical("repeat_lr_scale", [1.0, 10.0, 30.0]),
    }


def _recurrent(trial) -> dict:
    return {
        "hidden": trial.suggest_categorical("hidden", [50, 100, 200]),
        "d_sku": trial.suggest_categorical("d_sku", [32, 64, 128]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


def _graph(trial) -> dict:
    return {
        "d_sku": trial.suggest_categorical("d_sku", [50, 100, 200]),
        "steps": trial.suggest_categorical("steps", [1, 2]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


SEARCH_SPACES: dict[str, Callable] = {
    "RIB": _rib,
    "RIB-Attention": lambda trial: {
        "hidden": trial.suggest_categorical("hidden", [50, 100, 200]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    },
    "GRU4Rec": _recurrent,
    "NARM": _recurrent,
    "SASRec": lambda trial: {
        "d_sku": trial.suggest_categorical("d_sku", [32, 64, 128]),
        "blocks": trial.suggest_categorical("blocks", [1, 2, 3]),
        "heads": trial.suggest_categorical("heads", [1, 2]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    },
    "SR-GNN": _graph,
    "MKM-SR": _graph,
    "EMBSR": _graph,
}
for _name in ("GRU4Rec", "NARM", "SASRec"):  # on visits: the same space
    SEARCH_SPACES[f"{_name} Visits"] = SEARCH_SPACES[_name]


def tuned_key(model: str, variant: str | None) -> str:
    """The key of a model's entry in `tuned`: RIB/sku_micro for a model on an input variant, SASRec for a baseline."""
    return f"{model}/{variant}" if model in steps.LEARNED_MODELS else model


def tune(
    params: Params,
    paths: ArtifactPaths,
    model: str,
    variant: str | None,
    trials: int,
    tracking=None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the study on the features under `paths`; returns {"model": ..., "train": ..., "value": ...}."""
    import optuna

    from rib.evaluation.metrics import evaluate
    from rib.features.dataset import FeatureSet
    from rib.models.train import selection_figure

    if model not in SEARCH_SPACES:
        raise ValueError(f"no search space for {model!r}; tunable models: {sorted(SEARCH_SPACES)}")
    features = FeatureSet.load(paths.features)
    k = params.evaluation.k
    key = tuned_key(model, variant)

    def objective(trial) -> float:
        model_settings, train_settings = SEARCH_SPACES[model](trial), _training(trial)
        tried = dataclasses.replace(
            params, tuned={**params.tuned, key: {"model": model_settings, "train": train_settings}}
        )
        recommender = steps.make_recommender(model, variant, tried, paths, log=lambda _: None)

        def report(record: dict) -> None:
            trial.report(record[f"validation_recall@{k}"], record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        recommender.on_epoch = report
        recommender.fit(features)
        figures = evaluate(recommender.score, features.validation, params.evaluation, features.n_items)
        value = selection_figure(figures, k)
        trial.set_user_attr("validation", figures)
        trial.set_user_attr("best_epoch", recommender.result.best_epoch)
        if tracking is not None:
            _log_trial(tracking, key, trial, model_settings, train_settings, figures)
        recall, mrr = figures[f"recall@{k}"], figures[f"mrr@{k}"]
        log(f"{key} trial {trial.number}: validation recall@{k} {recall:.4f} mrr@{k} {mrr:.4f}")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        study_name=key,
    )
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    model_keys = set(SEARCH_SPACES[model](optuna.trial.FixedTrial(best.params)))
    return {
        "model": {name: value for name, value in best.params.items() if name in model_keys},
        "train": {name: value for name, value in best.params.items() if name not in model_keys},
        "value": best.value,
        "validation": best.user_attrs["validation"],
        "trials": len(study.trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
    }


def _log_trial(tracking, key: str, trial, model_settings: dict, train_settings: dict, figures: dict) -> None:
    import mlflow

    from rib.ops.tracking import tracked_run

    tuning = dataclasses.replace(tracking, experiment="rib-tuning")
    with tracked_run(tuning, f"{key} trial {trial.number}", {"study": key}):
        mlflow.log_params({f"model.{k}": v for k, v in model_settings.items()})
        mlflow.log_params({f"train.{k}": v for k, v in train_settings.items()})
        mlflow.log_metrics(
            {f"validation_{k.replace('@', '_at_')}": float(v) for k, v in figures.items() if k != "targets"}
        )


def write_tuned(params_path: str | Path, key: str, best: dict) -> None:
    """Write the best configuration to the `tuned` section of the params file, keeping its comments."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = Path(params_path)
    document = yaml.load(path.read_text())
    if document.get("tuned") is None:
        document["tuned"] = {}
    document["tuned"][key] = {part: dict(best[part]) for part in ("model", "train") if best[part]}
    with path.open("w") as handle:
        yaml.dump(document, handle)


def tune_benchmark(
    params: Params,
    paths: ArtifactPaths,
    models: list[str],
    variants: list[str],
    trials: int,
    tracking=None,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """`rib benchmark --tune N`: N trials for every learned model (each on the variants it reads)
    and learned baseline among `models`, on the validation split under `paths`; the `tuned` entries."""
    tuned = {}
    for model in models:
        if model not in SEARCH_SPACES:
            continue
        for variant in [v for v in variants if steps.reads(model, v)] if model in steps.LEARNED_MODELS else [None]:
            key = tuned_key(model, variant)
            log(f"tuning {key}: {trials} trials on validation")
            best = tune(params, paths, model, variant, trials, tracking, log=log)
            tuned[key] = {"model": best["model"], "train": best["train"]}
            log(f"tuned {key}: validation {best['validation']}, {best['trials']} trials ({best['pruned']} pruned)")
    return tuned
