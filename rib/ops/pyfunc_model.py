"""MLflow "models from code": this file is logged as the model. It loads the checkpoint
(weights.npz + config.json + vocab.json, nothing pickled) and answers, for each session of
micro-behaviors (sku, activity, dwell seconds), the top-k SKUs, their scores and the attention
weight of each input micro-behavior. Bad input is an INVALID_PARAMETER_VALUE error (HTTP 400)."""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class RibRecommender(PythonModel):
    def load_context(self, context) -> None:
        from rib.models.checkpoint import load_checkpoint

        self.checkpoint = load_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from rib.models.checkpoint import UnknownInputError, recommend
        from rib.ops.registry import DEFAULT_TOP_K

        k = int((params or {}).get("k", DEFAULT_TOP_K))
        try:
            sessions = _sessions(model_input)
            results = recommend(self.checkpoint, sessions, k=k, strict=True)
        except (UnknownInputError, KeyError, TypeError, ValueError) as error:
            raise MlflowException(f"bad request: {error}", error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame(
            {
                "skus": [r.skus for r in results],
                "scores": [r.scores for r in results],
                "attention": [r.attention for r in results],
            }
        )


def _sessions(model_input) -> list[list[tuple]]:
    records = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
    sessions = []
    for index, record in enumerate(records):
        session = record.get("session") if isinstance(record, dict) else None
        if session is None or len(session) == 0:
            raise ValueError(f"record {index}: 'session' must be a non-empty list of micro-behaviors")
        micro = []
        for position, item in enumerate(session):
            if not isinstance(item, dict) or not {"sku", "activity", "dwell"} <= set(item):
                raise ValueError(f"record {index}, micro-behavior {position}: needs sku, activity and dwell")
            activity = item["activity"]
            if isinstance(activity, float) and activity.is_integer():
                activity = int(activity)
            micro.append((str(item["sku"]), activity, item["dwell"]))
        sessions.append(micro)
    return sessions


mlflow.models.set_model(RibRecommender())
