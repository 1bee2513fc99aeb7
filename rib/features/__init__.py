"""Features: the DuckDB build from the canonical table to memory-mappable arrays (`build`), and
what reads those arrays back as splits, batches and vocabularies (`dataset`)."""
