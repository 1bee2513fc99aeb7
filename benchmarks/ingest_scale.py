"""Benchmark: a month of a big shop's log, from raw CSV to features, in bounded memory.

Writes a log of N rows in the Taobao UserBehavior layout (`user_id,item_id,category_id,
behavior_type,timestamp`, no header, unix seconds, sorted by user then time as Taobao's export
is): users with several sessions of about 25 events over 30 days, Zipf-popular items in 1,000
categories, behaviours pv 89% / cart 5.5% / fav 3% / buy 2.5%. Then, each in its own process
so that its wall time and peak resident memory are its own:

    ingest      the events reader (docs/examples/taobao.yaml): parse, quarantine, sessions, dwell
    quality     the Great Expectations raw suite on GX's SQL datasource over DuckDB
    features    DuckDB features: splits, vocabularies, dwell and interval buckets, example arrays

Targets on the 2-core machine: peak RSS under 8 GB in every stage; ingest + features faster than
1M events/s.

    .venv/bin/python benchmarks/ingest_scale.py --rows 100000000 --out bench_out/scale
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stages import run_stage  # benchmarks/stages.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
CHUNK_USERS = 200_000


def stage_generate(out: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    path = out / "UserBehavior.csv"
    behaviours = np.array(["pv", "cart", "fav", "buy"])
    start = 1_511_539_200  # 2017-11-25, as in Taobao's export
    written, user = 0, 0
    with pacsv.CSVWriter(
        path,
        pa.schema([("u", pa.int64()), ("i", pa.int64()), ("c", pa.int64()), ("b", pa.string()), ("t", pa.int64())]),
        write_options=pacsv.WriteOptions(include_header=False),
    ) as writer:
        while written < rows:
            per_user = rng.poisson(100, CHUNK_USERS) + 1
            per_user = per_user[: np.searchsorted(np.cumsum(per_user), rows - written) + 1]
            n = int(per_user.sum())
            users = np.repeat(np.arange(user, user + len(per_user)), per_user)
            # Sessions of ~25 events: a new session every so often, hours apart; seconds within.
            new_session = rng.random(n) < 1 / 25
            gaps = np.where(new_session, rng.integers(3_600, 3 * 86_400, n), rng.integers(1, 120, n))
            first = np.concatenate([[0], np.cumsum(per_user)[:-1]])
            gaps[first] = rng.integers(0, 86_400, len(first))
            times = start + np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], per_user)
            items = (rng.zipf(1.3, n) * 7919) % 4_000_000
            table = pa.table(
                {
                    "u": users,
                    "i": items,
                    "c": items % 1000,
                    "b": behaviours[rng.choice(4, n, p=[0.89, 0.055, 0.03, 0.025])],
                    "t": times,
                }
            )
            writer.write_table(table)
            written += n
            user += len(per_user)
    print(json.dumps({"rows": written, "users": user, "bytes": path.stat().st_size}))


def stage_ingest(out: Path) -> None:
    from rib.config import DataConfig
    from rib.data.ingest import ingest_logs

    config = DataConfig(
        format="events", inputs=[str(out / "UserBehavior.csv")], events_config=str(REPO / "docs/examples/taobao.yaml")
    )
    report = ingest_logs(config, out / "ingest")
    print(json.dumps({k: getattr(report, k) for k in ("read", "kept", "quarantined", "sessions")}))


def stage_quality(out: Path) -> None:
    from rib.ops.quality import prepare_raw, validate

    database = prepare_raw(out / "ingest" / "micro_behaviors.parquet", out / "quality")
    summary = validate(database, "raw_micro_behaviors", "raw_micro_behaviors", out / "quality")
    print(json.dumps({k: summary[k] for k in ("rows", "passed", "failed", "critical_failed")}))


def stage_features(out: Path) -> None:
    from rib.config import FeatureConfig
    from rib.features.build import build_features

    summary = build_features(out / "ingest" / "micro_behaviors.parquet", out / "features", FeatureConfig())
    print(json.dumps({split: s["examples"] for split, s in summary["splits"].items()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--out", default="bench_out/scale")
    parser.add_argument("--stage", choices=["generate", "ingest", "quality", "features"])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.stage:
        stages = {
            "generate": lambda: stage_generate(out, args.rows),
            "ingest": lambda: stage_ingest(out),
            "quality": lambda: stage_quality(out),
            "features": lambda: stage_features(out),
        }
        return stages[args.stage]()
    common = ["--out", str(out), "--rows", str(args.rows)]
    figures = {}
    for stage in ("generate", "ingest", "quality", "features"):
        figures[stage] = run_stage(__file__, ["--stage", stage, *common])
    rows = args.rows
    print(f"\n{rows:,} events in the Taobao layout, {os.cpu_count()} CPUs")
    for stage, (seconds, gb) in figures.items():
        print(f"{stage:9s} {seconds:8.1f} s  peak RSS {gb:5.2f} GB  ({rows / seconds / 1e6:5.2f} M events/s)")
    chain = figures["ingest"][0] + figures["features"][0]
    peak = max(gb for stage, (_, gb) in figures.items() if stage != "generate")
    print(
        f"ingest + features: {chain:.1f} s = {rows / chain / 1e6:.2f} M events/s (target > 1): "
        f"{'met' if rows / chain > 1e6 else 'NOT met'}"
    )
    print(f"peak RSS of the chain: {peak:.2f} GB (target < 8): {'met' if peak < 8 else 'NOT met'}")


if __name__ == "__main__":
    main()
