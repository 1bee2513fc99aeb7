"""RIB: micro-behavior session recommendation (Zhou et al., WSDM 2018) as a library.

The library knows nothing about Dagster; `pipeline/` wires rib.steps into assets. The layers, each
importing only from those above it in this list:

    schema, errors, io, config, artifacts    what every layer shares
    data        raw logs -> the canonical micro-behavior table (sources, ingest, synthetic data)
    features    the canonical table -> splits, vocabularies and example arrays (DuckDB)
    evaluation  the protocol, its metrics and the comparison table
    models      baselines, word2vec, RIB and its training, checkpoints
    insight     Section 3, the case study, training curves, the HTML report
    ops         Great Expectations, MLflow tracking and registry, DVC
    steps       one function per pipeline step; cli on top
"""
