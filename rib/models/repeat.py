"""The repeat part's own scorer: which of the session's earlier products comes back next.

Engagement belongs to a product, summed over its visits, not to one input position; and the
attention that pools the session for the explore softmax serves another objective. So the repeat
distribution of prefix t is over the *distinct* products of positions u <= t, each product
weighed by what the user did on it, every micro-behavior discounted by how many visits ago it was:

    e_v = softplus(MLP(f_v))                        the engagement of micro-behavior v
    s(t, y) = Σ_{v <= t, p_v = y} exp(r[visits from v to t]) e_v
    p_rep(t, y) = s(t, y) / Σ_y' s(t, y')

f_v holds what the variant reads of micro-behavior v: that it is one (a model reading SKU ids sees
every micro-behavior) and whether it starts a visit; with activity, which of the ten it is; with
dwell, the visit's dwell bucket. With r linear in the distance and e a weighted count of carts,
detail modules and long dwell, this is the fixed rule 0.8^age x (1 + 3 cart + 0.5 detail + [dwell >
60 s]); here r and e are learned. The weight of product y sits at its last occurrence u <= t (the
tensors stay (B, T, T): T is a window of `max_len` + 1 micro-behaviors).

Whether the next product is one of the session's at all is the gates' question; `switch_features`
gives them what tells it, next to the network's state (`gate_features`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

N_ACTIVITIES = 10
RECENCY_VISITS = 32  # visits back with a weight of their own; farther ones share the last


class ProductRepeatScorer(nn.Module):
    def __init__(self, n_dwell: int, activity: bool, dwell: bool, hidden: int = 16) -> None:
        super().__init__()
        self.activity, self.dwell, self.n_dwell = activity, dwell, n_dwell
        n_in = 2 + (N_ACTIVITIES if activity else 0) + (n_dwell - 1 if dwell else 0)
        self.engagement = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        # r_d: d visits back (0: the current visit); it starts as recency, 0.8 ** visits back. A plain
        # vector indexed by distance: its backward is 3x faster on CPU than an embedding table's.
        self.recency = nn.Parameter(torch.arange(RECENCY_VISITS, dtype=torch.float32) * -0.22)

    def micro_features(self, x: Tensor, visit_start: Tensor) -> Tensor:
        """(B, T, n_in) f_v of every position."""
        parts = [torch.ones_like(visit_start, dtype=torch.float32)[..., None], visit_start.float()[..., None]]
        if self.activity:  # codes 1..10 (0, padding, is all zeros)
            parts.append(nn.functional.one_hot(x[..., 1].clamp(0, N_ACTIVITIES), N_ACTIVITIES + 1)[..., 1:].float())
        if self.dwell:  # the visit's dwell bucket, at its first micro-behavior
            buckets = nn.functional.one_hot(x[..., 2].clamp(0, self.n_dwell - 1), self.n_dwell)[..., 1:]
            parts.append(buckets.float() * visit_start.float()[..., None])
        return torch.cat(parts, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, T): row t the repeat distribution of prefix t over positions u <= t, nonzero only
        at each distinct product's last occurrence (padding never: it comes after the real positions)."""
        sku = x[..., 0]  # (B, T)
        T = sku.shape[1]
        steps = torch.arange(T, device=x.device)
        visit_start = torch.ones_like(sku)
        visit_start[:, 1:] = (sku[:, 1:] != sku[:, :-1]).long()
        visit = visit_start.cumsum(dim=1)  # (B, T) the visit each position belongs to
        engagement = nn.functional.softplus(self.engagement(self.micro_features(x, visit_start))).squeeze(-1)  # (B, T)
        before = steps[None, :] <= steps[:, None]  # (T, T): [t, v] v <= t
        distance = (visit[:, :, None] - visit[:, None, :]).clamp(0, RECENCY_VISITS - 1)  # (B, t, v)
        decay = self.recency.float().exp()[distance] * before  # (B, t, v)
        same = (sku[:, :, None] == sku[:, None, :]).float()  # (B, v, u): one product
        weight = (decay * engagement.float()[:, None, :]) @ same  # (B, t, u): s(t, p_u)
        # u stands for its product in prefix t when u <= t < the product's next occurrence.
        later = torch.where((same > 0) & ~before, steps[None, None, :], T)  # (B, u, v): v > u on u's product
        next_same = later.min(dim=2).values  # (B, u)
        stands = before[None] & (steps[None, :, None] < next_same[:, None, :])  # (B, t, u)
        weight = weight * stands
        return weight / weight.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def switch_features(x: Tensor, activity: bool, dwell: bool, n_dwell: int) -> Tensor:
    """(B, T, K) what tells whether the next product is one of the session's earlier products,
    for the prefix ending at each position t: the session so far (log visits, micro-behaviors,
    distinct products, micro-behaviors of the current visit, earlier visits to the current
    product; distinct products per visit) and, with activity, the current visit's activities,
    its entry source and the session's carts and orders; with dwell, its dwell bucket. The gates
    of the mixture read them next to the network's state (`gate_features`). 0 on padding."""
    sku = x[..., 0]
    T = sku.shape[1]
    steps = torch.arange(T, device=x.device)
    real = sku != 0
    start = torch.ones_like(real)
    start[:, 1:] = sku[:, 1:] != sku[:, :-1]
    start &= real
    visit_start = torch.where(start, steps, 0).cummax(dim=1).values  # (B, T) where the current visit began
    same = sku[:, :, None] == sku[:, None, :]  # (B, t, u)
    seen = (same & (steps[None, None, :] < steps[None, :, None])).any(dim=2)  # the product came before t
    again = (same & start[:, None, :] & (steps[None, None, :] < visit_start[:, :, None])).sum(dim=2)
    visits = start.cumsum(dim=1).float()
    counts = [visits, real.cumsum(dim=1), (real & ~seen).cumsum(dim=1), steps - visit_start + 1, again]
    parts = [torch.log1p(torch.stack(counts, dim=-1).float()), (counts[2] / visits.clamp_min(1))[..., None]]
    if activity:
        kinds = nn.functional.one_hot(x[..., 1].clamp(0, N_ACTIVITIES), N_ACTIVITIES + 1)[..., 1:].float()  # (B, T, 10)
        total = kinds.cumsum(dim=1)
        before_visit = torch.where(
            visit_start[..., None] > 0, total.gather(1, (visit_start - 1).clamp_min(0)[..., None].expand_as(total)), 0.0
        )
        parts += [
            torch.log1p(total - before_visit),  # the current visit's activities so far
            kinds.gather(1, visit_start[..., None].expand_as(kinds)),  # its entry source
            torch.log1p(total[..., -2:]),  # carts and orders in the session so far (codes 9, 10)
        ]
    if dwell:
        buckets = nn.functional.one_hot(x[..., 2].clamp(0, n_dwell - 1), n_dwell)[..., 1:].float()
        parts.append(buckets.gather(1, visit_start[..., None].expand_as(buckets)))
    return torch.cat(parts, dim=-1) * real[..., None]


def n_switch_features(activity: bool, dwell: bool, n_dwell: int) -> int:
    return 6 + (2 * N_ACTIVITIES + 2 if activity else 0) + (n_dwell - 1 if dwell else 0)
