"""Ingest and prelabel on Ray (issue 14) give what the local engine gives, and a killed Ray ingest resumes cleanly.

Ray here is the real one: a local Ray started by the command itself (as a user without a cluster gets it),
with scorer or inference actors in their own processes; the command stays the only writer to FiftyOne and SQL.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import builders
from tests.helpers import kill_group_once_rows, last_json, missing_real_part, run_cli, sql_rows


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        missing_real_part("ray is not installed (`make test` installs it with the dev extras)")


def _without_ids(value: object) -> object:
    """A sample's fields minus the database ids FiftyOne gives every sample and embedded label."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in {"_id", "id", "created_at", "last_modified_at", "_dataset_id"}}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _dataset_snapshot(name: str, url: str) -> tuple[dict, list, list]:
    """Every sample's FiftyOne fields (ids and timestamps aside), the ledger's samples and label events, and its
    rejections, all keyed by what does not depend on write order."""
    from curate.store.fo_store import load_dataset

    ds = load_dataset(name, create=False)
    fields = {s["sample_uid"]: _without_ids(s.to_dict()) for s in ds.iter_samples()}
    where = f"JOIN datasets d ON d.id = s.dataset_id WHERE d.name = '{name}'"
    samples = sorted(sql_rows(url, f"SELECT s.uid, s.content_hash, s.source_path, s.split, s.source_label, s.quality_rejected, s.blur, "
                                   f"s.occlusion FROM samples s {where}"))
    events = sorted(sql_rows(url, f"SELECT s.uid, e.label, e.source, replace(e.actor, '{name}', 'NAME'), e.previous_label FROM label_events e "
                                  f"JOIN samples s ON s.id = e.sample_id {where}"))
    rejections = sorted(sql_rows(url, f"SELECT r.source_path, r.reason FROM ingest_rejections r JOIN datasets d ON d.id = r.dataset_id "
                                      f"WHERE d.name = '{name}'"))
    return fields, samples + events, rejections


@pytest.mark.slow  # ~40 s (two Ray starts); CI runs it (.ci/run)
def test_ray_and_local_ingest_give_identical_samples_scores_and_ledger_rows(tmp_path: Path, curate_home: Path) -> None:
    _require_ray()
    built = builders.bad_inputs(tmp_path / "bad")  # odd files, rejections and good faces side by side
    url = f"sqlite:///{curate_home / 'curate.db'}"
    local = last_json(run_cli("ingest", "folder", str(built.root), "--dataset", "eng-local", "--workers", "1", "--json"))
    ray = last_json(run_cli("ingest", "folder", str(built.root), "--dataset", "eng-ray", "--engine", "ray", "--workers", "2", "--json"))
    assert ray["engine"] == "ray" and local["engine"] == "local"
    assert {k: ray[k] for k in ("seen", "ingested", "rejected", "quality_removed", "duplicates")} == \
        {k: local[k] for k in ("seen", "ingested", "rejected", "quality_removed", "duplicates")}
    a, b = _dataset_snapshot("eng-local", url), _dataset_snapshot("eng-ray", url)
    assert a[0].keys() == b[0].keys() and len(a[0]) == local["ingested"] > 0
    differing = [uid for uid in a[0] if a[0][uid] != b[0][uid]]
    assert not differing, f"FiftyOne fields differ for {len(differing)} samples, e.g. {a[0][differing[0]]} vs {b[0][differing[0]]}"
    assert a[1] == b[1] and a[2] == b[2] and len(a[2]) == sum(local["rejected"].values())


def test_a_bad_engine_or_an_unreachable_cluster_is_one_line_and_creates_nothing(tmp_path: Path, curate_home: Path) -> None:
    from curate.store.fo_store import fo

    built = builders.fer2013_folders(tmp_path / "fer")
    bad = run_cli("ingest", "fer2013", str(built.root), "--dataset", "eng-bad", "--engine", "spark", check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["error: --engine 'spark' is not one of local, ray"]
    unreachable = run_cli("ingest", "fer2013", str(built.root), "--dataset", "eng-unreachable", "--engine", "ray", "--ray-address",
                          "127.0.0.1:1", check=False)
    lines = [line for line in unreachable.stderr.splitlines() if line.strip()]
    assert unreachable.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: Ray at 127.0.0.1:1"), unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    # Refused before anything was written: no empty dataset left in FiftyOne or in the ledger.
    assert not {"eng-bad", "eng-unreachable"} & set(fo().list_datasets())
    ledger = curate_home / "curate.db"
    assert not ledger.exists() or sql_rows(f"sqlite:///{ledger}", "SELECT name FROM datasets") == []


@pytest.mark.slow  # ~1 min (two Ray starts); CI runs it (.ci/run)
def test_a_kill_9_during_a_ray_ingest_resumes_with_nothing_lost_or_duplicated(tmp_path: Path, curate_home: Path) -> None:
    _require_ray()
    built = builders.fer2013_folders(tmp_path / "fer", per_class=40)
    total = len(built.expected)
    url = f"sqlite:///{curate_home / 'curate.db'}"
    exe = Path(os.sys.executable).parent / "curate"
    args = [str(exe), "ingest", "fer2013", str(built.root), "--dataset", "ray-kill", "--engine", "ray", "--workers", "2", "--write-batch", "16"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    written = kill_group_once_rows(proc, url, 32)  # the command, the Ray it started and its actors
    assert 0 < written < total, f"kill landed at {written}/{total}: not mid-way"
    s = last_json(run_cli("ingest", "fer2013", str(built.root), "--dataset", "ray-kill", "--engine", "ray", "--workers", "2", "--json"))
    assert s["ingested"] == total and s["seen"] == total and s["rejected"] == {} and 0 < s["new"] < total
    from curate.store.fo_store import load_dataset

    paths = load_dataset("ray-kill", create=False).values("filepath")
    assert len(paths) == len(set(paths)) == total
    assert sql_rows(url, "SELECT count(*), count(DISTINCT uid) FROM samples") == [(total, total)]
    assert sql_rows(url, "SELECT count(*) FROM label_events") == [(total,)]


class _EnvironmentReader:
    """A pool worker that reports what its process can read of curate's secrets (module level: Ray imports it)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def run(self, _: int) -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in self.names}


@pytest.mark.slow  # ~45 s (a Ray start, then an unauthenticated client that Ray refuses after its connect timeout)
def test_a_local_ray_demands_its_run_token_and_none_of_its_processes_holds_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 31: Ray 2.60 binds its gRPC ports on every interface (no option narrows it), so the local Ray curate starts
    must refuse a client without the run's token, and neither its daemons nor its workers may hold curate's secrets."""
    _require_ray()
    import sys

    import ray

    from curate.parallel import worker_pool

    secrets = {"LABEL_STUDIO_API_KEY": "ls-token-4f9a1c", "CURATE_DB_URL": "postgresql://curate:pw-77d2e1@127.0.0.1/db"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with worker_pool(_EnvironmentReader, (tuple(secrets),), engine="ray", workers=1) as mapper:
        seen = [result for _, result in mapper([0, 1], lambda chunk: chunk)]
        assert seen == [dict.fromkeys(secrets)] * 2, f"a Ray worker read curate's secrets: {seen}"
        node = ray._private.worker._global_node
        daemons = [info.process.pid for infos in node.all_processes.values() for info in infos if info.process is not None]
        assert daemons, "no Ray daemon processes found to inspect"
        for pid in daemons:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            leaked = [name for name, value in secrets.items() if value.encode() in environ]
            assert not leaked, f"Ray process {pid} holds {leaked} in its environment"
            assert b"RAY_AUTH_MODE=token" in environ, f"Ray process {pid} runs without token authentication"
        intruder_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k not in secrets}
        intruder = subprocess.run(
            [sys.executable, "-c", "import logging, sys, ray; ray.init(address=sys.argv[1], logging_level=logging.ERROR); print('JOINED')",
             node.gcs_address], env=intruder_env, cwd="/", capture_output=True, text=True, timeout=180)
        assert "JOINED" not in intruder.stdout and intruder.returncode != 0, "a client without the run's token joined the cluster"
    assert not ray.is_initialized()
    assert all(os.environ.get(name) == value for name, value in secrets.items()), "the secrets were not put back in this process"
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ
