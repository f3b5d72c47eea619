"""The embedded Label Studio server for one machine: installed into its own venv, run headless on loopback.

Why its own venv: Label Studio pins Django and many web libraries; keeping it apart from curate's
ML stack mirrors production, where the server runs elsewhere. Credentials (admin e-mail, password,
API token) are generated once and kept in ``CURATE_HOME/label-studio/credentials.json`` with mode
0600; the token reaches the server through its environment, never argv, and is never printed whole.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from curate.exceptions import CurateError
from curate.ports import port_open
from curate.secrets import Secret, child_env

__all__ = ["Credentials", "ServerPaths", "credentials", "ensure_installed", "serve", "stop", "status", "check_data_root", "LABEL_STUDIO_VERSION"]

# The release the integration tests run against (scripts/setup.sh installs the same one).
LABEL_STUDIO_VERSION = "1.23.2"


@dataclass(frozen=True)
class ServerPaths:
    root: Path

    @property
    def venv(self) -> Path:
        # A shared, pre-built install may be named by CURATE_LABEL_STUDIO_VENV (CI caches one).
        return Path(os.environ.get("CURATE_LABEL_STUDIO_VENV") or self.root / "venv")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def pidfile(self) -> Path:
        return self.root / "server.json"

    @property
    def log(self) -> Path:
        return self.root / "server.log"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: Secret
    token: Secret


def paths(home: Path) -> ServerPaths:
    return ServerPaths(home / "label-studio")


def private_root(p: ServerPaths) -> Path:
    """The Label Studio folder, mode 0700: its SQLite database holds the API token in plaintext."""
    p.root.mkdir(parents=True, exist_ok=True)
    os.chmod(p.root, 0o700)
    return p.root


def check_data_root(data_root: Path, home: Path) -> Path:
    """The folder Label Studio may serve files from: refuse roots that would expose far more than images.

    ``/``, ``$HOME`` and any folder above ``$HOME`` (``/home`` holds every user's) hold everything a user owns;
    a root containing CURATE_HOME would let any Label Studio user add a storage over curate's own credentials
    and ledger."""
    root = data_root.expanduser().resolve()
    if not root.is_dir():
        raise CurateError(f"{data_root}: image root does not exist")
    curate_home = home.expanduser().resolve()
    if root == Path("/") or Path.home().resolve().is_relative_to(root):
        raise CurateError(f"{data_root}: refusing to serve {root} (every file under it would be reachable); pass the folder that holds the images")
    if curate_home == root or curate_home.is_relative_to(root):
        raise CurateError(f"{data_root}: refusing to serve a folder that contains CURATE_HOME ({curate_home}: credentials and ledger)")
    return root


def credentials(p: ServerPaths) -> Credentials:
    """Load the admin credentials, creating them (0600) on first use."""
    if p.credentials.is_file():
        data = json.loads(p.credentials.read_text())
    else:
        private_root(p)
        data = {"username": "admin@curate.local", "password": secrets.token_urlsafe(18), "token": secrets.token_hex(20)}
        tmp = p.credentials.with_name(f".{p.credentials.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(p.credentials)  # atomic: a crash never leaves half a credentials file
    return Credentials(data["username"], Secret(data["password"]), Secret(data["token"]))


def ensure_installed(p: ServerPaths, say=print) -> Path:  # noqa: ANN001
    """The ``label-studio`` executable, installing it into its own venv on first use (~1 minute, ~1 GB)."""
    exe = p.venv / "bin" / "label-studio"
    if exe.is_file():
        return exe
    say(f"installing Label Studio into {p.venv} (first use only, about a minute)")
    p.venv.parent.mkdir(parents=True, exist_ok=True)
    log = private_root(p) / "install.log"
    with open(log, "w") as fh:
        for cmd in ([sys.executable, "-m", "venv", str(p.venv)],
                    [str(p.venv / "bin" / "pip"), "install", "-q", f"label-studio=={LABEL_STUDIO_VERSION}"]):
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=child_env()).returncode != 0:
                raise CurateError(f"{log}: installing Label Studio failed (see the log)")
    return exe


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _server_env(p: ServerPaths, creds: Credentials, data_root: Path) -> dict[str, str]:
    """A clean environment: Label Studio also reads bare USERNAME/PASSWORD/HOST/DEBUG, so nothing is inherited blindly."""
    home = p.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(p.data),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_USERNAME": creds.username,
        "LABEL_STUDIO_PASSWORD": creds.password.reveal(),
        "LABEL_STUDIO_USER_TOKEN": creds.token.reveal(),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(data_root),
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
    }


def status(home: Path) -> dict:
    p = paths(home)
    if not p.pidfile.is_file():
        return {"running": False}
    info = json.loads(p.pidfile.read_text())
    alive = True
    try:
        os.kill(info["pid"], 0)
    except OSError:
        alive = False
    url = info["url"]
    return {"running": alive and _health(url), "pid": info["pid"], "url": url, "data_root": info["data_root"], "process_alive": alive}


def serve(home: Path, port: int, data_root: Path, timeout: float = 180.0, say=print) -> dict:  # noqa: ANN001
    """Start the server (or report the running one); returns url, username and a token hint."""
    p = paths(home)
    current = status(home)
    if current.get("running"):
        return {**current, "already_running": True}
    if port_open(port):
        raise CurateError(f"127.0.0.1:{port} is already in use (Label Studio would silently move to another port); pass --port")
    data_root = check_data_root(data_root, home)
    exe = ensure_installed(p, say)
    creds = credentials(p)
    private_root(p)
    p.data.mkdir(parents=True, exist_ok=True)
    log = open(p.log, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
                            env=_server_env(p, creds, data_root.resolve()), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=p.root)
    url = f"http://127.0.0.1:{port}"
    from curate.files import atomic_write_bytes

    atomic_write_bytes(p.pidfile, json.dumps({"pid": proc.pid, "url": url, "port": port, "data_root": str(data_root)}).encode())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CurateError(f"Label Studio exited with code {proc.returncode} while starting; see {p.log}")
        if _health(url):
            return {"running": True, "pid": proc.pid, "url": url, "username": creds.username, "token_hint": creds.token.hint(),
                    "credentials_file": str(p.credentials), "data_root": str(data_root.resolve()), "already_running": False}
        time.sleep(0.5)
    stop(home)
    raise CurateError(f"Label Studio on {url} did not become healthy within {timeout:.0f} s; see {p.log}")


def _is_label_studio(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"label-studio" in cmdline or b"label_studio" in cmdline


def stop(home: Path) -> dict:
    p = paths(home)
    if not p.pidfile.is_file():
        return {"stopped": False, "reason": "not running"}
    info = json.loads(p.pidfile.read_text())
    if not _is_label_studio(info["pid"]):
        # A stale pidfile: the number may belong to an unrelated process group by now; never signal it.
        p.pidfile.unlink()
        return {"stopped": False, "reason": "was not running"}
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except ProcessLookupError:
        p.pidfile.unlink()
        return {"stopped": False, "reason": "was not running"}
    for _ in range(100):
        try:  # a server this process started stays a zombie (and "alive" to kill(pid, 0)) until it is reaped
            if os.waitpid(info["pid"], os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass  # not our child: its parent reaps it
        try:
            os.kill(info["pid"], 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.killpg(info["pid"], signal.SIGKILL)
    p.pidfile.unlink()
    return {"stopped": True, "pid": info["pid"], "url": info["url"]}
