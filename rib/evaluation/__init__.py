"""Evaluation: the protocol and its metrics (`metrics`), and the comparison table built from the
records of evaluated models (`comparison`). Below the models: training stops early on these metrics."""
