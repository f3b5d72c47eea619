"""The command line as a user meets it: --json summaries, one-line errors, secrets, start-up cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import last_json, run_cli


def test_db_commands_json(curate_home) -> None:  # noqa: ANN001
    before = last_json(run_cli("db", "current", "--json"))
    assert before["ok"] is True and before["revision"] is None and before["up_to_date"] is False
    up = last_json(run_cli("db", "upgrade", "--json"))
    assert up["previous"] is None and up["revision"] is not None
    assert (curate_home / "curate.db").is_file()
    now = last_json(run_cli("db", "current", "--json"))
    assert now["up_to_date"] is True and now["revision"] == now["head"] == up["revision"]
    unconfirmed = run_cli("db", "downgrade", "base", check=False)
    assert unconfirmed.returncode == 2 and len(unconfirmed.stderr.strip().splitlines()) == 1 and "--yes" in unconfirmed.stderr
    assert last_json(run_cli("db", "current", "--json"))["revision"] == now["head"], "a downgrade without --yes changed the schema"
    down = last_json(run_cli("db", "downgrade", "base", "--yes", "--json"))
    assert down["revision"] is None and down["previous"] == now["head"]


def test_status_json_and_human(curate_home) -> None:  # noqa: ANN001
    run_cli("db", "upgrade")
    summary = last_json(run_cli("status", "--json"))
    assert summary["datasets"] == [] and summary["revision"] == summary["head"]
    assert summary["settings"]["home"] == str(curate_home)
    assert summary["origins"]["home"] == "env:CURATE_HOME"
    human = run_cli("status").stdout
    assert "datasets: none yet" in human and "{" not in human.splitlines()[-1]


def test_unknown_dataset_is_one_line_error_exit_2(curate_home) -> None:  # noqa: ANN001
    run_cli("db", "upgrade")
    proc = run_cli("status", "--dataset", "nope", "--json", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert last_json(proc) == {"ok": False, "error": proc.stderr.strip().removeprefix("error: ")}
    assert "Traceback" not in proc.stderr


def test_bad_setting_is_one_line_error(curate_home) -> None:  # noqa: ANN001
    proc = run_cli("status", env={"CURATE_BLUR_MAX": "lots"}, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: env:CURATE_BLUR_MAX")
    assert "Traceback" not in proc.stderr


def test_unreachable_database_names_url_without_password(curate_home) -> None:  # noqa: ANN001
    url = "postgresql+psycopg://curate:s3cretpassw0rd@127.0.0.1:1/ledger"
    proc = run_cli("db", "current", "--json", env={"CURATE_DB_URL": url}, check=False)
    assert proc.returncode == 2
    assert "127.0.0.1:1/ledger" in proc.stderr and "cannot reach database" in proc.stderr
    assert "s3cretpassw0rd" not in proc.stderr + proc.stdout


def test_a_ledger_that_fails_mid_command_is_one_line_not_a_traceback(curate_home) -> None:  # noqa: ANN001
    import sqlite3

    run_cli("db", "upgrade")
    with sqlite3.connect(curate_home / "curate.db") as db:  # the schema says head, but a table is gone (a hand edit, a bad restore)
        db.execute("DROP TABLE samples")
    proc = run_cli("status", "--json", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and str(curate_home / "curate.db") in proc.stderr and "no such table: samples" in proc.stderr
    assert last_json(proc)["ok"] is False


def test_secrets_never_printed(curate_home) -> None:  # noqa: ANN001
    token = "ls-token-0123456789abcdef"
    env = {"LABEL_STUDIO_API_KEY": token, "LABEL_STUDIO_URL": "http://127.0.0.1:9", "CURATE_DB_URL": f"sqlite:///{curate_home}/x.db"}
    run_cli("db", "upgrade", env=env)
    for args in (("status",), ("status", "--json")):
        proc = run_cli(*args, env=env)
        assert token not in proc.stdout + proc.stderr
    shown = last_json(run_cli("status", "--json", env=env))["settings"]["label_studio_api_key"]
    assert shown.startswith("********") and shown.endswith(token[-4:])


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from curate.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in ('torch', 'fiftyone', 'timm', 'sqlalchemy', 'cv2', 'cleanlab', 'label_studio_sdk') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"--help imported {out.stdout.strip()}"


def test_help_lists_every_command_the_app_registers_and_each_kind_from_its_layouts() -> None:
    """`curate --help` lists exactly the commands cli.py registers (parsed from the help table, not substrings), and
    `curate ingest --help` one command per registered dataset kind, described by its layouts (curate/sources)."""
    import re

    from curate.cli import app
    from curate.sources import DATASETS, LAYOUTS

    def listed(help_text: str) -> set[str]:
        names = set()
        for line in help_text.splitlines():
            m = re.match(r"^[│|]\s+([a-z][a-z0-9-]*)\s{2,}\S", line)
            if m:
                names.add(m.group(1))
        return names

    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert listed(run_cli("--help").stdout) == registered and {"ingest", "review", "run", "teacher", "db"} <= registered
    ingest_help = run_cli("ingest", "--help").stdout
    assert listed(ingest_help) == set(DATASETS)
    fer_help = " ".join(run_cli("ingest", "fer2013", "--help").stdout.split())
    for layout in (lay for lay in LAYOUTS if lay.dataset == "fer2013"):
        assert " ".join(layout.description.split()) in fer_help.replace("│", " ").replace("  ", " ")


def test_app_refuses_a_non_loopback_address_without_the_explicit_flag(curate_home) -> None:  # noqa: ANN001
    """The App has no login and serves any readable file: 0.0.0.0 needs --expose-without-login."""
    from tests.helpers import run_cli

    refused = run_cli("app", "--dataset", "nosuch", "--address", "0.0.0.0", "--port", "1", check=False)
    lines = [l for l in refused.stderr.splitlines() if l.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and "--expose-without-login" in lines[0]
    allowed = run_cli("app", "--dataset", "nosuch", "--address", "0.0.0.0", "--port", "1", "--expose-without-login", check=False)
    # Past the address check: it warns, then stops at the missing dataset.
    assert "without a login" in allowed.stdout + allowed.stderr and "nosuch" in allowed.stderr and "--expose-without-login" not in allowed.stderr.splitlines()[-1]
    assert run_cli("app", "--dataset", "nosuch", "--address", "127.0.0.1", "--port", "1", check=False).stderr.count("login") == 0


def test_library_info_logs_are_not_printed_twice_at_the_default_level() -> None:
    """FiftyOne sets its loggers to INFO and prints those lines itself; curate's root handler must not repeat them
    (each `make run` line "Computing uniqueness..." came out twice, once as "INFO fiftyone.brain...")."""
    import os
    import subprocess

    code = ("import logging; from curate.cli import _configure_logging; _configure_logging(); "
            "lib = logging.getLogger('fiftyone.brain.x'); lib.setLevel(logging.INFO); lib.info('computing'); lib.warning('careful')")
    env = {k: v for k, v in os.environ.items() if k != "CURATE_LOG_LEVEL"}
    quiet = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert quiet.stderr.splitlines() == ["WARNING fiftyone.brain.x: careful"], quiet.stderr
    loud = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, env={**env, "CURATE_LOG_LEVEL": "INFO"}, timeout=60)
    assert "INFO fiftyone.brain.x: computing" in loud.stderr.splitlines()


@pytest.mark.parametrize("bad", ["../../escape1", "/an/absolute/path", ".."])
def test_a_dataset_name_that_could_leave_curate_home_is_refused_at_every_entry(tmp_path: Path, curate_home, bad: str) -> None:  # noqa: ANN001
    """Names become folder names under CURATE_HOME (reports, media, checkpoints): ingest's --dataset and a workflow
    stage's dataset: are checked like the settings are, before anything is written anywhere."""
    from tests import builders

    root = tmp_path / "faces"
    builders.write_image(root / "happy" / "a.png", builders.face(1))
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = run_cli("ingest", "folder", str(root), "--dataset", bad, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and f"dataset={bad!r}" in lines[0] and "--dataset" in lines[0], proc.stderr
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: escape\nstages:\n  - stage: report\n    dataset: '{bad}'\n")
    proc = run_cli("run", str(wf), check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and f"dataset={bad!r}" in lines[0] and "stage 1: report" in lines[0], proc.stderr
    assert sorted(p for p in tmp_path.rglob("*") if p != wf) == before  # nothing written, inside or outside the home
    assert not Path("/an/absolute/path").exists()


def test_curate_home_and_its_ledger_are_private_to_their_owner(curate_home) -> None:  # noqa: ANN001
    """Issue 31: CURATE_HOME holds the ledger and Label Studio's credentials; 0755 let every local user read them."""
    import os
    import stat

    curate_home.mkdir(mode=0o755)
    os.chmod(curate_home, 0o755)  # as a home made before this rule (or by hand) is
    run_cli("db", "upgrade")
    assert stat.S_IMODE(curate_home.stat().st_mode) == 0o700
    assert stat.S_IMODE((curate_home / "curate.db").stat().st_mode) == 0o600
    fresh = curate_home / "nested" / "home"
    run_cli("db", "upgrade", env={"CURATE_HOME": str(fresh)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700 and stat.S_IMODE((fresh / "curate.db").stat().st_mode) == 0o600
