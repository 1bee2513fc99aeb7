"""Full-softmax cross-entropy over the whole catalog without materialising every logit in fp32.

For N targets and V products the logits are N x V (38k x 100k = 3.8e9 numbers for one GPU
batch). `linear_cross_entropy` computes them chunk by chunk and, in the same pass, the
gradient with respect to the logits, softmax - one_hot, in the compute dtype. Row scaling
commutes with the matrix products, so the backward pass is two products per chunk with that
stored gradient (grad_x = (G W) * s, [grad_W, grad_b] = G^T [x * s, s]): no logits are
recomputed. When the stored gradient would exceed `store_limit_bytes` (very large catalogs)
each chunk's logits are recomputed in the backward pass instead. On CUDA the per-chunk
elementwise work can be fused by torch.compile (`compile=True`); the products stay cuBLAS.
"""

from __future__ import annotations

import torch
from torch import Tensor

STORE_LIMIT_BYTES = 12 * 1024**3
CHUNK_LIMIT_BYTES = {"cuda": 8 * 1024**3}  # one chunk's logits and their gradient; elsewhere 1 GiB


def _chunk_forward(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    logits = (x @ weight.t()).float() + bias.float()  # (C, V)
    lse = torch.logsumexp(logits, dim=1)  # (C,)
    picked = logits.gather(1, target[:, None]).squeeze(1)  # (C,)
    one_hot = torch.arange(logits.shape[1], device=logits.device)[None, :] == target[:, None]  # fuses, unlike scatter
    grad_logits = (torch.exp(logits - lse[:, None]) - one_hot.float()).to(x.dtype)  # d nll / d logits, (C, V)
    return lse - picked, lse, grad_logits


def _chunk_nll(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    logits = (x @ weight.t()).float() + bias.float()  # (C, V)
    lse = torch.logsumexp(logits, dim=1)
    return lse - logits.gather(1, target[:, None]).squeeze(1), lse


def _chunk_grad_logits(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor, lse: Tensor) -> Tensor:
    logits = (x @ weight.t()).float() + bias.float()  # (C, V)
    one_hot = torch.arange(logits.shape[1], device=logits.device)[None, :] == target[:, None]
    return (torch.exp(logits - lse[:, None]) - one_hot.float()).to(x.dtype)


_compiled: dict[str, object] = {}


def _kernel(name: str, compile: bool):
    plain = {"forward": _chunk_forward, "nll": _chunk_nll, "grad": _chunk_grad_logits}[name]
    if not compile:
        return plain
    if name not in _compiled:
        _compiled[name] = torch.compile(plain, dynamic=False)
    return _compiled[name]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, target, chunk, compute_dtype, compile, store_limit_bytes):
        n = x.shape[0]
        x_c, target_p = x.to(compute_dtype), target
        if compile:  # pad to whole chunks: every chunk has one shape, so one compiled kernel
            pad = -(-n // chunk) * chunk - n
            x_c = torch.cat([x_c, x_c.new_zeros(pad, x.shape[1])])
            target_p = torch.cat([target, target.new_zeros(pad)])
        w_c = weight.to(compute_dtype)
        store = x_c.shape[0] * weight.shape[0] * x_c.element_size() <= store_limit_bytes
        nll, lse, grads = [], [], []
        for i in range(0, x_c.shape[0], chunk):
            rows = slice(i, i + chunk)
            if store:  # keep each chunk's gradient as the kernel wrote it: no copy into a big buffer
                chunk_nll, chunk_lse, chunk_grad = _kernel("forward", compile)(x_c[rows], w_c, bias, target_p[rows])
                grads.append(chunk_grad)
            else:
                chunk_nll, chunk_lse = _kernel("nll", compile)(x_c[rows], w_c, bias, target_p[rows])
            nll.append(chunk_nll)
            lse.append(chunk_lse)
        lse = torch.cat(lse)
        ctx.save_for_backward(x_c, w_c, bias, target_p, lse, *grads)
        ctx.meta = (n, chunk, x.dtype, weight.dtype, compile, store)
        return torch.cat(nll)[:n]

    @staticmethod
    def backward(ctx, grad_nll):
        x_c, w_c, bias, target_p, lse, *grads = ctx.saved_tensors
        n, chunk, x_dtype, w_dtype, compile, store = ctx.meta
        rows_total, hidden = x_c.shape
        scale = torch.zeros(rows_total, 1, device=x_c.device, dtype=x_c.dtype)
        scale[:n, 0] = grad_nll.to(x_c.dtype)
        # [x * s, s] gives W's and b's gradients in one product; padded to 8 columns for fast GEMM kernels.
        width = -(-(hidden + 1) // 8) * 8
        scaled_inputs = torch.cat([x_c * scale, scale, scale.new_zeros(rows_total, width - hidden - 1)], dim=1)
        grad_x = torch.empty_like(x_c)
        grad_wb = torch.zeros(w_c.shape[0], width, device=w_c.device)
        for index, i in enumerate(range(0, rows_total, chunk)):
            rows = slice(i, i + chunk)
            g = grads[index] if store else _kernel("grad", compile)(x_c[rows], w_c, bias, target_p[rows], lse[rows])
            grad_x[rows] = (g @ w_c) * scale[rows]
            grad_wb += (g.t() @ scaled_inputs[rows]).float()
        return (
            grad_x[:n].to(x_dtype),
            grad_wb[:, :hidden].to(w_dtype),
            grad_wb[:, hidden].to(bias.dtype),
            None,
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    target: Tensor,
    chunk: int = 4096,
    compute_dtype: torch.dtype | None = None,
    compile: bool = False,
    store_limit_bytes: int = STORE_LIMIT_BYTES,
) -> Tensor:
    """Per-row cross-entropy -log softmax(x @ weight.T + bias)[target]. x (N, H), weight (V, H) -> (N,)"""
    if x.shape[0] == 0:
        return x.new_zeros(0, dtype=torch.float32) + (weight.sum() + bias.sum()).float() * 0
    # A chunk holds its fp32 logits, their exponentials and the stored gradient: about 12 bytes per
    # row and product, so the rows per chunk shrink as the catalog grows (1M products: 89 on CPU).
    limit = CHUNK_LIMIT_BYTES.get(x.device.type, 1024**3)
    chunk = max(1, min(chunk, x.shape[0], limit // (12 * weight.shape[0])))
    return _LinearCrossEntropy.apply(
        x, weight, bias, target, chunk, compute_dtype or x.dtype, compile, store_limit_bytes
    )


class NegativeSampler:
    """Negatives for a sampled softmax: `count` products per batch, shared by its targets, drawn with
    replacement from popularity^alpha (training visits; 0 gives the uniform distribution), with
    the log of each product's expected count in a draw kept for the logQ correction."""

    def __init__(self, counts: Tensor, count: int, alpha: float = 0.75, generator: torch.Generator | None = None):
        weights = counts.double().clamp_min(0) ** alpha
        weights[:2] = 0  # padding and out-of-vocabulary are never candidates
        self.probabilities = (weights / weights.sum()).float()
        self.log_expected = torch.log(self.probabilities * count).clamp_min(-1e4)  # log Q(y) = log(count q(y))
        self.count, self.generator = count, generator

    def sample(self, device: torch.device) -> Tensor:
        drawn = torch.multinomial(self.probabilities, self.count, replacement=True, generator=self.generator)
        return drawn.to(device)


def sampled_cross_entropy(
    x: Tensor, weight: Tensor, bias: Tensor, target: Tensor, negatives: Tensor, log_expected: Tensor
) -> Tensor:
    """Per-row cross-entropy over the target and the shared sampled negatives (S,), with the logQ
    correction (Bengio & Senécal; Yi et al., RecSys 2019): every candidate's logit minus the log of
    its expected count, and a negative that is the row's own target (an accidental hit) removed.
    x (N, H), weight (V, H) -> (N,). Evaluation always ranks the full catalog."""
    log_q = log_expected.to(x.device)
    positive = (x * weight[target]).sum(dim=1).float() + bias[target].float() - log_q[target]  # (N,)
    negative = (x @ weight[negatives].t()).float() + bias[negatives].float() - log_q[negatives]  # (N, S)
    negative = negative.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], negative], dim=1)  # (N, 1 + S)
    return torch.logsumexp(logits, dim=1) - positive
