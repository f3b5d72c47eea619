"""The embedded Label Studio server: real process on loopback, token handling, status and stop."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from tests.helpers import LS_VENV, free_port, last_json, missing_real_part, run_cli


@pytest.mark.slow  # ~70 s: a first start of Label Studio (migrations); CI runs it
def test_serve_status_stop_and_the_token_stays_secret(tmp_path: Path, curate_home: Path) -> None:
    if not (LS_VENV / "bin" / "label-studio").is_file():
        missing_real_part(f"Label Studio venv not found at {LS_VENV} (`make test` installs it)")
    port = free_port()
    images = tmp_path / "images"
    images.mkdir()
    served = run_cli("labelstudio", "serve", "--port", str(port), "--data-root", str(images), "--json")
    s = last_json(served)
    try:
        assert s["running"] and s["url"] == f"http://127.0.0.1:{port}" and s["data_root"] == str(images.resolve())
        creds_file = Path(s["credentials_file"])
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        # Label Studio's own database holds the token in plaintext: its whole folder is private.
        assert stat.S_IMODE((curate_home / "label-studio").stat().st_mode) == 0o700
        token = json.loads(creds_file.read_text())["token"]
        # The token works with the real SDK ...
        from label_studio_sdk import LabelStudio

        projects = LabelStudio(base_url=s["url"], api_key=token).projects.list()
        assert list(projects) == []
        # ... and appears in no output, no log and no process's argv.
        status = run_cli("labelstudio", "status", "--json")
        assert last_json(status)["running"] is True
        log = (curate_home / "label-studio" / "server.log").read_text(errors="replace")
        argv = [Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") for pid in os.listdir("/proc") if pid.isdigit()
                and Path(f"/proc/{pid}/cmdline").exists()]
        for text in (served.stdout, served.stderr, status.stdout, status.stderr, log, *argv):
            assert token not in text
        assert s["token_hint"].endswith(token[-4:]) and token not in s["token_hint"]
        again = last_json(run_cli("labelstudio", "serve", "--port", str(port), "--data-root", str(images), "--json"))
        assert again["already_running"] is True
    finally:
        stopped = last_json(run_cli("labelstudio", "stop", "--json"))
    assert stopped["stopped"] is True
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    assert last_json(run_cli("labelstudio", "status", "--json"))["running"] is False


def test_busy_port_is_refused_in_one_line(tmp_path: Path, curate_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("labelstudio", "serve", "--port", str(port), "--data-root", str(tmp_path), check=False)
    assert proc.returncode == 2 and f"127.0.0.1:{port} is already in use" in proc.stderr


def test_serve_refuses_roots_that_expose_more_than_images(tmp_path: Path, curate_home: Path) -> None:
    fake_home = tmp_path / "home" / "user"
    fake_home.mkdir(parents=True)
    served_home = tmp_path / "srv" / "curate"  # a CURATE_HOME outside $HOME, in a folder someone might pass
    served_home.mkdir(parents=True)
    port = str(free_port())
    missing = run_cli("labelstudio", "serve", "--port", port, check=False)
    assert missing.returncode == 2 and "--data-root" in missing.stderr  # no silent default to the current folder
    for root, why in (("/", "every file under it"), (str(fake_home), "every file under it"),
                      (str(fake_home.parent), "every file under it"),  # above $HOME: every user's home (issue 31)
                      (str(served_home.parent), "contains CURATE_HOME")):
        proc = run_cli("labelstudio", "serve", "--port", port, "--data-root", root, check=False,
                       env={"HOME": str(fake_home), "CURATE_HOME": str(served_home)})
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and why in lines[0], proc.stderr
    assert not (served_home / "label-studio" / "server.json").exists()


def test_stop_never_signals_a_stale_pid_that_is_not_label_studio(curate_home: Path) -> None:
    import subprocess

    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (curate_home / "label-studio").mkdir(parents=True)
        (curate_home / "label-studio" / "server.json").write_text(json.dumps({"pid": bystander.pid, "url": "http://127.0.0.1:1", "port": 1, "data_root": "/x"}))
        out = last_json(run_cli("labelstudio", "stop", "--json"))
        assert out["stopped"] is False and bystander.poll() is None, "stop signalled an unrelated process"
    finally:
        bystander.kill()
