"""Repository functions over the ledger. Every write that can be repeated is insert-or-ignore."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from curate.store.sql.models import (
    CurrentLabel,
    Dataset,
    IngestRejection,
    LabelEvent,
    LabelSource,
    ReviewRemoval,
    ReviewTask,
    Sample,
    utcnow,
)

__all__ = [
    "sample_uid",
    "get_or_create_dataset",
    "find_dataset",
    "require_dataset",
    "insert_ignore",
    "register_samples",
    "append_label_events",
    "current_labels",
    "append_removals",
    "current_removals",
    "record_rejections",
    "clear_rejections",
    "dataset_status",
]


def sample_uid(content_hash: str, source_path: str) -> str:
    """Stable sample identity: the same bytes at the same relative path are the same sample."""
    return hashlib.sha256(f"{content_hash}\0{source_path}".encode()).hexdigest()[:32]


def find_dataset(session: Session, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.name == name))


def require_dataset(session: Session, name: str) -> Dataset:
    """The dataset ``name``, or a one-line error saying how to create it."""
    from curate.exceptions import CurateError

    dataset = find_dataset(session, name)
    if dataset is None:
        raise CurateError(f"dataset {name!r} is not in the ledger; run `curate ingest ... --dataset {name}` first")
    return dataset


def get_or_create_dataset(session: Session, name: str, source_format: str | None = None, root: str | None = None) -> Dataset:
    insert_ignore(session, Dataset.__table__, [{"name": name, "source_format": source_format, "root": root}], ["name"])
    dataset = find_dataset(session, name)
    assert dataset is not None
    return dataset


def _dialect_insert(session: Session):  # noqa: ANN202
    """The INSERT construct with ON CONFLICT support for this session's backend."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends are tested
        raise NotImplementedError(f"ON CONFLICT is not implemented for {dialect}")
    return insert


def insert_ignore(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str] | None) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, for both SQLite and PostgreSQL (``conflict`` None: any unique constraint)."""
    if not rows:
        return
    stmt = _dialect_insert(session)(table)
    stmt = stmt.on_conflict_do_nothing() if conflict is None else stmt.on_conflict_do_nothing(index_elements=list(conflict))
    session.execute(stmt, list(rows))


def register_samples(session: Session, dataset_id: int, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert samples not yet known (by uid) and return uid -> samples.id for all of ``rows``."""
    insert_ignore(session, Sample.__table__, [{"dataset_id": dataset_id, **r} for r in rows], ["dataset_id", "uid"])
    uids = [r["uid"] for r in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(uids), 500):
        chunk = uids[start : start + 500]
        ids.update(session.execute(select(Sample.uid, Sample.id).where(Sample.dataset_id == dataset_id, Sample.uid.in_(chunk))).tuples().all())
    return ids


def append_label_events(session: Session, events: Iterable[Mapping[str, Any]]) -> None:
    """Append label events; an event whose ``dedup_key`` is already recorded is skipped."""
    rows = []
    for event in events:
        row = dict(event)
        row.setdefault("created_at", utcnow())
        source = row["source"]
        row["source"] = source.value if isinstance(source, LabelSource) else str(source)
        rows.append(row)
    insert_ignore(session, LabelEvent.__table__, rows, ["dedup_key"])


def record_rejections(session: Session, dataset_id: int, rejections: Sequence[tuple[str, str, str]]) -> None:
    """Upsert (path, reason, detail) rejections; a path that is later ingested is removed from the list."""
    if not rejections:
        return
    rows = [{"dataset_id": dataset_id, "source_path": p, "reason": r, "detail": d, "seen_at": utcnow()} for p, r, d in dict(
        (p, (p, r, d)) for p, r, d in rejections).values()]
    stmt = _dialect_insert(session)(IngestRejection.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dataset_id", "source_path"],
        set_={"reason": stmt.excluded.reason, "detail": stmt.excluded.detail, "seen_at": stmt.excluded.seen_at},
    )
    session.execute(stmt, rows)


def clear_rejections(session: Session, dataset_id: int, paths: Sequence[str]) -> None:
    for start in range(0, len(paths), 500):
        session.execute(
            delete(IngestRejection).where(IngestRejection.dataset_id == dataset_id, IngestRejection.source_path.in_(paths[start : start + 500]))
        )


def current_labels(session: Session, dataset_id: int) -> dict[int, tuple[str, str]]:
    """sample id -> (label, source) from the ``current_labels`` view: human beats dataset, model never counts."""
    stmt = (
        select(CurrentLabel.sample_id, CurrentLabel.label, CurrentLabel.source)
        .join(Sample, Sample.id == CurrentLabel.sample_id)
        .where(Sample.dataset_id == dataset_id)
    )
    return {sid: (label, source) for sid, label, source in session.execute(stmt)}


def append_removals(session: Session, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append review removals (or returns); a row whose ``dedup_key`` is already recorded is skipped."""
    insert_ignore(session, ReviewRemoval.__table__, [{"created_at": utcnow(), **r} for r in rows], ["dedup_key"])


def current_removals(session: Session, dataset_id: int) -> dict[int, tuple[str, str]]:
    """sample id -> (reason, reviewer) for every face a reviewer's latest word took out of the working set."""
    rows = session.execute(
        select(ReviewRemoval.sample_id, ReviewRemoval.removed, ReviewRemoval.reason, ReviewRemoval.actor)
        .join(Sample, Sample.id == ReviewRemoval.sample_id)
        .where(Sample.dataset_id == dataset_id)
        .order_by(ReviewRemoval.created_at, ReviewRemoval.id)
    ).tuples()
    state: dict[int, tuple[str, str] | None] = {}
    for sample_id, removed, reason, actor in rows:  # the newest row per sample wins
        state[sample_id] = (reason or "", actor) if removed else None
    return {sid: value for sid, value in state.items() if value is not None}


def dataset_status(session: Session, dataset: Dataset) -> dict[str, Any]:
    """Counts a person asks for first: samples per split, rejected, label sources, review states."""
    by_split = dict(
        session.execute(select(Sample.split, func.count()).where(Sample.dataset_id == dataset.id).group_by(Sample.split)).tuples().all()
    )
    rejected = session.scalar(
        select(func.count()).where(Sample.dataset_id == dataset.id, Sample.quality_rejected.is_not(None))
    )
    events = dict(
        session.execute(
            select(LabelEvent.source, func.count())
            .join(Sample, Sample.id == LabelEvent.sample_id)
            .where(Sample.dataset_id == dataset.id)
            .group_by(LabelEvent.source)
        ).tuples().all()
    )
    current = dict(
        session.execute(
            select(CurrentLabel.label, func.count())
            .join(Sample, Sample.id == CurrentLabel.sample_id)
            .where(Sample.dataset_id == dataset.id)
            .group_by(CurrentLabel.label)
        ).tuples().all()
    )
    reviews = dict(
        session.execute(
            select(ReviewTask.state, func.count())
            .join(Sample, Sample.id == ReviewTask.sample_id)
            .where(Sample.dataset_id == dataset.id)
            .group_by(ReviewTask.state)
        ).tuples().all()
    )
    return {
        "dataset": dataset.name,
        "format": dataset.source_format,
        "root": dataset.root,
        "samples": sum(by_split.values()),
        "by_split": {str(k): v for k, v in by_split.items()},
        "quality_rejected": rejected or 0,
        "label_events": {str(getattr(k, "value", k)): v for k, v in events.items()},
        "current_labels": current,
        "review_tasks": reviews,
    }
