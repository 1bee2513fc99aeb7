"""Which network class a configuration builds (the training loop and checkpoints go through here)."""

from __future__ import annotations

import dataclasses

from rib.config import GraphConfig, NARMConfig, NetworkConfig, RIBConfig, SASRecConfig
from rib.models.graph import EMBSR, MKMSR, SRGNN
from rib.models.narm import NARM
from rib.models.network import NextItemNetwork
from rib.models.rib import RIB
from rib.models.sasrec import SASRec

NETWORKS: dict[str, tuple[type[NetworkConfig], type[NextItemNetwork]]] = {
    "RIB": (RIBConfig, RIB),
    "SASRec": (SASRecConfig, SASRec),
    "NARM": (NARMConfig, NARM),
    "SR-GNN": (GraphConfig, SRGNN),
    "MKM-SR": (GraphConfig, MKMSR),
    "EMBSR": (GraphConfig, EMBSR),
}


def build_network(config: NetworkConfig, name: str | None = None) -> NextItemNetwork:
    """The network of `name` (needed where several share one config class: the graph networks)."""
    if name is not None and name in NETWORKS:
        return NETWORKS[name][1](config)
    for config_class, network_class in NETWORKS.values():
        if type(config) is config_class:
            return network_class(config)
    raise ValueError(f"no network for {type(config).__name__}")


def network_name(network: NextItemNetwork) -> str:
    return next(name for name, (_, network_class) in NETWORKS.items() if type(network) is network_class)


# Settings added after checkpoints were first written, with the value that reads an older checkpoint
# as it was trained (a champion registered before them is still loaded, e.g. to be re-evaluated).
ADDED_LATER = {
    "repeat_scorer": False,
    "explore_new_only": False,
    "explore_own": False,
    "explore_pooling": "attention",
    "explore_ranking": "gates",
    "gate_features": False,
    "repeat_ranking": False,
}
BUFFERS_ADDED_LATER = {"explore_shift": 0.0, "repeat_shift": 0.0}  # weights file entries an older checkpoint lacks


def config_from_dict(name: str, values: dict) -> NetworkConfig:
    """A checkpoint's config.json back into its dataclass."""
    config_class = NETWORKS[name][0]
    known = {f.name for f in dataclasses.fields(config_class)}
    older = {k: v for k, v in ADDED_LATER.items() if k in known and k not in values}
    return config_class(**{k: v for k, v in values.items() if k in known}, **older)
