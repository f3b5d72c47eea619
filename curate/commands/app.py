"""`curate app`: serve the FiftyOne App on a dataset, print the error views' URLs, stop cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated, Optional
from urllib.parse import quote

import typer

from curate.commands.common import DatasetOption, settings_from
from curate.exceptions import CurateError
from curate.ports import port_open
from curate.secrets import child_env


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _wait_for_port(address: str, port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CurateError(f"FiftyOne App on {address}:{port} exited with code {proc.returncode} while starting")
        if port_open(port, address):
            return
        time.sleep(0.2)
    raise CurateError(f"FiftyOne App on {address}:{port} did not answer within {timeout:.0f} s")


def _is_loopback(address: str) -> bool:
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def app(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    address: Annotated[str, typer.Option("--address", help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    expose_without_login: Annotated[bool, typer.Option(
        "--expose-without-login",
        help="Allow a non-loopback --address. The App has no login and serves every file this user can read.")] = False,
    port: Annotated[int, typer.Option("--port")] = 5151,
    view: Annotated[Optional[str], typer.Option("--view", help="Saved view to open first (e.g. errors-fear-as-surprise).")] = None,
) -> None:
    """Launch the FiftyOne App on DATASET; runs until Ctrl-C, then stops its server."""
    from curate.output import reporter

    with reporter(False) as out:
        from curate.store import fo_store

        if not _is_loopback(address):
            if not expose_without_login:
                raise CurateError(f"--address {address}: the FiftyOne App has no login and serves any file this user can read "
                                  "(/media?filepath=...), CURATE_HOME's credentials included; refusing a non-loopback address "
                                  "without --expose-without-login")
            out.say(f"[bold red]warning[/]: serving on {address} without a login: anyone who reaches this port can read "
                    "every file this user can read")
        s = settings_from(ctx, dataset=dataset)
        ds = fo_store.load_dataset(s.dataset, create=False)
        views = ds.list_saved_views()
        if view is not None and view not in views:
            raise CurateError(f"dataset {s.dataset!r} has no saved view {view!r}; it has: {', '.join(views) or 'none'}")
        if port_open(port, address):
            raise CurateError(f"{address}:{port} is already in use; pass --port")
        # Ctrl-C and a service manager's SIGTERM both stop the server; a SIGINT ignored by a parent shell is re-armed.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        proc = subprocess.Popen([sys.executable, "-m", "fiftyone.server.main", "--address", address, "--port", str(port)],
                                stdin=subprocess.DEVNULL, start_new_session=True, env=child_env({"FIFTYONE_DO_NOT_TRACK": "true"}))
        try:
            _wait_for_port(address, port, proc)
            base = f"http://{address}:{port}/datasets/{quote(s.dataset)}"
            out.say(f"FiftyOne App: {base}" + (f"?view={quote(view)}" if view else ""))
            for name in sorted(v for v in views if v.startswith("errors-") or v in ("label_issues", "mistakes", "leakage", "curated")):
                out.say(f"  {name:<32} {base}?view={quote(name)}")
            out.say("note: the App has no login and serves any file you can read to whoever reaches this port "
                    "(on 127.0.0.1: every local user); Ctrl-C to stop")
            proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            out.say("FiftyOne App stopped")
