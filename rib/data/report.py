"""The ingest report: what was read, kept and quarantined, per reason and per file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class IngestReport:
    """`read = kept + quarantined` always. The unit counted is one input record: a micro-behavior
    token (or an empty line) of a JD file, a row of an event log or of a canonical Parquet file."""

    format: str
    inputs: list[str]
    read: int = 0
    kept: int = 0
    quarantined: int = 0
    sessions: int = 0
    synthetic: bool = False
    data_version: str = ""  # md5 of the raw inputs, as DVC computes it (rib.data.ingest.data_version)
    reasons: dict[str, int] = field(default_factory=dict)
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)
    profile: dict = field(default_factory=dict)  # rib.data.profile of the canonical table
    days: list[str] = field(default_factory=list)  # with daily inputs: the days of the training window

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)
