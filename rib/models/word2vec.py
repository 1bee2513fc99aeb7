"""word2vec pretraining (gensim) of product, activity and dwell-bucket embeddings.

One skip-gram model per token kind, trained on the training sessions only, through gensim's
fast `corpus_file` path. Sessions are written one per line, cut below gensim's 10,000-token
sentence limit. Each result is saved as `<kind>.npz` with `vectors` (n_ids, d) aligned to the
feature ids and `known` (n_ids,) marking ids that word2vec saw. The SKU vectors also serve the
Word2vec and Word2vec Avg baselines.
"""

from __future__ import annotations

import itertools
import json
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rib.config import Word2VecConfig
from rib.features.dataset import FeatureSet

MAX_SENTENCE = 9_999  # gensim truncates sentences longer than 10,000 tokens
KINDS = ("sku", "activity", "dwell")


def stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with a hash; Python's hash() varies per process."""
    return zlib.crc32(text.encode())


def write_corpus(ids: np.ndarray, offsets: np.ndarray, path: Path) -> int:
    """One line per session (chunked), tokens are the integer ids. Returns the token count."""
    tokens = ids.astype(str)
    with path.open("w") as handle:
        for start, end in itertools.pairwise(offsets):
            for chunk_start in range(start, end, MAX_SENTENCE):
                handle.write(" ".join(tokens[chunk_start : min(end, chunk_start + MAX_SENTENCE)]) + "\n")
    return len(ids)


def pretrain_word2vec(features: FeatureSet, out_dir: str | Path, dims: dict[str, int], config: Word2VecConfig) -> dict:
    """Train one word2vec model per kind in `dims` (kind -> vector size) and save `<kind>.npz`."""
    from gensim.models import Word2Vec

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = features.train
    sizes = {"sku": features.n_items, "activity": 11, "dwell": features.n_dwell_buckets + 1}
    report: dict = {"config": asdict(config), "kinds": {}}
    for kind, dim in dims.items():
        started = time.perf_counter()
        corpus = out_dir / f"{kind}.corpus.txt"
        n_tokens = write_corpus(np.asarray(getattr(train, kind)), np.asarray(train.session_offsets), corpus)
        model = Word2Vec(
            corpus_file=str(corpus),
            vector_size=dim,
            window=config.window,
            epochs=config.epochs,
            negative=config.negative,
            min_count=config.min_count,
            sg=config.sg,
            sample=config.sample,
            workers=config.workers,
            seed=config.seed,
            hashfxn=stable_hash,
        )
        vectors = np.zeros((sizes[kind], dim), np.float32)
        known = np.zeros(sizes[kind], bool)
        for token, index in model.wv.key_to_index.items():
            vectors[int(token)] = model.wv.vectors[index]
            known[int(token)] = True
        np.savez(out_dir / f"{kind}.npz", vectors=vectors, known=known)
        corpus.unlink()
        report["kinds"][kind] = {
            "dim": dim,
            "tokens": n_tokens,
            "known_ids": int(known.sum()),
            "seconds": round(time.perf_counter() - started, 2),
        }
    (out_dir / "word2vec.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def load_vectors(out_dir: str | Path, kinds: tuple[str, ...] = KINDS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    result = {}
    for kind in kinds:
        path = Path(out_dir) / f"{kind}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                result[kind] = (data["vectors"], data["known"])
    return result
