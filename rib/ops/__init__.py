"""Operations around the models: data-quality gates (Great Expectations), experiment tracking and
the model registry (MLflow, with the served pyfunc), and versioning of what the steps write (DVC)."""
