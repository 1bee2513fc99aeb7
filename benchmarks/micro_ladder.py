"""What micro-behaviors are worth to RIB on the real logs: the ladder Visits, SKU, SKU+Micro-behaviors.

For each log (the two JD samples and the Taobao excerpt under ../shared/data; a log that is absent
is skipped with a message), `rib benchmark` with the session baselines (S-POP, S-POP+Item-KNN,
SKNN, V-SKNN: the best of the table on these logs) and RIB on the three inputs, every
next product, 3 folds x N seeds, then the goal's lines, each a paired 95% bootstrap interval on the
same test targets (met: the interval excludes 0 on the right side):

- RIB SKU+Micro-behaviors minus RIB SKU on MRR@20, minus RIB Visits on Recall@20 and MRR@20;
- RIB SKU+Micro-behaviors minus the best baseline (each metric's own) on both;
- what training adds: RIB minus RIB-untrained (the same mixture at initialization) on both.

The same lines follow on the validation split (the same models, its own targets): a line not met on
test but clear on validation, or the other way round, is the split's sampling rather than the
model's. Read them as such: the epochs and the explore shift were chosen there, so what training
adds is flattered on validation; the differences between inputs much less (each input's choice is
flattered alike).

Seeds: a target's figure in a fold is the mean over that fold's seeds (rib.evaluation.comparison),
so the intervals hold the split's sampling, not one initialization's luck: the difference of two
trainings of the same input on one seed moves by about as much as micro-behaviors add.

    .venv/bin/python benchmarks/micro_ladder.py [--seeds 3] [--out /tmp/micro_ladder] [--logs computers]
    .venv/bin/python benchmarks/micro_ladder.py --report /tmp/micro_ladder    # the lines of a finished run

The shipped params.yaml; on 2 cores about 18 minutes for JD Computers with 3 seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rib import steps
from rib.config import Params, load_params
from rib.evaluation.comparison import comparison_markdown, difference_text

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LOGS = {  # name -> (file, data.format, events config)
    "appliances": (SHARED / "jd" / "appliances.txt", "jd", None),
    "computers": (SHARED / "jd" / "computers.txt", "jd", None),
    "taobao": (SHARED / "taobao" / "UserBehavior_sample.csv", "events", str(ROOT / "docs/examples/taobao.yaml")),
}
VARIANTS = ["visits", "sku", "sku_micro"]
BASELINES = ["S-POP", "S-POP+Item-KNN", "SKNN", "V-SKNN"]


def goal_lines(document: dict) -> list[str]:
    """Each of the goal's paired differences with its interval and whether it is met."""
    k = document["k"]
    rows = {(r["model"], r["variant"]): r for r in document["results"]}
    checks = [
        (("RIB", "sku_micro"), f"mrr@{k}_vs_sku", "SKU+Micro-behaviors - SKU, MRR"),
        (("RIB", "sku_micro"), f"recall@{k}_vs_visits", "SKU+Micro-behaviors - Visits, Recall"),
        (("RIB", "sku_micro"), f"mrr@{k}_vs_visits", "SKU+Micro-behaviors - Visits, MRR"),
        (("RIB", "sku_micro"), f"recall@{k}_vs_best_baseline", "SKU+Micro-behaviors - best baseline, Recall"),
        (("RIB", "sku_micro"), f"mrr@{k}_vs_best_baseline", "SKU+Micro-behaviors - best baseline, MRR"),
    ]
    checks += [
        (("RIB", variant), f"{metric}@{k}_vs_untrained", f"trained - untrained, {variant}, {metric}")
        for variant in VARIANTS
        for metric in ("recall", "mrr")
    ]
    lines = []
    for key, field, label in checks:
        row = rows.get(key)
        if row is None or field not in row:
            lines.append(f"{label}: not in this run")
            continue
        difference = row[field]
        met = difference["significant"] and difference["difference"] > 0
        reference = f" (against {difference['reference']})" if "best_baseline" in field else ""
        lines.append(f"{label}{reference}: {difference_text(row, field)}  {'met' if met else 'NOT met'}")
    return lines


def report(log: str, params: Params, out: Path) -> None:
    """The goal's lines of a finished run under `out`: on test, then on validation."""
    runs = steps.benchmark_runs(out)
    for split in ("test", "validation"):
        document = steps.comparison_of(params, runs, [*BASELINES, "RIB"], VARIANTS, split)
        rib = next(r for r in document["results"] if r["model"] == "RIB")
        print(f"## {log}, {split}: {rib['n_test']} targets, {rib['folds']} folds x {rib['seeds']} seeds")
        print("\n".join(goal_lines(document)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="+", choices=list(LOGS), default=list(LOGS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="bench_out/micro_ladder")
    parser.add_argument("--report", type=Path, help="only print the lines of a finished run (its --out)")
    args = parser.parse_args()
    params = load_params(args.params)
    if args.report:
        for log in args.logs:
            if (args.report / log / "comparison" / "comparison.json").exists():
                report(log, params, args.report / log)
        return
    for log in args.logs:
        path, data_format, events_config = LOGS[log]
        if not path.exists():
            print(f"## {log}: {path} is not here, skipped")
            continue
        data = dataclasses.replace(params.data, format=data_format, inputs=[str(path)], events_config=events_config)
        train = dataclasses.replace(params.train, progress=False)
        document = steps.run_benchmark(
            dataclasses.replace(params, data=data, train=train),
            Path(args.out) / log,
            args.folds,
            args.seeds,
            BASELINES,
            ["RIB"],
            VARIANTS,
            log=lambda message: None,
        )
        print(comparison_markdown(document))
        report(log, params, Path(args.out) / log)


if __name__ == "__main__":
    main()
