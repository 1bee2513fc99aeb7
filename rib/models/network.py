"""What every trained next-product network shares: the input embeddings, the output layer over the
whole catalog, the loss of every prefix target in one pass, and the scorer.

A subclass (RIB, SASRec, NARM) writes `encode`: from the inputs x (B, T, F) of every prefix at once
to pooled vectors o (B, T, H) and attention weights α (B, T, T) (row t over the positions u <= t
that prefix t reads; one-hot on t for a model without attention). A session-graph network (SR-GNN,
MKM-SR, EMBSR: rib/models/graph.py), whose prefixes cannot share one pass, writes `encode_at`
instead: only the prefixes that predict a target, each encoded as a session of its own. The rest is here:

    logits = W_o o + b_o over every product (or o projected and scored against the SKU embeddings)
    with `repeat`, a repeat-explore mixture (RepeatNet, Ren et al. AAAI 2019):
        λ = σ(w_r·o + b_r),  p(y) = λ Σ_{t: p_t = y} α_t + (1 - λ) softmax(logits)_y
    with `neighbors` as well, a third part: the votes of the session's nearest training sessions
        (V-SKNN, rib.models.baselines.VSessionKNN) as a distribution p_nbr over the catalog,
        (g_r, g_n, g_e) = softmax([W_g o, 0]),  p(y) = g_r p_rep(y) + g_n p_nbr(y) + g_e softmax(logits)_y
        with `gate_features`, W_g o + V_g φ: φ what tells a revisit (rib.models.repeat.switch_features)
        p_nbr comes from outside the network (`neighbor_prob`): the trainer computes it per target.
    and `explore_loss` adds the explore softmax's own cross-entropy to the loss, with that weight.
    When ranking, the explore part's logit (0 above) is the buffer `explore_shift`, which
    `explore_ranking: validation` chooses after every epoch on validation (0 otherwise); with
    `repeat_ranking` the buffer `repeat_shift`, added to the repeat part's logit, is chosen with it.

x holds the features of rib.schema.FEATURES on its last axis (sku, activity, dwell, interval);
`config.variant` says which of them enter next to the SKU. Padding comes after the real positions,
so it never enters a prefix.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from rib.config import NetworkConfig
from rib.models.loss import NegativeSampler, linear_cross_entropy, sampled_cross_entropy
from rib.models.repeat import n_switch_features, switch_features
from rib.schema import FEATURES, FIRST_SKU_ID, PAD, VARIANTS, VISITS


def visits_only(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The "visits" variant's input: one position per macro interaction (its last micro-behavior),
    the product alone. x (B, T, F) -> (x' (B, T', F), where each position came from (B, T'), valid (B, T'))."""
    sku = x[..., 0]
    following = torch.zeros_like(sku)
    following[:, :-1] = sku[:, 1:]
    keep = (sku != PAD) & (following != sku)  # a visit's last micro-behavior (padding follows the last one)
    lengths = keep.sum(dim=1)
    width = int(lengths.max()) if len(lengths) else 0
    order = torch.argsort((~keep).int(), dim=1, stable=True)[:, :width]  # kept positions first, in order
    valid = torch.arange(width, device=x.device)[None, :] < lengths[:, None]
    visits = torch.zeros_like(x[:, :width])
    visits[..., 0] = torch.where(valid, sku.gather(1, order), PAD)
    return visits, order, valid


def _in_prefix(rows: Tensor, last: Tensor) -> Tensor:
    """(N, T) bool: position u of each row is the first occurrence of a real product within the
    prefix ending at `last` (N,): every product of the prefix marked once."""
    T = rows.shape[1]
    steps = torch.arange(T, device=rows.device)
    earlier = (rows[:, :, None] == rows[:, None, :]) & (steps[None, None, :] < steps[None, :, None])  # (N, u, v<u)
    return (rows >= FIRST_SKU_ID) & ~earlier.any(dim=2) & (steps[None, :] <= last[:, None])


def safe_log(prob: Tensor) -> Tensor:
    """log(p), -inf where p = 0, without a NaN gradient there."""
    positive = prob > 0
    return torch.where(positive, torch.log(torch.where(positive, prob, 1.0)), float("-inf"))


def mixture_log_prob(gate: Tensor, parts: list[Tensor], explore_log_prob: Tensor) -> Tensor:
    """log(Σ_i g_i p_i + g_e p_explore) in log space, with (g_1 .. g_P, g_e) = softmax([gate, 0]) (one
    part: g = σ(gate), as in RepeatNet): the loss's. The scorer's is shifted_mixtures, the same
    with the explore part's logit shifted.

    gate (..., P) is shaped to broadcast against the parts on its leading axes: (N, P) with parts
    (N,) in the loss. A part's probability is 0 outside it (a product not in the session): its log
    is -inf, without a NaN gradient."""
    zero = torch.zeros_like(gate[..., :1])
    log_gates = torch.log_softmax(torch.cat([gate, zero], dim=-1), dim=-1).unbind(-1)
    terms = [log_g + safe_log(p) for log_g, p in zip(log_gates, parts, strict=False)]
    terms.append(log_gates[-1] + explore_log_prob)
    return torch.logsumexp(torch.stack(terms), dim=0)


def shifted_mixtures(gate: Tensor, parts: list[Tensor], explore_log_prob: Tensor, shifts: list) -> Iterator[Tensor]:
    """The scorer's mixture (B, V) for each shift (r, s) in turn: r added to the repeat part's gate
    logit, s the explore part's logit (0 in mixture_log_prob; -inf leaves it out), the session
    parts' sum computed once per r (keep shifts of one r together):
    log(Σ_i e^gate'_i p_i + e^s p_explore) - log(Σ_i e^gate'_i + e^s). gate (B, 1, P), parts and
    explore_log_prob (B, V)."""
    gate = gate.squeeze(1)  # (B, P)
    logs = [safe_log(p) for p in parts]
    for repeat, same_repeat in itertools.groupby(shifts, key=lambda pair: float(pair[0])):
        shifted = _repeat_shifted(gate, repeat)
        terms = [log_p + g[:, None] for log_p, g in zip(logs, shifted.unbind(-1), strict=False)]
        sessions = functools.reduce(torch.logaddexp, terms)  # (B, V); pairwise: a stack costs more on CPU
        for _, explore in same_repeat:
            yield torch.logaddexp(sessions, explore_log_prob + explore) - _norm(shifted, explore)


def _repeat_shifted(gate: Tensor, repeat: float) -> Tensor:
    """(B, P) the gates' logits with `repeat` added to the repeat part's."""
    shifted = gate.clone()
    shifted[:, 0] = shifted[:, 0] + repeat
    return shifted


def _norm(shifted: Tensor, explore: float) -> Tensor:
    """(B, 1) log(Σ_i e^gate'_i + e^explore): the mixture's normaliser."""
    shift = torch.zeros_like(shifted[:, :1]) + explore  # (B, 1)
    return torch.logsumexp(torch.cat([shifted, shift], dim=-1), dim=-1, keepdim=True)


def shifted_ranks(
    gate: Tensor,
    parts: list[Tensor],
    explore_log_prob: Tensor,
    sku: Tensor,
    shifts: list,
    targets: Tensor,
    last_sku: Tensor | None = None,
) -> Iterator[tuple[tuple[float, float], Tensor]]:
    """(shift, the targets' pessimistic ranks (B,)) for each shift (r, s) of shifted_mixtures (the
    same arguments; `sku` (B, T) the input's products, `targets` and `last_sku` (B,) as
    rib.evaluation.metrics.target_ranks takes them; float64, inf for an unseen target), grouped by
    explore shift, without scoring the catalog once per pair.

    The repeat part is 0 outside the input's few products, so there a product's score depends on
    the explore shift alone: the other parts and the explore half are summed once per explore
    shift (B, V), and each repeat shift costs a normalisation and a comparison with its target's
    score. The input's products and the target are scored per pair at their (B, T + 1) ids. The
    scores are normalised as shifted_mixtures normalises them, so that products tied there (equal
    to float32 rounding) are tied here, and ranked pessimistically."""
    gate = gate.squeeze(1)  # (B, P)
    B, T = sku.shape
    n_catalog = explore_log_prob.shape[1] - FIRST_SKU_ID
    repeat_log = safe_log(parts[0])  # (B, V): its gate logit is added per repeat shift
    logs = [safe_log(p) + g[:, None] for p, g in zip(parts[1:], gate[:, 1:].unbind(-1), strict=False)]
    others = functools.reduce(torch.logaddexp, logs) if logs else None  # (B, V) the other parts, weighed
    first = _in_prefix(sku, torch.full((B,), T - 1, device=sku.device))  # (B, T) each product of the input once
    known = targets >= FIRST_SKU_ID
    ids = torch.cat([sku, torch.where(known, targets, FIRST_SKU_ID)[:, None]], dim=1)  # (B, T + 1): the target last
    others_inputs = first & (sku != targets[:, None])  # the input's products, the target left out
    target_outside = ~(first & (sku == targets[:, None])).any(dim=1)  # (B,)
    last_target = torch.zeros_like(known) if last_sku is None else (last_sku >= FIRST_SKU_ID) & (last_sku == targets)
    ranked_out = torch.zeros_like(first) if last_sku is None else sku == last_sku[:, None]  # (B, T) as if -inf
    for explore in dict.fromkeys(float(explore) for _, explore in shifts):
        base = explore_log_prob + explore  # (B, V): the products outside the input score this
        base = base if others is None else torch.logaddexp(others, base)
        catalog = base[:, FIRST_SKU_ID:]
        base_at = base.gather(1, ids)  # (B, T + 1)
        for repeat in [float(r) for r, e in shifts if float(e) == explore]:
            # as shifted_mixtures sums and normalises: the session parts, the explore half, the norm
            shifted = _repeat_shifted(gate, repeat)
            norm = _norm(shifted, explore)  # (B, 1)
            sessions = repeat_log.gather(1, ids) + shifted[:, :1]
            if others is not None:
                sessions = torch.logaddexp(sessions, others.gather(1, ids))
            score = torch.logaddexp(sessions, explore_log_prob.gather(1, ids) + explore) - norm  # (B, T + 1)
            target_score = torch.where(last_target, -torch.inf, score[:, T])[:, None]  # (B, 1)
            outside = base_at - norm
            # below the target: every product as it scores outside the input, less the input's
            # products and the target as they score there, plus the input's as they score
            below = ((catalog - norm) < target_score).view(torch.uint8).sum(dim=1, dtype=torch.int32)  # bytes: faster
            below = below - (first & (outside[:, :T] < target_score)).sum(dim=1)
            below = below - (target_outside & (outside[:, T] < target_score[:, 0])).long()
            inputs = score[:, :T].masked_fill(ranked_out, -torch.inf)
            below = below + (others_inputs & (inputs < target_score)).sum(dim=1)
            ranks = (n_catalog - below).double()
            ranks[~known] = torch.inf
            yield (repeat, explore), ranks


class NextItemNetwork(nn.Module):
    def __init__(self, config: NetworkConfig, hidden: int) -> None:
        super().__init__()
        if config.variant not in VARIANTS:
            raise ValueError(f"unknown variant {config.variant!r}; expected one of {list(VARIANTS)}")
        if config.n_items <= 2:
            raise ValueError(f"n_items counts the catalog, padding and out-of-vocabulary ids: got {config.n_items}")
        self.config = config
        uses = VARIANTS[config.variant]
        sizes = {
            "sku": (config.n_items, config.d_sku),
            "activity": (config.n_activities, config.d_activity),
            "dwell": (config.n_dwell, config.d_dwell),
            "interval": (config.n_interval, config.d_interval),
        }
        for name in FEATURES:  # sku_embedding, activity_embedding, ...: None where the variant has no such input
            used = name == "sku" or name in uses
            setattr(self, f"{name}_embedding", nn.Embedding(*sizes[name], padding_idx=0) if used else None)
        self.d_in = sum(sizes[name][1] for name in FEATURES if getattr(self, f"{name}_embedding") is not None)
        self.dropout = nn.Dropout(config.dropout)
        self.repeat = bool(getattr(config, "repeat", False))
        self.neighbors = bool(getattr(config, "neighbors", False)) and self.repeat
        self.explore_new = bool(getattr(config, "explore_new_only", False)) and self.repeat
        self.explore_own = bool(getattr(config, "explore_own", False)) and self.repeat
        # The weight of the explore softmax's own cross-entropy: 1 when it learns from that alone.
        explore_loss = float(getattr(config, "explore_loss", 0.0)) if self.repeat else 0.0
        self.explore_loss = 1.0 if self.explore_own else explore_loss
        if self.repeat:  # w_r, b_r: λ = P(repeat a session product); with neighbours, two logits
            self.repeat_gate = nn.Linear(hidden, 2 if self.neighbors else 1)
            # Added to the explore part's gate logit when ranking, never in the loss: with
            # `explore_ranking: validation` the trainer sets it after each epoch (EXPLORE_SHIFTS).
            self.register_buffer("explore_shift", torch.zeros(()))
            # Added to the repeat part's gate logit when ranking, with `repeat_ranking`, chosen with it.
            self.register_buffer("repeat_shift", torch.zeros(()))
        # With `gate_features` the gates also read what tells a revisit (rib.models.repeat.switch_features),
        # with weights of their own that start at 0: the untrained mixture is the one without them.
        self.gate_features = bool(getattr(config, "gate_features", False)) and self.repeat
        if self.gate_features:
            self.switch_inputs = ("activity" in uses, "dwell" in uses, config.n_dwell)
            self.switch_gate = nn.Linear(n_switch_features(*self.switch_inputs), 2 if self.neighbors else 1, bias=False)
            nn.init.zeros_(self.switch_gate.weight)
        if getattr(config, "tied_output", False):
            self.output_projection = nn.Linear(hidden, config.d_sku)  # o -> d_P, then W_P^T
            self.output_bias = nn.Parameter(torch.zeros(config.n_items))
        else:
            self.output = nn.Linear(hidden, config.n_items)  # W_o, b_o

    def session_parts(
        self, sku: Tensor, attention: Tensor, targets: Tensor | None = None, neighbor_prob: Tensor | None = None
    ) -> list[Tensor]:
        """The session-based parts of the mixture: p_rep, and p_nbr with neighbours (given).
        sku, attention: (R, T) rows; with `targets` (R,) the probabilities of the targets (R,),
        else of every product (R, V)."""
        if targets is not None:
            parts = [(attention * (sku == targets[:, None])).sum(dim=1)]  # (R,)
        else:
            parts = [
                attention.new_zeros(len(sku), self.config.n_items).scatter_add(1, sku, attention)
            ]  # padding adds 0
        if self.neighbors:
            if neighbor_prob is None:
                raise ValueError("this network mixes in the session neighbourhood: pass its probabilities")
            # in row order: scipy hands the votes over column by column, and a torch.logaddexp of
            # them with the other (row-ordered) parts took five times as long
            parts.append(neighbor_prob.to(torch.float32, memory_format=torch.contiguous_format))
        return parts

    def gates(self, o: Tensor, x: Tensor, index: Tensor) -> Tensor:
        """(N, P) the gates' logits for the prefixes at the flat positions `index` of x, o (N, H)
        their states (detached for the gates' own loss)."""
        logits = self.repeat_gate(o).float()
        if self.gate_features:
            logits = logits + self.switch_gate(switch_features(x, *self.switch_inputs).flatten(0, 1)[index]).float()
        return logits

    def embed(self, x: Tensor) -> Tensor:
        """(B, T, F) ids -> (B, T, d_in): the variant's embeddings side by side."""
        parts = [
            table(x[..., i])
            for i, name in enumerate(FEATURES)
            if (table := getattr(self, f"{name}_embedding")) is not None
        ]
        return self.dropout(torch.cat(parts, dim=-1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Every prefix at once: pooled vectors (B, T, H) and attention weights (B, T, T)."""
        raise NotImplementedError

    def repeat_weights(self, x: Tensor, alpha: Tensor) -> Tensor:
        """(B, T, T) the repeat part's distribution of every prefix over its positions: the
        attention itself, unless the network has a repeat scorer of its own."""
        return alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)

    def encode_at(self, x: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The prefixes ending at the flat positions `index` (N,) of x (row * T + position): their
        pooled vectors (N, H), attention (N, T) and the repeat part's weights (N, T). Here every
        prefix is encoded at once and those rows kept; a network that must encode each prefix on
        its own (a session graph, rib/models/graph.py) encodes only these."""
        pooled, alpha = self.encode(x)
        weights = self.repeat_weights(x, alpha) if self.repeat else alpha
        return pooled.flatten(0, 1)[index], alpha.flatten(0, 1)[index], weights.flatten(0, 1)[index]

    def output_layer(self, pooled: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(input to the softmax layer, its weight (V, ·), its bias (V,))."""
        if hasattr(self, "output_projection"):
            return self.output_projection(pooled), self.sku_embedding.weight, self.output_bias
        return pooled, self.output.weight, self.output.bias

    def loss(
        self,
        x: Tensor,
        target_mask: Tensor,
        targets: Tensor,
        neighbor_prob: Tensor | None = None,
        held: Tensor | None = None,
        chunk: int = 4096,
        compute_dtype: torch.dtype | None = None,
        compile: bool = False,
        sampler: NegativeSampler | None = None,
        reduction: str = "mean",
    ) -> Tensor:
        """Mean cross-entropy of every target: target_mask (B, T) marks the positions whose
        prefix predicts a next product; targets (N,) are those products in row-major order;
        neighbor_prob (N,) the session neighbourhood's probability of each (with `neighbors`);
        held (N,) bool: targets of the sessions held out for the gates (`gate_holdout`): their loss
        trains the gates alone, every other target's trains the rest with the gates as they are;
        `sampler`: a sampled softmax (negatives with the logQ correction) instead of the full one;
        reduction "sum" for a distributed step that divides by the global number of targets."""
        if self.config.variant == VISITS:  # a visit's last micro-behavior is where its prefix predicts
            x, order, valid = visits_only(x)
            target_mask = target_mask.gather(1, order) & valid
        index = target_mask.flatten().nonzero().squeeze(1)  # (N,) one device-to-host sync
        o, _, repeat_rows = self.encode_at(x, index)  # (N, H), (N, T)
        inputs, weight, bias = self.output_layer(o)
        if sampler is None:
            nll = linear_cross_entropy(inputs, weight, bias, targets, chunk, compute_dtype, compile)  # (N,)
        else:
            nll = sampled_cross_entropy(inputs, weight, bias, targets, sampler.sample(x.device), sampler.log_expected)
        reduce = torch.mean if reduction == "mean" else torch.sum
        if not self.repeat:
            return reduce(nll)
        sku = x[..., 0]
        rows = sku[index // sku.shape[1]]  # (N, T): the row each target's prefix comes from
        weights = repeat_rows.float()  # (N, T)
        parts = self.session_parts(rows, weights, targets, neighbor_prob)  # each (N,)
        gate = self.gates(o, x, index)  # (N, P)
        explore_log_prob = -nll
        if self.explore_new:  # the softmax over the products outside the prefix: renormalised, 0 inside
            in_prefix = _in_prefix(rows, index % sku.shape[1])  # (N, T) each product of the prefix once

            def logit(ids: Tensor) -> Tensor:  # (N, K) the logits of K products per target
                return (inputs[:, None, :] * weight[ids]).sum(-1).float() + bias[ids].float()

            lse = nll + logit(targets[:, None])[:, 0]  # (N,)
            inside = (torch.exp(logit(rows) - lse[:, None]) * in_prefix).sum(dim=1)  # (N,) its mass on the prefix
            target_inside = (in_prefix & (rows == targets[:, None])).any(dim=1)
            renormalised = -nll - torch.log1p(-inside.clamp(max=1 - 1e-6))
            explore_log_prob = torch.where(target_inside, float("-inf"), renormalised)
        # With explore_own the explore softmax learns from its own cross-entropy alone, like the
        # paper's RIB: the mixture's loss takes it as a constant.
        in_mixture = explore_log_prob.detach() if self.explore_own else explore_log_prob
        if held is None:
            loss = reduce(-mixture_log_prob(gate, parts, in_mixture))
            explore = reduce(nll)
        else:
            # The gates weigh the parts by how well each does on sessions the rest never trained
            # on: learned on the training targets themselves, they would trust the explore softmax
            # by how well it recalls those very sessions (overfitting), not by how it generalises.
            fitted = mixture_log_prob(gate.detach(), parts, in_mixture)
            gate_held = self.gates(o.detach(), x, index)
            weighed = mixture_log_prob(gate_held, [p.detach() for p in parts], explore_log_prob.detach())
            loss = reduce(-torch.where(held, weighed, fitted))
            explore = reduce(torch.where(held, 0.0, nll))
        # The explore part also learns on its own: where a session part already covers a target,
        # the mixture's gradient barely reaches it (a part that is right early takes the gate).
        return loss + self.explore_loss * explore if self.explore_loss else loss

    def score_and_attention(
        self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One forward pass: the scores of every product for the next macro interaction after each
        whole input (B, V), logits or, with `repeat`, the mixture's log-probabilities; and the
        attention over the input (B, T), summing to 1 over real positions, 0 on padding."""
        if self.config.variant == VISITS:  # encoded on visits; the attention goes back to the micro-behaviors
            visits, order, valid = visits_only(x)
            scores, attention = self._score(visits, valid.sum(dim=1), neighbor_prob)
            return scores, torch.zeros_like(x[..., 0], dtype=attention.dtype).scatter(1, order, attention * valid)
        return self._score(x, lengths, neighbor_prob)

    def _score(self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None) -> tuple[Tensor, Tensor]:
        mixture, attention = self._mixture(x, lengths, neighbor_prob)
        if not self.repeat:
            return mixture, attention  # the logits
        return next(shifted_mixtures(*mixture, [(self.repeat_shift, self.explore_shift)])), attention

    def score_shifted(
        self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None, shifts: list[tuple[float, float]]
    ) -> Iterator[tuple[tuple[float, float], Tensor]]:
        """The mixture's scores (B, V) for each candidate (`repeat_shift`, `explore_shift`), from one
        forward pass."""
        mixture, _ = self._mixture_read(x, lengths, neighbor_prob)
        return zip(shifts, shifted_mixtures(*mixture, shifts), strict=True)

    def rank_shifted(
        self,
        x: Tensor,
        lengths: Tensor,
        neighbor_prob: Tensor | None,
        shifts: list[tuple[float, float]],
        targets: Tensor,
        last_sku: Tensor | None = None,
    ) -> Iterator[tuple[tuple[float, float], Tensor]]:
        """(shift, the targets' ranks (B,)) for each candidate of score_shifted, from one forward
        pass, without scoring the catalog once per candidate (shifted_ranks)."""
        mixture, sku = self._mixture_read(x, lengths, neighbor_prob)
        return shifted_ranks(*mixture, sku, shifts, targets, last_sku)

    def _mixture_read(self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None) -> tuple:
        """(the mixture's parts as _mixture gives them, the products (B, T') the variant reads: one
        position per visit for "visits")."""
        if self.config.variant == VISITS:
            x, _, valid = visits_only(x)
            lengths = valid.sum(dim=1)
        mixture, _ = self._mixture(x, lengths, neighbor_prob)
        return mixture, x[..., 0]

    def _mixture(self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None) -> tuple:
        """((gate (B, 1, P), parts, explore log-probabilities (B, V)), attention (B, T)) of the
        mixture, or (logits (B, V), attention) without the repeat part."""
        rows, last = torch.arange(len(lengths), device=x.device), lengths - 1
        o, attention, repeat_rows = self.encode_at(x, rows * x.shape[1] + last)  # (B, H), (B, T), (B, T)
        inputs, weight, bias = self.output_layer(o)
        logits = (inputs @ weight.t() + bias).float()  # (B, V)
        if not self.repeat:
            return logits, attention
        weights = repeat_rows.float()  # (B, T)
        parts = self.session_parts(x[..., 0], weights, neighbor_prob=neighbor_prob)  # each (B, V)
        gate = self.gates(o, x, rows * x.shape[1] + last)[:, None, :]  # (B, 1, P)
        if self.explore_new:  # the explore parts rank only the products outside the input
            inside = torch.zeros_like(logits, dtype=torch.bool).scatter(1, x[..., 0], True)
            inside[:, :FIRST_SKU_ID] = False
            logits = logits.masked_fill(inside, float("-inf"))
            if self.neighbors:
                outside = parts[1].masked_fill(inside, 0.0)
                parts[1] = outside / outside.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return (gate, parts, torch.log_softmax(logits, dim=1)), attention

    def score_all(self, x: Tensor, lengths: Tensor, neighbor_prob: Tensor | None = None) -> Tensor:
        return self.score_and_attention(x, lengths, neighbor_prob)[0]

    def load_pretrained(self, vectors: dict[str, tuple[Tensor, Tensor]]) -> None:
        """Copy word2vec vectors into the embedding tables (eq. 3's initial weights).
        vectors: kind -> (matrix (n_ids, d), known (n_ids,) bool); rows not known keep their init."""
        with torch.no_grad():
            for kind, (matrix, known) in vectors.items():
                table = getattr(self, f"{kind}_embedding", None)
                if table is None:
                    continue
                if matrix.shape[1] != table.weight.shape[1]:
                    raise ValueError(
                        f"word2vec {kind} vectors have {matrix.shape[1]} dims, the model {table.weight.shape[1]}"
                    )
                rows = torch.nonzero(known[: table.weight.shape[0]]).squeeze(1)
                table.weight[rows] = matrix[rows].to(table.weight.dtype)


def causal_mask(T: int, device: torch.device) -> Tensor:
    """(T, T) bool: prefix t sees positions u <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def last_state_attention(x: Tensor) -> Tensor:
    """(B, T, T) one-hot rows: a model without attention reads only each prefix's last state."""
    B, T = x.shape[:2]
    return torch.eye(T, device=x.device).expand(B, T, T)
