"""RIB (Zhou et al., WSDM 2018): embeddings -> GRU -> attention -> softmax over every product.

    x_t = [W_P p_t ; W_A a_t ; W_D d_t]                 (eq. 3, tables initialised by word2vec)
    h_t = GRU(x_t, h_{t-1})                              (eq. 4-6; LSTM selectable)
    M_t = tanh(W_m h_t + b_m)                            (eq. 7)
    α   = softmax(W_a M + b_a),  o = Σ_t α_t h_t
    ŷ   = softmax(W_o o + b_o) over all products, cross-entropy

Two options beyond the paper (rib/config.py, RIBConfig; `repeat` is on by default):
`tied_output` scores products against their input embeddings (W_o = W_P · projection), and
`repeat`, a repeat-explore mixture as in RepeatNet (Ren et al., AAAI 2019):

    λ = σ(w_r·o + b_r),  p(y) = λ Σ_{t: p_t = y} α_t + (1 - λ) softmax(W_o o + b_o)_y

so the same attention over micro-behaviors that pools the session also says which of its
products the user goes back to (30-60% of JD next products were seen in the session).

Every prefix of a sequence is pooled in one pass: the pooled vector at position t attends only
to positions <= t (a causal, prefix-wise softmax), so each next-product target of a training
session gets exactly the vector it would get from its own truncated prefix. Padding comes after
the real positions, so it never enters a prefix. The ablation RIB-Attention (`attention=False`)
feeds h_t itself to the output layer.

The network's own interface is in tensors: `forward` (pooled prefixes and attention), `loss`,
`score_and_attention` (one pass for the scores and the attention over each input), `score_all`;
rib.models.train.RIBRecommender puts it behind the contract every model shares (rib.models.base).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rib.config import RIBConfig
from rib.models.loss import linear_cross_entropy
from rib.schema import VARIANTS


def mixture_log_prob(gate: Tensor, repeat_prob: Tensor, explore_log_prob: Tensor) -> Tensor:
    """log(λ p_repeat + (1 - λ) p_explore), λ = σ(gate), in log space; the loss and the scorer use it.

    A product outside the session has p_repeat = 0: its log is -inf without a NaN gradient."""
    seen = repeat_prob > 0
    log_repeat = torch.where(seen, torch.log(torch.where(seen, repeat_prob, 1.0)), float("-inf"))
    return torch.logaddexp(F.logsigmoid(gate) + log_repeat, F.logsigmoid(-gate) + explore_log_prob)


def check_config(config: RIBConfig) -> None:
    if config.variant not in VARIANTS:
        raise ValueError(f"unknown variant {config.variant!r}; expected one of {list(VARIANTS)}")
    if config.rnn not in ("gru", "lstm"):
        raise ValueError(f"rnn must be gru or lstm, got {config.rnn!r}")
    if config.repeat and not config.attention:
        raise ValueError("repeat needs the attention layer: its weights are the repeat distribution")
    if config.n_items <= 2:
        raise ValueError(f"n_items must count the catalog plus padding and out-of-vocabulary ids, got {config.n_items}")


class RIB(nn.Module):
    def __init__(self, config: RIBConfig) -> None:
        super().__init__()
        check_config(config)
        self.config = config
        use_activity, use_dwell = VARIANTS[config.variant]
        self.sku_embedding = nn.Embedding(config.n_items, config.d_sku, padding_idx=0)
        self.activity_embedding = (
            nn.Embedding(config.n_activities, config.d_activity, padding_idx=0) if use_activity else None
        )
        self.dwell_embedding = nn.Embedding(config.n_dwell, config.d_dwell, padding_idx=0) if use_dwell else None
        d_in = config.d_sku + config.d_activity * use_activity + config.d_dwell * use_dwell
        rnn = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn(d_in, config.hidden, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        if config.attention:
            self.attention_m = nn.Linear(config.hidden, config.hidden)  # W_m, b_m
            self.attention_a = nn.Linear(config.hidden, 1)  # W_a, b_a
        if config.repeat:
            self.repeat_gate = nn.Linear(config.hidden, 1)  # w_r, b_r: λ = P(repeat a session product)
        if config.tied_output:
            self.output_projection = nn.Linear(config.hidden, config.d_sku)  # o -> d_P, then W_P^T
            self.output_bias = nn.Parameter(torch.zeros(config.n_items))
        else:
            self.output = nn.Linear(config.hidden, config.n_items)  # W_o, b_o

    def output_layer(self, pooled: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(input to the softmax layer, its weight (V, ·), its bias (V,))."""
        if self.config.tied_output:
            return self.output_projection(pooled), self.sku_embedding.weight, self.output_bias
        return pooled, self.output.weight, self.output.bias

    def embed(self, sku: Tensor, activity: Tensor, dwell: Tensor) -> Tensor:
        parts = [self.sku_embedding(sku)]  # (B, T, d_P)
        if self.activity_embedding is not None:
            parts.append(self.activity_embedding(activity))  # (B, T, d_A)
        if self.dwell_embedding is not None:
            parts.append(self.dwell_embedding(dwell))  # (B, T, d_D)
        return self.dropout(torch.cat(parts, dim=-1))  # (B, T, d_in)

    def attention_logits(self, h: Tensor) -> Tensor:
        return self.attention_a(torch.tanh(self.attention_m(h))).squeeze(-1).float()  # (B, T)

    def forward(self, sku: Tensor, activity: Tensor, dwell: Tensor) -> tuple[Tensor, Tensor]:
        """Every prefix at once: position t summarises micro-behaviors 0..t.

        Returns the pooled vectors o (B, T, H) and the attention weights α (B, T, T): row t is a
        masked softmax over positions u <= t (0 for u > t), so every prefix's weights are computed
        on their own scale (no shared shift that could underflow). Without attention (the
        ablation), o is the last hidden state of each prefix and row t of α is one-hot on t.
        """
        h, _ = self.rnn(self.embed(sku, activity, dwell))  # (B, T, H)
        T = sku.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=sku.device).tril()  # (T, T): prefix t sees u <= t
        if not self.config.attention:
            return self.dropout(h), torch.eye(T, device=sku.device).expand(sku.shape[0], T, T)
        e = self.attention_logits(h)  # (B, T)
        alpha = torch.softmax(e[:, None, :].masked_fill(~causal, float("-inf")), dim=-1)  # (B, T, T)
        pooled = alpha @ h.float()  # (B, T, H)
        return self.dropout(pooled.to(h.dtype)), alpha

    def loss(
        self,
        sku: Tensor,
        activity: Tensor,
        dwell: Tensor,
        target_mask: Tensor,
        targets: Tensor,
        chunk: int = 4096,
        compute_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> Tensor:
        """Mean cross-entropy of every target: target_mask (B, T) marks the positions whose
        prefix predicts a next product; targets (N,) are those products in row-major order."""
        pooled, alpha = self.forward(sku, activity, dwell)
        index = target_mask.flatten().nonzero().squeeze(1)  # (N,) one device-to-host sync
        o = pooled.flatten(0, 1)[index]  # (N, H)
        x, weight, bias = self.output_layer(o)
        nll = linear_cross_entropy(x, weight, bias, targets, chunk, compute_dtype, compile)  # (N,)
        if not self.config.repeat:
            return nll.mean()
        inputs = sku[index // sku.shape[1]]  # (N, T): the row each target's prefix comes from
        p_repeat = (alpha.flatten(0, 1)[index] * (inputs == targets[:, None])).sum(dim=1)  # (N,)
        gate = self.repeat_gate(o).float().squeeze(1)  # (N,)
        return -mixture_log_prob(gate, p_repeat, -nll).mean()

    def score_and_attention(
        self, sku: Tensor, activity: Tensor, dwell: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One forward pass: the scores of every product for the next macro interaction after each
        whole input (B, V), logits or, with `repeat`, the mixture's log-probabilities; and the
        attention over the input (B, T), summing to 1 over real positions, 0 on padding."""
        pooled, alpha = self.forward(sku, activity, dwell)
        rows, last = torch.arange(len(lengths), device=sku.device), lengths - 1
        attention = alpha[rows, last]  # (B, T)
        o = pooled[rows, last]  # (B, H)
        x, weight, bias = self.output_layer(o)
        logits = (x @ weight.t() + bias).float()  # (B, V)
        if not self.config.repeat:
            return logits, attention
        repeat_prob = torch.zeros_like(logits).scatter_add(1, sku, attention)  # (B, V); padding adds 0
        gate = self.repeat_gate(o).float()  # (B, 1)
        return mixture_log_prob(gate, repeat_prob, torch.log_softmax(logits, dim=1)), attention

    def score_all(self, sku: Tensor, activity: Tensor, dwell: Tensor, lengths: Tensor) -> Tensor:
        return self.score_and_attention(sku, activity, dwell, lengths)[0]

    def load_pretrained(self, vectors: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Copy word2vec vectors into the embedding tables (eq. 3's initial weights).
        vectors: kind -> (matrix (n_ids, d), known (n_ids,) bool); rows not known keep their init."""
        tables = {"sku": self.sku_embedding, "activity": self.activity_embedding, "dwell": self.dwell_embedding}
        with torch.no_grad():
            for kind, (matrix, known) in vectors.items():
                table = tables.get(kind)
                if table is None:
                    continue
                if matrix.shape[1] != table.weight.shape[1]:
                    raise ValueError(
                        f"word2vec {kind} vectors have {matrix.shape[1]} dims, the model {table.weight.shape[1]}"
                    )
                rows = torch.nonzero(known[: table.weight.shape[0]]).squeeze(1)
                table.weight[rows] = matrix[rows].to(table.weight.dtype)
