"""The JD micro-behavior token format: one session per line, tokens
`sku+behavior_type+category+time_interval+dwell_time` separated by spaces.

A malformed token goes to the quarantine and the rest of its line is kept; positions are
renumbered over the kept tokens. An empty line is an empty session and is quarantined whole, and
so is a line that is not UTF-8 (`invalid_encoding`). The file is read line by line and the table
written in row groups, so memory stays bounded whatever the file's size.
Sessions are named `<file stem>:<line number>`; the format has no users or timestamps.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rib.data.report import IngestReport
from rib.errors import InputFileError, check_input_file
from rib.io import ChunkedParquetWriter
from rib.schema import MICRO_BEHAVIOR_SCHEMA, QUARANTINE_SCHEMA

FIELDS = ("sku", "behavior_type", "category", "time_interval", "dwell_time")


def is_ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() also accepts superscripts ('²') and other digits float() cannot read."""
    return text.isascii() and text.isdigit()


def classify_bad_token(parts: list[str]) -> tuple[str, str]:
    """Return (reason, detail) for a token that failed the fast check."""
    if len(parts) != len(FIELDS):
        return "wrong_field_count", f"expected {len(FIELDS)} '+'-separated fields, got {len(parts)}"
    values = dict(zip(FIELDS, parts, strict=True))
    dwell = values["dwell_time"]
    if dwell == "":
        return "missing_dwell", "dwell_time is empty"
    if dwell.startswith("-") and is_ascii_digits(dwell[1:]):
        return "negative_dwell", f"dwell_time={dwell}"
    interval = values["time_interval"]
    if interval.startswith("-") and is_ascii_digits(interval[1:]):
        return "negative_time_interval", f"time_interval={interval}"
    for name, value in values.items():
        if not is_ascii_digits(value):
            return "non_numeric_field", f"{name}={value!r}"
    return "activity_out_of_range", f"behavior_type={values['behavior_type']} is not in 1..10"


def read_jd(inputs: list, table_path: Path, quarantine_path: Path):
    paths = [check_input_file(p, text=True) for p in inputs]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise InputFileError(paths[0], f"two inputs share a file name {stems}; session ids would collide")
    report = IngestReport(format="jd", inputs=[str(p) for p in paths])
    reasons: Counter[str] = Counter()
    with (
        ChunkedParquetWriter(table_path, MICRO_BEHAVIOR_SCHEMA) as table,
        ChunkedParquetWriter(quarantine_path, QUARANTINE_SCHEMA) as quarantine,
    ):
        for path in paths:
            counts = {"read": 0, "kept": 0, "quarantined": 0, "sessions": 0}
            with path.open("rb") as handle:  # line by line: memory stays bounded whatever the file's size
                for line_number, raw in enumerate(handle, start=1):
                    try:
                        line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")  # a BOM is no token
                    except UnicodeDecodeError as error:  # one damaged line costs that line
                        counts["read"] += 1
                        counts["quarantined"] += 1
                        reasons["invalid_encoding"] += 1
                        detail = f"not UTF-8 ({error.reason} at byte {error.start} of the line)"
                        text = raw.decode("utf-8", "replace").rstrip("\r\n")
                        quarantine.append_row(str(path), line_number, None, "invalid_encoding", detail, text)
                        continue
                    _read_line(path, path.stem, line_number, line, table, quarantine, counts, reasons)
            if counts["kept"] == 0:
                raise InputFileError(path, "no usable micro-behavior in the file (not the JD token format?)")
            report.per_file[str(path)] = counts
            for key in ("read", "kept", "quarantined", "sessions"):
                setattr(report, key, getattr(report, key) + counts[key])
    report.reasons = dict(sorted(reasons.items()))
    return report


def _read_line(path, stem, line_number, line, table, quarantine, counts, reasons) -> None:
    tokens = line.split()
    if not tokens:
        counts["read"] += 1
        counts["quarantined"] += 1
        reasons["empty_session"] += 1
        quarantine.append_row(
            str(path), line_number, None, "empty_session", "line has no micro-behaviors", line.rstrip("\r\n")
        )
        return
    session_id = f"{stem}:{line_number}"
    position = 0
    for token_index, token in enumerate(tokens):
        counts["read"] += 1
        parts = token.split("+")
        if len(parts) == 5 and all(is_ascii_digits(part) for part in parts) and 1 <= int(parts[1]) <= 10:
            sku, activity, category, interval, dwell = parts
            table.append_row(
                session_id, None, position, sku, category, int(activity), float(dwell), float(interval), None
            )
            position += 1
            counts["kept"] += 1
        else:
            reason, detail = classify_bad_token(parts)
            reasons[reason] += 1
            counts["quarantined"] += 1
            quarantine.append_row(str(path), line_number, token_index, reason, detail, token)
    if position:
        counts["sessions"] += 1
