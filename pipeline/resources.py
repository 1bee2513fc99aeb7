"""Typed resources: where the configuration lives and where the steps write, MLflow, DVC."""

import os
import sys

from dagster import ConfigurableResource

from pipeline.external import share_cores
from rib.artifacts import ArtifactPaths
from rib.config import Params, default_params_path, load_params

TRAINING_POOL = "training"  # the pool of every step that trains a network (dagster.yaml)


def training_threads(instance) -> int | None:
    """CPU threads for each step of the training pool: the machine's cores shared among the steps
    the pool runs at once (its limit: `dagster instance concurrency set training N`, which
    `make run` and `make dev` set; dagster.yaml's default limit is 1). None where it runs one step
    at a time, which keeps torch's default (every core), and at least 1. On 2 cores a training of the
    default data is no faster on 2 threads than on 1, so the default run's three trainings (limit 3,
    the Makefile's) each take one thread and share the two cores."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:  # an ephemeral instance: steps run in turn
        return None
    limit = storage.get_concurrency_info(TRAINING_POOL).limit or 1
    return max(1, len(os.sched_getaffinity(0)) // limit) if limit > 1 else None


class RibParams(ConfigurableResource):
    """The params file (params.yaml, or $RIB_PARAMS): every asset, check, schedule and sensor reads
    its settings through this resource; artifacts_dir overrides the file's folder."""

    params_path: str = str(default_params_path())
    artifacts_dir: str | None = None

    def load(self, cpu_threads: int | None = None) -> Params:
        """The params; `cpu_threads` (training_threads) where train.cpu_threads leaves it open."""
        params = load_params(self.params_path)
        if self.artifacts_dir:
            params.artifacts_dir = self.artifacts_dir
        share_cores(params, cpu_threads)
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


class StepLauncher(ConfigurableResource):
    """Where a heavy step's process runs, through Dagster Pipes: `python -m <module>` on this machine
    (`subprocess`, PipesSubprocessClient, the default) or in a pod of `image` (`k8s`, PipesK8sClient,
    in production). Two are configured (pipeline/definitions.py): `training_launcher` for
    pipeline/external/train_step.py (a GPU pod; $RIB_TRAINING_LAUNCHER=k8s) and `spark_launcher` for
    pipeline/external/features_step.py and pipeline/external/ingest_step.py (a Spark driver pod;
    $RIB_SPARK_LAUNCHER=k8s). The pod must
    see the params file and the artifacts folder at the same paths (a shared volume in `volumes`)."""

    module: str
    kind: str = "subprocess"  # subprocess | k8s
    image: str = "rib:latest"
    namespace: str = "default"
    gpus: int = 0
    cpus: str = "8"
    memory: str = "64Gi"
    volume_claim: str | None = None  # a PersistentVolumeClaim mounted at `mount_path`
    mount_path: str = "/work"

    def command(self, module: str | None = None) -> list[str]:
        python = sys.executable if self.kind == "subprocess" else "python"
        return [python, "-m", module or self.module]

    def pod_spec(self) -> dict:
        """The pod the k8s launcher asks for (dagster-k8s merges in the image, command and Pipes' env)."""
        resources = {"cpu": self.cpus, "memory": self.memory}
        if self.gpus:
            resources["nvidia.com/gpu"] = str(self.gpus)
        container: dict = {"name": "dagster-pipes-execution", "resources": {"limits": resources, "requests": resources}}
        spec: dict = {"containers": [container], "restartPolicy": "Never"}
        if self.volume_claim:
            container["volumeMounts"] = [{"name": "work", "mountPath": self.mount_path}]
            spec["volumes"] = [{"name": "work", "persistentVolumeClaim": {"claimName": self.volume_claim}}]
        return spec

    def run(self, context, extras: dict, module: str | None = None):
        """Run `module` (default: this launcher's) as its own process, with `extras` over Pipes."""
        if self.kind == "k8s":
            from dagster_k8s import PipesK8sClient

            return PipesK8sClient().run(
                context=context,
                image=self.image,
                command=self.command(module),
                namespace=self.namespace,
                base_pod_spec=self.pod_spec(),
                extras=extras,
            )
        if self.kind != "subprocess":
            raise ValueError(f"StepLauncher.kind {self.kind!r}: expected subprocess or k8s")
        from dagster import PipesSubprocessClient

        return PipesSubprocessClient().run(context=context, command=self.command(module), extras=extras)
