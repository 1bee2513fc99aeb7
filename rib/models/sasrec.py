"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the sequence, as a baseline.

    x_t = W_P p_t + P_t (learned positions);  `blocks` x [causal multi-head attention + FFN,
    each with a residual, layer norm first, dropout];  o_t = LayerNorm(x_t)
    ŷ_t = softmax(o_t W_Pᵀ) over every product (the output shares the SKU embeddings, as published)

Every prefix is encoded in one pass by the causal mask; the output layer, the full-softmax loss and
the scorer are the shared ones (rib/models/network.py). The attention returned for an input is the
last block's, averaged over heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rib.config import SASRecConfig
from rib.models.network import NextItemNetwork, causal_mask

MAX_POSITIONS = 512


class SASRec(NextItemNetwork):
    def __init__(self, config: SASRecConfig) -> None:
        d = config.d_sku
        super().__init__(config, d)
        if self.d_in != d:
            raise ValueError("SASRec reads SKUs alone (variant sku)")
        self.position_embedding = nn.Embedding(MAX_POSITIONS, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, config.heads, dim_feedforward=d, dropout=config.dropout, batch_first=True, norm_first=True
            )
            for _ in range(config.blocks)
        )
        self.norm = nn.LayerNorm(d)
        nn.init.xavier_normal_(self.sku_embedding.weight)  # small: the output scores against these same vectors
        with torch.no_grad():
            self.sku_embedding.weight[0] = 0
        del self.output
        self.output_projection = nn.Identity()  # scores are o · W_P: the SKU embeddings serve as output
        self.output_bias = nn.Parameter(torch.zeros(config.n_items))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        T = x.shape[1]
        positions = torch.arange(T, device=x.device)
        h = self.embed(x) * self.config.d_sku**0.5 + self.position_embedding(positions)[None]  # (B, T, d)
        blocked = ~causal_mask(T, x.device)  # True where attention is not allowed
        for block in self.blocks:
            block_input = h
            h = block(h, src_mask=blocked, is_causal=True)
        with torch.no_grad():  # the last block's attention weights, to report (not trained through)
            last = self.blocks[-1]
            q = last.norm1(block_input)
            _, alpha = last.self_attn(q, q, q, attn_mask=blocked, need_weights=True, average_attn_weights=True)
        return self.norm(h), alpha.float()  # (B, T, d), (B, T, T)
