"""The SQL ledger: migrations up/down/up on SQLite and PostgreSQL, idempotent writes, current labels."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from curate.store.sql import ledger, session
from curate.store.sql.models import LabelEvent, LabelSource, ReviewTask

TABLES = {"datasets", "samples", "label_events", "review_tasks", "model_runs", "checkpoints", "workflow_runs", "review_removals"}


def _up_down_up(url: str) -> None:
    assert session.upgrade(url) == session.head_revision()
    assert TABLES <= set(session.table_names(url))
    _exercise_ledger(url)
    assert session.downgrade(url, "base") is None
    assert not TABLES & set(session.table_names(url))
    assert session.upgrade(url) == session.head_revision()
    _exercise_ledger(url)


def _exercise_ledger(url: str) -> None:
    """Write through every idempotency key and read the current-label view."""
    with session.session_scope(url) as db:
        ds = ledger.get_or_create_dataset(db, "mini", "folder", "/data")
        assert ledger.get_or_create_dataset(db, "mini").id == ds.id
        rows = [{"uid": ledger.sample_uid("h1", "a.jpg"), "content_hash": "h1", "source_path": "a.jpg", "split": "train"}]
        ids = ledger.register_samples(db, ds.id, rows)
        assert ledger.register_samples(db, ds.id, rows) == ids  # repeated: same id, no new row
        sid = ids[rows[0]["uid"]]
        event = {"sample_id": sid, "label": "happy", "source": LabelSource.dataset, "actor": "mini", "dedup_key": f"dataset:{sid}"}
        ledger.append_label_events(db, [event])
        ledger.append_label_events(db, [event])
        assert db.scalar(select(func.count()).select_from(LabelEvent)) == 1
        assert ledger.current_labels(db, ds.id) == {sid: ("happy", "dataset")}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_up_down_up(backend: str, sqlite_url: str, request: pytest.FixtureRequest) -> None:
    url = sqlite_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    if backend == "postgres":
        session.downgrade(url, "base") if session.current_revision(url) else None
    _up_down_up(url)
    if backend == "postgres":
        session.downgrade(url, "base")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    session.upgrade(url)
    yield url
    if request.param == "postgres":
        session.downgrade(url, "base")


def _sample(db, name: str = "d") -> int:  # noqa: ANN001
    ds = ledger.get_or_create_dataset(db, name)
    uid = ledger.sample_uid("hash", "x.jpg")
    return ledger.register_samples(db, ds.id, [{"uid": uid, "content_hash": "hash", "source_path": "x.jpg"}])[uid]


def test_human_label_is_never_overwritten_by_a_model_label(ledger_url: str) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with session.session_scope(ledger_url) as db:
        sid = _sample(db)
        ds_id = ledger.find_dataset(db, "d").id
        ledger.append_label_events(db, [
            {"sample_id": sid, "label": "fear", "source": "dataset", "actor": "d", "created_at": t0, "dedup_key": "ds"},
            {"sample_id": sid, "label": "surprise", "source": "human", "actor": "ann@x", "created_at": t0 + dt.timedelta(hours=1),
             "previous_label": "fear", "dedup_key": "h1"},
            # A newer model prediction and a newer dataset re-import must not displace the human label.
            {"sample_id": sid, "label": "anger", "source": "model", "actor": "run:1", "confidence": 0.99,
             "created_at": t0 + dt.timedelta(hours=2), "dedup_key": "m1"},
            {"sample_id": sid, "label": "sad", "source": "dataset", "actor": "d", "created_at": t0 + dt.timedelta(hours=3), "dedup_key": "ds2"},
        ])
        assert ledger.current_labels(db, ds_id) == {sid: ("surprise", "human")}
        # A later human edit wins over the earlier human label.
        ledger.append_label_events(db, [{"sample_id": sid, "label": "happy", "source": "human", "actor": "ann@x",
                                         "created_at": t0 + dt.timedelta(hours=4), "dedup_key": "h2"}])
        assert ledger.current_labels(db, ds_id) == {sid: ("happy", "human")}


def test_model_label_alone_is_not_a_current_label(ledger_url: str) -> None:
    with session.session_scope(ledger_url) as db:
        sid = _sample(db, "m")
        ledger.append_label_events(db, [{"sample_id": sid, "label": "anger", "source": "model", "actor": "run:1", "dedup_key": "m"}])
        assert ledger.current_labels(db, ledger.find_dataset(db, "m").id) == {}


def test_label_events_are_append_only(ledger_url: str) -> None:
    with session.session_scope(ledger_url) as db:
        sid = _sample(db, "a")
        ledger.append_label_events(db, [{"sample_id": sid, "label": "sad", "source": "dataset", "actor": "a", "dedup_key": "k"}])
    for statement in ("UPDATE label_events SET label = 'happy'", "DELETE FROM label_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            with session.session_scope(ledger_url) as db:
                db.execute(text(statement))
    # Issue 31: the statements that slip past row triggers. SQLite's REPLACE deletes the old row without firing
    # DELETE triggers; PostgreSQL's TRUNCATE fires no row triggers at all.
    with session.session_scope(ledger_url) as db:
        before = db.execute(text("SELECT id, label, source, actor FROM label_events")).all()
    if ledger_url.startswith("sqlite"):
        replace_key = ("INSERT OR REPLACE INTO label_events (sample_id, label, source, actor, dedup_key, created_at) "
                       "SELECT sample_id, 'happy', 'human', 'mallory', dedup_key, created_at FROM label_events")
        with session.session_scope(ledger_url) as db:  # skipped: the recorded event stays as it was
            db.execute(text(replace_key))
        replace_id = ("INSERT OR REPLACE INTO label_events (id, sample_id, label, source, actor, dedup_key, created_at) "
                      "SELECT id, sample_id, 'happy', 'human', 'mallory', 'other-key', created_at FROM label_events")
        with pytest.raises(DBAPIError, match="append-only"):
            with session.session_scope(ledger_url) as db:
                db.execute(text(replace_id))
    else:
        with pytest.raises(DBAPIError, match="append-only"):
            with session.session_scope(ledger_url) as db:
                db.execute(text("TRUNCATE label_events CASCADE"))
    with session.session_scope(ledger_url) as db:
        assert db.execute(text("SELECT id, label, source, actor FROM label_events")).all() == before
        ledger.append_label_events(db, [{"sample_id": sid, "label": "sad", "source": "dataset", "actor": "a", "dedup_key": "k"},
                                        {"sample_id": sid, "label": "fear", "source": "human", "actor": "b", "dedup_key": "k2"}])
        assert [r[1] for r in db.execute(text("SELECT id, label FROM label_events ORDER BY id"))] == ["sad", "fear"], \
            "curate's own idempotent append broke"


def test_review_removals_are_append_only_and_the_newest_row_per_face_is_its_state(ledger_url: str) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with session.session_scope(ledger_url) as db:
        sid = _sample(db, "rm")
        other = ledger.register_samples(db, ledger.find_dataset(db, "rm").id, [{"uid": "u2", "content_hash": "h2", "source_path": "y.jpg"}])["u2"]
        removed = {"sample_id": sid, "removed": True, "reason": "not_a_face", "actor": "ann@x", "created_at": t0, "dedup_key": "r1"}
        ledger.append_removals(db, [removed, removed | {"sample_id": other, "reason": "unclear", "dedup_key": "r2"}])
        ledger.append_removals(db, [removed])  # a repeated pull: no new row
        dataset_id = ledger.find_dataset(db, "rm").id
        assert ledger.current_removals(db, dataset_id) == {sid: ("not_a_face", "ann@x"), other: ("unclear", "ann@x")}
        ledger.append_removals(db, [{"sample_id": sid, "removed": False, "reason": None, "actor": "ann@x",
                                     "created_at": t0 + dt.timedelta(minutes=1), "dedup_key": "r3"}])
        assert ledger.current_removals(db, dataset_id) == {other: ("unclear", "ann@x")}, "a changed mind brings the face back"
        assert db.scalar(text("SELECT COUNT(*) FROM review_removals")) == 3
    statements = ["UPDATE review_removals SET reason = 'unclear'", "DELETE FROM review_removals"]
    statements.append("TRUNCATE review_removals" if ledger_url.startswith("postgresql") else
                      "INSERT OR REPLACE INTO review_removals (id, sample_id, removed, actor, created_at, dedup_key) "
                      "SELECT id, sample_id, 0, 'mallory', created_at, 'other' FROM review_removals")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            with session.session_scope(ledger_url) as db:
                db.execute(text(statement))
    with session.session_scope(ledger_url) as db:
        assert db.scalar(text("SELECT COUNT(*) FROM review_removals")) == 3


def test_review_task_state_is_constrained(ledger_url: str) -> None:
    with pytest.raises(IntegrityError):
        with session.session_scope(ledger_url) as db:
            sid = _sample(db, "r")
            db.add(ReviewTask(sample_id=sid, ls_project_id=1, ls_task_id=10, state="lost"))
            db.flush()
    with session.session_scope(ledger_url) as db:  # and the same sample cannot be pushed twice to a project
        sid = _sample(db, "r2")
        db.add(ReviewTask(sample_id=sid, ls_project_id=1, ls_task_id=11, state="pending"))
    with pytest.raises(IntegrityError):
        with session.session_scope(ledger_url) as db:
            db.add(ReviewTask(sample_id=sid, ls_project_id=1, ls_task_id=12, state="pending"))
            db.flush()


def test_sample_uid_depends_on_content_and_path() -> None:
    assert ledger.sample_uid("h", "a.jpg") == ledger.sample_uid("h", "a.jpg")
    assert ledger.sample_uid("h", "a.jpg") != ledger.sample_uid("h", "b.jpg")
    assert ledger.sample_uid("h", "a.jpg") != ledger.sample_uid("g", "a.jpg")


def test_a_database_failure_mid_transaction_is_one_line_naming_the_ledger_and_writes_nothing(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    session.upgrade(url)
    with pytest.raises(session.DatabaseError) as caught:
        with session.session_scope(url) as db:
            ledger.get_or_create_dataset(db, "half-written", "folder", "/data")
            db.execute(text("SELECT * FROM a_table_another_version_dropped"))
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "ledger.db") in message and "no such table" in message
    assert caught.value.locked is False
    with session.session_scope(url) as db:
        assert ledger.find_dataset(db, "half-written") is None, "the failed transaction's first write was kept"


def test_pull_retries_only_a_locked_ledger() -> None:
    from curate.review.pull import _with_retry

    calls = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise session.DatabaseError("ledger: database is locked", locked=True)
        return "written"

    assert _with_retry(busy_twice) == "written" and len(calls) == 3
    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise session.DatabaseError("ledger: no such table: samples")

    with pytest.raises(session.DatabaseError, match="no such table"):
        _with_retry(broken)
    assert len(calls) == 1, "a broken ledger is not retried"
