"""Checkpoints and `recommend`, which ranks every product for the next product of raw
micro-behavior sessions.

A checkpoint is a folder: weights.npz (the state_dict as arrays), config.json and vocab.json
(nothing pickled; what serving needs), neighbors.npz (the session-neighbourhood index, only for
a network with `neighbors`), and training_state.pt (the optimizer state and the epoch
the weights come from, to continue training; read with torch.load(weights_only=True))."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rib.features.dataset import Batch
from rib.models.baselines import SessionKNN
from rib.models.network import NextItemNetwork
from rib.models.networks import BUFFERS_ADDED_LATER, build_network, config_from_dict, network_name
from rib.schema import FEATURES, OOV

WEIGHTS, CONFIG, VOCAB, TRAINING_STATE = "weights.npz", "config.json", "vocab.json", "training_state.pt"
NEIGHBORS = "neighbors.npz"  # the session-neighbourhood index, for a network with `neighbors`
SERVING_FILES = (WEIGHTS, CONFIG, VOCAB, NEIGHBORS)  # what serving reads (neighbors.npz where there is one)


def save_checkpoint(
    model: NextItemNetwork,
    folder: str | Path,
    vocab: dict,
    extra: dict,
    training_state: dict | None = None,
    neighbors: SessionKNN | None = None,
) -> Path:
    """Write a checkpoint into `folder`. `extra` must say how inputs are read (`max_len`,
    `exclude_last_sku`); `training_state` ({"epoch", "optimizer"}) goes to training_state.pt."""
    missing = {"max_len", "exclude_last_sku"} - set(extra)
    if missing:
        raise ValueError(f"a checkpoint needs {sorted(missing)} to read inputs as in training")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().float().cpu().numpy() for name, tensor in model.state_dict().items()}
    np.savez(folder / WEIGHTS, **state)
    config = {"network": network_name(model), "model": dataclasses.asdict(model.config), **extra}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (folder / VOCAB).write_text(json.dumps(vocab) + "\n")
    if training_state is not None:
        torch.save(training_state, folder / TRAINING_STATE)
    if neighbors is not None:
        neighbors.save(folder / NEIGHBORS)
    return folder


def load_training_state(folder: str | Path) -> dict:
    """{"epoch", "optimizer"} of a checkpoint (tensors and plain types only: no pickled code)."""
    return torch.load(Path(folder) / TRAINING_STATE, weights_only=True)


@dataclass
class Checkpoint:
    model: NextItemNetwork  # in eval mode
    vocab: dict  # vocab.json of the features it was trained on
    config: dict  # config.json: "network", "model" (its config), "max_len", "exclude_last_sku", training settings
    neighbors: SessionKNN | None = None  # the session-neighbourhood index, for a network with `neighbors`

    @functools.cached_property
    def sku_index(self) -> dict[str, int]:
        """SKU string -> id, built once per checkpoint (not per served session)."""
        return {sku: i for i, sku in enumerate(self.vocab["sku"])}


def load_checkpoint(folder: str | Path, device: str = "cpu") -> Checkpoint:
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    vocab = json.loads((folder / VOCAB).read_text())
    model = build_network(config_from_dict(config["network"], config["model"]), config["network"])
    with np.load(folder / WEIGHTS, allow_pickle=False) as weights:
        state = {name: torch.from_numpy(weights[name]) for name in weights.files}
    for name in model.state_dict().keys() - state.keys() & BUFFERS_ADDED_LATER.keys():  # an older checkpoint
        state[name] = torch.tensor(BUFFERS_ADDED_LATER[name])
    model.load_state_dict(state)
    neighbors = SessionKNN.load(folder / NEIGHBORS) if (folder / NEIGHBORS).exists() else None
    return Checkpoint(model.to(device).eval(), vocab, config, neighbors)


@dataclass
class Recommendation:
    skus: list[str]  # top-k, best first
    scores: list[float]
    attention: list[float]  # one weight per input micro-behavior (after truncation), summing to 1
    unknown_skus: list[str]  # input SKUs outside the training vocabulary (read as out-of-vocabulary)


class UnknownInputError(ValueError):
    """An input the model cannot read: an unknown SKU (when strict) or activity, or a bad dwell."""


def _number(value, position: int, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value >= 0:
        raise UnknownInputError(f"micro-behavior {position}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def encode_session(
    session: Sequence, vocab: dict, max_len: int, strict: bool = False, index: dict | None = None
) -> tuple[np.ndarray, list[str]]:
    """Raw micro-behaviors -> ((L, F) feature ids of the last `max_len`, unknown SKUs).

    A micro-behavior is (sku, activity, dwell seconds[, seconds since the previous one]) or a dict
    with those keys (`interval` optional); a missing interval reads as unknown, like a session start.
    `index` (SKU -> id) is built from the vocabulary when not given (Checkpoint.sku_index keeps one)."""
    if len(session) == 0:
        raise UnknownInputError("a session needs at least one micro-behavior")
    index = index if index is not None else {sku: i for i, sku in enumerate(vocab["sku"])}
    dwell_edges = np.asarray(vocab["dwell_edges"], dtype=np.float64)
    interval_edges = np.asarray(vocab.get("interval_edges", []), dtype=np.float64)
    rows, unknown = [], []
    for position, micro in enumerate(session[-max_len:]):
        if isinstance(micro, dict):
            sku, activity, dwell, gap = micro["sku"], micro["activity"], micro["dwell"], micro.get("interval")
        else:
            sku, activity, dwell, gap = (*micro, None)[:4]
        sku = str(sku)
        if sku not in index or index[sku] <= OOV:
            if strict:
                raise UnknownInputError(f"micro-behavior {position}: unknown SKU {sku!r}")
            unknown.append(sku)
        if isinstance(activity, bool) or not isinstance(activity, int | np.integer) or not 1 <= int(activity) <= 10:
            raise UnknownInputError(f"micro-behavior {position}: activity must be an integer 1..10, got {activity!r}")
        dwell_bucket = 1 + int((_number(dwell, position, "dwell") > dwell_edges).sum())
        interval_bucket = 1 if gap is None else 2 + int((_number(gap, position, "interval") > interval_edges).sum())
        rows.append((index.get(sku, OOV), int(activity), dwell_bucket, interval_bucket))
    return np.array(rows, dtype=np.int64), unknown


@torch.no_grad()
def recommend(
    checkpoint: Checkpoint, sessions: Sequence[Sequence], k: int, strict: bool = False
) -> list[Recommendation]:
    """Top-k next products for each raw session of micro-behaviors (see `encode_session`), read as
    the model was trained (the last `max_len`; the last SKU excluded where it was)."""
    model, vocab, max_len = checkpoint.model, checkpoint.vocab, checkpoint.config["max_len"]
    encoded = [encode_session(session, vocab, max_len, strict, checkpoint.sku_index) for session in sessions]
    lengths = [len(ids) for ids, _ in encoded]
    inputs = np.zeros((len(encoded), max(lengths), len(FEATURES)), np.int64)  # (B, T, F), padded with 0
    for row, (ids, _) in enumerate(encoded):
        inputs[row, : len(ids)] = ids
    device = next(model.parameters()).device
    prior = None
    if checkpoint.neighbors is not None:
        batch = Batch(inputs, np.asarray(lengths), np.zeros(len(lengths), np.int64))
        prior = torch.as_tensor(checkpoint.neighbors.distribution(batch), device=device)
    x, lengths = torch.as_tensor(inputs, device=device), torch.as_tensor(lengths, device=device)
    model.eval()
    scores, attention = model.score_and_attention(x, lengths, prior)  # (B, V), (B, T)
    scores[:, : OOV + 1] = float("-inf")
    rows = torch.arange(len(lengths))
    if checkpoint.config["exclude_last_sku"]:
        scores[rows, x[rows, lengths - 1, 0]] = float("-inf")
    top = torch.topk(scores, min(k, scores.shape[1] - OOV - 1), dim=1)
    found = torch.isfinite(top.values)  # k past the catalog: the excluded SKUs are not answers
    return [
        Recommendation(
            skus=[vocab["sku"][i] for i in top.indices[row][found[row]].tolist()],
            scores=top.values[row][found[row]].tolist(),
            attention=attention[row, : len(ids)].tolist(),
            unknown_skus=unknown,
        )
        for row, (ids, unknown) in enumerate(encoded)
    ]
