"""Full-softmax cross-entropy over the whole catalog without materialising all logits at once.

For N targets and V products the logits are N x V (30k x 100k = 3e9 numbers for a GPU batch).
`linear_cross_entropy` computes them chunk by chunk, keeps only each row's log-sum-exp, and in
the backward pass recomputes each chunk's logits to form softmax - one_hot. On CUDA the per-chunk
elementwise work can be fused by torch.compile (`compile=True`); the matrix products stay cuBLAS.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _chunk_forward(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    logits = (x @ weight.t()).float() + bias.float()  # (C, V)
    lse = torch.logsumexp(logits, dim=1)  # (C,)
    picked = logits.gather(1, target[:, None]).squeeze(1)  # (C,)
    return lse - picked, lse  # per-row negative log-likelihood, log-sum-exp


def _chunk_grad_logits(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor, lse: Tensor, scale: Tensor) -> Tensor:
    logits = (x @ weight.t()).float() + bias.float()  # (C, V)
    probs = torch.exp(logits - lse[:, None])
    probs = probs.scatter_add(1, target[:, None], -torch.ones_like(lse)[:, None])
    return (probs * scale[:, None]).to(x.dtype)  # d loss / d logits, (C, V)


_compiled: dict[str, object] = {}


def _kernels(compile: bool):
    if not compile:
        return _chunk_forward, _chunk_grad_logits
    if not _compiled:
        _compiled["forward"] = torch.compile(_chunk_forward, dynamic=False)
        _compiled["grad"] = torch.compile(_chunk_grad_logits, dynamic=False)
    return _compiled["forward"], _compiled["grad"]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, target, chunk, compute_dtype, compile):
        n = x.shape[0]
        x_c, target_p = x.to(compute_dtype), target
        if compile:  # pad to whole chunks: every chunk has one shape, so one compiled kernel
            pad = -(-n // chunk) * chunk - n
            x_c = torch.cat([x_c, x_c.new_zeros(pad, x.shape[1])])
            target_p = torch.cat([target, target.new_zeros(pad)])
        w_c = weight.to(compute_dtype)
        forward_chunk, _ = _kernels(compile)
        nll = torch.empty(x_c.shape[0], device=x.device)
        lse = torch.empty(x_c.shape[0], device=x.device)
        for i in range(0, x_c.shape[0], chunk):
            rows = slice(i, i + chunk)
            nll[rows], lse[rows] = forward_chunk(x_c[rows], w_c, bias, target_p[rows])
        ctx.save_for_backward(x_c, w_c, bias, target_p, lse)
        ctx.meta = (n, chunk, x.dtype, weight.dtype, compile)
        return nll[:n]

    @staticmethod
    def backward(ctx, grad_nll):
        x_c, w_c, bias, target_p, lse = ctx.saved_tensors
        n, chunk, x_dtype, w_dtype, compile = ctx.meta
        _, grad_chunk = _kernels(compile)
        scale = torch.zeros(x_c.shape[0], device=x_c.device)
        scale[:n] = grad_nll
        grad_x = torch.empty_like(x_c)
        grad_w = torch.zeros(w_c.shape, device=w_c.device, dtype=torch.float32)
        grad_b = torch.zeros(bias.shape, device=bias.device, dtype=torch.float32)
        for i in range(0, x_c.shape[0], chunk):
            rows = slice(i, i + chunk)
            g = grad_chunk(x_c[rows], w_c, bias, target_p[rows], lse[rows], scale[rows])
            grad_x[rows] = g @ w_c
            grad_w += (g.t() @ x_c[rows]).float()
            grad_b += g.float().sum(0)
        return grad_x[:n].to(x_dtype), grad_w.to(w_dtype), grad_b.to(bias.dtype), None, None, None, None


def linear_cross_entropy(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    target: Tensor,
    chunk: int = 4096,
    compute_dtype: torch.dtype | None = None,
    compile: bool = False,
) -> Tensor:
    """Per-row cross-entropy -log softmax(x @ weight.T + bias)[target]. x (N, H), weight (V, H) -> (N,)"""
    if x.shape[0] == 0:
        return x.new_zeros(0, dtype=torch.float32) + (weight.sum() + bias.sum()).float() * 0
    chunk = min(chunk, x.shape[0])
    return _LinearCrossEntropy.apply(x, weight, bias, target, chunk, compute_dtype or x.dtype, compile)
