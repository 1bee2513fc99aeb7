"""Training a next-product network (RIB, and the SASRec, NARM and GRU4Rec baselines): every
prefix target of a session in one pass, early stopping on validation.

Training sequences are windows of the training sessions chosen so that every target is
predicted once, from exactly the input its evaluation example would have (the last `max_len`
micro-behaviors before it; see `training_windows`). Inside a window, the prefix ending at
position t predicts the SKU at t + 1 whenever t + 1 starts a new macro interaction; an
out-of-vocabulary target is skipped. Mini-batches are gathered from
the stored flat arrays with tensor indexing on the training device: no per-example Python.

The epoch with the best validation Recall@k + MRR@k is kept (the figure `rib tune` maximises). `NetworkRecommender`
puts training and scoring behind the contract every model shares (rib.models.base); the test
split is evaluated by the caller, once, like every other model's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

import numpy as np
import torch

from rib.config import EvaluationConfig, NetworkConfig, TrainConfig
from rib.features.dataset import Batch, FeatureSet, SplitData
from rib.models.base import only_products
from rib.models.network import NextItemNetwork
from rib.models.networks import build_network
from rib.schema import FEATURES, OOV, VISITS


@dataclass
class TrainResult:
    model: NextItemNetwork  # the best epoch's weights
    model_config: NetworkConfig  # the resolved configurations the run used
    train_config: TrainConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    validation: dict = field(default_factory=dict)  # the best epoch's validation figures
    untrained: dict = field(default_factory=dict)  # the validation figures at initialization (epoch 0)
    initial_state: dict = field(default_factory=dict)  # the weights at initialization
    optimizer_state: dict = field(default_factory=dict)  # the optimizer as it was after the best epoch
    train_seconds: float = 0.0
    micro_behaviors_per_second: float = 0.0
    device: str = "cpu"


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_windows(data: SplitData, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, first trained prefix) of every training window, chosen so that every target's
    input is exactly the one its evaluation example would have: the last `window` micro-behaviors
    before it.

    - A session's first window is its first `window` + 1 micro-behaviors: every target in it has
      the whole session prefix as input, as in evaluation. It trains from its first prefix on.
    - Every later target (session position a > `window`) gets a window of its own,
      [a - window, a + 1), trained only at its last prefix (the first trained prefix is `window` - 1).
    """
    offsets = np.asarray(data.session_offsets, np.int64)
    lengths = np.diff(offsets)
    firsts = np.flatnonzero(lengths >= 2)
    first_start = offsets[firsts]
    first_end = first_start + np.minimum(lengths[firsts], window + 1)
    # Later targets: macro-interaction starts past the first window, in the vocabulary.
    macro, sku = np.asarray(data.macro), np.asarray(data.sku)
    session = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(len(sku)) - offsets[session]  # within the session
    starts_macro = np.zeros(len(sku), bool)
    starts_macro[1:] = macro[1:] != macro[:-1]
    later = np.flatnonzero(starts_macro & (position > window) & (sku > OOV))
    starts = np.concatenate([first_start, later - window])
    ends = np.concatenate([first_end, later + 1])
    first_trained = np.concatenate([np.zeros(len(firsts), np.int64), np.full(len(later), window - 1)])
    return starts, ends, first_trained


class Windows(NamedTuple):
    """A mini-batch of training windows, on the training device."""

    x: torch.Tensor  # (B, T, F) ids
    target_mask: torch.Tensor  # (B, T) bool: the prefix ending at t predicts a target
    targets: torch.Tensor  # (N,) the targets in row-major order
    priors: torch.Tensor | None  # (N,) the session neighbourhood's probability of each target
    held: torch.Tensor | None  # (N,) bool: the target's session is held out for the mixture's gates
    n_micro: int  # real micro-behaviors in the batch


def held_out_sessions(n_sessions: int, share: float, seed: int) -> np.ndarray:
    """(n_sessions,) bool: a seeded random `share` of the training sessions."""
    return np.random.default_rng([seed, 7919]).random(n_sessions) < share


class WindowLoader:
    """Gathers padded training windows by index from the split's arrays (memory-mapped: a batch
    reads only its own windows, so a rank of a distributed run never copies the whole split)."""

    def __init__(
        self,
        data: SplitData,
        window: int,
        device: torch.device,
        target_prior: np.ndarray | None = None,
        held_sessions: np.ndarray | None = None,
    ) -> None:
        """`target_prior` (one float per micro-behavior of the split): the session neighbourhood's
        probability of that micro-behavior's SKU as the next product after its input, where it
        is a target; gathered with each target (for a network with `neighbors`). `held_sessions`
        (one bool per session): sessions whose targets train only the mixture's gates."""
        self.data, self.device = data, device
        self.width = window + 1  # a window holds up to `window` inputs and the target after them
        self.prior = target_prior
        self.starts, self.ends, self.first_trained = training_windows(data, window)
        self.n_micro_behaviors = int((self.ends - self.starts).sum())
        self.held = None
        if held_sessions is not None:  # each window's session: the last offset at or before its start
            session = np.searchsorted(np.asarray(data.session_offsets), self.starts, side="right") - 1
            self.held = np.asarray(held_sessions)[session]

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, index: np.ndarray) -> Windows:
        """The windows `index`, padded to one width."""
        start, end = self.starts[index], self.ends[index]
        # On CUDA a fixed width keeps one shape per batch; on CPU padding costs compute.
        width = self.width if self.device.type == "cuda" else int((end - start).max(initial=1))
        offset = np.arange(width)[None, :]  # (1, T)
        position = start[:, None] + offset  # (B, T)
        real = position < end[:, None]
        position = np.where(real, position, 0)
        x = np.stack([np.where(real, getattr(self.data, name)[position], 0) for name in FEATURES], axis=-1)
        sku, macro = x[..., 0], np.asarray(self.data.macro)[position]
        # The prefix ending at t predicts t + 1 when t + 1 is real, starts a macro interaction,
        # is in the vocabulary, and t is a prefix this window trains.
        target_mask = np.zeros_like(real)
        target_mask[:, :-1] = (
            real[:, 1:]
            & (macro[:, 1:] != macro[:, :-1])
            & (sku[:, 1:] > OOV)
            & (offset[:, :-1] >= self.first_trained[index][:, None])
        )
        targets = sku[:, 1:][target_mask[:, :-1]]
        priors = None if self.prior is None else self.prior[position[:, 1:][target_mask[:, :-1]]]
        held = None
        if self.held is not None:  # (N,) each target's window's flag
            held = np.broadcast_to(self.held[index][:, None], target_mask.shape)[:, :-1][target_mask[:, :-1]]

        def device(a: np.ndarray, dtype=torch.int64) -> torch.Tensor:
            tensor = torch.as_tensor(np.ascontiguousarray(a)).to(dtype)
            return tensor.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else tensor

        return Windows(
            device(x),
            device(target_mask, torch.bool),
            device(targets),
            None if priors is None else device(priors, torch.float32),
            None if held is None else device(held, torch.bool),
            int(real.sum()),
        )


def distributed_context() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside a `torchrun` launch."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def start_distributed(config: TrainConfig) -> torch.device | None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on
    CPUs, or `train.backend`; returns this rank's device (None outside torchrun)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = pick_device(config.device).type == "cuda"
    if not torch.distributed.is_initialized():
        backend = config.backend if config.backend != "auto" else ("nccl" if cuda else "gloo")
        torch.distributed.init_process_group(backend=backend)
    if cuda:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def stop_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_primary() -> bool:
    """True on the process that writes (rank 0, or the only one)."""
    return distributed_context()[0] == 0


@torch.no_grad()
def score_batch(model: NextItemNetwork, batch: Batch, bf16: bool = True, neighbors=None) -> np.ndarray:
    """(B, V) scores of `model` for a batch of stored examples, as the contract returns them;
    `neighbors` (a fitted VSessionKNN) for a network that mixes in the session neighbourhood."""
    return only_products(_scores(model, batch, bf16, neighbors).cpu().numpy())


def _on_device(model: NextItemNetwork, batch: Batch, neighbors) -> tuple:
    """The batch's inputs, lengths and neighbourhood probabilities on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    x, lengths = torch.as_tensor(batch.inputs, device=device), torch.as_tensor(batch.lengths, device=device)
    prior = None if neighbors is None else torch.as_tensor(neighbors.distribution(batch), device=device)
    return x, lengths, prior


@torch.no_grad()
def _scores(model: NextItemNetwork, batch: Batch, bf16: bool, neighbors) -> torch.Tensor:
    """(B, V) scores, float32 on the model's device."""
    x, lengths, prior = _on_device(model, batch, neighbors)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda" and bf16):
        return model.score_all(x, lengths, prior).float()


@torch.no_grad()
def _ranked(model: NextItemNetwork, batch: Batch, bf16: bool, neighbors, shifts: list, last) -> dict:
    """shift -> the targets' ranks (B,) on the device under each (repeat, explore) shift of the
    mixture, from one forward pass (NextItemNetwork.rank_shifted)."""
    x, lengths, prior = _on_device(model, batch, neighbors)
    targets = torch.as_tensor(batch.target, device=x.device)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda" and bf16):
        return dict(model.rank_shifted(x, lengths, prior, shifts, targets, last))


PROGRESS_FILE = "progress.pt"


def save_progress(folder: Path, state: dict) -> None:
    """The state after an epoch, replacing the previous one atomically (a kill leaves one or the other)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (PROGRESS_FILE + ".partial")
    torch.save(state, partial)
    os.replace(partial, folder / PROGRESS_FILE)


def load_progress(folder: Path | None, fingerprint: str, device: torch.device) -> dict | None:
    """The last epoch's state of a run with these settings, if one was left in `folder`."""
    path = None if folder is None else Path(folder) / PROGRESS_FILE
    if path is None or not path.exists():
        return None
    state = torch.load(path, map_location=device, weights_only=False)  # our own file, written above
    return state if state.get("fingerprint") == fingerprint else None


def _silent(message: str) -> None:
    pass


def selection_figure(figures: dict, k: int) -> float:
    """What picks the epoch (and what `rib tune` maximises): validation Recall@k + MRR@k."""
    return figures[f"recall@{k}"] + figures[f"mrr@{k}"]


def _validation_text(figures: dict, k: int) -> str:
    """An epoch's validation figures for the log, with the parts' weight factors where they were chosen."""
    text = f"validation recall@{k} {figures[f'recall@{k}']:.4f} mrr@{k} {figures[f'mrr@{k}']:.4f}"
    if "explore_scale" in figures:
        text += f", explore weight x{figures['explore_scale']:.3g}"
    if figures.get("repeat_scale", 1.0) != 1.0:
        text += f", repeat weight x{figures['repeat_scale']:.3g}"
    return text


def _better(new: dict, best: dict | None, k: int) -> bool:
    return best is None or selection_figure(new, k) > selection_figure(best, k)


def train_network(
    features: FeatureSet,
    model_config: NetworkConfig,
    config: TrainConfig,
    evaluation: EvaluationConfig,
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    log: Callable[[str], None] = print,
    neighbors=None,
    on_epoch: Callable[[dict], None] | None = None,
    progress_dir: Path | None = None,
    network: str | None = None,
) -> TrainResult:
    """Train on `features.train`, keep the epoch with the best validation figures. `neighbors`: the
    fitted V-SKNN index a network with `neighbors` mixes in; `on_epoch` sees each epoch's record (a
    tuning study prunes a trial from it).

    `progress_dir`: after every epoch the whole state (weights, optimizer, early stopping, the
    shuffling and dropout random generators) is written there, all or nothing; a run of the same
    settings that finds it goes on after that epoch, and ends exactly as an uninterrupted run would.
    `network`: which network to build where the config class does not say (SR-GNN, MKM-SR, EMBSR).

    Under `torchrun` every rank runs this: DistributedDataParallel, each rank gathering its part of
    every global batch, validation split across ranks and its figures summed, so early stopping
    agrees everywhere; the result is the same as one process with the same global batch."""
    device = start_distributed(config) or pick_device(config.device)
    world = distributed_context()[1]
    if not is_primary():  # one log for the run: rank 0's (every rank computes the same figures)
        log = _silent
    torch.manual_seed(config.seed)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    model = build_network(model_config, network)
    if model.neighbors and neighbors is None:
        raise ValueError("a network with neighbors needs the fitted session neighbourhood")
    if pretrained and model_config.word2vec_init:
        model.load_pretrained({k: (torch.as_tensor(v), torch.as_tensor(m)) for k, (v, m) in pretrained.items()})
    model.to(device)
    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        trained = DistributedDataParallel(DistributedObjective(model), device_ids=ids)
    optimizer = make_optimizer(model, config, device)
    prior = None
    if model.neighbors:  # each training target's neighbourhood probability, its own session left out
        train = features.train
        prior = np.zeros(len(train.sku), np.float32)
        prior[np.asarray(train.example_end)] = neighbors.target_probabilities(
            train, own_sessions=True, outside_input=model.explore_new
        )
    held = None
    if model.repeat and getattr(model_config, "gate_holdout", 0.0) > 0:
        held = held_out_sessions(features.train.n_sessions, model_config.gate_holdout, config.seed)
    loader = WindowLoader(features.train, features.max_len, device, prior, held)
    sampler = None
    if config.sampled_softmax:
        from rib.models.baselines import visit_counts
        from rib.models.loss import NegativeSampler

        counts = torch.as_tensor(visit_counts(features.train, features.n_items))
        sampler_seed = torch.Generator().manual_seed(config.seed + 1)
        sampler = NegativeSampler(counts, config.sampled_softmax, config.sample_alpha, sampler_seed)
    generator = torch.Generator().manual_seed(config.seed)  # the same on every rank: one global order
    result = TrainResult(model=model, model_config=model_config, train_config=config, device=str(device))
    best_state, best_optimizer, best_validation, stale = None, None, None, 0
    total_micro, total_seconds = 0, 0.0
    k = evaluation.k
    settings = [dataclasses.asdict(model_config), dataclasses.asdict(config), len(features.train.sku)]
    fingerprint = json.dumps(settings, sort_keys=True, default=str)  # a saved state resumes only the same run
    first_epoch = 1
    progress = load_progress(progress_dir, fingerprint, device)
    if progress is not None:  # a killed run: go on after its last finished epoch, exactly where it was
        model.load_state_dict(progress["model"])
        optimizer.load_state_dict(progress["optimizer"])
        generator.set_state(progress["generator"])
        torch.set_rng_state(progress["torch_rng"])
        if sampler is not None:
            sampler.generator.set_state(progress["sampler_rng"])
        best_state, best_optimizer = progress["best_state"], progress["best_optimizer"]
        best_validation, stale = progress["best_validation"], progress["stale"]
        result.best_epoch = progress["best_epoch"]
        result.history, total_micro, total_seconds = progress["history"], progress["micro"], progress["seconds"]
        result.untrained, result.initial_state = progress["untrained"], progress["initial_state"]
        first_epoch = progress["epoch"] + 1
        log(f"resumed after epoch {progress['epoch']} from {progress_dir}")
        if stale >= config.patience:  # it was killed between its last epoch and its end
            first_epoch = config.epochs + 1
    else:  # where training starts from: what the parts that are not learned give (train.epochs 0 keeps it)
        result.untrained = validation_figures(model, features, evaluation, config, neighbors)
        result.initial_state = copy.deepcopy(model.state_dict())  # with the explore shift chosen for it
        log(f"epoch 0 (untrained): {_validation_text(result.untrained, k)}")
        if config.epochs == 0:
            best_state, best_optimizer = result.initial_state, copy.deepcopy(optimizer.state_dict())
            best_validation = result.untrained
    for epoch in range(first_epoch, config.epochs + 1):
        epoch_loss, epoch_micro, seconds = train_epoch(
            trained, loader, optimizer, config, generator, f"epoch {epoch}", sampler=sampler
        )
        total_micro += epoch_micro
        total_seconds += seconds
        figures = validation_figures(model, features, evaluation, config, neighbors)
        record = {
            "epoch": epoch,
            "train_loss": epoch_loss,
            "epoch_seconds": round(seconds, 3),
            "micro_behaviors_per_second": round(epoch_micro / seconds, 1),
            **{f"validation_{key}": value for key, value in figures.items()},
        }
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        log(
            f"epoch {epoch}: loss {record['train_loss']:.4f}, {seconds:.1f} s "
            f"({record['micro_behaviors_per_second']:,.0f} micro-behaviors/s), {_validation_text(figures, k)}"
        )
        if _better(figures, best_validation, k):
            best_state, best_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
            best_validation, result.best_epoch, stale = figures, epoch, 0
        else:
            stale += 1
        if progress_dir is not None and is_primary():
            save_progress(
                progress_dir,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "sampler_rng": sampler.generator.get_state() if sampler is not None else None,
                    "best_state": best_state,
                    "best_optimizer": best_optimizer,
                    "best_validation": best_validation,
                    "best_epoch": result.best_epoch,
                    "stale": stale,
                    "history": result.history,
                    "untrained": result.untrained,
                    "initial_state": result.initial_state,
                    "micro": total_micro,
                    "seconds": total_seconds,
                },
            )
        if stale >= config.patience:
            log(f"early stop: no better validation figure for {stale} epochs; best epoch {result.best_epoch}")
            break
    model.load_state_dict(best_state)
    model.eval()
    result.validation, result.optimizer_state = best_validation, best_optimizer
    result.train_seconds = round(total_seconds, 3)
    result.micro_behaviors_per_second = round(total_micro / max(total_seconds, 1e-9), 1)
    return result


# The shifts of the explore part's gate logit that `explore_ranking: validation` chooses from after
# each epoch (e^shift times its weight against the other parts; -inf leaves it out).
EXPLORE_SHIFTS = (2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, float("-inf"))
# With `repeat_ranking`, the shifts of the repeat part's gate logit chosen with them (no shift first:
# it wins a tie).
REPEAT_SHIFTS = (0.0, -0.5, -1.0, -2.0, 0.5, 1.0)


def validation_figures(model, features: FeatureSet, evaluation: EvaluationConfig, config: TrainConfig, neighbors):
    """The validation figures; in a distributed run each rank ranks its share of the examples and
    the counts are summed, so every rank gets the same figures (weighted by each rank's count).
    With `explore_ranking: validation` the network's explore shift is set to the best of
    EXPLORE_SHIFTS here (by the figure that picks the epoch), with `repeat_ranking` jointly with the
    repeat shift's best of REPEAT_SHIFTS, and the figures are that choice's."""
    from rib.evaluation.metrics import evaluation_examples, target_ranks

    chosen = model.repeat and getattr(model.config, "explore_ranking", "gates") == "validation"
    repeats = REPEAT_SHIFTS if getattr(model.config, "repeat_ranking", False) else (0.0,)
    # a network without the mixture has no parts to weigh
    shifts = [(repeat, explore) for repeat in repeats for explore in EXPLORE_SHIFTS] if chosen else None
    rank, world = distributed_context()
    device = next(model.parameters()).device
    examples = evaluation_examples(features.validation, evaluation)[rank::world]
    ranks: dict = {shift: [] for shift in shifts or [None]}
    for batch in features.validation.batches(max(16, min(1024, 20_000_000 // features.n_items)), examples):
        last = torch.as_tensor(batch.last_sku, device=device) if evaluation.exclude_last_sku else None
        if shifts is None:  # ranked on the device
            scores = _scores(model, batch, config.bf16, neighbors)
            ranks[None].append(target_ranks(scores, torch.as_tensor(batch.target, device=device), last))
            continue
        for shift, shifted in _ranked(model, batch, config.bf16, neighbors, shifts, last).items():
            ranks[shift].append(shifted.cpu().numpy())
    figures = {
        shift: _summarized(np.concatenate(r) if r else np.zeros(0), evaluation, world) for shift, r in ranks.items()
    }
    if shifts is None:
        return figures[None]
    k = evaluation.ks[0]
    best = max(shifts, key=lambda shift: selection_figure(figures[shift], k))  # the first of equals
    model.repeat_shift.fill_(best[0])
    model.explore_shift.fill_(best[1])
    # the factors on the parts' weights (explore 0: left out)
    return figures[best] | {"explore_scale": math.exp(best[1]), "repeat_scale": math.exp(best[0])}


def _summarized(ranks: np.ndarray, evaluation: EvaluationConfig, world: int) -> dict:
    """Recall@k and MRR@k of the ranks, summed over the ranks of a distributed run."""
    from rib.evaluation.metrics import summarize

    if world == 1:
        return summarize(ranks, evaluation.ks)
    sums = [len(ranks), float(np.isinf(ranks).sum())]
    for k in evaluation.ks:
        hit = ranks <= k
        sums += [float(hit.sum()), float(np.where(hit, 1.0 / ranks, 0.0).sum())]
    total = torch.tensor(sums, dtype=torch.float64)
    torch.distributed.all_reduce(total)
    n = int(total[0])
    figures = {"n": n, "oov_targets": int(total[1])}
    for i, k in enumerate(evaluation.ks):
        figures[f"recall@{k}"] = float(total[2 + 2 * i]) / max(n, 1)
        figures[f"mrr@{k}"] = float(total[3 + 2 * i]) / max(n, 1)
    return figures


# RIB's parts that read engineered features, with few parameters and reached only through the
# mixture: the repeat scorer and the gates' weights of the switch features. They learn at
# `repeat_lr_scale` times the learning rate.
FAST_PARTS = ("product_repeat.", "switch_gate.")


def make_optimizer(model: NextItemNetwork, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on the weight matrices only: never on biases or embedding tables.
    RIB's FAST_PARTS learn at `repeat_lr_scale` times the learning rate; every other parameter
    at the learning rate."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    scale = float(getattr(model.config, "repeat_lr_scale", 1.0))
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}  # (lr, weight decay) -> parameters
    for name, p in model.named_parameters():
        lr = config.learning_rate * (scale if name.startswith(FAST_PARTS) else 1.0)
        decay = config.weight_decay if p.dim() >= 2 and id(p) not in embeddings else 0.0
        groups.setdefault((lr, decay), []).append(p)
    settings = [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]
    return torch.optim.AdamW(settings, lr=config.learning_rate, fused=device.type == "cuda")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: training stops rather than keep broken weights."""


class DistributedObjective(torch.nn.Module):
    """The network's summed loss as a module's forward, for DistributedDataParallel to wrap."""

    def __init__(self, network: NextItemNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, x, target_mask, targets, priors, held, sampler, options) -> torch.Tensor:
        return self.network.loss(x, target_mask, targets, priors, held, sampler=sampler, reduction="sum", **options)


def world_size(model: torch.nn.Module) -> int:
    return distributed_context()[1] if hasattr(model, "module") else 1


def train_epoch(
    model: torch.nn.Module,
    loader: WindowLoader,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    generator: torch.Generator,
    description: str = "epoch",
    max_batches: int | None = None,
    sampler=None,
) -> tuple[float, int, float]:
    """One pass over the shuffled training windows: (mean loss, micro-behaviors, seconds).

    `model` may be wrapped in DistributedDataParallel: every rank draws the same order, takes its
    part of each global batch, and its loss is its targets' sum over the global number of targets
    (times the world size, which DDP's gradient averaging divides out): the gradient of the mean
    over the whole global batch, as one process would compute it."""
    network = model.module.network if world_size(model) > 1 else model
    device = loader.device
    rank, world = distributed_context()
    use_bf16 = device.type == "cuda" and config.bf16
    compile_loss = config.compile_loss in (True, "true") or (config.compile_loss == "auto" and device.type == "cuda")
    chunk = config.loss_chunk or (4096 if device.type == "cuda" else 1024)
    model.train()
    order = torch.randperm(len(loader), generator=generator).numpy()
    batches = range(0, len(loader), config.batch_size)
    if max_batches is not None:
        batches = batches[:max_batches]
    progress = _progress(batches, description, config.progress and rank == 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    total_loss, total_micro, n_batches = torch.zeros((), device=device), 0, 0
    for first in progress:
        rows = np.array_split(order[first : first + config.batch_size], world)[rank]
        x, target_mask, targets, priors, held, n_micro = loader.gather(rows)
        options = {"chunk": chunk, "compute_dtype": torch.bfloat16 if use_bf16 else None, "compile": compile_loss}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            if world == 1:
                loss = network.loss(x, target_mask, targets, priors, held, sampler=sampler, **options)
            else:  # through the DDP wrapper (its forward prepares the gradient averaging)
                count = torch.tensor([float(len(targets))], device=device)
                torch.distributed.all_reduce(count)
                loss = model(x, target_mask, targets, priors, held, sampler, options) * world / count.clamp_min(1)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        optimizer.step()
        total_loss += loss.detach() / world
        total_micro += n_micro
        n_batches += 1
        # A check reads the loss on the host: every batch on the CPU, every 20th on a GPU (a sync).
        if device.type == "cpu" or n_batches % 20 == 0:
            _check_finite(total_loss, description, n_batches)
        if hasattr(progress, "set_postfix") and n_batches % 20 == 0:
            elapsed = time.perf_counter() - started
            progress.set_postfix(loss=f"{float(loss):.3f}", mb_per_s=f"{total_micro / elapsed:,.0f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    if world > 1:  # the epoch's loss and micro-behaviors over every rank
        summed = torch.stack([total_loss, torch.tensor(float(total_micro), device=device)])
        torch.distributed.all_reduce(summed)
        total_loss, total_micro = summed[0], int(summed[1])
    _check_finite(total_loss, description, n_batches)
    return float(total_loss) / max(n_batches, 1), int(total_micro), time.perf_counter() - started


def _check_finite(total_loss: torch.Tensor, description: str, n_batches: int) -> None:
    if not torch.isfinite(total_loss):
        raise NonFiniteLossError(
            f"{description}: the training loss is {float(total_loss)} by batch {n_batches}; "
            "lower train.learning_rate, keep train.grad_clip on, or check the inputs"
        )


def _progress(iterable, description: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the training path needs only torch and numpy
        return iterable
    return tqdm(iterable, desc=description, unit="batch", leave=False, disable=None)


class NetworkRecommender:
    """A trained network behind the contract every model shares (rib.models.base.Recommender):
    `fit` trains with early stopping on the validation split, `score` ranks the catalog with the
    kept weights. `name` is the model's name in the comparison (RIB, RIB-Attention, SASRec, ...)."""

    def __init__(
        self,
        name: str,
        model_config: NetworkConfig,
        train_config: TrainConfig,
        evaluation: EvaluationConfig,
        pretrained: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        log: Callable[[str], None] = print,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> None:
        self.name = name
        self.on_epoch = on_epoch
        self.model_config, self.train_config, self.evaluation = model_config, train_config, evaluation
        self.pretrained, self.log = pretrained, log
        self.result: TrainResult | None = None
        self.progress_dir: Path | None = None  # where each epoch's state goes, to resume a killed run

    def fit(self, features: FeatureSet) -> Self:
        model_config = sized_for(features, self.model_config)
        self.neighbors = None
        if getattr(model_config, "neighbors", False) and getattr(model_config, "repeat", False):
            from rib.models.baselines import VSessionKNN

            self.neighbors = VSessionKNN(self.evaluation)
            self.neighbors.visits = model_config.variant == VISITS  # the votes read what the network reads
            self.neighbors.fit(features)  # its k chosen on validation
        self.result = train_network(
            features,
            model_config,
            self.train_config,
            self.evaluation,
            self.pretrained,
            self.log,
            self.neighbors,
            self.on_epoch,
            self.progress_dir,
            self.name,
        )
        self.model = self.result.model
        return self

    def score(self, batch: Batch) -> np.ndarray:
        return score_batch(self.model, batch, self.train_config.bf16, self.neighbors)


def sized_for(features: FeatureSet, config: NetworkConfig) -> NetworkConfig:
    """`config` with the vocabulary sizes of `features`."""
    return dataclasses.replace(
        config,
        n_items=features.n_items,
        n_dwell=features.n_dwell_buckets + 1,
        n_interval=features.n_interval_buckets + 1,
    )
