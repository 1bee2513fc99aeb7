"""Checkpoints and `recommend`, which ranks every product for the next product of raw
micro-behavior sessions.

A checkpoint is a folder: weights.npz (the state_dict as arrays), config.json and vocab.json
(nothing pickled; what serving needs), and training_state.pt (the optimizer state and the epoch
the weights come from, to continue training; read with torch.load(weights_only=True))."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rib.config import RIBConfig
from rib.models.rib import RIB
from rib.schema import OOV

WEIGHTS, CONFIG, VOCAB, TRAINING_STATE = "weights.npz", "config.json", "vocab.json", "training_state.pt"
SERVING_FILES = (WEIGHTS, CONFIG, VOCAB)


def save_checkpoint(
    model: RIB, folder: str | Path, vocab: dict, extra: dict, training_state: dict | None = None
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
    config = {"model": dataclasses.asdict(model.config), **extra}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (folder / VOCAB).write_text(json.dumps(vocab) + "\n")
    if training_state is not None:
        torch.save(training_state, folder / TRAINING_STATE)
    return folder


def load_training_state(folder: str | Path) -> dict:
    """{"epoch", "optimizer"} of a checkpoint (tensors and plain types only: no pickled code)."""
    return torch.load(Path(folder) / TRAINING_STATE, weights_only=True)


@dataclass
class Checkpoint:
    model: RIB  # in eval mode
    vocab: dict  # vocab.json of the features it was trained on
    config: dict  # config.json: "model" (RIBConfig), "max_len", "exclude_last_sku", and the training settings


def load_checkpoint(folder: str | Path, device: str = "cpu") -> Checkpoint:
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    vocab = json.loads((folder / VOCAB).read_text())
    model = RIB(RIBConfig(**config["model"]))
    with np.load(folder / WEIGHTS, allow_pickle=False) as weights:
        state = {name: torch.from_numpy(weights[name]) for name in weights.files}
    model.load_state_dict(state)
    return Checkpoint(model.to(device).eval(), vocab, config)


@dataclass
class Recommendation:
    skus: list[str]  # top-k, best first
    scores: list[float]
    attention: list[float]  # one weight per input micro-behavior (after truncation), summing to 1
    unknown_skus: list[str]  # input SKUs outside the training vocabulary (read as out-of-vocabulary)


class UnknownInputError(ValueError):
    """An input the model cannot read: an unknown SKU (when strict) or activity, or a bad dwell."""


def encode_session(session: Sequence, index: dict[str, int], edges: np.ndarray, max_len: int, strict: bool = False):
    """Map raw (sku, activity, dwell_seconds) micro-behaviors (tuples or dicts) to ids."""
    if len(session) == 0:
        raise UnknownInputError("a session needs at least one micro-behavior")
    sku_ids, activities, dwells, unknown = [], [], [], []
    for position, micro in enumerate(session[-max_len:]):
        sku, activity, dwell = (micro["sku"], micro["activity"], micro["dwell"]) if isinstance(micro, dict) else micro
        sku = str(sku)
        if sku not in index or index[sku] <= OOV:
            if strict:
                raise UnknownInputError(f"micro-behavior {position}: unknown SKU {sku!r}")
            unknown.append(sku)
        if not isinstance(activity, int | np.integer) or not 1 <= int(activity) <= 10:
            raise UnknownInputError(f"micro-behavior {position}: activity must be an integer 1..10, got {activity!r}")
        if not isinstance(dwell, int | float | np.number) or not dwell >= 0:
            raise UnknownInputError(f"micro-behavior {position}: dwell must be a number >= 0, got {dwell!r}")
        sku_ids.append(index.get(sku, OOV))
        activities.append(int(activity))
        dwells.append(1 + int((float(dwell) > edges).sum()))
    return sku_ids, activities, dwells, unknown


@torch.no_grad()
def recommend(
    checkpoint: Checkpoint, sessions: Sequence[Sequence], k: int, strict: bool = False
) -> list[Recommendation]:
    """Top-k next products for each raw session of (sku, activity, dwell_seconds) micro-behaviors,
    read as the model was trained (the last `max_len`; the last SKU excluded where it was)."""
    model, vocab, max_len = checkpoint.model, checkpoint.vocab, checkpoint.config["max_len"]
    index = {sku: i for i, sku in enumerate(vocab["sku"])}
    edges = np.asarray(vocab["dwell_edges"], dtype=np.float64)
    encoded = [encode_session(session, index, edges, max_len, strict) for session in sessions]
    width = max(len(e[0]) for e in encoded)
    arrays = np.zeros((3, len(encoded), width), np.int64)
    for row, (sku_ids, activities, dwells, _) in enumerate(encoded):
        arrays[:, row, : len(sku_ids)] = (sku_ids, activities, dwells)
    device = next(model.parameters()).device
    sku, activity, dwell = (torch.as_tensor(a, device=device) for a in arrays)
    lengths = torch.as_tensor([len(e[0]) for e in encoded], device=device)
    model.eval()
    scores, attention = model.score_and_attention(sku, activity, dwell, lengths)  # (B, V), (B, T)
    scores[:, : OOV + 1] = float("-inf")
    if checkpoint.config["exclude_last_sku"]:
        scores[torch.arange(len(lengths)), sku[torch.arange(len(lengths)), lengths - 1]] = float("-inf")
    top = torch.topk(scores, min(k, scores.shape[1] - OOV - 1), dim=1)
    results = []
    for row, (sku_ids, _, _, unknown) in enumerate(encoded):
        results.append(
            Recommendation(
                skus=[vocab["sku"][i] for i in top.indices[row].tolist()],
                scores=top.values[row].tolist(),
                attention=attention[row, : len(sku_ids)].tolist(),
                unknown_skus=unknown,
            )
        )
    return results
