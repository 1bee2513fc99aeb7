import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import write_canonical

from rib.config import FeatureConfig, RIBConfig
from rib.features.build import build_features
from rib.features.dataset import SplitData
from rib.models.loss import linear_cross_entropy
from rib.models.rib import RIB
from rib.models.train import WindowLoader
from rib.schema import VARIANTS


def random_inputs(B=4, T=9, n_items=40, seed=0):
    """(B, T, F) ids: sku, activity, dwell and interval buckets."""
    g = torch.Generator().manual_seed(seed)
    sku = torch.randint(2, n_items, (B, T), generator=g)
    activity = torch.randint(1, 11, (B, T), generator=g)
    dwell = torch.randint(1, 6, (B, T), generator=g)
    interval = torch.randint(1, 7, (B, T), generator=g)
    return torch.stack([sku, activity, dwell, interval], dim=-1)


@pytest.mark.parametrize("repeat", [False, True])
@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_one_pass_equals_each_truncated_prefix(repeat, rnn):
    model = RIB(RIBConfig(neighbors=False, n_items=40, rnn=rnn, repeat=repeat)).eval()
    x = random_inputs()
    with torch.no_grad():
        pooled, alpha = model(x)
        for t in range(x.shape[1]):
            prefix = x[:, : t + 1]
            alone, alone_alpha = model(prefix)
            torch.testing.assert_close(pooled[:, t], alone[:, t], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(alpha[:, t, : t + 1], alone_alpha[:, t], rtol=1e-5, atol=1e-6)
            assert torch.all(alpha[:, t, t + 1 :] == 0)  # no future position enters a prefix
            lengths = torch.full((x.shape[0],), t + 1)
            full = model.score_all(x, lengths)  # padding = the later positions
            torch.testing.assert_close(full, model.score_all(prefix, lengths), rtol=1e-5, atol=1e-5)


def test_training_windows_reproduce_the_stored_prefix_examples(tmp_path):
    rng = np.random.default_rng(1)
    sessions = {
        f"s{i:03d}": [(f"p{rng.integers(30)}", int(rng.integers(1, 11)), int(rng.integers(0, 200))) for _ in range(12)]
        for i in range(40)
    }
    build_features(write_canonical(tmp_path / "mb.parquet", sessions), tmp_path / "f", FeatureConfig(test_fraction=0.0))
    train = SplitData.load(tmp_path / "f", "train")
    model = RIB(RIBConfig(neighbors=False, n_items=40, repeat=True)).eval()
    loader = WindowLoader(train, window=50, device=torch.device("cpu"))
    assert len(loader) == train.n_sessions  # every session fits one window
    with torch.no_grad():
        x, target_mask, targets, _, _, _ = loader.gather(np.arange(len(loader)))
        assert torch.equal(targets, torch.tensor(np.array(train.example_target), dtype=torch.long))
        pooled, _ = model(x)
        one_pass = model.output(pooled[target_mask])  # (N, V): logits of every stored example
        batch = train.batch(np.arange(train.n_examples))
        lengths = torch.as_tensor(batch.lengths)
        separately = model.output(model(torch.as_tensor(batch.inputs))[0][torch.arange(train.n_examples), lengths - 1])
    torch.testing.assert_close(one_pass, separately, rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_embedding_table():
    model = RIB(RIBConfig(neighbors=False, n_items=40, variant="sku_micro_interval", repeat=True))
    x = random_inputs()
    mask = torch.zeros_like(x[..., 0], dtype=torch.bool)
    mask[:, :-1] = True
    model.loss(x, mask, x[:, 1:, 0].reshape(-1)).backward()
    for table in (model.sku_embedding, model.activity_embedding, model.dwell_embedding, model.interval_embedding):
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    assert model.sku_embedding.weight.grad[0].abs().sum() == 0  # padding row stays untouched


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variants_select_their_embeddings(variant):
    model = RIB(RIBConfig(neighbors=False, n_items=40, variant=variant)).eval()
    uses = VARIANTS[variant]
    for name in ("activity", "dwell", "interval"):
        assert (getattr(model, f"{name}_embedding") is not None) == (name in uses)
    x = random_inputs()
    lengths = torch.full((4,), 9)
    base = model.score_all(x, lengths)
    for column, name in enumerate(("sku", "activity", "dwell", "interval")):
        if column == 0:
            continue
        changed = x.clone()
        changed[..., column] = 1
        # An input a variant does not use does not change its scores; one it uses does.
        assert torch.equal(base, model.score_all(changed, lengths)) == (name not in uses)


@pytest.mark.parametrize("pooling", ["attention", "last"])
def test_attention_sums_to_one_over_real_positions_and_is_zero_on_padding(pooling):
    """What the served model shows per input: the attention; with the explore half on the last
    state, the repeat part's weights, on each distinct product's last occurrence."""
    model = RIB(RIBConfig(neighbors=False, n_items=40, explore_pooling=pooling)).eval()
    x = random_inputs(n_items=8)  # few products: some come back
    lengths = torch.tensor([9, 5, 1, 3])
    for row, n in enumerate(lengths.tolist()):
        x[row, n:] = 0
    _, weights = model.score_and_attention(x, lengths)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))
    for row, n in enumerate(lengths.tolist()):
        sku = x[row, :n, 0].tolist()
        last = torch.tensor([pooling == "attention" or sku[u] not in sku[u + 1 :] for u in range(n)])
        assert torch.all(weights[row, n:] == 0) and torch.equal(weights[row, :n] > 0, last)
    assert not torch.all(weights[0, :9] > 0) or pooling == "attention"  # a product came back in row 0


@pytest.mark.parametrize("neighbors", [False, True])
def test_repeat_mixture_is_a_distribution_over_all_products(neighbors):
    model = RIB(RIBConfig(n_items=40, repeat=True, neighbors=neighbors)).eval()
    prior = torch.full((4, 40), 1 / 40) if neighbors else None
    log_probs = model.score_all(random_inputs(), torch.full((4,), 9), prior)
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("store_limit_bytes", [10**12, 0], ids=["stored-gradient", "recomputed"])
def test_chunked_softmax_cross_entropy_matches_pytorch(store_limit_bytes):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 8, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, generator=g, requires_grad=True)
    bias = torch.randn(50, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randint(0, 50, (300,), generator=g)
    reference = F.cross_entropy(x @ weight.t() + bias, target, reduction="none")
    row_weight = torch.rand(300, dtype=torch.float64, generator=g)  # as the repeat mixture weighs rows
    grads = torch.autograd.grad((reference * row_weight).sum(), (x, weight, bias))
    chunked = linear_cross_entropy(x, weight, bias, target, chunk=64, store_limit_bytes=store_limit_bytes)
    torch.testing.assert_close(chunked.double(), reference.detach(), rtol=1e-5, atol=1e-5)  # fp32 log-sum-exp
    mine = torch.autograd.grad((chunked * row_weight).sum(), (x, weight, bias))
    for ours, theirs in zip(mine, grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_attention_of_an_early_prefix_stays_finite_when_later_logits_are_huge():
    model = RIB(RIBConfig(neighbors=False, n_items=40, repeat=True, explore_pooling="attention")).eval()
    x = random_inputs(B=2, T=6)
    logits = torch.tensor([[-900.0, -800.0, 0.0, 400.0, 800.0, 900.0]] * 2)
    model.attention_logits = lambda h, inputs: logits  # a shared shift by 900 would underflow the first prefixes to 0/0
    with torch.no_grad():
        _, alpha = model(x)
        scores = model.score_all(x, torch.tensor([1, 2]))
    assert torch.isfinite(alpha).all() and torch.isfinite(scores[:, 2:]).all()
    torch.testing.assert_close(alpha.sum(dim=-1), torch.ones(2, 6))
    assert alpha[0, 0, 0] == 1 and alpha[0, 1, 1] == 1  # prefix 1: -800 dominates -900


@pytest.mark.parametrize("neighbors", [False, True])
def test_the_loss_and_the_scorer_give_the_same_log_probability(neighbors):
    model = RIB(RIBConfig(n_items=40, repeat=True, neighbors=neighbors, explore_loss=0.0, explore_own=False)).eval()
    prior = None
    if neighbors:  # a neighbourhood distribution over the catalog for each of the 3 inputs
        prior = torch.softmax(torch.randn(3, 40, generator=torch.Generator().manual_seed(4)), dim=1)
    x = random_inputs(B=3, T=7)
    x[:, 5, 0] = x[:, 2, 0]  # the next product at position 5 was seen earlier: both halves of the mixture count
    mask = torch.zeros_like(x[..., 0], dtype=torch.bool)
    mask[:, 4] = True  # the prefix 0..4 predicts position 5
    with torch.no_grad():
        at_target = None if prior is None else prior[torch.arange(3), x[:, 5, 0]]
        loss = model.loss(x, mask, x[:, 5, 0], at_target)
        scores = model.score_all(x[:, :5], torch.full((3,), 5), prior)
    torch.testing.assert_close(loss, -scores[torch.arange(3), x[:, 5, 0]].mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_len", [4, 7])
def test_every_training_target_sees_exactly_its_evaluation_input_in_long_sessions(tmp_path, max_len):
    """Sessions up to 5 times max_len: each training target's score in the one-pass windows equals
    the score of its stored example (the last max_len micro-behaviors before it) run alone."""
    rng = np.random.default_rng(2)
    sessions = {
        f"s{i:03d}": [(f"p{rng.integers(12)}", int(rng.integers(1, 11)), int(rng.integers(0, 200))) for _ in range(n)]
        for i, n in enumerate(rng.integers(2, 5 * max_len, size=60))
    }
    config = FeatureConfig(test_fraction=0.0, validation_fraction=0.0, max_len=max_len)
    build_features(write_canonical(tmp_path / "mb.parquet", sessions), tmp_path / "f", config)
    train = SplitData.load(tmp_path / "f", "train")
    model = RIB(RIBConfig(neighbors=False, n_items=20, repeat=True)).eval()
    loader = WindowLoader(train, window=max_len, device=torch.device("cpu"))
    with torch.no_grad():
        x, target_mask, targets, _, _, _ = loader.gather(np.arange(len(loader)))
        # Where each trained target sits in the split: the window's start plus its offset.
        position = torch.as_tensor(loader.starts)[:, None] + torch.arange(x.shape[1])[None, :]
        trained_at = position[:, 1:][target_mask[:, :-1]]
        order = torch.argsort(trained_at)
        assert torch.equal(trained_at[order], torch.as_tensor(np.array(train.example_end)))  # each target once
        assert torch.equal(targets[order], torch.as_tensor(np.array(train.example_target), dtype=torch.long))
        pooled, _ = model(x)
        one_pass = model.output(pooled[target_mask])[order]  # (N, V)
        batch = train.batch(np.arange(train.n_examples))
        assert (batch.lengths <= max_len).all() and (batch.lengths == max_len).any()  # long sessions truncate
        lengths = torch.as_tensor(batch.lengths)
        alone = model.output(model(torch.as_tensor(batch.inputs))[0][torch.arange(train.n_examples), lengths - 1])
    torch.testing.assert_close(one_pass, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("network", ["SASRec", "NARM"])
def test_the_baseline_networks_encode_every_prefix_as_its_own_input(network):
    from rib.config import NARMConfig, SASRecConfig
    from rib.models.networks import build_network

    config = {"SASRec": SASRecConfig, "NARM": NARMConfig}[network](n_items=40, variant="sku", dropout=0.0)
    model = build_network(config).eval()
    x = random_inputs(B=3, T=8)
    with torch.no_grad():
        pooled, alpha = model(x)
        for t in (0, 3, 7):
            alone, _ = model(x[:, : t + 1])
            torch.testing.assert_close(pooled[:, t], alone[:, t], rtol=1e-4, atol=1e-5)  # no future leaks in
        torch.testing.assert_close(alpha.sum(dim=-1), torch.ones(3, 8), rtol=1e-5, atol=1e-5)
        assert torch.all(alpha.triu(diagonal=1) == 0)


def test_the_visits_input_is_one_position_per_visit_the_product_alone():
    from rib.features.dataset import Batch
    from rib.models.network import visits_only

    x = random_inputs(B=2, T=8)
    x[0, :, 0] = torch.tensor([5, 5, 7, 5, 5, 9, 0, 0])  # visits 5, 7, 5, 9; then padding
    x[1, :, 0] = torch.tensor([3, 4, 4, 4, 6, 6, 3, 8])  # visits 3, 4, 6, 3, 8
    x[0, 6:] = 0
    visits, _, valid = visits_only(x)
    assert visits[..., 0].tolist() == [[5, 7, 5, 9, 0], [3, 4, 6, 3, 8]]
    assert valid.sum(dim=1).tolist() == [4, 5]
    assert torch.all(visits[..., 1:] == 0)  # no activity, dwell or interval
    batch = Batch(inputs=x.numpy(), lengths=np.array([6, 8]), target=np.array([2, 2]))
    np.testing.assert_array_equal(batch.visits_only().inputs, visits.numpy())  # the baselines' version agrees
    # A visits model scores the same whatever the number of micro-behaviors in each visit.
    model = RIB(RIBConfig(neighbors=False, n_items=40, variant="visits")).eval()
    short = torch.zeros_like(x[:1])
    short[0, :4, 0] = torch.tensor([5, 7, 5, 9])
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(x[:1], torch.tensor([6])), model.score_all(short, torch.tensor([4])))


def test_the_repeat_scorer_weighs_each_product_by_its_discounted_engagement():
    from rib.models.repeat import ProductRepeatScorer

    torch.manual_seed(0)
    scorer = ProductRepeatScorer(n_dwell=6, activity=True, dwell=True)
    with torch.no_grad():
        scorer.recency.normal_()
    x = random_inputs(B=3, T=10, n_items=6)  # few products: many revisits
    with torch.no_grad():
        weights = scorer(x)  # (B, T, T)
        start = torch.ones_like(x[..., 0])
        start[:, 1:] = (x[:, 1:, 0] != x[:, :-1, 0]).long()
        engagement = torch.nn.functional.softplus(scorer.engagement(scorer.micro_features(x, start))).squeeze(-1)
        visit = start.cumsum(dim=1)
        for b in range(3):
            for t in range(10):
                sku = x[b, : t + 1, 0].tolist()
                brute = {}
                for v in range(t + 1):  # s(t, y) = Σ_{v <= t, p_v = y} exp(r[visits back]) e_v
                    back = min(int(visit[b, t] - visit[b, v]), 31)
                    brute[sku[v]] = brute.get(sku[v], 0.0) + float(torch.exp(scorer.recency[back]) * engagement[b, v])
                total = sum(brute.values())
                for u in range(t + 1):
                    last = max(i for i in range(t + 1) if sku[i] == sku[u])  # the product stands at its last occurrence
                    expected = brute[sku[u]] / total if u == last else 0.0
                    assert float(weights[b, t, u]) == pytest.approx(expected, rel=1e-4, abs=1e-6)
                assert torch.all(weights[b, t, t + 1 :] == 0)


def test_the_explore_part_over_new_products_only_trains_what_it_scores():
    """explore_new_only (RepeatNet's explore mode): the loss of every prefix target in one pass
    equals minus the score of the target from that prefix run alone."""
    torch.manual_seed(0)
    model = RIB(
        RIBConfig(n_items=30, neighbors=False, explore_new_only=True, gate_holdout=0.0, explore_own=False)
    ).eval()
    x = random_inputs(B=3, T=8, n_items=12)  # few products: targets inside and outside the prefix
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, 2:7] = True
    targets = x[:, 1:, 0][mask[:, :-1]]
    with torch.no_grad():
        loss = model.loss(x, mask, targets, reduction="sum")
        alone = sum(
            -float(model.score_all(x[b : b + 1, : t + 1], torch.tensor([t + 1]))[0, x[b, t + 1, 0]])
            for b in range(3)
            for t in range(8)
            if mask[b, t]
        )
        assert float(loss) == pytest.approx(alone, rel=1e-5)
        scores = model.score_all(x, torch.full((3,), 8))
        assert torch.isfinite(scores[:, 2:]).all()  # every product: the input's by the repeat part, the rest by explore


@pytest.mark.parametrize("own", [False, True])
def test_an_explore_half_that_learns_on_its_own_gets_no_gradient_from_the_mixture(own):
    """explore_own: the output layer's gradient is the explore softmax's own cross-entropy's alone,
    whatever the neighbourhood gives the targets; learned through the mixture it depends on them."""
    x = random_inputs(B=3, T=7)
    mask = torch.zeros_like(x[..., 0], dtype=torch.bool)
    mask[:, 2:6] = True
    targets = x[:, 1:, 0][mask[:, :-1]]
    grads = []
    for seed in (1, 2):
        torch.manual_seed(0)
        model = RIB(RIBConfig(n_items=40, repeat=True, neighbors=True, explore_own=own, dropout=0.0))
        prior = torch.rand(len(targets), generator=torch.Generator().manual_seed(seed))
        model.loss(x, mask, targets, prior, held=torch.zeros(len(targets), dtype=torch.bool)).backward()
        grads.append(model.output.weight.grad.clone())
        nll = F.cross_entropy(model.output(model.encode(x)[0][mask]), targets)
    assert torch.equal(grads[0], grads[1]) == own
    if own:  # and it is exactly the gradient of the explore softmax's mean cross-entropy
        model.zero_grad()
        nll.backward()
        torch.testing.assert_close(model.output.weight.grad, grads[1], rtol=1e-5, atol=1e-7)


def test_an_explore_half_on_the_last_state_reads_no_attention():
    """explore_pooling last: the explore half reads each prefix's last GRU state; the repeat part
    keeps its own scorer, and the paper's model (no repeat) keeps its attention."""
    model = RIB(RIBConfig(n_items=40, repeat=True, neighbors=False, explore_pooling="last")).eval()
    x = random_inputs(B=2, T=6)
    with torch.no_grad():
        pooled, alpha = model.encode(x)
        states, _ = model.rnn(model.embed(x))
    torch.testing.assert_close(pooled, states)
    torch.testing.assert_close(alpha, model.product_repeat(x))  # α is the repeat part's weights
    no_repeat = RIB(RIBConfig(n_items=40, repeat=False, attention=False)).eval()
    torch.testing.assert_close(no_repeat.encode(x)[1], torch.eye(6).expand(2, 6, 6))  # RIB-Attention: the last state
    assert not hasattr(model, "attention_m") and hasattr(model, "product_repeat")
    assert hasattr(RIB(RIBConfig(n_items=40, repeat=False, explore_pooling="last")), "attention_m")
    with pytest.raises(ValueError, match="repeat scorer"):
        RIB(RIBConfig(n_items=40, repeat=True, explore_pooling="last", repeat_scorer=False))


def test_the_explore_shift_weighs_the_explore_half_when_ranking_and_never_in_the_loss():
    model = RIB(RIBConfig(n_items=40, repeat=True, neighbors=True, dropout=0.0)).eval()
    x = random_inputs(B=3, T=7)
    lengths = torch.full((3,), 7)
    prior = torch.softmax(torch.randn(3, 40, generator=torch.Generator().manual_seed(4)), dim=1)
    prior[:, 30:] = 0.0  # products the neighbourhood does not vote for
    prior = prior / prior.sum(dim=1, keepdim=True)
    mask = torch.zeros_like(x[..., 0], dtype=torch.bool)
    mask[:, 4] = True
    with torch.no_grad():
        candidates = [(repeat, explore) for repeat in (0.0, -1.0) for explore in (0.0, -2.0, float("-inf"))]
        both = dict(model.score_shifted(x, lengths, prior, candidates))
        shifted = {explore: scores for (repeat, explore), scores in both.items() if repeat == 0.0}
        loss = model.loss(x, mask, x[:, 5, 0], prior[torch.arange(3), x[:, 5, 0]])
        for (repeat, explore), scores in both.items():
            model.repeat_shift.fill_(repeat)
            model.explore_shift.fill_(explore)
            torch.testing.assert_close(model.score_all(x, lengths, prior), scores)  # the scorer uses the buffers
            torch.testing.assert_close(scores.exp().sum(dim=1), torch.ones(3))  # still a distribution
            assert torch.equal(model.loss(x, mask, x[:, 5, 0], prior[torch.arange(3), x[:, 5, 0]]), loss)
    outside = torch.ones(3, 40, dtype=torch.bool)
    outside[torch.arange(3)[:, None], x[..., 0]] = False  # not in the session
    outside[:, :30] = False  # nor voted for: only the explore half reaches these
    assert torch.isfinite(shifted[0.0][outside]).all() and torch.isinf(shifted[float("-inf")][outside]).all()
    # a lower shift moves weight from the explore half to the others: those products fall
    assert (shifted[-2.0][outside] < shifted[0.0][outside]).all()
    # a lower repeat shift moves weight from the session's products to the other parts: the rest rise
    assert (both[(-1.0, 0.0)][outside] > both[(0.0, 0.0)][outside]).all()


@pytest.mark.parametrize("variant", ["sku_micro", "visits"])
@pytest.mark.parametrize("neighbors", [True, False])
def test_the_ranks_of_every_shift_are_the_ranks_of_its_scores(variant, neighbors):
    """rank_shifted (validation's ranking of every (repeat, explore) pair) gives the ranks that
    target_ranks gives each pair's scores: the target inside the input or outside it, the last SKU
    ranked out or not, the target being the last SKU, an unseen target, ties at -inf (products
    only the explore half reaches, left out)."""
    from rib.evaluation.metrics import target_ranks

    model = RIB(RIBConfig(n_items=60, repeat=True, neighbors=neighbors, variant=variant, dropout=0.0)).eval()
    x = random_inputs(B=8, T=9, n_items=30, seed=5)  # products 2..29: 30..59 are never in an input
    x[:, 2] = x[:, 1]  # a visit of two micro-behaviors
    lengths = torch.tensor([9, 9, 7, 5, 3, 9, 6, 4])
    x[torch.arange(9)[None, :] >= lengths[:, None]] = 0  # padding
    last = x[torch.arange(8), lengths - 1, 0]
    # inside the input, outside it (in the catalog, never in an input), the last SKU, unseen
    targets = torch.tensor([int(x[0, 0, 0]), 45, int(x[2, 3, 0]), int(last[3]), 1, 33, int(x[6, 1, 0]), 58])
    prior = torch.softmax(torch.randn(8, 60, generator=torch.Generator().manual_seed(6)), dim=1)
    prior[:, 40:] = 0.0  # products the neighbourhood does not vote for: -inf without the explore half
    prior = prior / prior.sum(dim=1, keepdim=True)
    prior = prior if neighbors else None
    shifts = [(repeat, explore) for repeat in (0.0, -1.0, 0.5) for explore in (0.0, -2.0, float("-inf"))]
    with torch.no_grad():
        scores = dict(model.score_shifted(x, lengths, prior, shifts))
        for last_sku in (last, None):
            ranks = dict(model.rank_shifted(x, lengths, prior, shifts, targets, last_sku))
            assert list(ranks) == sorted(shifts, key=lambda shift: -shift[1])  # grouped by explore shift
            for shift in shifts:
                expected = target_ranks(scores[shift], targets, last_sku)
                np.testing.assert_array_equal(ranks[shift].numpy(), expected)
        ranked_out = target_ranks(scores[shifts[0]], targets, last)
    assert np.isinf(ranked_out[4]) and np.isfinite(ranked_out[[0, 1, 2, 5, 6, 7]]).all()  # 1 is unseen
    assert ranked_out[3] == 60 - 2 and expected[3] < 60 - 2  # the last SKU as the target: last when ranked out


def test_the_switch_features_count_the_session_and_the_current_visit_of_each_prefix():
    from rib.models.repeat import n_switch_features, switch_features

    # (sku, activity, dwell, interval): product 5 (click, specification), 6, 5 again (cart, order), padding
    x = torch.tensor([[[5, 1, 1, 1], [5, 7, 1, 2], [6, 2, 2, 2], [5, 9, 3, 2], [5, 10, 3, 2], [0, 0, 0, 0]]])
    features = switch_features(x, activity=True, dwell=True, n_dwell=6)  # (1, T, K)
    assert features.shape == (1, 6, n_switch_features(True, True, 6))
    session = features[0, :, :5].expm1().round()  # visits, micro-behaviors, distinct, in this visit, earlier visits
    assert session.tolist() == [
        [1, 1, 1, 1, 0],
        [1, 2, 1, 2, 0],
        [2, 3, 2, 1, 0],
        [3, 4, 2, 1, 1],
        [3, 5, 2, 2, 1],
        [0, 0, 0, 0, 0],
    ]
    assert features[0, :5, 5].tolist() == pytest.approx([1, 1, 1, 2 / 3, 2 / 3])  # distinct products per visit
    visit = features[0, 4, 6:16].expm1().round()  # the current visit's activities: a cart and an order
    assert visit.nonzero().squeeze(1).tolist() == [8, 9]
    assert features[0, 4, 16:26].nonzero().squeeze(1).tolist() == [8]  # it began with the cart
    assert features[0, 4, 26:28].expm1().round().tolist() == [1, 1]  # carts and orders so far
    assert features[0, 4, 28:].nonzero().squeeze(1).tolist() == [2]  # its dwell bucket, 3
    assert torch.all(features[0, 5] == 0)  # padding
    # Prefix t reads positions <= t only; the SKU input reads the session counts alone.
    x = random_inputs(B=3, T=9, n_items=6)
    full = switch_features(x, True, True, 6)
    for t in range(9):
        torch.testing.assert_close(full[:, t], switch_features(x[:, : t + 1], True, True, 6)[:, t])
    assert switch_features(x, False, False, 6).shape[-1] == n_switch_features(False, False, 6) == 6


@pytest.mark.parametrize("neighbors", [False, True])
def test_the_gates_read_the_switch_features_in_the_loss_and_the_scorer_alike(neighbors):
    model = RIB(RIBConfig(n_items=40, neighbors=neighbors, explore_own=False)).eval()
    assert torch.all(model.switch_gate.weight == 0)  # the untrained mixture is the one without them
    with torch.no_grad():
        model.switch_gate.weight.normal_()
    prior = torch.softmax(torch.randn(3, 40, generator=torch.Generator().manual_seed(4)), dim=1) if neighbors else None
    x = random_inputs(B=3, T=7)
    x[:, 5, 0] = x[:, 2, 0]
    mask = torch.zeros_like(x[..., 0], dtype=torch.bool)
    mask[:, 4] = True
    with torch.no_grad():
        at_target = None if prior is None else prior[torch.arange(3), x[:, 5, 0]]
        loss = model.loss(x, mask, x[:, 5, 0], at_target)
        scores = model.score_all(x[:, :5], torch.full((3,), 5), prior)
        plain = RIB(dataclasses.replace(model.config, gate_features=False)).eval()
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("switch_gate.")})
        without = plain.score_all(x[:, :5], torch.full((3,), 5), prior)
    torch.testing.assert_close(loss, -scores[torch.arange(3), x[:, 5, 0]].mean(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(scores, without)  # the features move the gates


def test_a_checkpoint_written_before_the_repeat_scorer_loads_as_it_was_trained():
    import dataclasses

    from rib.models.networks import ADDED_LATER, build_network, config_from_dict

    old = RIB(RIBConfig(n_items=40, neighbors=False, **ADDED_LATER))  # as RIB was before these settings
    written = {k: v for k, v in dataclasses.asdict(old.config).items() if k not in ADDED_LATER}
    loaded = build_network(config_from_dict("RIB", written))
    loaded.load_state_dict(old.state_dict())  # the same parameters: no repeat scorer expected
    assert not hasattr(loaded, "product_repeat")
    assert hasattr(build_network(config_from_dict("RIB", dataclasses.asdict(RIBConfig(n_items=40)))), "product_repeat")


def test_the_session_graph_is_sr_gnns():
    """SR-GNN's example session v1 -> v2 -> v3 -> v2 -> v4: in-edges averaged per node (v2 has two),
    out-edges per node (v2 leads to v3 and v4), one node per distinct product, padding outside."""
    from rib.models.graph import session_graph

    sku = torch.tensor([[11, 12, 13, 12, 14, 0]])
    valid = sku != 0
    node, a_in, a_out = session_graph(sku, valid)
    assert node.tolist() == [[0, 1, 2, 1, 4, 5]]
    expected_in = torch.zeros(6, 6)
    expected_in[1, 0] = expected_in[1, 2] = 0.5  # v2 <- v1, v3
    expected_in[2, 1] = expected_in[4, 1] = 1.0  # v3 <- v2, v4 <- v2
    expected_out = torch.zeros(6, 6)
    expected_out[0, 1] = expected_out[2, 1] = 1.0  # v1 -> v2, v3 -> v2
    expected_out[1, 2] = expected_out[1, 4] = 0.5  # v2 -> v3, v4
    torch.testing.assert_close(a_in[0], expected_in)
    torch.testing.assert_close(a_out[0], expected_out)


@pytest.mark.parametrize(("name", "variant"), [("SR-GNN", "sku"), ("MKM-SR", "sku_micro"), ("EMBSR", "sku_micro")])
def test_a_graph_network_encodes_each_target_from_its_own_prefix(name, variant):
    """The loss of every target in one call equals scoring each truncated prefix alone (the graph
    of a prefix holds none of the transitions after it)."""
    from rib.config import GraphConfig
    from rib.models.networks import build_network

    model = build_network(GraphConfig(n_items=12, variant=variant, d_sku=16, dropout=0.0), name).eval()
    x = random_inputs(B=3, T=8, n_items=12)
    x[1, 3:5, 0] = x[1, 2, 0]  # one product over three micro-behaviors: a visit of three operations
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, 1:7] = True
    targets = x[:, 1:, 0][mask[:, :-1]]
    with torch.no_grad():
        loss = model.loss(x, mask, targets, reduction="sum")
        alone = sum(
            -float(
                torch.log_softmax(model.score_all(x[b : b + 1, : t + 1], torch.tensor([t + 1])), 1)[0, x[b, t + 1, 0]]
            )
            for b in range(3)
            for t in range(8)
            if mask[b, t]
        )
    assert float(loss) == pytest.approx(alone, rel=1e-5)


@pytest.mark.parametrize(("name", "variant"), [("SR-GNN", "sku"), ("MKM-SR", "sku_micro"), ("EMBSR", "sku_micro")])
def test_a_graph_network_trains_and_scores_under_bf16_autocast(name, variant):
    """What CUDA training runs (train.bf16): the loss and the scores under bfloat16 autocast, here on
    the CPU. EMBSR's edge averaging once mixed bf16 messages with a float32 count and failed on the
    GPU (scatter(): Expected self.dtype to be equal to src.dtype)."""
    from rib.config import GraphConfig
    from rib.models.networks import build_network

    model = build_network(GraphConfig(n_items=12, variant=variant, d_sku=16, dropout=0.0), name)
    x = random_inputs(B=3, T=8, n_items=12)
    x[1, 3:5, 0] = x[1, 2, 0]  # a visit of three operations
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, 1:7] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(x, mask, x[:, 1:, 0][mask[:, :-1]])
        loss.backward()
        scores = model.score_all(x, torch.tensor([8, 5, 3]))
    assert torch.isfinite(loss) and torch.isfinite(scores.float()).all() and scores.shape == (3, 12)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_embsr_attention_adds_the_vector_of_each_ordered_pair_of_operations():
    """The gathered pair terms equal the brute-force q_a · (k_b + R^K[op_a, op_b]) and
    Σ_b w_ab (v_b + R^V[op_a, op_b])."""
    from rib.config import GraphConfig
    from rib.models.graph import EMBSR

    model = EMBSR(GraphConfig(n_items=12, variant="sku_activity", d_sku=8)).eval()
    g = torch.Generator().manual_seed(3)
    z, activity = torch.randn(2, 5, 8, generator=g), torch.randint(1, 11, (2, 5), generator=g)
    valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        q, k, v = model.query(z), model.key(z), model.value(z)
        pair = activity[:, :, None] * 11 + activity[:, None, :]
        r_k, r_v = model.pair_key(pair), model.pair_value(pair)  # (2, 5, 5, 8): the brute force
        scores = ((q[:, :, None, :] * (k[:, None, :, :] + r_k)).sum(-1)) / 8**0.5
        w = torch.softmax(scores.masked_fill(~valid[:, None, :], float("-inf")), dim=-1)
        expected = (w[..., None] * (v[:, None, :, :] + r_v)).sum(2)
        torch.testing.assert_close(model.operation_attention(z, activity, valid), expected)


def test_the_neighbourhood_part_is_held_in_row_order_however_it_comes():
    """SessionKNN.distribution comes column-ordered (scipy's product of a dense and a sparse
    matrix): the mixture holds it in row order, as its other parts (a torch.logaddexp of the two
    orders took five times as long on every validation pass), with the same probabilities and
    the same scores."""
    model = RIB(RIBConfig(n_items=60, repeat=True, neighbors=True, dropout=0.0)).eval()
    x = random_inputs(B=8, T=9, n_items=30, seed=5)
    lengths = torch.full((8,), 9)
    prior = torch.softmax(torch.randn(8, 60, generator=torch.Generator().manual_seed(6), dtype=torch.float64), dim=1)
    columns = torch.from_numpy(np.asfortranarray(prior.numpy()))  # as torch.as_tensor(distribution) holds it
    assert not columns.is_contiguous()
    parts = model.session_parts(x[..., 0], torch.full((8, 9), 1 / 9), neighbor_prob=columns)
    assert parts[1].is_contiguous() and parts[1].dtype == torch.float32
    torch.testing.assert_close(parts[1], prior.float(), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.score_all(x, lengths, columns), model.score_all(x, lengths, prior))
