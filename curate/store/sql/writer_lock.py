"""One writer per dataset and stage, wherever the runs come from.

Why: two runs of one stage on one dataset interleave their writes. Two simultaneous ingests of one
folder left FiftyOne with 9 samples for 5 distinct sample uids (the ledger's insert-or-ignore kept 5),
and the loser died on a saved view the winner had just replaced; a re-run did not repair it.

Where the lock lives follows the ledger, because the ledger is what every machine of one deployment shares:
- PostgreSQL: a session-level advisory lock on its own connection. The server releases it when that
  connection ends, so a run killed with -9 (or a machine that dies) never leaves it behind. The holder is
  named through the connection's ``application_name``, which ``pg_stat_activity`` shows to the next run.
- SQLite: an ``flock`` on a file beside the ledger file. An SQLite ledger is one file on one machine, so
  a kernel lock covers every writer that can reach it, and the kernel drops it when the holder dies
  (a lock *row* would outlive a killed holder and need a stale-lock rule). The holder writes its name
  into the file.

A second run does not wait: it exits with one line naming the holder, since a stage can run for
many minutes and a silent wait looks like a hang.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import zlib
from pathlib import Path
from typing import Iterator

from sqlalchemy import text
from sqlalchemy.engine import make_url

from curate.exceptions import CurateError

__all__ = ["writer_lock", "WriterBusy"]

_NAMESPACE = 0x43555241  # "CURA": the first key of curate's advisory locks (the migration lock uses the one-key form)


class WriterBusy(CurateError):
    """Another run holds the dataset's lock for this stage."""


def _holder(stage: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"curate {stage}, pid {os.getpid()} on {socket.gethostname()}, since {stamp}"


def _busy(dataset: str, stage: str, holder: str | None) -> WriterBusy:
    who = holder.strip() if holder and holder.strip() else "another run"
    return WriterBusy(f"dataset {dataset!r}: stage {stage} is already running ({who}); let it finish, or stop it, then run again")


@contextlib.contextmanager
def writer_lock(database_url: str, dataset: str, stage: str) -> Iterator[None]:
    """Hold the (dataset, stage) writer lock for the block, or raise :class:`WriterBusy` naming the holder."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "postgresql":
        with _advisory_lock(database_url, dataset, stage):
            yield
    elif parsed.database and parsed.database != ":memory:":
        with _file_lock(Path(parsed.database).expanduser(), dataset, stage):
            yield
    else:  # an in-memory ledger belongs to one process
        yield


@contextlib.contextmanager
def _file_lock(ledger: Path, dataset: str, stage: str) -> Iterator[None]:
    import fcntl

    path = ledger.with_name(f"{ledger.name}.locks") / f"{dataset}.{stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise _busy(dataset, stage, fh.read(300)) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(_holder(stage))
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(database_url: str, dataset: str, stage: str) -> Iterator[None]:
    from curate.store.sql.session import engine_for

    key = zlib.crc32(f"{dataset}\0{stage}".encode()) - (1 << 31)  # a signed int4, as the two-key form takes
    with engine_for(database_url).connect() as connection:
        connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": _holder(stage)[:63]})
        if not connection.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"), {"ns": _NAMESPACE, "key": key}).scalar():
            holder = connection.execute(text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(:obj AS oid) "
                "AND l.objsubid = 2 LIMIT 1"), {"ns": _NAMESPACE, "obj": key & 0xFFFFFFFF}).scalar()
            connection.rollback()
            raise _busy(dataset, stage, holder)
        connection.commit()  # the lock is the session's, not the transaction's: nothing stays open while the stage runs
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": _NAMESPACE, "key": key})
            connection.commit()
