"""RIB (Zhou et al., WSDM 2018): embeddings -> GRU -> attention -> softmax over every product.

    x_t = [W_P p_t ; W_A a_t ; W_D d_t]                 (eq. 3, tables initialised by word2vec)
    h_t = GRU(x_t, h_{t-1})                              (eq. 4-6; LSTM selectable)
    M_t = tanh(W_m h_t + b_m)                            (eq. 7; `attention_inputs`: + W_x x_t)
    α   = softmax(W_a M + b_a),  o = Σ_t α_t h_t         (`recency`: + r_{T-t}, a learned bias by distance)
    ŷ   = softmax(W_o o + b_o) over all products, cross-entropy

The output layer, the loss, the scorer and the two options beyond the paper (`tied_output`,
`repeat`: the repeat-explore mixture over this attention, or with `repeat_scorer` over the
distinct products of the session scored by their engagement, rib/models/repeat.py) are shared by every network:
rib/models/network.py. Every prefix of a sequence is pooled in one pass: the pooled vector at
position t attends only to positions <= t (a masked softmax per row), so each next-product target
of a training session gets exactly the vector it would get from its own truncated prefix. The
ablation RIB-Attention (`attention=False`, and GRU4Rec, which is that network on SKUs alone) feeds
h_t itself to the output layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rib.config import RIBConfig
from rib.models.network import NextItemNetwork, causal_mask, last_state_attention
from rib.models.repeat import ProductRepeatScorer
from rib.schema import VARIANTS

RECENCY_DISTANCES = 64  # distances to the prefix's end with a bias of their own; farther ones share the last


class RIB(NextItemNetwork):
    def __init__(self, config: RIBConfig) -> None:
        if config.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be gru or lstm, got {config.rnn!r}")
        if config.explore_pooling not in ("attention", "last"):
            raise ValueError(f"explore_pooling must be attention or last, got {config.explore_pooling!r}")
        if config.explore_ranking not in ("gates", "validation"):
            raise ValueError(f"explore_ranking must be gates or validation, got {config.explore_ranking!r}")
        # The explore half pools the session by attention (the paper), or with `repeat` and
        # `explore_pooling: last` reads the last state; the repeat part then needs its own scorer.
        self.pools = config.attention and not (config.repeat and config.explore_pooling == "last")
        if config.repeat and not self.pools and not config.repeat_scorer:
            raise ValueError("repeat needs the attention layer or the repeat scorer: one is the repeat distribution")
        super().__init__(config, config.hidden)
        rnn = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn(self.d_in, config.hidden, batch_first=True)
        if self.pools:
            self.attention_m = nn.Linear(config.hidden, config.hidden)  # W_m, b_m
            # W_a; eq. 7's b_a adds one constant to every logit, which the softmax cancels: left out
            # (its gradient is zero, and Adam would turn float noise in it into steps).
            self.attention_a = nn.Linear(config.hidden, 1, bias=False)
        if self.pools and config.attention_inputs:  # W_x: each position's micro-behavior, directly
            self.attention_x = nn.Linear(self.d_in, config.hidden, bias=False)
        if self.pools and config.recency:  # r_d: the attention logit of a position d steps before the end
            self.recency_bias = nn.Embedding(RECENCY_DISTANCES, 1)
            nn.init.zeros_(self.recency_bias.weight)
        if config.repeat and config.repeat_scorer:  # the repeat part's own scorer over distinct products
            uses = VARIANTS[config.variant]
            self.product_repeat = ProductRepeatScorer(config.n_dwell, "activity" in uses, "dwell" in uses)

    def repeat_weights(self, x: Tensor, alpha: Tensor) -> Tensor:
        # Without pooling, encode already gave the repeat scorer's weights as α.
        return self.product_repeat(x) if self.pools and hasattr(self, "product_repeat") else alpha

    def attention_logits(self, h: Tensor, inputs: Tensor) -> Tensor:
        m = self.attention_m(h)  # (B, T, H)
        if self.config.attention_inputs:
            m = m + self.attention_x(inputs)
        return self.attention_a(torch.tanh(m)).squeeze(-1).float()  # (B, T)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The pooled vectors o (B, T, H) and α (B, T, T): row t a masked softmax over positions
        u <= t (0 for u > t), each prefix on its own scale (no shared shift that could underflow).
        Without pooling, o is the GRU's state at each position."""
        inputs = self.embed(x)  # (B, T, d_in)
        h, _ = self.rnn(inputs)  # (B, T, H)
        if not self.pools:
            # The last state alone; with the repeat part (its scorer), α is that part's weights over
            # the inputs: what the served model and the case study show as its attention.
            alpha = self.product_repeat(x) if self.config.repeat else last_state_attention(x)
            return self.dropout(h), alpha
        e = self.attention_logits(h, inputs)[:, None, :]  # (B, 1, T): position u's logit, for every prefix t
        T = x.shape[1]
        causal = causal_mask(T, x.device)  # (T, T)
        if self.config.recency:
            steps = torch.arange(T, device=x.device)
            distance = (steps[:, None] - steps[None, :]).clamp(0, RECENCY_DISTANCES - 1)  # (T, T): t - u
            e = e + self.recency_bias(distance).squeeze(-1)  # (B, T, T)
        alpha = torch.softmax(e.masked_fill(~causal, float("-inf")), dim=-1)  # (B, T, T)
        pooled = alpha @ h.float()  # (B, T, H)
        return self.dropout(pooled.to(h.dtype)), alpha
