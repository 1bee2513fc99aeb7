"""What every layer shares: the canonical micro-behavior table every source produces, the paper's
activity codes, the reserved feature ids and the paper's four input variants."""

from __future__ import annotations

import pyarrow as pa

# The paper's Table 1, in the order of its codes.
ACTIVITY_NAMES: dict[int, str] = {
    1: "Home2Product",
    2: "ShopList2Product",
    3: "Sale2Product",
    4: "Cart2Product",
    5: "SearchList2Product",
    6: "Detail_comments",
    7: "Detail_specification",
    8: "Detail_bottom",
    9: "Cart",
    10: "Order",
}
CLICK_SOURCES = (1, 2, 3, 4, 5)
BROWSING_MODULES = (6, 7, 8)
CART, ORDER = 9, 10

# One row per micro-behavior, ordered by (session_id, position).
MICRO_BEHAVIOR_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),  # null where the source has no user
        pa.field("position", pa.int32(), nullable=False),  # 0-based, contiguous within a session
        pa.field("sku", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("activity", pa.int8(), nullable=False),  # 1..10, ACTIVITY_NAMES
        pa.field("dwell_seconds", pa.float64(), nullable=False),
        pa.field("time_interval_seconds", pa.float64()),  # to the next micro-behavior
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
COLUMNS = MICRO_BEHAVIOR_SCHEMA.names

# Rejected input rows, one per row (or line, or token), with where it came from and why.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64()),  # 1-based line in a text file, row in Parquet
        pa.field("token_index", pa.int32()),  # 0-based token within a JD line, else null
        pa.field("reason", pa.string(), nullable=False),  # a short code, counted in the report
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

SYNTHETIC_METADATA_KEY = b"rib.synthetic"

# Feature ids: 0 pads a sequence, 1 is a SKU outside the training vocabulary; real SKUs start at 2.
PAD, OOV = 0, 1
FIRST_SKU_ID = OOV + 1

# What a model reads per micro-behavior, in this order (the last axis of every input array).
FEATURES = ("sku", "activity", "dwell", "interval")

# The input variants: which features enter next to the SKU. The paper's four, a fifth with the
# time since the previous micro-behavior (HUP, Gu et al. WSDM 2020), and below them "visits": one
# position per macro interaction, the product alone (what a shop without micro-behavior logging
# has; "sku" repeats a product once per micro-behavior, which already tells how much was done on it).
VISITS = "visits"
VARIANTS: dict[str, tuple[str, ...]] = {
    VISITS: (),
    "sku": (),
    "sku_activity": ("activity",),
    "sku_dwell": ("dwell",),
    "sku_micro": ("activity", "dwell"),
    "sku_micro_interval": ("activity", "dwell", "interval"),
}
VARIANT_NAMES = {
    VISITS: "Visits",
    "sku": "SKU",
    "sku_activity": "SKU+Activity",
    "sku_dwell": "SKU+Dwell",
    "sku_micro": "SKU+Micro-behaviors",
    "sku_micro_interval": "SKU+Micro-behaviors+Interval",
}


def is_synthetic(parquet_path: str) -> bool:
    """True when a canonical Parquet file was written by the synthetic generator."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(parquet_path).metadata or {}
    return metadata.get(SYNTHETIC_METADATA_KEY) == b"true"


# The baselines counted from the training sessions, never trained (rib/models/baselines.py): what a
# trained network that collapsed falls far below (rib.evaluation.comparison marks it).
COUNTED_BASELINES = ("POP", "S-POP", "S-POP Visits", "Item-KNN", "S-POP+Item-KNN", "SKNN", "V-SKNN")
