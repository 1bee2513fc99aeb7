"""Every setting of the library and the pipeline, with its default, in one place.

Each section of `params.yaml` overrides the dataclass of the same name below; a key that is
not set keeps the default written here. `load_params` reads the file strictly: a missing file,
an unknown (misspelt) key or a value of the wrong type is an error that names it.
`rib params` prints every resolved setting.

The library's functions take these dataclasses; nothing else holds a default for them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

PARAMS_ENV = "RIB_PARAMS"  # the params file the pipeline reads, when not params.yaml


# ---------------------------------------------------------------------------------------------
# Data: where the raw logs are and how to read them (rib/data)


@dataclass
class DataConfig:
    format: str = "canonical"  # canonical | jd | events
    inputs: list[str] = field(default_factory=lambda: ["data/micro_behaviors.parquet"])
    events_config: str | None = None  # a YAML file describing an event log (format events), docs/sources.md
    generate_if_missing: bool = True  # write the synthetic default data to inputs[0] when it is absent
    # The engine that reads the logs: duckdb (in process) | spark (event logs only, rib/data/events_spark.py:
    # the canonical table and quarantine as Parquet folders; in the pipeline a process of its own launched
    # through Dagster Pipes; the Spark session's settings are features.spark_master and spark_conf).
    engine: str = "duckdb"
    # DuckDB's memory limit in the events ingest (past it, its sorts spill to disk; the JD and canonical
    # readers keep rib.io's default). At 100M rows the ingest then peaks at 5.2 GB resident; with 4GB it
    # took 203 s against 184 s (benchmarks/ingest_scale.py).
    duckdb_memory_limit: str = "5GB"
    # Logs arriving daily: a path with {date} (YYYY-MM-DD), e.g. data/daily/{date}.csv or data/daily/{date}/.
    # Set, it replaces `inputs`: each day is ingested once (a daily Dagster partition) and the
    # features and models use the last `training_days` days (rib/data/daily.py).
    daily_inputs: str | None = None
    training_days: int = 30
    first_day: str = "2026-01-01"  # the first daily partition


@dataclass
class SyntheticConfig:
    """The built-in default dataset (rib/data/synthetic.py), calibrated to the JD samples."""

    seed: int = 7
    n_sessions: int = 2500
    n_skus: int = 3000
    n_categories: int = 40
    n_users: int | None = None  # default: n_sessions // 3
    mean_visits: float = 24.0  # macro interactions per session
    max_visits: int = 150
    p_revisit: float = 0.22
    p_follow: float = 0.35
    n_neighbors: int = 3
    popularity_skew: float = 2.2  # rank = size * u**skew: larger is more skewed
    start: str = "2026-01-01"
    days: int = 60
    chunk_sessions: int = 50_000

    @property
    def users(self) -> int:
        return self.n_users or max(1, self.n_sessions // 3)


# ---------------------------------------------------------------------------------------------
# Features (rib/features)


@dataclass
class FeatureConfig:
    min_sku_count: int = 1
    dwell_buckets: int = 5  # equal-frequency buckets learned on the training split
    dwell_edges: list[float] | None = None  # or fixed upper-inclusive edges, e.g. the paper's [9, 24, 60, 120]
    interval_buckets: int = 5  # equal-frequency buckets of the time since the previous micro-behavior
    max_len: int = 50  # inputs keep the last max_len micro-behaviors
    split_method: str = "hash"  # hash: seeded per-session hash, stable when data is appended | time
    split_seed: int = 13
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    duckdb_memory_limit: str = "4GB"
    duckdb_threads: int = 2
    # The engine that runs the definitions: duckdb (in process) | spark (rib/features/spark.py; in
    # the pipeline a separate process launched through Dagster Pipes, README: scaling out).
    engine: str = "duckdb"
    spark_master: str = "local[2]"  # local[N] here; on a cluster, what spark-submit or the launcher sets
    spark_conf: dict[str, str] = field(default_factory=dict)  # e.g. {spark.driver.memory: 8g}


# ---------------------------------------------------------------------------------------------
# Evaluation (rib/evaluation)


@dataclass
class EvaluationConfig:
    ks: list[int] = field(default_factory=lambda: [20])  # the first k is the one early stopping and tables use
    exclude_last_sku: bool = True  # the next macro interaction is on another SKU by construction
    targets: str = "all"  # all: every next product of a session | last: its last product only (the older protocol)
    bootstrap: int = 1000  # resamples of the paired bootstrap intervals in the comparison
    bootstrap_seed: int = 0

    @property
    def k(self) -> int:
        return self.ks[0]


# ---------------------------------------------------------------------------------------------
# Models (rib/models)


@dataclass
class Word2VecConfig:
    """gensim skip-gram pretraining of SKU, activity and dwell embeddings (sizes from `model`)."""

    window: int = 5
    epochs: int = 5
    negative: int = 5
    min_count: int = 1
    sg: int = 1  # skip-gram
    sample: float = 1e-3  # down-sampling of frequent tokens (gensim's default); 0 keeps every token
    workers: int = 1  # 1 worker and a fixed seed give repeatable vectors
    seed: int = 1


@dataclass
class BPRConfig:
    factors: int = 64
    iterations: int = 100
    learning_rate: float = 0.01
    regularization: float = 0.01
    seed: int = 0


@dataclass
class NetworkConfig:
    """What every trained network shares (rib/models/network.py). The fields marked "per run" are
    set by the training step from the features and the trained model's name, never in params.yaml."""

    n_items: int = 0  # per run: SKU ids including 0 = padding and 1 = out of vocabulary
    n_activities: int = 11  # per run: 0 = padding, 1..10
    n_dwell: int = 6  # per run: 0 = padding, 1..K
    n_interval: int = 7  # per run: 0 = padding, 1 = none (session start), 2..K+1
    variant: str = "sku_micro"  # per run: which inputs enter next to the SKU (rib.schema.VARIANTS)
    d_sku: int = 64
    d_activity: int = 16
    d_dwell: int = 16
    d_interval: int = 16
    dropout: float = 0.1
    word2vec_init: bool = True  # initialise the embedding tables from word2vec (eq. 3)
    # This model's own training settings; None: the train section's (tuned settings win over both).
    learning_rate: float | None = None
    batch_size: int | None = None
    patience: int | None = None
    weight_decay: float | None = None

    PER_RUN: typing.ClassVar[tuple[str, ...]] = ("n_items", "n_activities", "n_dwell", "n_interval", "variant")
    OWN_TRAINING: typing.ClassVar[tuple[str, ...]] = ("learning_rate", "batch_size", "patience", "weight_decay")


@dataclass
class RIBConfig(NetworkConfig):
    """RIB (rib/models/rib.py): GRU -> attention -> softmax over every product."""

    attention: bool = True  # per run: False is the ablation RIB-Attention (and GRU4Rec)
    hidden: int = 100
    rnn: str = "gru"  # gru | lstm
    tied_output: bool = False  # score products against their input embeddings: W_o = W_P · projection
    repeat: bool = True  # repeat-explore mixture over the attention (README: beyond the paper)
    neighbors: bool = True  # with repeat: a third part, the V-SKNN neighbourhood's votes (README: beyond the paper)
    # With repeat: weight of the explore softmax's own cross-entropy, added to the loss. Off: trained
    # for itself, the explore softmax grows confident on what the neighbourhood already covers and
    # takes the mixture's weight (validation falls with training; README: "Why RIB did not learn").
    explore_loss: float = 0.0
    # With repeat: the repeat part's own scorer over the session's products (rib/models/repeat.py),
    # not the attention; the share of training sessions whose targets train the mixture's gates
    # alone; whether the explore parts rank only products outside the session (RepeatNet's explore).
    repeat_scorer: bool = True
    gate_holdout: float = 0.1
    explore_new_only: bool = False
    # With repeat: `explore_own`: the explore softmax learns from its own cross-entropy alone, as the
    # paper's RIB and GRU4Rec do, and the mixture's loss takes it as it is (learned through the
    # mixture it only fits the targets the other parts miss, and generalises nothing: validation
    # Recall@20 of the explore softmax alone 0.005 on JD Computers). `explore_pooling` "last": the
    # explore half reads the GRU's last state, not the attention's pooled session, which is the bag
    # of the session's products the neighbourhood and repeat parts already see (README: "Why RIB
    # did not learn"). With explore_own, `explore_loss` is not used (its own loss has weight 1).
    explore_own: bool = True
    explore_pooling: str = "last"  # attention | last (the paper's model, repeat false, keeps its attention)
    # With repeat: how the explore half is weighed when ranking. "gates": by the learned gates
    # alone, which fit the likelihood: they give the explore softmax the weight of every target
    # the other parts cannot reach, far more than ranking wants where it is weak (0.37-0.43 on JD
    # Computers, where a ranking weight of 0.01-0.1 is best). "validation": a shift of its gate
    # logit, chosen after every epoch on validation among rib.models.train.EXPLORE_SHIFTS (-inf
    # turns it off), is added when ranking, as V-SKNN's k is chosen; the loss is unchanged.
    explore_ranking: str = "validation"
    # With explore_ranking validation: the repeat part's gate logit shifted too, by the best of
    # rib.models.train.REPEAT_SHIFTS, chosen with the explore shift. The gates fit the likelihood,
    # which weighs the session's own products more than ranking wants (chosen on JD: -1 or -2 in
    # 47 of 54 trainings, -0.5 in the rest). Trained with it, 3 folds x 3 seeds, SKU+Micro-behaviors on
    # validation Recall@20 / MRR@20: JD Appliances 0.4435 / 0.1826 -> 0.4437 / 0.1852, JD Computers
    # 0.2972 / 0.1112 -> 0.2992 / 0.1129; every input gains, SKU and Visits as much or more, and
    # training then beats the untrained mixture on every input of both (README: "The repeat part's
    # weight for ranking"). Validation ranks the 54 pairs at about 1.5x the cost of the 9 explore
    # shifts alone (rib.models.network.shifted_ranks). false: the explore shift alone.
    repeat_ranking: bool = True
    # With repeat_scorer: its learning rate, times the network's (and the gates' weights of the
    # switch features', `gate_features`). The scorer (a few hundred parameters, rib/models/repeat.py)
    # learns only through the mixture, on the targets the repeat part can reach, and at the
    # network's rate hardly moves before the explore softmax overfits and early stopping ends
    # training. Chosen on fold 0 validation of both JD samples among 1, 10, 30, 100 (README: "The
    # repeat scorer's learning rate"); the gates' other weights at x10 lose on Appliances.
    repeat_lr_scale: float = 10.0
    # With repeat: the gates also read what tells whether the next product is one the session
    # already had (rib.models.repeat.switch_features: the session so far, and the current visit's
    # activities, entry source and dwell where the variant reads them), with weights of their own
    # that start at 0 and learn at `repeat_lr_scale` x the rate. Reading the GRU's state alone,
    # the trained mixture's mass on the session's products told a revisit with AUC 0.63-0.65 on JD
    # Appliances and 0.59-0.61 on JD Computers, below a logistic regression over these features
    # (0.67-0.68, `rib micro-value`); with them 0.68-0.70 (README: "The gates read the visit").
    # On the synthetic default data, whose generator has no such signal, it helps the SKU input
    # and not SKU+Micro-behaviors: the benchmark micro_signal.py's target is not met with it
    # (3 folds x 3 seeds, before repeat_ranking: SKU+Micro − SKU on MRR@20 +0.0008 against +0.0030*
    # without).
    gate_features: bool = True
    recency: bool = False  # a learned bias of the attention by distance to the prefix's end (recency)
    attention_inputs: bool = False  # the attention also reads each position's own input embeddings

    PER_RUN: typing.ClassVar[tuple[str, ...]] = (*NetworkConfig.PER_RUN, "attention")


@dataclass
class SASRecConfig(NetworkConfig):
    """SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the SKU sequence."""

    # The best of one study over JD Appliances, JD Computers and the Taobao excerpt together (6 trials,
    # the sum of validation Recall@20 + MRR@20; README: "The same tuning budget for every learned
    # model"): 0.2609 / 0.1765 / 0.0254 validation Recall@20 there, against 0.2484 / 0.1720 / 0.0188
    # with the settings shipped before (2 blocks, 1 head, dropout 0.2, 5e-3, the train section's
    # weight decay). With the train section's 2e-3 and 256 it had collapsed on JD Computers.
    blocks: int = 3
    heads: int = 2
    dropout: float = 0.472
    word2vec_init: bool = False
    learning_rate: float | None = 6.09e-3
    batch_size: int | None = 64
    weight_decay: float | None = 1.2e-3


@dataclass
class NARMConfig(NetworkConfig):
    """NARM (Li et al., CIKM 2017): GRU with a global (last state) and a local (attention) encoder."""

    hidden: int = 100
    dropout: float = 0.25
    word2vec_init: bool = False
    # Its own training settings (README: "Defaults that hold on a new log"): it learns slowly; fold 0
    # validation Recall@20 after 12 epochs on JD Computers: 0.068 with 5e-3 and 64, 0.089 with 1e-2,
    # 0.124 with these (0.135 at epoch 15); on JD Appliances 0.267 with these.
    learning_rate: float | None = 2e-2
    batch_size: int | None = 64


@dataclass
class GraphConfig(NetworkConfig):
    """SR-GNN, MKM-SR and EMBSR (rib/models/graph.py): a gated graph network over each prefix's
    session graph; d_sku is the size of every node state, as published (100)."""

    d_sku: int = 100
    steps: int = 1  # rounds of propagation over the session graph (SR-GNN's default)
    # Their own training settings, not the train section's: each prefix is a session of its own and
    # the item graph is learned from scratch (with the train section's 2e-3 and 256 windows a step,
    # SR-GNN's validation Recall@20 on JD Appliances was 0.03 after an epoch). These are the best of
    # one study over JD Appliances, JD Computers and the Taobao excerpt together for SR-GNN and for
    # MKM-SR (6 trials each, the same draws; README: "The same tuning budget for every learned
    # model"): validation Recall@20 SR-GNN 0.2627 / 0.2078 / 0.0265, MKM-SR 0.3001 / 0.1716 /
    # 0.0298, against 0.2797 / 0.1482 / 0.0099 and 0.2636 / 0.1618 / 0.0177 with those shipped
    # before (dropout 0.1, 5e-3, 64, the train section's weight decay 0.01). EMBSR's differ (Params).
    dropout: float = 0.416
    word2vec_init: bool = False
    learning_rate: float | None = 9.87e-3
    batch_size: int | None = 32
    weight_decay: float | None = 0.0407


@dataclass
class TrainConfig:
    # At most; the epoch is chosen on validation (early stopping, `patience`); 0 keeps the initialization.
    # 20, not 12: on a small log (a JD sample) slow learners peak later (best epochs on JD Computers'
    # three folds: GRU4Rec 17, 20, 17; NARM 18, 14, 10); a model that has stopped improving stops
    # after `patience` epochs anyway.
    epochs: int = 20
    batch_size: int = 256  # windows of max_len micro-behaviors; 2048 suits a GPU and a large catalog
    learning_rate: float = 2e-3
    weight_decay: float = 0.01  # on weight matrices only: never on biases or embedding tables
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    patience: int = 3  # epochs without a better validation figure before stopping
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    bf16: bool = True  # bfloat16 autocast on CUDA
    loss_chunk: int = 0  # rows of logits per softmax chunk; 0: 4096 on CUDA, 1024 on CPU (measured best)
    compile_loss: str = "auto"  # auto: torch.compile the softmax kernels on CUDA only | true | false
    cpu_threads: int | None = None
    progress: bool = True  # a tqdm bar with loss and micro-behaviors/s
    sampled_softmax: int = 0  # negatives per batch for a sampled softmax with logQ correction; 0: the full softmax
    sample_alpha: float = 0.75  # negatives drawn from training popularity ** alpha (0: uniform)
    distributed: int = 0  # processes the training step launches with torchrun (0 or 1: this process alone)
    backend: str = "auto"  # torch.distributed backend: auto (nccl on GPUs, gloo on CPUs) | nccl | gloo


# ---------------------------------------------------------------------------------------------
# The pipeline (rib/steps.py, pipeline/)


@dataclass
class ExperimentConfig:
    """Which models the pipeline and `rib benchmark` train and evaluate, over how many seeds.

    `models` and `variants` have no default here: they shape the pipeline (one Dagster asset and
    one DVC stage per trained model and variant), and DVC reads them from params.yaml, so that
    file is their one home."""

    models: list[str]  # learned models, e.g. [RIB, RIB-Attention]
    variants: list[str]  # input variants, e.g. [sku, sku_activity, sku_dwell, sku_micro]
    baselines: list[str] = field(
        default_factory=lambda: [
            "POP",
            "S-POP",
            "Item-KNN",
            "S-POP+Item-KNN",
            "SKNN",
            "V-SKNN",
            "BPR-MF",
            "Word2vec",
            "Word2vec Avg",
            "GRU4Rec",
            "NARM",
            "SASRec",
        ]
    )
    seeds: int = 1  # `rib benchmark --seeds N` overrides


@dataclass
class RegistryConfig:
    """MLflow registry: which trained model is logged as a pyfunc and may become `champion`."""

    model_name: str = "rib"
    model: str = "RIB"
    variant: str = "sku_micro"
    gate_baseline: str = "S-POP"  # a model whose validation Recall@k falls below this baseline's ...
    gate_margin: float = 0.02  # ... by more than this is not registered (rib/ops/gates.py)


@dataclass
class ServingConfig:
    """`rib serve`: the registered model behind a lean HTTP server with micro-batching (rib/ops/serve.py)."""

    model_uri: str | None = None  # default: the registry's champion, models:/<registry.model_name>@champion
    host: str = "127.0.0.1"
    port: int = 5001  # `make serve`; MLflow's own server (`make serve-mlflow`) beside it on 5002
    max_batch: int = 64  # sessions answered by one forward pass, at most
    max_body_bytes: int = 8_000_000  # a larger request is answered 413
    torch_threads: int = 1  # per server process; run one process per core behind a balancer to scale


@dataclass
class ScheduleConfig:
    retrain_cron: str = "0 2 * * *"  # nightly retraining (Dagster schedule), 02:00


@dataclass
class Params:
    """params.yaml as a whole: one section per dataclass above."""

    experiment: ExperimentConfig  # required: see ExperimentConfig
    data: DataConfig = field(default_factory=DataConfig)
    artifacts_dir: str = "artifacts"  # every generated file goes under here (never inside data/)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    word2vec: Word2VecConfig = field(default_factory=Word2VecConfig)
    bpr: BPRConfig = field(default_factory=BPRConfig)
    # RIB trains with its own learning rate and batch, as GRU4Rec does: on JD Computers (fold 0,
    # validation) the mixture reached 0.2999 / 0.1166 with these and 0.2988 / 0.1127 with the train
    # section's 2e-3 and 256; on the default data 0.6315 / 0.2546 at epoch 6 against 0.6090 / 0.2457
    # after 16 epochs (README: "Why RIB did not learn").
    model: RIBConfig = field(default_factory=lambda: RIBConfig(learning_rate=5e-3, batch_size=64))
    # RIB-Attention, the paper's ablation (the network alone, no mixture), trains with its own
    # settings: with RIB's (the train section's 2e-3 and 256) it collapsed on JD Computers (test
    # Recall@20 0.0846, under half of V-SKNN's); fold 0 validation Recall@20 there after 13-16
    # epochs: 0.107 with 5e-3 / 64, 0.116 with 1e-2 / 64, 0.132-0.134 with dropout 0.3 as well
    # (README: "Defaults that hold on a new log").
    rib_attention: RIBConfig = field(
        default_factory=lambda: RIBConfig(repeat=False, neighbors=False, dropout=0.3, learning_rate=1e-2, batch_size=64)
    )
    # GRU4Rec ships the best of its study over JD Appliances, JD Computers and the Taobao excerpt
    # together (6 trials, the sum of validation Recall@20 + MRR@20; README: "The same tuning budget
    # for every learned model"): validation Recall@20 0.2188 / 0.1656 / 0.0144 there, against
    # 0.2146 / 0.1188 / 0.0155 with the settings shipped before (hidden 100, dropout 0.1, 5e-3, 64,
    # the train section's weight decay), which the comparison marked "possibly collapsed" on JD
    # Computers. On the default SYNTHETIC data, not one of the three logs, it does worse (fold 0
    # validation Recall@20 0.393 at its best epoch against 0.488 with the old setting).
    # With the train section's 2e-3 and 256 it was still at 0.15 / 0.05 on the JD samples after 12 epochs.
    gru4rec: RIBConfig = field(
        default_factory=lambda: RIBConfig(
            repeat=False,
            neighbors=False,
            explore_loss=0.0,
            word2vec_init=False,
            hidden=50,
            d_sku=64,
            dropout=0.435,
            learning_rate=2.7e-2,
            weight_decay=0.025,
            batch_size=64,
        )
    )
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    narm: NARMConfig = field(default_factory=NARMConfig)
    srgnn: GraphConfig = field(default_factory=GraphConfig)
    mkmsr: GraphConfig = field(default_factory=GraphConfig)
    # EMBSR starts slowly: on JD Computers' third fold its validation Recall@20 sat at 0.02-0.05 for
    # seven epochs, then rose to 0.13 by epoch 11; the train section's patience of 3 had stopped it
    # at epoch 5 and kept epoch 2 (test 0.038 against 0.16-0.19 on the other folds). Its other
    # settings are the best of its study over the three logs (SR-GNN's collapse it: 0.028 on JD
    # Appliances): validation Recall@20 0.2552 / 0.1501 / 0.0144 against 0.2298 / 0.1403 / 0.0155.
    embsr: GraphConfig = field(
        default_factory=lambda: GraphConfig(
            dropout=0.323, learning_rate=1.79e-3, batch_size=32, weight_decay=0.0473, patience=6
        )
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # `rib tune` writes the best configuration of a learned model here, on validation only:
    # "RIB/sku_micro" (or "SASRec") -> {"model": {...}, "train": {...}}; "model" overrides the
    # model's own section (model, rib_attention, gru4rec, narm, ...), "train" the train section, for that model only.
    tuned: dict[str, dict] = field(default_factory=dict)

    def for_model(self, name: str, variant: str | None, section: str) -> tuple:
        """(the model's settings, the train settings) with its tuned configuration applied; the
        training settings its own section sets (OWN_TRAINING, where not None) replace the train section's."""
        tuned = self.tuned.get(f"{name}/{variant}") or self.tuned.get(name) or {}
        model = dataclasses.replace(getattr(self, section), **tuned.get("model", {}))
        own = {key: getattr(model, key) for key in model.OWN_TRAINING if getattr(model, key) is not None}
        return model, dataclasses.replace(self.train, **(own | tuned.get("train", {})))


# ---------------------------------------------------------------------------------------------
# Loading params.yaml


class ParamsError(ValueError):
    """params.yaml cannot be used: the message names the file, the key and the problem."""


def default_params_path() -> Path:
    """params.yaml in the working directory, or the file named by $RIB_PARAMS."""
    return Path(os.environ.get(PARAMS_ENV) or "params.yaml")


def load_params(path: str | Path | None = None, required: bool = True) -> Params:
    """Read a params file over the defaults above; anything unknown or mistyped is an error.
    `required` False: where no file is named (no `path`, no $RIB_PARAMS) and params.yaml is absent
    (a command run outside a project folder), the defaults, with nothing in `experiment`."""
    import yaml  # here: the training path imports this module with torch and numpy alone

    named = path is not None or bool(os.environ.get(PARAMS_ENV))
    path = Path(path) if path is not None else default_params_path()
    if not path.is_file():
        if not required and not named:
            return Params(experiment=ExperimentConfig(models=[], variants=[]))
        raise ParamsError(
            f"{path}: params file not found; run rib from the project folder (where params.yaml is), "
            f"or name one with --params FILE or ${PARAMS_ENV}"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    params = _build(Params, raw, str(path), "")
    for key, tuned in params.tuned.items():  # each tuned setting is checked like the section it overrides
        if not isinstance(tuned, dict) or set(tuned) - {"model", "train"}:
            raise ParamsError(f"{path}: 'tuned.{key}' must map 'model' and/or 'train' to settings")
        model_section = MODEL_SECTIONS.get(key.split("/")[0])
        if model_section is None:
            raise ParamsError(f"{path}: 'tuned.{key}': unknown model; tuned models are {sorted(MODEL_SECTIONS)}")
        for part, section in (("model", model_section), ("train", "train")):
            _build(type(getattr(params, section)), tuned.get(part) or {}, str(path), f"tuned.{key}.{part}.")
    return params


# The trained models and the params section that holds each one's settings.
MODEL_SECTIONS = {
    "RIB": "model",
    "RIB-Attention": "rib_attention",
    "GRU4Rec": "gru4rec",
    "NARM": "narm",
    "SASRec": "sasrec",
    "GRU4Rec Visits": "gru4rec",  # the same networks and settings on the visits input
    "NARM Visits": "narm",
    "SASRec Visits": "sasrec",
    "SR-GNN": "srgnn",
    "MKM-SR": "mkmsr",
    "EMBSR": "embsr",
}


def _build(cls: type, raw: dict, path: str, where: str, base=None):
    """`cls` from the settings in `raw` over its defaults (over `base`, a section's own default
    instance, where the section's default differs from the class's, e.g. `gru4rec`)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(fields)
    values = {}
    for key, value in raw.items():
        name = f"{where}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{where}{close[0]}'?" if close else f"; known: {', '.join(names)}"
            raise ParamsError(f"{path}: unknown key {name!r}{hint}")
        if key in getattr(cls, "PER_RUN", ()):
            raise ParamsError(f"{path}: {name!r} is set per trained model, not in params.yaml")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ParamsError(f"{path}: {name!r} must be a mapping of settings, got {value!r}")
            values[key] = _build(hint, value, path, f"{name}.", _default_of(fields[key]))
        else:
            values[key] = _checked(value, hint, path, name)
    missing = [
        f"{where}{f.name}"
        for f in dataclasses.fields(cls)
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in missing:  # a required section is built from nothing, so its own required keys are named
        hint = hints[name.removeprefix(where)]
        if dataclasses.is_dataclass(hint):
            values[name.removeprefix(where)] = _build(hint, {}, path, f"{name}.")
        else:
            raise ParamsError(f"{path}: missing key {name!r}: it has no default (rib/config.py)")
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def _default_of(field_: dataclasses.Field):
    if field_.default_factory is not dataclasses.MISSING:
        return field_.default_factory()
    return None if field_.default is dataclasses.MISSING else field_.default


def _checked(value, hint, path: str, name: str):
    """`value` if it fits the annotation `hint` (ints are accepted for floats)."""
    if _fits(value, hint):
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    raise ParamsError(f"{path}: {name!r} must be {_describe(hint)}, got {value!r}")


def _fits(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    return "null" if hint is type(None) else hint.__name__


def params_as_dict(params: Params) -> dict:
    """Every resolved setting, as a params file can hold them (for `rib params`, a launched process,
    logging): the fields a training step sets per model are left out."""
    document = dataclasses.asdict(params)
    for name, value in document.items():
        section = getattr(params, name)
        if isinstance(value, dict) and dataclasses.is_dataclass(section):
            for key in getattr(section, "PER_RUN", ()):
                value.pop(key, None)
    return document
