"""Benchmark: the synthetic generator and DuckDB feature building on N synthetic micro-behaviors.

Each stage runs in its own process, so its wall time and peak resident memory are its own.
Target on the 2-core machine: features for 10M micro-behaviors in at most 60 s and 4 GB.

    .venv/bin/python benchmarks/features_10m.py [--micro-behaviors 10000000] [--out bench_out]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from stages import run_stage  # benchmarks/stages.py, beside this script

MEAN_PER_SESSION = 40.0  # micro-behaviors per session with the default SyntheticConfig


def stage_generate(out: Path, n_micro: int, n_skus: int) -> None:
    from rib.config import SyntheticConfig
    from rib.data.synthetic import generate

    config = SyntheticConfig(n_sessions=int(n_micro / MEAN_PER_SESSION), n_skus=n_skus, n_categories=200)
    print(json.dumps(generate(config, out / "micro_behaviors.parquet")))


def stage_features(out: Path) -> None:
    from rib.config import FeatureConfig
    from rib.features.build import build_features

    summary = build_features(out / "micro_behaviors.parquet", out / "features", FeatureConfig())
    print(json.dumps({split: s["examples"] for split, s in summary["splits"].items()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--micro-behaviors", type=int, default=10_000_000)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--stage", choices=["generate", "features"])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "generate":
        return stage_generate(out, args.micro_behaviors, args.skus)
    if args.stage == "features":
        return stage_features(out)

    common = ["--out", str(out), "--micro-behaviors", str(args.micro_behaviors), "--skus", str(args.skus)]
    gen_seconds, gen_gb = run_stage(__file__, ["--stage", "generate", *common])
    import pyarrow.parquet as pq

    n_rows = pq.read_metadata(out / "micro_behaviors.parquet").num_rows
    feat_seconds, feat_gb = run_stage(__file__, ["--stage", "features", *common])
    print(f"synthetic micro-behaviors: {n_rows:,} ({args.skus:,} SKUs), {os.cpu_count()} CPUs")
    print(f"generator: {gen_seconds:6.1f} s  peak RSS {gen_gb:.2f} GB  ({n_rows / gen_seconds / 1e6:.2f} M rows/s)")
    print(f"features:  {feat_seconds:6.1f} s  peak RSS {feat_gb:.2f} GB  ({n_rows / feat_seconds / 1e6:.2f} M rows/s)")
    print(f"target: features <= 60 s and <= 4 GB: {'met' if feat_seconds <= 60 and feat_gb <= 4 else 'NOT met'}")


if __name__ == "__main__":
    main()
