"""Print the statistics the synthetic generator is calibrated on, next to the real JD samples.

.venv/bin/python benchmarks/synthetic_vs_jd.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rib.config import DataConfig, SyntheticConfig
from rib.data.ingest import ingest_logs
from rib.data.profile import profile
from rib.data.synthetic import generate

JD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "jd"


def main() -> None:
    columns: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        generate(SyntheticConfig(), Path(tmp) / "synthetic.parquet")
        columns["synthetic (default)"] = profile(Path(tmp) / "synthetic.parquet")
        for name in ("appliances", "computers"):
            path = JD_DIR / f"{name}.txt"
            if not path.exists():
                print(f"skipping {name}: {path} is absent")
                continue
            ingest_logs(DataConfig(format="jd", inputs=[str(path)]), Path(tmp) / name)
            columns[f"JD {name} (real)"] = profile(Path(tmp) / name / "micro_behaviors.parquet")
    names = list(columns)
    print("| statistic | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in columns[names[0]]:
        if key == "activity_share":
            for code in map(str, range(1, 11)):
                cells = [f"{columns[n]['activity_share'].get(code, 0):.3f}" for n in names]
                print(f"| activity {code} share | " + " | ".join(cells) + " |")
        else:
            print(f"| {key} | " + " | ".join(str(columns[n][key]) for n in names) + " |")


if __name__ == "__main__":
    main()
