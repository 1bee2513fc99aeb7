"""Benchmark: RIB training throughput (micro-behaviors per second, seconds per epoch).

CPU, on the real JD Appliances sample (needs ../shared/data/jd and the project's venv):
    .venv/bin/python benchmarks/train_throughput.py --jd ../shared/data/jd/appliances.txt

GPU, on a synthetic catalog of 100,000 SKUs (needs only torch and numpy, so it runs on the lent
GPU machine; pass --plain to time ../shared/bench/plain_loop.py in the same run):
    python benchmarks/train_throughput.py --synthetic --skus 100000 --batch-sizes 1024 2048

The GPU target: >= 2M micro-behaviors/s, over twice the plain loop on the same GPU.

The largest catalog that trains here, full softmax against sampled (each size in its own process,
its peak memory measured; a size "trains" when it keeps >= --min-rate micro-behaviors/s within
--memory-gb):
    .venv/bin/python benchmarks/train_throughput.py --largest --sampled 0 1024

Our chunked softmax against Liger-Kernel's fused linear cross-entropy (CUDA, when installed):
    python benchmarks/train_throughput.py --kernels
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rib.config import FeatureConfig, RIBConfig, TrainConfig
from rib.features.dataset import SplitData
from rib.models.loss import NegativeSampler
from rib.models.rib import RIB
from rib.models.train import WindowLoader, make_optimizer, pick_device, train_epoch


def synthetic_split(n_micro: int, n_skus: int, seed: int = 0) -> SplitData:
    """Random sessions with JD-like shape (about 40 micro-behaviors, 1.6 per macro interaction)."""
    rng = np.random.default_rng(seed)
    lengths = 2 + rng.negative_binomial(2, 2 / 40, size=n_micro // 40 + 1)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_micro) + 1]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    starts = rng.random(n) < 0.62
    starts[offsets[:-1]] = True
    macro_global = np.cumsum(starts) - 1
    session_of = np.repeat(np.arange(len(lengths)), lengths)
    macro = macro_global - macro_global[offsets[:-1]][session_of]
    zipf = np.minimum(rng.zipf(1.2, size=macro_global[-1] + 1), n_skus) - 1
    sku = (2 + (zipf * 7919) % n_skus)[macro_global].astype(np.int32)
    empty = np.zeros(0, np.int64)
    return SplitData(
        sku=sku,
        activity=rng.integers(1, 11, n).astype(np.int8),
        dwell=rng.integers(1, 6, n).astype(np.int8),
        interval=rng.integers(1, 6, n).astype(np.int8),
        macro=macro.astype(np.int32),
        session_offsets=offsets,
        example_start=empty,
        example_end=empty,
        example_target=empty.astype(np.int32),
        example_session=empty.astype(np.int32),
        example_is_last=empty.astype(bool),
    )


def time_training(data: SplitData, n_items: int, config: TrainConfig, model_config: RIBConfig, batches: int | None):
    device = pick_device(config.device)
    torch.manual_seed(0)
    model = RIB(model_config).to(device)
    optimizer = make_optimizer(model, config, device)
    loader = WindowLoader(data, FeatureConfig().max_len, device)
    generator = torch.Generator().manual_seed(0)
    sampler = None
    if config.sampled_softmax:  # negatives from the training popularity, as train_network draws them
        counts = torch.as_tensor(np.bincount(np.asarray(data.sku), minlength=n_items).astype(np.float64))
        sampler = NegativeSampler(counts, config.sampled_softmax, config.sample_alpha, torch.Generator().manual_seed(1))
    if batches is not None:  # warm-up (compilation, cuDNN plans) outside the timing
        train_epoch(model, loader, optimizer, config, generator, "warm-up", max_batches=5, sampler=sampler)
    loss, micro, seconds = train_epoch(
        model, loader, optimizer, config, generator, "timed", max_batches=batches, sampler=sampler
    )
    return micro / seconds, seconds, micro, loss


def check_loss(device: torch.device) -> None:
    """The chunked (and compiled) softmax against PyTorch's cross-entropy on this device."""
    import torch.nn.functional as F

    from rib.models.loss import linear_cross_entropy

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(5000, 100, device=device, generator=g, requires_grad=True)
    w = torch.randn(20000, 100, device=device, generator=g, requires_grad=True) * 0.1
    w.retain_grad()
    b = torch.zeros(20000, device=device, requires_grad=True)
    t = torch.randint(0, 20000, (5000,), device=device, generator=g)
    reference = F.cross_entropy(x @ w.t() + b, t)
    ref_grads = torch.autograd.grad(reference, (x, w))
    for compile_loss in (False, True) if device.type == "cuda" else (False,):
        for dtype in (torch.float32, torch.bfloat16):
            loss = linear_cross_entropy(x, w, b, t, chunk=2048, compute_dtype=dtype, compile=compile_loss).mean()
            grads = torch.autograd.grad(loss, (x, w))
            errors = [float((a - r).norm() / r.norm()) for a, r in zip(grads, ref_grads, strict=True)]
            print(
                f"loss check compile={compile_loss} {dtype}: |dloss|={abs(float(loss - reference)):.2e} "
                f"grad rel err x={errors[0]:.1e} w={errors[1]:.1e}",
                flush=True,
            )


def profile_steps(data, n_items, model_config, setting, device, steps: int = 8) -> None:
    from torch.profiler import ProfilerActivity, profile

    batch_size, compile_loss, chunk = setting
    config = TrainConfig(
        batch_size=batch_size, progress=False, device=str(device), compile_loss=compile_loss, loss_chunk=chunk
    )
    model = RIB(model_config).to(device)
    optimizer = make_optimizer(model, config, device)
    loader = WindowLoader(data, FeatureConfig().max_len, device)
    generator = torch.Generator().manual_seed(1)
    train_epoch(model, loader, optimizer, config, generator, "warm-up", max_batches=3)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _, _, seconds = train_epoch(model, loader, optimizer, config, generator, "profiled", max_batches=steps)
    print(f"profiled {steps} steps in {seconds:.2f} s")
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60))


def peak_memory(device: torch.device) -> str:
    """This process's peak memory, as the --largest walk reads it back."""
    peak = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB"
    if device.type == "cuda":
        peak += f", peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GB"
    return peak


def largest_catalog(args: argparse.Namespace) -> None:
    """Walk up the catalog sizes, each in a fresh process, for every softmax setting, and print the
    largest catalog that trains: at least `min_rate` micro-behaviors/s within `memory_gb`."""
    print(f"\nlargest catalog: >= {args.min_rate:,} micro-behaviors/s within {args.memory_gb} GB, batch 256")
    print("| softmax | SKUs | micro-behaviors/s | peak memory | trains |\n|---|---:|---:|---|---|")
    largest = {}
    for sampled in args.sampled:
        softmax = f"sampled {sampled}" if sampled else "full"
        for skus in args.catalogs:
            command = [sys.executable, __file__, "--synthetic", "--skus", str(skus), "--batches", "10",
                       "--micro-behaviors", "400000", "--sampled", str(sampled), "--device", args.device]  # fmt: skip
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.step_timeout * 8)
                output = done.stdout + done.stderr + (f"\nexit status {done.returncode}" if done.returncode else "")
            except subprocess.TimeoutExpired:
                output = "timed out"
            found = re.search(r": ([\d,]+) micro-behaviors/s .*peak RSS ([\d.]+) GB(?:, peak GPU ([\d.]+) GB)?", output)
            if not found:
                reason = output.strip().splitlines()[-1] if output.strip() else "no output"
                print(f"| {softmax} | {skus:,} | - | - | no: {reason[:80]} |", flush=True)
                break
            rate, rss, gpu = int(found[1].replace(",", "")), float(found[2]), found[3]
            memory = float(gpu) if gpu else rss
            trains = rate >= args.min_rate and memory <= args.memory_gb
            shown = f"{rss:.1f} GB RSS" + (f", {float(gpu):.1f} GB GPU" if gpu else "")
            print(f"| {softmax} | {skus:,} | {rate:,} | {shown} | {'yes' if trains else 'no'} |", flush=True)
            if not trains:
                break
            largest[softmax] = skus
    for softmax, skus in largest.items():
        print(f"largest catalog that trains, {softmax} softmax: {skus:,} SKUs")


def compare_kernels(device: torch.device, n: int = 38_000, v: int = 100_000, h: int = 100) -> None:
    """Forward + backward of the output layer's loss: our chunked softmax against Liger-Kernel's fused
    linear cross-entropy, timed on the same inputs, each checked against PyTorch in fp32."""
    import torch.nn.functional as F

    from rib.models.loss import linear_cross_entropy

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, h, device=device, generator=g)
    w = torch.randn(v, h, device=device, generator=g) * 0.1
    b = torch.zeros(v, device=device)
    t = torch.randint(2, v, (n,), device=device, generator=g)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    F.cross_entropy(xr @ wr.t() + b, t).backward()
    kernels = {
        "chunked bf16": lambda x, w: linear_cross_entropy(x, w, b, t, 4096, torch.bfloat16).mean(),
        "chunked bf16 compiled": lambda x, w: linear_cross_entropy(x, w, b, t, 4096, torch.bfloat16, True).mean(),
    }
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        liger = LigerFusedLinearCrossEntropyLoss()
        kernels["liger fused bf16"] = lambda x, w: liger(w.bfloat16(), x.bfloat16(), t, b.bfloat16())
        kernels["liger fused fp32"] = lambda x, w: liger(w, x, t, b)
    except ImportError as error:
        print(f"liger-kernel not importable ({error}): only our kernel is timed")
    print(f"\nloss kernel, N={n:,} targets x V={v:,} products x H={h}, forward + backward:")
    for name, kernel in kernels.items():
        try:
            for repeat in range(6):  # the first two warm up (compilation, autotuning)
                if repeat == 2:
                    torch.cuda.synchronize()
                    started = time.perf_counter()
                xk, wk = x.clone().requires_grad_(), w.clone().requires_grad_()
                loss = kernel(xk, wk)
                loss.backward()
            torch.cuda.synchronize()
            ms = (time.perf_counter() - started) / 4 * 1000
            errors = [float((a.grad.float() - r.grad).norm() / r.grad.norm()) for a, r in ((xk, xr), (wk, wr))]
            print(f"  {name}: {ms:.2f} ms, grad rel err x {errors[0]:.1e}, w {errors[1]:.1e}", flush=True)
        except Exception as error:
            print(f"  {name}: FAILED {type(error).__name__}: {error}", flush=True)


def jd_features(path: Path, out: Path) -> Path:
    from rib.config import DataConfig, FeatureConfig
    from rib.data.ingest import ingest_logs
    from rib.features.build import build_features

    ingest_logs(DataConfig(format="jd", inputs=[str(path)]), out / "ingest")
    build_features(out / "ingest" / "micro_behaviors.parquet", out / "features", FeatureConfig())
    return out / "features"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jd", type=Path, help="a JD sample: time full epochs on its training split")
    parser.add_argument("--synthetic", action="store_true", help="time training on a synthetic catalog")
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--micro-behaviors", type=int, default=4_000_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per synthetic run")
    parser.add_argument("--compile", nargs="+", default=["auto"], help="compile_loss settings to compare")
    parser.add_argument("--plain", type=Path, help="plain_loop.py to run in the same process tree, for the ratio")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--check", action="store_true", help="check the chunked softmax against PyTorch first")
    parser.add_argument("--chunks", type=int, nargs="+", default=[4096], help="loss_chunk settings to compare")
    parser.add_argument("--profile", action="store_true", help="print the top CUDA kernels of the first setting")
    parser.add_argument("--sampled", type=int, nargs="+", default=[0], help="negatives per batch (0: full softmax)")
    parser.add_argument("--largest", action="store_true", help="walk up --catalogs for every --sampled setting")
    parser.add_argument("--catalogs", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000, 3_000_000])
    parser.add_argument("--min-rate", type=int, default=1000, help="micro-behaviors/s a catalog must keep to count")
    parser.add_argument("--memory-gb", type=float, default=20.0, help="memory a catalog may take to count")
    parser.add_argument("--step-timeout", type=int, default=60, help="seconds per batch before a size fails")
    parser.add_argument("--kernels", action="store_true", help="time our chunked softmax against Liger's (CUDA)")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads")
    )
    if args.check:
        check_loss(device)
    if args.kernels and device.type == "cuda":
        compare_kernels(device)
    if args.largest:
        largest_catalog(args)
        return
    rows = []
    if args.jd:
        from rib.features.dataset import load_vocab

        with tempfile.TemporaryDirectory() as tmp:
            features = jd_features(args.jd, Path(tmp))
            train = SplitData.load(features, "train")
            vocab = load_vocab(features)
            n_items = len(vocab["sku"])
            model_config = RIBConfig(n_items=n_items, n_dwell=vocab["n_dwell_buckets"] + 1, neighbors=False)
            for batch_size in args.batch_sizes:
                for sampled in args.sampled:
                    config = TrainConfig(
                        batch_size=batch_size, progress=False, device=str(device), sampled_softmax=sampled
                    )
                    softmax = f"sampled {sampled}" if sampled else "full"
                    for epoch in range(2):
                        rate, seconds, micro, _ = time_training(train, n_items, config, model_config, None)
                        rows.append(
                            (
                                f"JD {args.jd.stem} epoch {epoch + 1}, {softmax} softmax",
                                batch_size,
                                "-",
                                micro,
                                seconds,
                                rate,
                            )
                        )
            if args.plain:  # the yardstick on the same catalog size, in the same run
                print("\nplain loop (CPU, same catalog size, same run):", flush=True)
                subprocess.run([sys.executable, str(args.plain), "--cpu", str(n_items), *map(str, args.batch_sizes)])
    if args.synthetic:
        data = synthetic_split(args.micro_behaviors, args.skus)
        n_items = args.skus + 2
        model_config = RIBConfig(n_items=n_items, neighbors=False)
        settings = [
            (b, c, k, n) for b in args.batch_sizes for c in args.compile for k in args.chunks for n in args.sampled
        ]
        for batch_size, compile_loss, chunk, sampled in settings:
            config = TrainConfig(
                batch_size=batch_size,
                progress=False,
                device=str(device),
                compile_loss=compile_loss,
                loss_chunk=chunk,
                sampled_softmax=sampled,
            )
            softmax = f"sampled {sampled}" if sampled else "full"
            label = f"batch {batch_size} compile {compile_loss} chunk {chunk} {softmax} softmax"
            try:
                rate, seconds, micro, loss = time_training(data, n_items, config, model_config, args.batches)
            except Exception as error:  # report and go on to the next setting
                print(f"{label}: FAILED {type(error).__name__}: {error}")
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            name = f"synthetic {args.skus:,} SKUs, chunk {chunk}, {softmax} softmax"
            rows.append((name, batch_size, compile_loss, micro, seconds, rate))
            print(f"{label}: {rate:,.0f} micro-behaviors/s (loss {loss:.3f}) {peak_memory(device)}", flush=True)
        if args.profile:
            profile_steps(data, n_items, model_config, settings[0][:3], device)
    print(
        "\n| run | batch | compile_loss | micro-behaviors | seconds | micro-behaviors/s |"
        "\n|---|---:|---|---:|---:|---:|"
    )
    for name, batch_size, compile_loss, micro, seconds, rate in rows:
        print(f"| {name} | {batch_size} | {compile_loss} | {micro:,} | {seconds:.2f} | {rate:,.0f} |")
    if args.plain and args.synthetic:
        print("\nplain loop (same GPU, same run):", flush=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(args.plain), *map(str, args.batch_sizes)], check=False)
        print(f"(plain loop wall {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
