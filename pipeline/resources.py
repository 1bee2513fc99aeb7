"""Typed resources: where the configuration lives, and the paths it gives."""

from dagster import ConfigurableResource

from rib.params import Params, load_params


class RibParams(ConfigurableResource):
    """params.yaml, the single source of configuration; artifacts_dir overrides its folder."""

    params_path: str = "params.yaml"
    artifacts_dir: str | None = None

    def load(self) -> Params:
        params = load_params(self.params_path)
        if self.artifacts_dir:
            params.artifacts_dir = self.artifacts_dir
        return params


class MlflowTracking(ConfigurableResource):
    """MLflow on a SQLite store in the project; artifacts in a folder next to it."""

    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: str = "mlartifacts"
    experiment: str = "rib"

    def config(self):
        from rib.tracking import TrackingConfig

        return TrackingConfig(self.tracking_uri, self.artifact_root, self.experiment)


class DvcVersioning(ConfigurableResource):
    """Records each asset's stage of dvc.yaml (`dvc commit`) once it has written its outputs."""

    enabled: bool = True
    root: str = "."

    def record(self, stage: str, force: bool = True) -> bool:
        if not self.enabled:
            return False
        from rib.versioning import record_stage

        return record_stage(stage, self.root, force)
