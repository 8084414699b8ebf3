"""Shared fixtures. Every test runs against a real DuckDB file in a temporary
home; nothing touches ~/.mlops-lite, and nothing binds beyond 127.0.0.1."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# One home and one Prefect home for the session, set before anything imports prefect.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-lite-tests-"))
os.environ["MLOPS_LITE_HOME"] = str(_SESSION_HOME / "default-home")
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("MLOPS_LITE_URL", None)
os.environ.pop("MLOPS_LITE_TOKEN", None)
os.environ.pop("PREFECT_API_AUTH_STRING", None)
# Flow runs read source files only from allowed folders (mlops_lite/flow_params.py); the
# tests write theirs under the temporary folder, as an operator's landing folder would be.
os.environ["MLOPS_LITE_INGEST_DIRS"] = str(Path(tempfile.gettempdir()).resolve())

FEATURE_EXCLUDE = ("name", "email", "phone", "gender", "age")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--postgres", action="store_true",
                     help="store every platform's metadata in a real PostgreSQL (a cluster the session starts); "
                          "the metadata contract runs on PostgreSQL without it too")


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1, started on first use for the session. Where
    PostgreSQL is not installed, the tests that need it are skipped, saying so (with
    --postgres, asked for explicitly, the run fails instead)."""
    from tests.postgres import MISSING, installed, postgres_cluster

    if not installed() and not request.config.getoption("--postgres"):
        pytest.skip(MISSING)
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _metadata_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With --postgres, a database of its own for each test (MLOPS_LITE_DATABASE_URL)."""
    if not request.config.getoption("--postgres"):
        yield
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    with cluster.database() as url:
        monkeypatch.setenv("MLOPS_LITE_DATABASE_URL", url)
        yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test API for the whole session (entering it costs 10-20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def platform(home: Path) -> Iterator[object]:
    from mlops_lite import connect

    p = connect(home=home)
    yield p
    p.close()


def build_loop(home: Path, *, algorithm: str = "logistic_regression") -> tuple[object, str, object]:
    """A real platform with data committed, a model trained, registered and deployed as 'loans'.
    Returns (platform, admin token, spec)."""
    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    settings = load_settings(home=home)
    token = init_home(settings).token
    assert token is not None
    p = open_local(settings)
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    p.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender",
                              algorithm=algorithm)
    result = p.training.train("loans", "main", "loans/train.csv", spec)
    version = p.registry.register_from_run("loan-default", result.run.id)
    p.deployments.deploy("loans", version.model, version.version)
    return p, token, spec


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str, object]]:
    """build_loop once per module (training costs a few seconds)."""
    p, token, spec = build_loop(tmp_path_factory.mktemp("loop") / "home")
    yield p, token, spec
    p.close()


def holdout_rows(spec: object, n: int = 20) -> list[dict[str, object]]:
    """Held-out rows with only the model's features."""
    import pyarrow.csv as pacsv

    rows = pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist()[:n]
    features = [*spec.numeric, *spec.categorical]  # type: ignore[attr-defined]
    return [{name: row[name] for name in features} for row in rows]


@contextmanager
def policy_files(folder: Path) -> Iterator[Callable[[str, str], Path]]:
    """write(name, text) puts a policy file in ``folder``; all are removed afterwards."""
    folder.mkdir(exist_ok=True)

    def write(name: str, text: str) -> Path:
        path = folder / f"{name}.toml"
        path.write_text(text)
        return path

    yield write
    for path in folder.glob("*.toml"):
        path.unlink()
