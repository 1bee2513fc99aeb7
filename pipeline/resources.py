"""Typed resources: where the configuration lives and where the steps write, MLflow, DVC."""

import os

from dagster import ConfigurableResource

from rib.artifacts import ArtifactPaths
from rib.config import Params, default_params_path, load_params


class RibParams(ConfigurableResource):
    """The params file (params.yaml, or $RIB_PARAMS): every asset, check, schedule and sensor reads
    its settings through this resource; artifacts_dir overrides the file's folder."""

    params_path: str = str(default_params_path())
    artifacts_dir: str | None = None

    def load(self) -> Params:
        params = load_params(self.params_path)
        if self.artifacts_dir:
            params.artifacts_dir = self.artifacts_dir
        return params

    def paths(self) -> ArtifactPaths:
        return ArtifactPaths.under(self.load().artifacts_dir)


class MlflowTracking(ConfigurableResource):
    """MLflow: by default a SQLite store in the project, artifacts in a folder next to it; with
    $MLFLOW_TRACKING_URI (for example http://mlflow.internal:5000, an `mlflow server` on PostgreSQL
    that a team shares: README, shared state) that server, which keeps the artifacts itself."""

    tracking_uri: str = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    artifact_root: str = "mlartifacts"
    experiment: str = "rib"

    def config(self):
        from rib.ops.tracking import TrackingConfig

        return TrackingConfig(self.tracking_uri, self.artifact_root, self.experiment)


class DvcVersioning(ConfigurableResource):
    """Records each asset's stage of dvc.yaml (`dvc commit`) once it has written its outputs."""

    enabled: bool = True
    root: str = "."

    def record(self, stage: str, force: bool = True) -> bool:
        if not self.enabled:
            return False
        from rib.ops.versioning import record_stage

        return record_stage(stage, self.root, force)
