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
# One FiftyOne database for the whole session (mongod starts once); tests use distinct dataset names.
# FiftyOne honours this only when it starts mongod itself: a mongod already running is attached to instead.
if os.environ.get("CURATE_TEST_KEEP_FO_DB") != "1":
    os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="curate-fo-")
for _name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "CURATE_DB_URL"):
    os.environ.pop(_name, None)


@pytest.fixture
def curate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "curate-home"
    monkeypatch.setenv("CURATE_HOME", str(home))
    for name in [n for n in os.environ if n.startswith("CURATE_") and n != "CURATE_HOME"]:
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
        pytest.skip("PostgreSQL server binaries not found (Debian package 'postgresql'; `make test` installs it as root)")
    root = Path(tempfile.mkdtemp(prefix="curate-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the package's 'postgres' account
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
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
        pytest.skip(f"could not start PostgreSQL: {getattr(exc, 'stderr', b'') or exc}")
    try:
        yield f"postgresql+psycopg://curate@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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


def ingest_unfiltered(tmp_path: Path, kind: str, root: Path, name: str) -> tuple[str, Path, str]:
    """Ingest a tiny synthetic dataset with every face kept (synthetic faces are not what the quality net knows).

    Returns (dataset name, CURATE_HOME, ledger URL)."""
    from curate.ingest.stage import IngestOptions, ingest

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'curate.db'}"
    ingest(IngestOptions(kind=kind, root=root, dataset=name, workers=1, blur_max=1.0, occlusion_max=1.0), url, home)
    return name, home, url
