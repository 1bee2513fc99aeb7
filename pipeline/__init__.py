"""Dagster definitions for the RIB pipeline: thin assets over the `rib` library."""
