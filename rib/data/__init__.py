"""Raw logs in: the sources (JD tokens, event logs, canonical Parquet), the ingest that turns them
into the canonical micro-behavior table with a quarantine, and the synthetic default data."""
