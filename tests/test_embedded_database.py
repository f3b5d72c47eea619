"""The embedded FiftyOne database curate owns (curate/store/database.py): one mongod per database folder, started by
the first command that needs it, shared by commands running at once, stopped by the last one; never another folder's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import builders
from tests.helpers import REPO, mongod_binary, start_mongod


def _curate(home: Path, *args: str, db_dir: Path | None = None) -> subprocess.Popen:
    """`curate` as a user runs it: no FIFTYONE_DATABASE_URI (the tests' private mongod is not theirs)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FIFTYONE_DATABASE_URI", "FIFTYONE_DATABASE_DIR")}
    env["CURATE_HOME"] = str(home)
    if db_dir is not None:
        env["FIFTYONE_DATABASE_DIR"] = str(db_dir)
    exe = Path(sys.executable).parent / "curate"
    return subprocess.Popen([str(exe), *args, "--json"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, f"exit {proc.returncode}\n{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def _mongods(folder: Path) -> list[int]:
    """Live mongod processes serving ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"mongod") and str(folder).encode() in cmd:
            found.append(int(proc.name))
    return found


def _ingest(home: Path, root: Path, name: str, db_dir: Path | None = None) -> subprocess.Popen:
    return _curate(home, "ingest", "fer2013", str(root), "--dataset", name, "--blur-max", "1", "--occlusion-max", "1", "--workers", "1",
                   db_dir=db_dir)


def test_each_home_has_its_own_database_shared_by_commands_at_once_and_stopped_by_the_last(tmp_path: Path) -> None:
    built = builders.fer2013_folders(tmp_path / "fer", per_class=1)
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    # Two commands on one home at the same moment: one mongod, both succeed, and it is stopped once both ended.
    first, second = _ingest(home_a, built.root, "one"), _ingest(home_a, built.root, "two")
    one, two = _finish(first), _finish(second)
    assert one["ingested"] == two["ingested"] == 14 and one["new"] == two["new"] == 14
    folder_a = home_a / "fiftyone-db"
    assert (folder_a / "WiredTiger").is_file() and not _mongods(folder_a), "the last command did not stop its database"
    assert not any((folder_a / "clients").iterdir())
    # Another home does not see home A's datasets (FiftyOne's own service would have attached to A's database).
    other = _finish(_ingest(home_b, built.root, "one"))
    assert other["new"] == 14 and other["already_present"] == 0
    # Home A's datasets are still there when its database starts again.
    again = _finish(_ingest(home_a, built.root, "one"))
    assert again["new"] == 0 and again["already_present"] == 14
    assert not _mongods(folder_a) and not _mongods(home_b / "fiftyone-db")


def test_a_database_that_cannot_start_is_one_line_naming_its_folder_and_log(tmp_path: Path) -> None:
    built = builders.fer2013_folders(tmp_path / "fer", per_class=1)
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    squatter, _ = start_mongod(mongod_binary(), str(db_dir))  # another mongod holds the folder: curate's cannot start
    try:
        proc = _ingest(tmp_path / "home", built.root, "x", db_dir=db_dir)
        out, err = proc.communicate(timeout=300)
    finally:
        squatter.terminate()
        squatter.wait(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, err
    assert f"the FiftyOne database in {db_dir} did not start" in lines[0] and str(db_dir / "log" / "mongod.log") in lines[0]
    assert json.loads(out.strip().splitlines()[-1])["ok"] is False


@pytest.mark.slow  # ~2 min; CI runs it (.ci/run)
def test_twenty_fresh_starts_in_a_row_all_succeed_with_the_scoring_workers_starting_at_once(tmp_path: Path) -> None:
    """Issue 28: a first `make run` died when FiftyOne's service connected to a port that was not mongod's."""
    built = builders.fer2013_folders(tmp_path / "fer", per_class=1)
    for attempt in range(20):
        home = tmp_path / f"home{attempt}"
        s = _finish(_ingest(home, built.root, f"fresh{attempt}"))
        assert s["ingested"] == 14 and s["workers"] == 1, (attempt, s)
        assert not _mongods(home / "fiftyone-db"), attempt


def test_leaving_after_the_home_was_deleted_is_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose temporary CURATE_HOME was removed before it exits (a benchmark cleaning up) must not print a
    traceback from the exit hook that unregisters it."""
    from curate.store import database

    monkeypatch.setattr(database, "_registered", tmp_path / "gone" / "clients" / str(os.getpid()))
    assert database.release(tmp_path / "gone") is False
    assert database._registered is None
