"""Steps that Dagster launches as processes of their own through Dagster Pipes (no Dagster import
here beyond `dagster_pipes`, the small library the external side speaks)."""


def step_params(extras: dict) -> tuple:
    """(params, paths) of a launched step: the params file the asset named, under the artifacts
    folder it named (where the extras give one), with the CPU threads its pool gives it where
    train.cpu_threads leaves them open."""
    from rib.artifacts import ArtifactPaths
    from rib.config import load_params

    params = load_params(extras["params_path"])
    if extras.get("artifacts_dir"):
        params.artifacts_dir = extras["artifacts_dir"]
    share_cores(params, extras.get("cpu_threads"))
    return params, ArtifactPaths.under(params.artifacts_dir)


def share_cores(params, cpu_threads: int | None) -> None:
    """Give training `cpu_threads` (the pool's share of the cores: pipeline.resources.training_threads)
    where train.cpu_threads in the params file leaves them open."""
    if cpu_threads and params.train.cpu_threads is None:
        params.train.cpu_threads = cpu_threads
