"""Shared state on a real PostgreSQL server: Dagster's instance storage (dagster-postgres, the
deploy/dagster-postgres.yaml layout) and MLflow behind `mlflow server` with a PostgreSQL backend
store. The tests start a throw-away cluster themselves (initdb in a temporary folder, a free
loopback port); without the PostgreSQL server binaries they skip with a message."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, materialize
from test_pipeline import NO_DVC, tiny_params

from pipeline.definitions import build_definitions
from pipeline.resources import MlflowTracking

REPO = Path(__file__).resolve().parents[1]


def postgres_bindir() -> Path | None:
    """The folder of initdb, pg_ctl and createdb (`pg_config --bindir`, else initdb's own folder)."""
    if shutil.which("pg_config"):
        found = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
        if (found / "initdb").exists():
            return found
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster of its own (trust auth on 127.0.0.1 only); yields a URL builder."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb): .ci/run installs Debian's postgresql")
    # Its own folder under the system temp (pytest's are private to this user; the server runs as
    # `postgres` when the tests run as root, since initdb refuses root).
    folder = Path(tempfile.mkdtemp(prefix="rib-postgres-"))
    data, port = folder / "data", free_port()
    env = {**os.environ, "LC_ALL": "C"}
    run_as = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]  # initdb refuses root
    if run_as:
        shutil.chown(folder, "postgres")
    subprocess.run([*run_as, bindir / "initdb", "-D", data, "-U", "rib", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log", "-w", "start"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    for database in ("dagster", "mlflow"):
        subprocess.run([bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "rib", database], check=True)
    # psycopg2 named in the URL: SQLAlchemy 2.1 would pick psycopg 3 for postgresql://, which
    # dagster-postgres's queries do not run on.
    yield lambda database: f"postgresql+psycopg2://rib@127.0.0.1:{port}/{database}"
    subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on loopback with its backend store on PostgreSQL and its own artifact root."""
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres("mlflow"),
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(folder / "server.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(f"http://127.0.0.1:{port}/health", server)
            yield f"http://127.0.0.1:{port}", folder / "artifacts"
        finally:
            server.terminate()
            server.wait(30)


def test_a_run_and_a_registered_model_on_postgresql(postgres, mlflow_server, tmp_path):
    tracking_uri, artifacts = mlflow_server
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", dagster_home / "dagster.yaml")
    os.environ["DAGSTER_PG_URL"] = postgres("dagster").replace(
        "postgresql:", "postgresql+psycopg2:"
    )  # what deploy/dagster-postgres.yaml reads
    params_path = tiny_params(tmp_path)
    params = yaml.safe_load(params_path.read_text())
    params["experiment"] = {"models": ["RIB"], "variants": ["sku_micro"], "baselines": ["S-POP"]}
    params_path.write_text(yaml.safe_dump(params))
    definitions = build_definitions(
        params_path, mlflow_tracking=MlflowTracking(tracking_uri=tracking_uri), dvc_versioning=NO_DVC
    )
    wanted = {"raw_micro_behaviors", "features", "word2vec_embeddings", "baseline_comparison", "rib_sku_micro",
              "model_comparison", "registered_model"}  # fmt: skip
    assets = [a for a in definitions.assets if {k.to_user_string() for k in a.keys} & wanted]

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize(assets, resources=definitions.resources, instance=instance)
        assert result.success

    # Read back through a fresh instance (another node would): the run and its materializations.
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        registered = instance.get_latest_materialization_event(
            next(a for a in assets if "registered_model" in {k.to_user_string() for k in a.keys}).key
        )
        assert registered is not None and registered.run_id == result.run_id

    # The registry on the server: the champion alias, its run's metrics, artifacts under the server's root.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    champion = client.get_model_version_by_alias("rib", "champion")
    assert int(champion.version) == 1
    assert "test_recall_at_20" in client.get_run(champion.run_id).data.metrics
    assert any(artifacts.rglob("weights.npz"))  # logged through the server, stored where it was told
