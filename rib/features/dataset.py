"""Read the stored feature arrays back: a split (`SplitData`), padded mini-batches of its examples
(`Batch`, gathered without Python loops) and a whole features folder (`FeatureSet`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rib.schema import FEATURES

ARRAYS = (
    "sku",
    "activity",
    "dwell",
    "interval",
    "macro",
    "session_offsets",
    "example_start",
    "example_end",
    "example_target",
    "example_session",
    "example_is_last",
)


@dataclass
class Batch:
    """Left-aligned inputs, padded with 0 after each example's last micro-behavior."""

    inputs: np.ndarray  # (B, L, F) int64, F = len(FEATURES): sku, activity, dwell, interval
    lengths: np.ndarray  # (B,) int64, at least 1 for every example
    target: np.ndarray  # (B,) int64

    @property
    def sku(self) -> np.ndarray:  # (B, L)
        return self.inputs[..., 0]

    @property
    def last_sku(self) -> np.ndarray:  # (B,)
        return self.sku[np.arange(len(self.lengths)), self.lengths - 1]

    def visits_back(self) -> np.ndarray:
        """(B, L) how many visits (runs of one product) before the input's last one each position's
        visit is: 0 for the last visit's micro-behaviors (negative on padding)."""
        sku = self.sku
        start = np.ones(sku.shape, np.int64)
        start[:, 1:] = sku[:, 1:] != sku[:, :-1]
        visit = np.cumsum(start, axis=1)  # (B, L)
        return visit[np.arange(len(sku)), self.lengths - 1][:, None] - visit

    def visits_only(self) -> Batch:
        """The same inputs with one position per macro interaction (its last micro-behavior), the
        product alone: what the "visits" variant reads."""
        sku = self.sku
        following = np.zeros_like(sku)
        following[:, :-1] = sku[:, 1:]
        real = np.arange(sku.shape[1])[None, :] < self.lengths[:, None]
        keep = real & (following != sku)  # a visit's last micro-behavior (padding follows the last one)
        lengths = keep.sum(axis=1)
        order = np.argsort(~keep, axis=1, kind="stable")[:, : int(lengths.max(initial=0))]  # kept positions first
        valid = np.arange(order.shape[1])[None, :] < lengths[:, None]
        inputs = np.zeros((len(sku), order.shape[1], self.inputs.shape[2]), self.inputs.dtype)
        inputs[..., 0] = np.where(valid, np.take_along_axis(sku, order, axis=1), 0)
        return Batch(inputs=inputs, lengths=lengths, target=self.target)


@dataclass
class SplitData:
    sku: np.ndarray
    activity: np.ndarray
    dwell: np.ndarray
    interval: np.ndarray
    macro: np.ndarray
    session_offsets: np.ndarray
    example_start: np.ndarray
    example_end: np.ndarray
    example_target: np.ndarray
    example_session: np.ndarray
    example_is_last: np.ndarray  # bool: the target is its session's last macro interaction

    @classmethod
    def load(cls, features_dir: str | Path, split: str, mmap: bool = True) -> SplitData:
        folder = Path(features_dir) / split
        mode = "r" if mmap else None
        return cls(**{name: np.load(folder / f"{name}.npy", mmap_mode=mode) for name in ARRAYS})

    @property
    def n_examples(self) -> int:
        return len(self.example_target)

    @property
    def n_sessions(self) -> int:
        return len(self.session_offsets) - 1

    def batch(self, indices: np.ndarray) -> Batch:
        """Gather the examples `indices` into (B, L) arrays, L = the longest input among them."""
        start = np.asarray(self.example_start[indices], np.int64)
        end = np.asarray(self.example_end[indices], np.int64)
        lengths = end - start
        width = int(lengths.max()) if len(lengths) else 0
        position = start[:, None] + np.arange(width)[None, :]  # (B, L)
        valid = position < end[:, None]
        position = np.where(valid, position, 0)
        columns = [np.where(valid, getattr(self, name)[position], 0) for name in FEATURES]
        return Batch(
            inputs=np.stack(columns, axis=-1).astype(np.int64),
            lengths=lengths,
            target=np.asarray(self.example_target[indices], np.int64),
        )

    def batches(self, batch_size: int, examples: np.ndarray | None = None):
        """Batches of `examples` (indices; default: all), in order."""
        examples = np.arange(self.n_examples) if examples is None else np.asarray(examples)
        for first in range(0, len(examples), batch_size):
            yield self.batch(examples[first : first + batch_size])


def load_vocab(features_dir: str | Path) -> dict:
    return json.loads((Path(features_dir) / "vocab.json").read_text())


def load_summary(features_dir: str | Path) -> dict:
    return json.loads((Path(features_dir) / "summary.json").read_text())


@dataclass
class FeatureSet:
    """A features folder: the three splits (memory-mapped), the vocabularies and the summary.
    What every recommender's `fit` receives."""

    folder: Path
    train: SplitData
    validation: SplitData
    test: SplitData
    vocab: dict
    summary: dict

    @classmethod
    def load(cls, features_dir: str | Path) -> FeatureSet:
        folder = Path(features_dir)
        return cls(
            folder=folder,
            train=SplitData.load(folder, "train"),
            validation=SplitData.load(folder, "validation"),
            test=SplitData.load(folder, "test"),
            vocab=load_vocab(folder),
            summary=load_summary(folder),
        )

    @property
    def n_items(self) -> int:
        """Size of the SKU id space, padding and out-of-vocabulary included."""
        return len(self.vocab["sku"])

    @property
    def n_dwell_buckets(self) -> int:
        return self.vocab["n_dwell_buckets"]

    @property
    def n_interval_buckets(self) -> int:
        return self.vocab["n_interval_buckets"]

    @property
    def max_len(self) -> int:
        return self.summary["config"]["max_len"]

    @property
    def synthetic(self) -> bool:
        return self.summary["synthetic"]

    def split(self, name: str) -> SplitData:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]
