import dataclasses

import numpy as np
import pytest
import torch
from helpers import write_canonical

from rib.config import BPRConfig, EvaluationConfig, FeatureConfig, RIBConfig, TrainConfig, Word2VecConfig
from rib.evaluation.metrics import evaluate
from rib.features.build import build_features
from rib.features.dataset import FeatureSet
from rib.models.baselines import BPRMF, Word2VecAvg, Word2VecLast
from rib.models.checkpoint import UnknownInputError, load_checkpoint, recommend, save_checkpoint
from rib.models.train import score_batch, sized_for, train_network
from rib.models.word2vec import load_vectors, pretrain_word2vec

N_PRODUCTS = 60


def successor(item: int) -> int:
    return (item * 7 + 3) % N_PRODUCTS


@pytest.fixture(scope="module")
def deterministic_features(tmp_path_factory):
    """Sessions where the next product is always a fixed function of the current one."""
    tmp = tmp_path_factory.mktemp("det")
    rng = np.random.default_rng(0)
    sessions = {}
    for s in range(500):
        item, events = int(rng.integers(N_PRODUCTS)), []
        for _ in range(int(rng.integers(3, 9))):
            events.append((f"p{item}", int(rng.choice([5, 7])), int(rng.integers(1, 100))))
            item = successor(item)
        sessions[f"s{s:04d}"] = events
    build_features(write_canonical(tmp / "mb.parquet", sessions), tmp / "f", FeatureConfig())
    return FeatureSet.load(tmp / "f")


AT_1 = EvaluationConfig(ks=[1])
QUIET = dict(progress=False, device="cpu")


def test_rib_learns_a_deterministic_next_product(deterministic_features, tmp_path):
    features = deterministic_features
    config = TrainConfig(epochs=6, learning_rate=0.01, batch_size=64, patience=6, **QUIET)
    model_config = sized_for(features, RIBConfig(neighbors=False, d_sku=32, hidden=64, dropout=0.0))
    result = train_network(features, model_config, config, AT_1, log=lambda _: None)
    test = evaluate(lambda batch: score_batch(result.model, batch), features.test, AT_1, features.n_items)
    assert test["recall@1"] > 0.95
    assert result.validation["recall@1"] > 0.95
    assert result.best_epoch in range(1, 7) and len(result.history) >= result.best_epoch
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]

    # A saved checkpoint reloads to identical scores.
    save_checkpoint(result.model, tmp_path / "ckpt", features.vocab, {"max_len": 50, "exclude_last_sku": True})
    checkpoint = load_checkpoint(tmp_path / "ckpt")
    reloaded = checkpoint.model
    batch = features.test.batch(np.arange(features.test.n_examples))
    x, lengths = torch.as_tensor(batch.inputs), torch.as_tensor(batch.lengths)
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(result.model.score_all(x, lengths), reloaded.score_all(x, lengths))

    # recommend() from raw micro-behaviors: the successor comes first, attention per input.
    session = [("p4", 5, 12.0), ("p4", 7, 12.0), (f"p{successor(4)}", 5, 30.0)]
    (top,) = recommend(checkpoint, [session], k=5)
    assert top.skus[0] == f"p{successor(successor(4))}"
    assert len(top.skus) == len(top.scores) == 5 and top.scores == sorted(top.scores, reverse=True)
    assert len(top.attention) == 3 and abs(sum(top.attention) - 1) < 1e-5
    (with_unknown,) = recommend(checkpoint, [[("nope", 5, 1.0), ("p1", 5, 1.0)]], k=5)
    assert with_unknown.unknown_skus == ["nope"]
    with pytest.raises(UnknownInputError, match="unknown SKU 'nope'"):
        recommend(checkpoint, [[("nope", 5, 1.0)]], k=5, strict=True)
    with pytest.raises(UnknownInputError, match=r"activity must be an integer 1\.\.10"):
        recommend(checkpoint, [[("p1", 11, 1.0)]], k=5)


def test_training_is_repeatable_on_cpu(deterministic_features):
    config = TrainConfig(epochs=2, batch_size=64, seed=5, **QUIET)
    model_config = sized_for(deterministic_features, RIBConfig(neighbors=False, hidden=32))
    runs = [train_network(deterministic_features, model_config, config, AT_1, log=lambda _: None) for _ in range(2)]
    assert runs[0].history[-1]["train_loss"] == runs[1].history[-1]["train_loss"]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_word2vec_is_repeatable_and_aligned_with_ids(deterministic_features, tmp_path):
    dims = {"sku": 16, "activity": 4, "dwell": 4}
    first = pretrain_word2vec(deterministic_features, tmp_path / "a", dims, Word2VecConfig(epochs=3))
    pretrain_word2vec(deterministic_features, tmp_path / "b", dims, Word2VecConfig(epochs=3))
    a, b = load_vectors(tmp_path / "a"), load_vectors(tmp_path / "b")
    assert all(np.array_equal(a[k][0], b[k][0]) for k in dims)
    vectors, known = a["sku"]
    assert vectors.shape == (deterministic_features.n_items, 16)
    assert not known[0] and not known[1] and known[2:].all()
    assert first["kinds"]["activity"]["known_ids"] == 2  # only activities 5 and 7 occur
    assert not list(tmp_path.glob("*/*.corpus.txt"))

    # word2vec initialises RIB's tables (eq. 3).
    model_config = sized_for(deterministic_features, RIBConfig(neighbors=False, d_sku=16, d_activity=4, d_dwell=4))
    config = TrainConfig(epochs=1, learning_rate=1e-9, **QUIET)
    result = train_network(deterministic_features, model_config, config, AT_1, a, log=lambda _: None)
    np.testing.assert_allclose(result.model.sku_embedding.weight[2:].detach().numpy(), vectors[2:], atol=1e-5)


def test_word2vec_and_bpr_baselines(deterministic_features, tmp_path):
    features = deterministic_features
    pretrain_word2vec(features, tmp_path, {"sku": 16}, Word2VecConfig(epochs=10, window=1))
    vectors = load_vectors(tmp_path)["sku"][0]
    n_items = vectors.shape[0]
    batch = features.test.batch(np.arange(4))
    last = Word2VecLast(vectors).fit(features).score(batch)
    assert last.shape == (4, n_items)
    np.testing.assert_allclose(last[np.arange(4), batch.last_sku], 1.0, rtol=1e-5)  # cosine with itself
    avg = Word2VecAvg(vectors).fit(features)
    # In this data a product's successor is its constant neighbour: word2vec finds it.
    assert evaluate(avg.score, features.test, EvaluationConfig(ks=[20]), n_items)["recall@20"] > 0.5
    bpr = BPRMF(BPRConfig(factors=8, iterations=20, seed=1)).fit(features)
    scores = bpr.score(batch)
    assert scores.shape == (4, n_items) and np.isfinite(scores[:, 2:]).all()
    again = BPRMF(BPRConfig(factors=8, iterations=20, seed=1)).fit(features).score(batch)
    np.testing.assert_allclose(scores, again)


def test_no_weight_decay_on_biases_and_embedding_tables():
    from rib.models.rib import RIB
    from rib.models.train import make_optimizer

    model = RIB(RIBConfig(neighbors=False, n_items=40, explore_pooling="attention"))  # every kind of layer
    groups = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu")).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == {
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "attention_m.weight",
        "attention_a.weight",
        "repeat_gate.weight",
        "output.weight",
        "product_repeat.engagement.0.weight",
        "product_repeat.engagement.2.weight",
        "switch_gate.weight",
    }
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_the_repeat_scorer_and_the_switch_weights_learn_at_their_own_multiple_of_the_learning_rate():
    from rib.models.rib import RIB
    from rib.models.train import make_optimizer

    def rates(**options) -> dict[str, float]:
        model = RIB(RIBConfig(neighbors=False, n_items=40, **options))
        groups = make_optimizer(model, TrainConfig(learning_rate=1e-3), torch.device("cpu")).param_groups
        lr = {id(p): g["lr"] for g in groups for p in g["params"]}
        return {name: lr[id(p)] for name, p in model.named_parameters()}

    shipped = rates()
    scorer = {name for name in shipped if name.startswith(("product_repeat.", "switch_gate."))}
    assert scorer == {
        "product_repeat.recency",
        *(f"product_repeat.engagement.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")),
        "switch_gate.weight",  # the gates' weights of the switch features; their other weights are not
    }
    assert all(shipped[name] == pytest.approx(1e-2) for name in scorer)  # 10 x by default
    assert all(lr == pytest.approx(1e-3) for name, lr in shipped.items() if name not in scorer)  # gates included
    assert all(lr == pytest.approx(1e-3) for lr in rates(repeat_lr_scale=1.0).values())


def test_gradients_are_clipped_to_the_configured_norm(deterministic_features):
    from rib.models.rib import RIB
    from rib.models.train import WindowLoader, make_optimizer, train_epoch

    model = RIB(sized_for(deterministic_features, RIBConfig(neighbors=False, hidden=16)))
    config = TrainConfig(grad_clip=1e-3, **QUIET)
    loader = WindowLoader(deterministic_features.train, deterministic_features.max_len, torch.device("cpu"))
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    train_epoch(model, loader, optimizer, config, torch.Generator().manual_seed(0), max_batches=1)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm <= 1e-3 * (1 + 1e-4)


def test_a_non_finite_loss_stops_training_with_a_clear_error(deterministic_features):
    from rib.models.train import NonFiniteLossError

    n = deterministic_features.n_items
    broken = {"sku": (np.full((n, 16), np.nan, np.float32), np.ones(n, bool))}  # NaN word2vec vectors
    model_config = sized_for(deterministic_features, RIBConfig(neighbors=False, d_sku=16, hidden=16))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1: the training loss is nan by batch 1"):
        train_network(deterministic_features, model_config, TrainConfig(epochs=2, **QUIET), AT_1, broken, log=print)


def test_a_checkpoint_carries_the_optimizer_state_and_its_epoch(deterministic_features, tmp_path):
    from rib.models.checkpoint import load_training_state
    from rib.models.train import make_optimizer

    config = TrainConfig(epochs=2, batch_size=64, **QUIET)
    result = train_network(
        deterministic_features, sized_for(deterministic_features, RIBConfig(neighbors=False, hidden=16)), config, AT_1
    )
    state = {"epoch": result.best_epoch, "optimizer": result.optimizer_state}
    save_checkpoint(
        result.model, tmp_path / "c", deterministic_features.vocab, {"max_len": 50, "exclude_last_sku": True}, state
    )
    loaded = load_training_state(tmp_path / "c")
    assert loaded["epoch"] == result.best_epoch >= 1
    optimizer = make_optimizer(result.model, config, torch.device("cpu"))
    optimizer.load_state_dict(loaded["optimizer"])  # continues where the kept epoch left off
    first = next(iter(optimizer.state.values()))
    assert int(first["step"]) == int(next(iter(result.optimizer_state["state"].values()))["step"]) > 0


@pytest.mark.parametrize("repeat_ranking", [False, True])
def test_the_explore_shift_chosen_on_validation_is_the_best_of_its_candidates(
    deterministic_features, tmp_path, repeat_ranking
):
    """explore_ranking validation: after each epoch the network ranks with the explore shift (and
    with repeat_ranking the repeat part's shift) whose validation figure is best; the epoch's
    figures are that pair's, and the checkpoint keeps it. Without repeat_ranking the repeat part
    is never shifted."""
    import math

    from rib.models.train import EXPLORE_SHIFTS, REPEAT_SHIFTS, selection_figure

    features = deterministic_features
    config = TrainConfig(epochs=1, batch_size=64, learning_rate=0.01, **QUIET)
    model_config = sized_for(
        features, RIBConfig(neighbors=False, hidden=32, explore_ranking="validation", repeat_ranking=repeat_ranking)
    )
    result = train_network(features, model_config, config, AT_1, log=lambda _: None)
    model = result.model
    chosen = (float(model.repeat_shift), float(model.explore_shift))
    figures = {}
    for repeat in REPEAT_SHIFTS if repeat_ranking else (0.0,):
        for explore in EXPLORE_SHIFTS:
            model.repeat_shift.fill_(repeat)
            model.explore_shift.fill_(explore)
            scored = evaluate(lambda batch: score_batch(model, batch), features.validation, AT_1, features.n_items)
            figures[(repeat, explore)] = scored
    by_shift = {shift: selection_figure(f, 1) for shift, f in figures.items()}
    assert len(set(by_shift.values())) > 1  # the candidates rank differently
    assert by_shift[chosen] == max(by_shift.values()) == pytest.approx(selection_figure(result.validation, 1))
    assert result.history[0]["validation_explore_scale"] == math.exp(chosen[1])
    assert result.history[0]["validation_repeat_scale"] == math.exp(chosen[0])
    model.repeat_shift.fill_(chosen[0])
    model.explore_shift.fill_(chosen[1])
    save_checkpoint(model, tmp_path / "c", features.vocab, {"max_len": 50, "exclude_last_sku": True})
    reloaded = load_checkpoint(tmp_path / "c").model
    assert (float(reloaded.repeat_shift), float(reloaded.explore_shift)) == chosen

    # A checkpoint written before the setting (no explore_ranking, no shift in its weights) loads
    # as it was trained: the learned gates alone weigh the explore half.
    import json

    from rib.models.checkpoint import CONFIG, WEIGHTS

    written = json.loads((tmp_path / "c" / CONFIG).read_text())
    del written["model"]["explore_ranking"], written["model"]["repeat_ranking"]
    (tmp_path / "c" / CONFIG).write_text(json.dumps(written))
    with np.load(tmp_path / "c" / WEIGHTS) as weights:
        kept = {k: weights[k] for k in weights.files if k not in ("explore_shift", "repeat_shift")}
        np.savez(tmp_path / "c" / WEIGHTS, **kept)
    older = load_checkpoint(tmp_path / "c").model
    assert float(older.explore_shift) == 0.0 and older.config.explore_ranking == "gates"
    assert float(older.repeat_shift) == 0.0 and older.config.repeat_ranking is False
    plain = train_network(features, dataclasses.replace(model_config, repeat=False), config, AT_1, log=lambda _: None)
    assert "explore_scale" not in plain.validation  # without the mixture there is no explore part to weigh


@pytest.mark.parametrize("network", ["SR-GNN", "EMBSR"])
def test_a_graph_network_checkpoint_loads_as_the_network_it_was(deterministic_features, tmp_path, network):
    """The graph networks share one config class: the checkpoint names the network, and the loaded
    one scores exactly as the trained one."""
    from rib.config import GraphConfig

    variant = "sku" if network == "SR-GNN" else "sku_micro"
    config = sized_for(deterministic_features, GraphConfig(d_sku=16, variant=variant))
    result = train_network(deterministic_features, config, TrainConfig(epochs=1, **QUIET), AT_1, network=network)
    save_checkpoint(
        result.model, tmp_path / "c", deterministic_features.vocab, {"max_len": 50, "exclude_last_sku": True}
    )
    loaded = load_checkpoint(tmp_path / "c")
    assert type(loaded.model).__name__ == type(result.model).__name__ == network.replace("-", "")
    batch = deterministic_features.test.batch(np.arange(8))
    np.testing.assert_array_equal(score_batch(loaded.model, batch), score_batch(result.model, batch))
