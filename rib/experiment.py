"""One experiment = word2vec pretraining, every baseline, and RIB / RIB-Attention for each input
variant, over one or more seeds; the result is the comparison table.

Hyperparameters come from params.yaml (chosen on validation only: see README, "Tuning"); the
epoch of each run is chosen by early stopping on validation; test is evaluated once per run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from rib.params import Params

MODELS = {"RIB": True, "RIB-Attention": False}  # name -> has the attention layer
DETERMINISTIC_BASELINES = {"POP", "S-POP", "Item-KNN"}


def model_name(model: str, variant: str) -> str:
    """Folder name of a trained model, e.g. RIB-sku_micro (dvc.yaml builds the same from params)."""
    return f"{model}-{variant}"


def rib_config(features_dir: str | Path, params: Params, model: str, variant: str):
    from rib.train import model_config_for

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {list(MODELS)}")
    attention = MODELS[model]
    options = dataclasses.asdict(params.model) | {"repeat": params.model.repeat and attention}
    return model_config_for(features_dir, variant=variant, attention=attention, **options)


def train_config(params: Params, seed: int | None = None):
    from rib.train import TrainConfig

    return TrainConfig(
        **dataclasses.asdict(params.train) | ({"seed": seed} if seed is not None else {}),
        window=params.features.max_len,
        k=params.evaluation.ks[0],
        exclude_last_sku=params.evaluation.exclude_last_sku,
    )


def run_word2vec(features_dir: str | Path, out_dir: str | Path, params: Params, seed: int | None = None) -> dict:
    from rib.word2vec import pretrain

    config = params.word2vec if seed is None else dataclasses.replace(params.word2vec, seed=params.word2vec.seed + seed)
    dims = {"sku": params.model.d_sku, "activity": params.model.d_activity, "dwell": params.model.d_dwell}
    return pretrain(features_dir, out_dir, dims, config)


def train_one(
    features_dir: str | Path,
    word2vec_dir: str | Path | None,
    out_dir: str | Path,
    params: Params,
    model: str,
    variant: str,
    seed: int | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train one RIB model, save its checkpoint and metrics.json in `out_dir`, return its record."""
    from rib.dataset import load_vocab
    from rib.recommend import save_checkpoint
    from rib.train import train_rib
    from rib.word2vec import load_vectors

    model_config = rib_config(features_dir, params, model, variant)
    config = train_config(params, seed)
    pretrained = load_vectors(word2vec_dir) if word2vec_dir else None
    result = train_rib(features_dir, model_config, config, pretrained, log=log, on_epoch=on_epoch)
    record = {
        "model": model,
        "variant": variant,
        "seed": config.seed,
        "best_epoch": result.best_epoch,
        "validation": result.validation,
        "test": result.test,
        "history": result.history,
        "train_seconds": result.train_seconds,
        "micro_behaviors_per_second": result.micro_behaviors_per_second,
        "device": result.device,
        "max_len": params.features.max_len,
    }
    vocab = load_vocab(features_dir)
    save_checkpoint(
        result.model, out_dir, vocab, extra={"train": dataclasses.asdict(config), "max_len": params.features.max_len}
    )
    (Path(out_dir) / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    (Path(out_dir) / "history.json").write_text(json.dumps(record["history"], indent=2) + "\n")  # DVC plots
    return record


def run_experiment(
    features_dir: str | Path,
    out_dir: str | Path,
    params: Params,
    seeds: int,
    models: list[str],
    variants: list[str],
    baselines: list[str],
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every baseline and every (model, variant) for `seeds` seeds; returns all records."""
    from rib.compare import evaluate_baselines
    from rib.word2vec import load_vectors

    out_dir = Path(out_dir)
    records: list[dict] = []
    for seed in range(seeds):
        word2vec_dir = out_dir / "word2vec" / f"seed{seed}"
        run_word2vec(features_dir, word2vec_dir, params, seed)
        names = [b for b in baselines if seed == 0 or b not in DETERMINISTIC_BASELINES]
        records += evaluate_baselines(
            features_dir,
            names,
            params.evaluation.ks,
            params.evaluation.exclude_last_sku,
            word2vec_sku=load_vectors(word2vec_dir, ("sku",))["sku"][0],
            bpr=dataclasses.asdict(params.bpr),
            seed=seed,
        )
        for model in models:
            for variant in variants:
                log(f"seed {seed}: training {model} on {variant}")
                folder = out_dir / "models" / model_name(model, variant) / f"seed{seed}"
                records.append(train_one(features_dir, word2vec_dir, folder, params, model, variant, seed, log=log))
    return records
