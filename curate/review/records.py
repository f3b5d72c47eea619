"""The review side of the SQL ledger: which samples have tasks, and recording what the server confirmed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from curate.store.sql import ledger
from curate.store.sql.models import ReviewResult, ReviewTask, Sample, utcnow

__all__ = ["PushedTask", "sample_ids", "known_tasks", "record_pushed"]


@dataclass(frozen=True)
class PushedTask:
    """A task the server confirmed, with what the sample looked like when it was sent."""

    uid: str
    ls_task_id: int
    reason: str
    priority: float | None
    label_at_push: str | None
    model_label: str | None
    model_confidence: float | None


def sample_ids(db: Session, dataset_id: int) -> dict[str, int]:
    return dict(db.execute(select(Sample.uid, Sample.id).where(Sample.dataset_id == dataset_id)).tuples().all())


def known_tasks(db: Session, dataset_id: int, project: int) -> dict[str, tuple[ReviewTask, ReviewResult | None]]:
    """sample uid -> (its review task in ``project``, its result row)."""
    rows = db.execute(
        select(Sample.uid, ReviewTask, ReviewResult)
        .join(ReviewTask, ReviewTask.sample_id == Sample.id)
        .outerjoin(ReviewResult, ReviewResult.review_task_id == ReviewTask.id)
        .where(Sample.dataset_id == dataset_id, ReviewTask.ls_project_id == project)
    ).tuples().all()
    return {uid: (task, result) for uid, task, result in rows}


def record_pushed(db: Session, dataset_id: int, project: int, tasks: Sequence[PushedTask]) -> int:
    """Insert review_tasks (+ review_results) for confirmed tasks; a task already recorded is left alone.

    Returns how many were new."""
    if not tasks:
        return 0
    ids = sample_ids(db, dataset_id)
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {"sample_id": ids[t.uid], "ls_project_id": project, "ls_task_id": t.ls_task_id, "state": "pending", "reason": t.reason,
         "priority": t.priority, "created_at": now, "updated_at": now}
        for t in tasks if t.uid in ids
    ]
    before = set(db.scalars(select(ReviewTask.ls_task_id).where(ReviewTask.ls_task_id.in_([r["ls_task_id"] for r in rows]))))
    ledger.insert_ignore(db, ReviewTask.__table__, rows, None)  # either unique key may already hold it
    task_ids = dict(db.execute(select(ReviewTask.ls_task_id, ReviewTask.id).where(ReviewTask.ls_task_id.in_([r["ls_task_id"] for r in rows])))
                    .tuples().all())
    ledger.insert_ignore(db, ReviewResult.__table__, [
        {"review_task_id": task_ids[t.ls_task_id], "label_at_push": t.label_at_push, "model_label": t.model_label,
         "model_confidence": t.model_confidence, "conflict": False}
        for t in tasks if t.ls_task_id in task_ids
    ], ["review_task_id"])
    return len(set(task_ids) - before)
