"""Benchmark: the synthetic generator and feature building on N synthetic micro-behaviors.

Each stage runs in its own process, so its wall time and peak resident memory are its own (for
Spark: of the largest process, the JVM or Python). Target on the 2-core machine: DuckDB features for
10M micro-behaviors in at most 60 s and 4 GB. `--engines duckdb spark` builds with both and checks
that the outputs are identical (Spark in local[N], N = the machine's cores).

    .venv/bin/python benchmarks/features_10m.py [--micro-behaviors 10000000] [--engines duckdb spark] [--out bench_out]
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


def stage_features(out: Path, engine: str) -> None:
    from rib.config import FeatureConfig
    from rib.features.build import build_features

    config = FeatureConfig(
        engine=engine, spark_master=f"local[{os.cpu_count()}]", spark_conf={"spark.driver.memory": "8g"}
    )
    summary = build_features(out / "micro_behaviors.parquet", out / f"features_{engine}", config)
    print(json.dumps({split: s["examples"] for split, s in summary["splits"].items()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--micro-behaviors", type=int, default=10_000_000)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--engines", nargs="+", choices=["duckdb", "spark"], default=["duckdb"])
    parser.add_argument("--stage", choices=["generate", "features"])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage == "generate":
        return stage_generate(out, args.micro_behaviors, args.skus)
    if args.stage == "features":
        return stage_features(out, args.engines[0])

    common = ["--out", str(out), "--micro-behaviors", str(args.micro_behaviors), "--skus", str(args.skus)]
    gen_seconds, gen_gb = run_stage(__file__, ["--stage", "generate", *common])
    import pyarrow.parquet as pq

    n_rows = pq.read_metadata(out / "micro_behaviors.parquet").num_rows
    figures = {
        engine: run_stage(__file__, ["--stage", "features", "--engines", engine, *common]) for engine in args.engines
    }
    print(f"SYNTHETIC micro-behaviors: {n_rows:,} ({args.skus:,} SKUs), {os.cpu_count()} CPUs")
    print(f"generator: {gen_seconds:6.1f} s  peak RSS {gen_gb:.2f} GB  ({n_rows / gen_seconds / 1e6:.2f} M rows/s)")
    for engine, (seconds, gb) in figures.items():
        memory = f"peak RSS {gb:.2f} GB" + (" (Python's; the JVM's not counted)" if engine == "spark" else "")
        print(f"features ({engine}): {seconds:6.1f} s  {memory}  ({n_rows / seconds / 1e6:.2f} M rows/s)")
    if "duckdb" in figures:
        seconds, gb = figures["duckdb"]
        print(f"target: DuckDB features <= 60 s and <= 4 GB: {'met' if seconds <= 60 and gb <= 4 else 'NOT met'}")
    if len(figures) == 2:
        print(f"outputs identical across engines: {_identical(out / 'features_duckdb', out / 'features_spark')}")


def _identical(a: Path, b: Path) -> bool:
    import numpy as np

    arrays = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    same = arrays == sorted(p.relative_to(b) for p in b.rglob("*.npy"))
    same = same and all(np.array_equal(np.load(a / p, mmap_mode="r"), np.load(b / p, mmap_mode="r")) for p in arrays)
    return same and (a / "vocab.json").read_text() == (b / "vocab.json").read_text()


if __name__ == "__main__":
    main()
