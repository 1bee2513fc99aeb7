"""Training RIB: every prefix target of a session in one pass, early stopping on validation.

Training sequences are the training sessions cut into windows of `window` micro-behaviors
(consecutive windows overlap by one, so every target is predicted exactly once). Inside a
window, the prefix ending at position t predicts the SKU at t + 1 whenever t + 1 starts a new
macro interaction; an out-of-vocabulary target is skipped. Mini-batches are gathered from
the stored flat arrays with tensor indexing on the training device: no per-example Python.

The epoch with the best validation Recall@k (MRR@k breaks ties) is kept; the test split is
evaluated once, with that checkpoint, after training ends.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rib.dataset import SplitData, load_vocab
from rib.features import OOV
from rib.metrics import evaluate
from rib.model import RIB, RIBConfig


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    patience: int = 3  # epochs without a better validation figure before stopping
    window: int = 50
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    bf16: bool = True  # autocast to bfloat16 on CUDA
    loss_chunk: int = 0  # rows of logits per softmax chunk; 0: 4096 on CUDA, 1024 on CPU (measured best)
    compile_loss: str = "auto"  # auto: torch.compile the loss kernels on CUDA only
    k: int = 20
    exclude_last_sku: bool = True
    eval_batch_size: int = 256
    cpu_threads: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    model: RIB
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    validation: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    micro_behaviors_per_second: float = 0.0
    device: str = "cpu"


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_windows(data: SplitData, window: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of every training window: sessions cut into `window` steps, overlapping by one."""
    offsets = np.asarray(data.session_offsets, np.int64)
    lengths = np.diff(offsets)
    stride = window - 1
    n_windows = np.where(lengths >= 2, np.ceil((lengths - 1) / stride), 0).astype(np.int64)
    session = np.repeat(np.arange(len(lengths)), n_windows)
    k = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    starts = offsets[session] + k * stride
    ends = np.minimum(starts + window, offsets[session + 1])
    return starts, ends


class WindowLoader:
    """Holds the split's flat arrays on the device and gathers padded windows by index."""

    def __init__(self, data: SplitData, window: int, device: torch.device) -> None:
        self.device = device
        self.window = window
        as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.int64), device=device)  # noqa: E731
        self.sku, self.activity, self.dwell = as_tensor(data.sku), as_tensor(data.activity), as_tensor(data.dwell)
        self.macro = as_tensor(data.macro)
        starts, ends = training_windows(data, window)
        self.starts, self.ends = as_tensor(starts), as_tensor(ends)
        self.n_micro_behaviors = int((ends - starts).sum())

    def __len__(self) -> int:
        return len(self.starts)

    def gather(self, index: torch.Tensor):
        start, end = self.starts[index], self.ends[index]
        # On CUDA a fixed width avoids a device-to-host sync per batch; on CPU padding costs compute.
        width = self.window if self.device.type == "cuda" else int((end - start).max())
        position = start[:, None] + torch.arange(width, device=self.device)[None, :]  # (B, T)
        real = position < end[:, None]
        position = torch.where(real, position, 0)
        sku = torch.where(real, self.sku[position], 0)
        activity = torch.where(real, self.activity[position], 0)
        dwell = torch.where(real, self.dwell[position], 0)
        macro = self.macro[position]
        # The prefix ending at t predicts t + 1 when t + 1 is real and starts a macro interaction.
        target_mask = torch.zeros_like(real)
        target_mask[:, :-1] = real[:, 1:] & (macro[:, 1:] != macro[:, :-1]) & (sku[:, 1:] > OOV)
        targets = sku[:, 1:][target_mask[:, :-1]]
        return sku, activity, dwell, target_mask, targets, real.sum()  # the count stays on the device


def evaluate_model(model: RIB, data: SplitData, device: torch.device, config: TrainConfig) -> dict:
    model.eval()

    @torch.no_grad()
    def score(batch) -> np.ndarray:
        tensors = [torch.as_tensor(a, device=device) for a in (batch.sku, batch.activity, batch.dwell, batch.lengths)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and config.bf16):
            scores = model.score_all(*tensors)
        return scores.float().cpu().numpy()

    return evaluate(score, data, ks=(config.k,), n_items=model.config.n_items, exclude_last_sku=config.exclude_last_sku)


def _better(new: dict, best: dict | None, k: int) -> bool:
    if best is None:
        return True
    return (new[f"recall@{k}"], new[f"mrr@{k}"]) > (best[f"recall@{k}"], best[f"mrr@{k}"])


def train_rib(
    features_dir: str | Path,
    model_config: RIBConfig,
    config: TrainConfig,
    pretrained: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    model = RIB(model_config)
    if pretrained:
        model.load_pretrained({k: (torch.as_tensor(v), torch.as_tensor(m)) for k, (v, m) in pretrained.items()})
    model.to(device)
    optimizer = make_optimizer(model, config, device)
    loader = WindowLoader(SplitData.load(features_dir, "train"), config.window, device)
    validation = SplitData.load(features_dir, "validation")
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(model=model, device=str(device))
    best_state, best_validation, stale = None, None, 0
    total_micro, total_seconds = 0, 0.0
    for epoch in range(1, config.epochs + 1):
        epoch_loss, epoch_micro, seconds = train_epoch(model, loader, optimizer, config, generator, f"epoch {epoch}")
        total_micro += epoch_micro
        total_seconds += seconds
        figures = evaluate_model(model, validation, device, config)
        record = {
            "epoch": epoch,
            "train_loss": epoch_loss,
            "epoch_seconds": round(seconds, 3),
            "micro_behaviors_per_second": round(epoch_micro / seconds, 1),
            **{f"validation_{k}": v for k, v in figures.items()},
        }
        result.history.append(record)
        if on_epoch:
            on_epoch(record)
        k = config.k
        log(
            f"epoch {epoch}: loss {record['train_loss']:.4f}, {seconds:.1f} s "
            f"({record['micro_behaviors_per_second']:,.0f} micro-behaviors/s), "
            f"validation recall@{k} {figures[f'recall@{k}']:.4f} mrr@{k} {figures[f'mrr@{k}']:.4f}"
        )
        if _better(figures, best_validation, k):
            best_state = copy.deepcopy(model.state_dict())
            best_validation, result.best_epoch, stale = figures, epoch, 0
        else:
            stale += 1
            if stale >= config.patience:
                log(f"early stop: no better validation figure for {stale} epochs; best epoch {result.best_epoch}")
                break
    model.load_state_dict(best_state)
    result.validation = best_validation
    result.test = evaluate_model(model, SplitData.load(features_dir, "test"), device, config)
    result.train_seconds = round(total_seconds, 3)
    result.micro_behaviors_per_second = round(total_micro / max(total_seconds, 1e-9), 1)
    return result


def make_optimizer(model: RIB, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=device.type == "cuda"
    )


def train_epoch(
    model: RIB,
    loader: WindowLoader,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    generator: torch.Generator,
    description: str = "epoch",
    max_batches: int | None = None,
) -> tuple[float, int, float]:
    """One pass over the shuffled training windows: (mean loss, micro-behaviors, seconds)."""
    device = loader.device
    use_bf16 = device.type == "cuda" and config.bf16
    compile_loss = config.compile_loss in (True, "true") or (config.compile_loss == "auto" and device.type == "cuda")
    chunk = config.loss_chunk or (4096 if device.type == "cuda" else 1024)
    model.train()
    order = torch.randperm(len(loader), generator=generator).to(device)
    batches = range(0, len(loader), config.batch_size)
    if max_batches is not None:
        batches = batches[:max_batches]
    progress = _progress(batches, description, config.progress)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    total_loss, total_micro, n_batches = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for first in progress:
        sku, activity, dwell, target_mask, targets, n_micro = loader.gather(order[first : first + config.batch_size])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model.loss(
                sku,
                activity,
                dwell,
                target_mask,
                targets,
                chunk=chunk,
                compute_dtype=torch.bfloat16 if use_bf16 else None,
                compile=compile_loss,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach()
        total_micro += n_micro
        n_batches += 1
        if hasattr(progress, "set_postfix") and n_batches % 20 == 0:
            elapsed = time.perf_counter() - started
            progress.set_postfix(loss=f"{float(loss):.3f}", mb_per_s=f"{float(total_micro) / elapsed:,.0f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return float(total_loss) / max(n_batches, 1), int(total_micro), time.perf_counter() - started


def _progress(iterable, description: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the training path needs only torch and numpy
        return iterable
    return tqdm(iterable, desc=description, unit="batch", leave=False, disable=None)


def model_config_for(features_dir: str | Path, **overrides) -> RIBConfig:
    """A model config sized to the features' vocabularies."""
    vocab = load_vocab(features_dir)
    return RIBConfig(n_items=len(vocab["sku"]), n_dwell=vocab["n_dwell_buckets"] + 1, **overrides)
