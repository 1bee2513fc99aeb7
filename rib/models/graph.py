"""Session-graph networks, as baselines: the models published for micro-behavior logs since 2018.

Each prefix of a session is its own graph (a node per distinct product, an edge per transition),
so prefixes cannot share one pass as the recurrent networks' do: `encode_at` cuts out the prefix
of every target and encodes each as a session (N prefixes, width W = the longest), the way these
models are trained (every prefix of a training session is an example). Scores are o · W_P against
the SKU embeddings, as published; the loss, the scorer and the training loop are the shared ones.

SR-GNN (Wu et al., AAAI 2019), on the product sequence:
    A_in, A_out = the session graph's edges, each node's in- and out-edges averaged
    a_i = [A_in(i) · W_in h + b_in ; A_out(i) · W_out h + b_out],  h_i = GRUCell(a_i, h_i)   (`steps` times)
    v_u = h of position u's node;  α_u = qᵀ σ(W_1 v_last + W_2 v_u + c);  s_g = Σ_u α_u v_u
    o = W_3 [s_g ; v_last];  ŷ = softmax(o · W_Pᵀ)

MKM-SR (Meng et al., SIGIR 2020), without the knowledge-graph loss (as its released code):
    SR-GNN's item states v_u beside o_u = GRU(operation embeddings)_u (activity; with dwell, its
    bucket's embedding too), m_u = [v_u ; o_u], the same soft-attention readout over m.

EMBSR (Yuan et al., ICDE 2022):
    the graph's edges are transitions between products; each carries the micro-operations done on
    the product it leaves, encoded by a GRU that restarts at every visit (e_u); messages
    W_in [h_src ; e_u] and W_out [h_dst ; e_u] are averaged per node and fed to the GRU cell;
    z_u = v_u + W_op op_u + P_u (absolute positions);
    operation-aware self-attention: score_ab = q_a · (k_b + R^K[op_a, op_b]) / √d,
        z'_a = Σ_b softmax_b(score_ab) (v_b + R^V[op_a, op_b]), with a residual, layer norms and a
        feed-forward layer; R^K, R^V: a learned vector per ordered pair of activities;
    the same soft-attention readout over z'.

The attention returned for an input is the readout's weights, normalised over the prefix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rib.config import GraphConfig
from rib.models.network import NextItemNetwork
from rib.schema import VARIANTS


def node_of_position(sku: Tensor) -> Tensor:
    """(N, W) for every position the position of its product's first occurrence in the row: the
    session graph's nodes are those first occurrences (one per distinct product)."""
    same = sku[:, :, None] == sku[:, None, :]  # (N, W, W)
    return same.int().argmax(dim=2)  # the first True


def session_graph(sku: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SR-GNN's graph of each row: (node (N, W), A_in (N, W, W), A_out (N, W, W)); A_in[i, j] = 1 /
    in-degree(i) for an edge j -> i, A_out[i, j] = 1 / out-degree(i) for an edge i -> j (an edge
    counted once however often it is taken). Nodes live at their first positions; the other
    positions have no edges."""
    N, W = sku.shape
    node = node_of_position(sku)
    src, dst = node[:, :-1], node[:, 1:]
    taken = valid[:, 1:]  # a product's consecutive micro-behaviors: a self-loop, as SR-GNN's code builds it
    edges = sku.new_zeros(N, W * W, dtype=torch.float32).scatter_add_(1, src * W + dst, taken.float())
    edges = (edges > 0).float().view(N, W, W)  # (N, W, W) edges[i, j]: i -> j
    a_out = edges / edges.sum(dim=2, keepdim=True).clamp_min(1)
    incoming = edges.transpose(1, 2)
    a_in = incoming / incoming.sum(dim=2, keepdim=True).clamp_min(1)
    return node, a_in, a_out


class SoftAttentionReadout(nn.Module):
    """SR-GNN's session vector: α_u = qᵀ σ(W_1 v_last + W_2 v_u + c), s_g = Σ_u α_u v_u, [s_g ; v_last]."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d, d)
        self.w_2 = nn.Linear(d, d, bias=False)
        self.q = nn.Linear(d, 1, bias=False)

    def forward(self, v: Tensor, valid: Tensor, last: Tensor) -> tuple[Tensor, Tensor]:
        """v (N, W, d) -> ([s_g ; v_last] (N, 2d), the weights normalised over the prefix (N, W))."""
        v_last = v[torch.arange(len(v), device=v.device), last]  # (N, d)
        alpha = self.q(torch.sigmoid(self.w_1(v_last)[:, None, :] + self.w_2(v))).squeeze(-1) * valid  # (N, W)
        s_g = (alpha[..., None] * v).sum(dim=1)  # (N, d)
        shown = alpha.abs() / alpha.abs().sum(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.cat([s_g, v_last], dim=-1), shown.detach()


class SessionGraphNetwork(NextItemNetwork):
    """What SR-GNN, MKM-SR and EMBSR share: node embeddings of size d_sku, the gated graph cell,
    the readout, and scoring against the SKU embeddings."""

    def __init__(self, config: GraphConfig, readout_size: int) -> None:
        super().__init__(config, 2 * readout_size)
        d = config.d_sku
        self.cell = nn.GRUCell(2 * d, d)
        self.readout = SoftAttentionReadout(readout_size)
        del self.output
        self.output_projection = nn.Linear(2 * readout_size, d)  # W_3: scored against W_P
        self.output_bias = nn.Parameter(torch.zeros(config.n_items))

    def initialise(self) -> None:
        """SR-GNN's initialisation of every weight, U(-1/√d, 1/√d); the output bias at 0."""
        bound = 1 / math.sqrt(self.config.d_sku)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)
        with torch.no_grad():
            self.output_bias.zero_()
            for table in self.modules():
                if isinstance(table, nn.Embedding) and table.padding_idx is not None:
                    table.weight[table.padding_idx] = 0

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("a session-graph network encodes each prefix on its own: encode_at")

    def encode_at(self, x: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        T = x.shape[1]
        rows, last = index // T, index % T
        width = int(last.max()) + 1 if len(index) else 1
        steps = torch.arange(width, device=x.device)
        valid = steps[None, :] <= last[:, None]  # (N, W)
        prefixes = x[rows, :width] * valid[..., None]  # (N, W, F): each target's own prefix
        o, attention = self.encode_sessions(prefixes, valid, last)
        attention = nn.functional.pad(attention, (0, T - width))  # (N, T)
        return self.dropout(o), attention, attention

    def encode_sessions(self, x: Tensor, valid: Tensor, last: Tensor) -> tuple[Tensor, Tensor]:
        """Each row a session: (its vector before W_3 (N, 2 · readout size), readout weights (N, W))."""
        raise NotImplementedError

    def propagate(self, h: Tensor, a_in: Tensor, a_out: Tensor) -> Tensor:
        """`steps` rounds of SR-GNN's gated graph cell over node states h (N, W, d)."""
        N, W, d = h.shape
        for _ in range(self.config.steps):
            a = torch.cat([a_in @ self.edge_in(h) + self.bias_in, a_out @ self.edge_out(h) + self.bias_out], dim=-1)
            h = self.cell(a.reshape(N * W, 2 * d), h.reshape(N * W, d)).view(N, W, d)
        return h

    def item_states(self, sku: Tensor, valid: Tensor) -> Tensor:
        """SR-GNN's item part: (N, W, d) the state of each position's product after propagation."""
        node, a_in, a_out = session_graph(sku, valid)
        h = self.propagate(self.dropout(self.sku_embedding(sku)), a_in, a_out)
        return h.gather(1, node[..., None].expand_as(h))

    def graph_edges(self, d: int) -> None:
        self.edge_in = nn.Linear(d, d, bias=False)
        self.edge_out = nn.Linear(d, d, bias=False)
        self.bias_in = nn.Parameter(torch.zeros(d))
        self.bias_out = nn.Parameter(torch.zeros(d))


class SRGNN(SessionGraphNetwork):
    def __init__(self, config: GraphConfig) -> None:
        if VARIANTS[config.variant]:
            raise ValueError(f"SR-GNN reads products alone (variants visits, sku), not {config.variant!r}")
        super().__init__(config, config.d_sku)
        self.graph_edges(config.d_sku)
        self.initialise()

    def encode_sessions(self, x: Tensor, valid: Tensor, last: Tensor) -> tuple[Tensor, Tensor]:
        return self.readout(self.item_states(x[..., 0], valid), valid, last)


def average_at(messages: Tensor, present: Tensor, at: Tensor, width: int) -> Tensor:
    """(N, width, d): the messages (N, E, d) of the edges `present` (N, E, 1) arriving at each node
    `at` (N, E), averaged."""
    N, _, d = messages.shape
    weighted = messages * present  # in the wider of the two types (bf16 messages under CUDA autocast)
    total = weighted.new_zeros(N, width, d).scatter_add_(1, at[..., None].expand(-1, -1, d), weighted)
    count = present.new_zeros(N, width, 1).scatter_add_(1, at[..., None], present)
    return total / count.clamp_min(1)


def operations(network: NextItemNetwork, x: Tensor) -> Tensor:
    """(N, W, d_activity [+ d_dwell]) what the variant reads of each micro-behavior beside its product."""
    parts = [network.activity_embedding(x[..., 1])]
    if network.dwell_embedding is not None:
        parts.append(network.dwell_embedding(x[..., 2]))
    return network.dropout(torch.cat(parts, dim=-1))


def _reads_operations(name: str, config: GraphConfig) -> None:
    if "activity" not in VARIANTS[config.variant]:
        raise ValueError(f"{name} reads the operations: variant sku_activity or sku_micro, not {config.variant!r}")


class MKMSR(SessionGraphNetwork):
    def __init__(self, config: GraphConfig) -> None:
        _reads_operations("MKM-SR", config)
        d = config.d_sku
        super().__init__(config, 2 * d)
        self.graph_edges(d)
        d_operation = config.d_activity + (config.d_dwell if "dwell" in VARIANTS[config.variant] else 0)
        self.operation_rnn = nn.GRU(d_operation, d, batch_first=True)
        self.initialise()

    def encode_sessions(self, x: Tensor, valid: Tensor, last: Tensor) -> tuple[Tensor, Tensor]:
        v = self.item_states(x[..., 0], valid)  # (N, W, d)
        o, _ = self.operation_rnn(operations(self, x))  # (N, W, d): causal, so padding after `last` is never read
        return self.readout(torch.cat([v, o], dim=-1), valid, last)


class EMBSR(SessionGraphNetwork):
    MAX_POSITIONS = 512

    def __init__(self, config: GraphConfig) -> None:
        _reads_operations("EMBSR", config)
        d = config.d_sku
        super().__init__(config, d)
        d_operation = config.d_activity + (config.d_dwell if "dwell" in VARIANTS[config.variant] else 0)
        self.operation_cell = nn.GRUCell(d_operation, d)  # the micro-operations of one visit
        self.edge_in = nn.Linear(2 * d, d)  # W_in [h_src ; e]
        self.edge_out = nn.Linear(2 * d, d)  # W_out [h_dst ; e]
        self.operation_input = nn.Linear(d_operation, d, bias=False)  # W_op
        self.position_embedding = nn.Embedding(self.MAX_POSITIONS, d)
        self.query, self.key, self.value = (nn.Linear(d, d, bias=False) for _ in range(3))
        pairs = config.n_activities**2
        self.pair_key = nn.Embedding(pairs, d)  # R^K[op_a, op_b]
        self.pair_value = nn.Embedding(pairs, d)  # R^V[op_a, op_b]
        self.norm_1, self.norm_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.feed_forward = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.initialise()
        for module in (self.pair_key, self.pair_value, self.position_embedding):
            nn.init.normal_(module.weight, std=0.02)
        for norm in (self.norm_1, self.norm_2):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def visit_operations(self, operation: Tensor, starts: Tensor) -> Tensor:
        """(N, W, d): at each micro-behavior, the GRU state over its visit's operations so far."""
        N, W, _ = operation.shape
        h = operation.new_zeros(N, self.config.d_sku)
        states = []
        for u in range(W):
            h = self.operation_cell(operation[:, u], h * (~starts[:, u, None]))
            states.append(h)
        return torch.stack(states, dim=1)

    def encode_sessions(self, x: Tensor, valid: Tensor, last: Tensor) -> tuple[Tensor, Tensor]:
        sku, activity = x[..., 0], x[..., 1]
        N, W = sku.shape
        d = self.config.d_sku
        operation = operations(self, x)  # (N, W, d_op)
        starts = torch.ones_like(valid)
        starts[:, 1:] = sku[:, 1:] != sku[:, :-1]  # a visit starts where the product changes
        e = self.visit_operations(operation, starts)[:, :-1]  # (N, W-1, d): the visit left at u -> u + 1
        node = node_of_position(sku)
        src, dst = node[:, :-1], node[:, 1:]
        moves = (valid[:, 1:] & starts[:, 1:]).float()[..., None]  # (N, W-1, 1) a transition between products
        h = self.dropout(self.sku_embedding(sku))  # (N, W, d) node states at their first positions
        for _ in range(self.config.steps):
            h_src, h_dst = h.gather(1, src[..., None].expand(-1, -1, d)), h.gather(1, dst[..., None].expand(-1, -1, d))

            a_in = average_at(self.edge_in(torch.cat([h_src, e], dim=-1)), moves, dst, W)
            a_out = average_at(self.edge_out(torch.cat([h_dst, e], dim=-1)), moves, src, W)
            h = self.cell(torch.cat([a_in, a_out], dim=-1).reshape(N * W, 2 * d), h.reshape(N * W, d)).view(N, W, d)
        v = h.gather(1, node[..., None].expand(-1, -1, d))  # (N, W, d) each micro-behavior's product state
        positions = torch.arange(W, device=x.device).clamp(max=self.MAX_POSITIONS - 1)
        z = v + self.operation_input(operation) + self.position_embedding(positions)[None]  # (N, W, d)
        z = self.norm_1(z + self.dropout(self.operation_attention(z, activity, valid)))
        z = self.norm_2(z + self.dropout(self.feed_forward(z)))
        return self.readout(z, valid, last)

    def operation_attention(self, z: Tensor, activity: Tensor, valid: Tensor) -> Tensor:
        """Self-attention whose scores and values add the learned vector of each ordered pair of
        operations: (N, W, d). The pair terms are gathered per pair id, never as (N, W, W, d)."""
        n_ops = self.config.n_activities
        d = z.shape[-1]
        q, k, v = self.query(z), self.key(z), self.value(z)  # (N, W, d)
        pair = activity[:, :, None] * n_ops + activity[:, None, :]  # (N, W, W) id of (op_a, op_b)
        pair_scores = (q @ self.pair_key.weight.t()).gather(2, pair)  # (N, W, W) q_a · R^K[op_a, op_b]
        scores = (q @ k.transpose(1, 2) + pair_scores) / math.sqrt(d)
        weights = torch.softmax(scores.masked_fill(~valid[:, None, :], float("-inf")), dim=-1)  # (N, W, W)
        by_pair = weights.new_zeros(*weights.shape[:2], n_ops * n_ops).scatter_add_(2, pair, weights)  # (N, W, P)
        return weights @ v + by_pair @ self.pair_value.weight  # (N, W, d)
