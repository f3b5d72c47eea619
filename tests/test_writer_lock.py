"""One writer per dataset and stage (issue 31): a second run of a stage on a dataset another run is writing exits
in one line naming the holder, writes nothing, and runs once the holder is gone, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import builders
from tests.helpers import last_json, run_cli, sql_rows, wait_for


def _fo_samples(name: str) -> int:
    from curate.store.fo_store import fo

    return len(fo().load_dataset(name)) if name in fo().list_datasets() else 0


def test_a_second_ingest_of_a_dataset_being_written_exits_naming_the_holder(tmp_path: Path, ledger_db: str) -> None:
    from curate.store.sql.writer_lock import writer_lock

    built = builders.fer2013_folders(tmp_path / "fer")
    backend = ledger_db.split(":", 1)[0].split("+")[0]  # FiftyOne's database is the session's: names per backend
    locked, free = f"locked-{backend}", f"free-{backend}"
    with writer_lock(ledger_db, locked, "ingest"):
        busy = run_cli("ingest", "fer2013", str(built.root), "--dataset", locked, check=False)
        # The same stage of another dataset is not held up.
        other = last_json(run_cli("ingest", "fer2013", str(built.root), "--dataset", free, "--json"))
    lines = [line for line in busy.stderr.splitlines() if line.strip()]
    assert busy.returncode == 2 and len(lines) == 1, busy.stderr
    assert "stage ingest is already running" in lines[0] and f"pid {os.getpid()}" in lines[0], lines[0]
    assert _fo_samples(locked) == 0, "the refused run wrote to FiftyOne"
    assert sql_rows(ledger_db, "SELECT count(*) FROM datasets WHERE name = :n", n=locked) == [(0,)], "the refused run wrote the ledger"
    assert other["ingested"] == len(built.expected)
    done = last_json(run_cli("ingest", "fer2013", str(built.root), "--dataset", locked, "--json"))
    assert done["ingested"] == len(built.expected) == _fo_samples(locked)


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path, ledger_db: str) -> None:
    """The lock is the kernel's (flock) or the server's (advisory, per connection): a holder killed with -9 frees it."""
    from curate.store.sql.writer_lock import WriterBusy, writer_lock

    ready = tmp_path / "ready"
    code = ("import sys, time, pathlib\nfrom curate.store.sql.writer_lock import writer_lock\n"
            "with writer_lock(sys.argv[1], 'held', 'teacher'):\n    pathlib.Path(sys.argv[2]).touch()\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, ledger_db, str(ready)])
    try:
        assert wait_for(ready.exists, 60), "the holder never took the lock"
        try:
            with writer_lock(ledger_db, "held", "teacher"):
                raise AssertionError("took a lock another process holds")
        except WriterBusy as exc:
            assert f"pid {holder.pid}" in str(exc)
        holder.kill()
        holder.wait(timeout=30)
        with writer_lock(ledger_db, "held", "teacher"):
            pass
    finally:
        holder.kill()
