import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JD_DIR = REPO.parent / "shared" / "data" / "jd"
JD_FILES = {name: JD_DIR / f"{name}.txt" for name in ("appliances", "computers")}


@pytest.fixture
def jd_file():
    """The real JD samples, read from ../shared (never copied into the repository)."""

    def get(name: str = "appliances") -> Path:
        path = JD_FILES[name]
        if not path.exists():
            pytest.skip(f"real JD sample {path} is absent (it lives in ../shared/data/jd next to the repository)")
        return path

    return get


def write_jd(path: Path, sessions: list[list[tuple]]) -> Path:
    """Write sessions of (sku, activity, category, interval, dwell) tuples in the JD token format."""
    lines = [" ".join("+".join(str(v) for v in token) for token in session) for session in sessions]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def spark():
    """A Spark session in local[2] (scratch in a temporary folder) for one test module, stopped after
    it; the test is skipped where Java is absent."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ (`java` is not on PATH)")
    from rib.config import FeatureConfig
    from rib.io import spark_session

    session = spark_session(FeatureConfig(engine="spark"))
    yield session
    session.stop()
