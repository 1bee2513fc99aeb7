"""Seeded, deterministic synthetic micro-behavior logs, calibrated to the JD samples.

The generator walks every session visit by visit (a visit = a macro interaction), all
sessions of a chunk at once in numpy, and writes each chunk as a Parquet row group, so
memory stays bounded whatever the number of micro-behaviors.

What it reproduces from ../shared/data/jd (see benchmarks/synthetic_vs_jd.py):
- skewed SKU popularity inside categories, and sessions that stay mostly in one category;
- the next product is often one seen earlier in the session (`p_revisit`), preferring
  recent visits with more engagement (cart, long dwell, detail modules): this is the
  signal micro-behaviors carry for the next product;
- otherwise it often follows a per-SKU co-view neighbour (`p_follow`), else a fresh draw;
- a visit enters through a click source (mostly SearchList2Product; Cart2Product when
  returning to a carted product), reads detail modules more the longer it dwells, and
  converts to Cart and Order more after search entry, module reading and mid-range dwell
  (Section 3 of the paper); dwell is log-normal, longer after search than after lists.
Its output is labelled synthetic (Parquet metadata `rib.synthetic=true`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from rib.config import SyntheticConfig
from rib.io import ChunkedParquetWriter
from rib.schema import MICRO_BEHAVIOR_SCHEMA, SYNTHETIC_METADATA_KEY


# Click-source mix of a visit that does not return to a carted product (JD: 5 dominates).
SOURCE_P = np.array([0.018, 0.095, 0.007, 0.05, 0.83])
SOURCE_MEDIAN_DWELL = np.array([20.0, 16.0, 22.0, 45.0, 32.0])  # seconds, by source 1..5
SOURCE_MODULE_RATE = np.array([0.25, 0.22, 0.25, 0.42, 0.42])
MODULE_P = np.array([0.34, 0.47, 0.19])  # Detail_comments, Detail_specification, Detail_bottom


class _Catalog:
    def __init__(self, config: SyntheticConfig, rng: np.random.Generator) -> None:
        weights = 1.0 / np.arange(1, config.n_categories + 1) ** 0.8
        self.category_p = weights / weights.sum()
        sizes = rng.multinomial(config.n_skus - config.n_categories, self.category_p) + 1
        self.start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.size = sizes
        self.category_of = np.repeat(np.arange(config.n_categories), sizes)
        self.skew = config.popularity_skew
        n = config.n_skus
        self.neighbors = self.draw_in_category(rng, np.repeat(self.category_of, config.n_neighbors)).reshape(
            n, config.n_neighbors
        )

    def draw_in_category(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
        rank = np.floor(self.size[categories] * rng.random(len(categories)) ** self.skew).astype(np.int64)
        return self.start[categories] + rank


def generate(config: SyntheticConfig, out_path: str | Path) -> dict:
    """Write the synthetic canonical table to `out_path` (atomically); return counts."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = out_path.with_name(f".{out_path.name}.tmp")
    try:
        counts = _generate(config, staging)
        staging.replace(out_path)
    finally:
        staging.unlink(missing_ok=True)
    return counts


def _generate(config: SyntheticConfig, out_path: Path) -> dict:
    rng = np.random.default_rng(config.seed)
    catalog = _Catalog(config, rng)
    schema = MICRO_BEHAVIOR_SCHEMA.with_metadata({SYNTHETIC_METADATA_KEY: b"true"})
    start_seconds = np.datetime64(config.start, "s").astype(np.int64)
    n_rows = 0
    with ChunkedParquetWriter(out_path, schema) as writer:
        for first in range(0, config.n_sessions, config.chunk_sessions):
            n = min(config.chunk_sessions, config.n_sessions - first)
            chunk = _generate_chunk(config, catalog, rng, first, n, start_seconds)
            writer.write_arrays(chunk)
            n_rows += len(chunk["position"])
    return {"sessions": config.n_sessions, "micro_behaviors": n_rows, "skus": config.n_skus, "synthetic": True}


def _generate_chunk(config, catalog, rng, first_session, n_sessions, start_seconds) -> dict[str, object]:
    S = n_sessions
    mean_extra = config.mean_visits - 2
    n_visits = 2 + rng.negative_binomial(2, 2 / (2 + mean_extra), size=S)
    n_visits = np.minimum(n_visits, config.max_visits)
    T = int(n_visits.max())
    home = rng.choice(len(catalog.size), size=S, p=catalog.category_p)

    sku = np.zeros((S, T), np.int64)
    source = np.zeros((S, T), np.int64)
    dwell = np.zeros((S, T))
    n_modules = np.zeros((S, T), np.int64)
    cart = np.zeros((S, T), bool)
    order = np.zeros((S, T), bool)
    engagement = np.zeros((S, T))
    rows = np.arange(S)
    window = 20
    for t in range(T):
        category = np.where(rng.random(S) < 0.85, home, rng.choice(len(catalog.size), size=S, p=catalog.category_p))
        item = catalog.draw_in_category(rng, category)
        returned_to_cart = np.zeros(S, bool)
        if t > 0:
            current = sku[:, t - 1]
            follow = rng.random(S) < config.p_follow / (1 - config.p_revisit)
            neighbor = catalog.neighbors[current, rng.integers(config.n_neighbors, size=S)]
            item = np.where(follow, neighbor, item)
            if t > 1:
                lo = max(0, t - 1 - window)
                past = sku[:, lo : t - 1]
                decay = 0.8 ** np.arange(t - 1 - lo)[::-1]
                weight = engagement[:, lo : t - 1] * decay * (past != current[:, None])
                total = weight.sum(axis=1)
                revisit = (rng.random(S) < config.p_revisit) & (total > 0)
                cumulative = np.cumsum(weight, axis=1)
                pick = (cumulative < (rng.random(S) * total)[:, None]).sum(axis=1)
                pick = np.minimum(pick, past.shape[1] - 1)
                item = np.where(revisit, past[rows, pick], item)
                returned_to_cart = revisit & cart[rows, lo + pick]
            # Consecutive visits are on different products by definition of a visit.
            item = np.where(item == current, (item + 1) % config.n_skus, item)
        sku[:, t] = item

        src = rng.choice(5, size=S, p=SOURCE_P) + 1
        src = np.where(returned_to_cart & (rng.random(S) < 0.85), 4, src)
        source[:, t] = src
        d = np.exp(np.log(SOURCE_MEDIAN_DWELL[src - 1]) + 1.2 * rng.standard_normal(S))
        d = np.floor(d)
        dwell[:, t] = d
        mods = rng.poisson(SOURCE_MODULE_RATE[src - 1] * np.sqrt(np.maximum(d, 1) / 30.0))
        mods = np.minimum(mods, 6)
        n_modules[:, t] = mods
        # Conversion rises with dwell up to ~5 minutes and falls after (attention moved offline).
        dwell_effect = np.where(
            d < 300, 0.45 * np.log1p(d / 30.0), 0.45 * np.log1p(10.0) - 0.4 * np.log(np.maximum(d, 300.0) / 300.0)
        )
        logit_cart = -3.1 + dwell_effect + 0.35 * mods + 0.9 * (src == 4) + 0.3 * (src == 5)
        c = rng.random(S) < 1 / (1 + np.exp(-logit_cart))
        logit_order = -6.3 + 2.8 * (src == 4) + dwell_effect + 0.8 * c
        o = rng.random(S) < 1 / (1 + np.exp(-logit_order))
        cart[:, t] = c
        order[:, t] = o
        engagement[:, t] = 1 + 3 * c + 0.5 * mods + (d > 60)

    # Flatten the active visits in session-major order.
    active = np.arange(T)[None, :] < n_visits[:, None]
    v_session = np.broadcast_to(rows[:, None], (S, T))[active]
    v_sku, v_source, v_dwell = sku[active], source[active], dwell[active]
    v_modules, v_cart, v_order = n_modules[active], cart[active], order[active]
    v_reentry = rng.random(len(v_sku)) < 0.06
    v_len = 1 + v_modules + v_reentry + v_cart + v_order

    # Expand visits into micro-behaviors: source, modules, [re-entry], [Cart], [Order].
    visit_of = np.repeat(np.arange(len(v_sku)), v_len)
    offset = np.arange(len(visit_of)) - np.repeat(np.cumsum(v_len) - v_len, v_len)
    mods, reentry = v_modules[visit_of], v_reentry[visit_of]
    module_code = rng.choice(3, size=len(visit_of), p=MODULE_P) + 6
    after_modules = offset - mods - 1  # 0.. for what follows the modules
    activity = np.select(
        [offset == 0, offset <= mods, reentry & (after_modules == 0), v_cart[visit_of] & (after_modules == reentry)],
        [v_source[visit_of], module_code, v_source[visit_of], 9],
        default=10,
    )

    # Time: the visit's dwell split over its micro-behaviors, then a gap before the next visit.
    share = rng.exponential(size=len(visit_of))
    share_sum = np.bincount(visit_of, weights=share)
    interval = np.floor(v_dwell[visit_of] * share / share_sum[visit_of])
    is_last_of_visit = offset == v_len[visit_of] - 1
    interval = interval + is_last_of_visit * np.floor(rng.exponential(8.0, size=len(visit_of)))
    session_of = v_session[visit_of]
    session_len = np.bincount(session_of, minlength=S)
    session_first = np.cumsum(session_len) - session_len
    position = np.arange(len(session_of)) - session_first[session_of]
    session_start = start_seconds + rng.integers(0, config.days * 86400, size=S)
    elapsed = np.cumsum(interval) - interval
    elapsed = elapsed - elapsed[session_first][session_of]
    timestamp = (session_start[session_of] + elapsed.astype(np.int64)) * 1_000_000
    last_in_session = position == session_len[session_of] - 1
    time_interval = pa.array(interval, mask=last_in_session)

    session_index = first_session + session_of
    users = rng.integers(config.users, size=S)
    sku_codes = v_sku[visit_of]
    return {
        "session_id": pa.array(session_index + 10**8).cast(pa.string()),
        "user_id": pa.array(users[session_of] + 10**7).cast(pa.string()),
        "position": position.astype(np.int32),
        "sku": pa.array(sku_codes + 10**6).cast(pa.string()),
        "category": pa.array(catalog.category_of[sku_codes] + 1000).cast(pa.string()),
        "activity": activity.astype(np.int8),
        "dwell_seconds": v_dwell[visit_of],
        "time_interval_seconds": time_interval,
        "timestamp": pa.array(timestamp, pa.timestamp("us", tz="UTC")),
    }
