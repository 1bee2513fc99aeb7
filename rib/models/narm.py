"""NARM (Li et al., CIKM 2017): a GRU encoder with a global and a local part, as a baseline.

    h_t = GRU(W_P p_t, h_{t-1})
    global: c_g = h_t (the prefix's last state)
    local:  α_tj = v · σ(A_1 h_t + A_2 h_j) over j <= t,  c_l = Σ_j α_tj h_j
    ŷ_t = softmax(W_Pᵀ B [c_g ; c_l]) over every product (a bilinear decoder on the SKU embeddings)

As published, the local weights are not normalised; the attention returned for an input is them
normalised over the prefix. Every prefix is encoded in one pass (the pairwise scores are (B, T, T)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rib.config import NARMConfig
from rib.models.network import NextItemNetwork, causal_mask


class NARM(NextItemNetwork):
    def __init__(self, config: NARMConfig) -> None:
        super().__init__(config, 2 * config.hidden)
        self.rnn = nn.GRU(self.d_in, config.hidden, batch_first=True)
        self.a_1 = nn.Linear(config.hidden, config.hidden, bias=False)
        self.a_2 = nn.Linear(config.hidden, config.hidden, bias=False)
        self.v = nn.Linear(config.hidden, 1, bias=False)
        del self.output
        self.output_projection = nn.Linear(2 * config.hidden, config.d_sku, bias=False)  # B
        self.output_bias = nn.Parameter(torch.zeros(config.n_items))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, _ = self.rnn(self.embed(x))  # (B, T, H)
        causal = causal_mask(x.shape[1], x.device)  # (T, T)
        pair = torch.sigmoid(self.a_1(h)[:, :, None, :] + self.a_2(h)[:, None, :, :])  # (B, T, T, H): query t, key j
        weights = self.v(pair).squeeze(-1) * causal  # (B, T, T), 0 for j > t
        local = weights @ h  # (B, T, H)
        pooled = torch.cat([h, local], dim=-1)  # (B, T, 2H)
        shown = weights.abs() / weights.abs().sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.dropout(pooled), shown.detach()
