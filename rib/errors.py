"""Errors that stop a step, each naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputFileError(Exception):
    """A whole input file cannot be used (missing, empty, not text, wrong layout)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_input_file(path: str | Path, *, text: bool) -> Path:
    """Fail early and clearly on a file that is missing, empty or (for text formats) binary."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if not path.is_file():
        raise InputFileError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty")
    if text:  # a line that is not UTF-8 is quarantined by the reader; NUL bytes mean a binary file
        with path.open("rb") as handle:
            head = handle.read(65536)
        if b"\x00" in head:
            raise InputFileError(path, "not a text file (contains NUL bytes)")
    return path
