"""Serving RIB through MLflow: a pyfunc defined from code (rib/serving/pyfunc_model.py) and
the registry with the `champion` alias (rib/serving/registry.py)."""
