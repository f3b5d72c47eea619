"""`curate review pull`: bring human decisions back into the ledger, then mirror them into FiftyOne.

Idempotent and incremental: a task whose annotations carry the same signature as at the previous
pull is skipped, and every human label event has a dedup key built from the deciding annotation and
its edit time, so pulling twice, or two pulls at once, writes each decision exactly once. An edited
annotation has a new edit time: it becomes a new event whose ``previous_label`` is the old decision,
and the old event stays (the ledger is append-only).
"""

from __future__ import annotations

import time
from typing import Any

from curate.review import project as proj
from curate.review.decide import Decision, decide

__all__ = ["pull"]

#: The signature of a task nobody has answered: a fresh task is "unchanged" until someone annotates it.
_UNTOUCHED = decide([]).signature
_STATE_OF = {"done": "done", "skipped": "skipped", "conflict": "pending", "pending": "pending"}


def _annotation_dicts(task: Any, users: dict[int, str]) -> list[dict[str, Any]]:
    """Annotations as dicts, with the annotator's e-mail where the listing gives only a user id."""
    out = []
    for a in task.annotations or []:
        a = dict(a) if isinstance(a, dict) else a.dict()
        if isinstance(a.get("completed_by"), int):
            a["completed_by"] = {"id": a["completed_by"], "email": users.get(a["completed_by"])}
        out.append(a)
    return out


def _with_retry(fn, attempts: int = 8):  # noqa: ANN001, ANN202
    """Run a ledger transaction, retrying when SQLite reports a concurrent writer. Safe: every write is idempotent."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def pull(settings, dataset: str) -> dict[str, Any]:  # noqa: ANN001
    from curate.review.client import connect
    from curate.review.mirror import mirror_from_ledger
    from curate.review.push import adopt_orphans
    from curate.store.sql import ledger, session

    url = settings.database_url
    session.require_schema(url)
    with session.session_scope(url) as db:
        dataset_id = ledger.require_dataset(db, dataset).id
    server = connect(settings)
    project = server.find_project(proj.project_title(dataset))
    if project is None:
        server.close()
        return {"dataset": dataset, "server": server.url, "project": None, "tasks": 0, "changed": 0, "new_human_labels": 0}
    listed = list(server.iter_tasks(project))
    users = server.users()
    server.close()
    tasks = {t.id: _annotation_dicts(t, users) for t in listed}

    def write() -> dict[str, Any]:
        with session.session_scope(url) as db:
            adopted = adopt_orphans(listed, db, dataset_id, project)  # a push killed mid-way left these unrecorded
            return {"adopted_from_interrupted_push": adopted, **_apply(db, dataset_id, project, tasks)}

    counts = _with_retry(write)
    mirror_from_ledger(url, settings.home, dataset, dataset_id, project)
    return {"dataset": dataset, "server": server.url, "project": project, "tasks": len(tasks), **counts}


def _apply(db, dataset_id: int, project: int, tasks: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: ANN001
    from curate.review.records import known_tasks
    from curate.store.sql import ledger
    from curate.store.sql.models import ReviewResult, utcnow

    known = {t.ls_task_id: (t, r) for t, r in known_tasks(db, dataset_id, project).values()}
    current = ledger.current_labels(db, dataset_id)
    events: list[dict[str, Any]] = []
    counts = {"unchanged": 0, "changed": 0, "done": 0, "skipped": 0, "conflict": 0, "deleted_on_server": 0}
    now = utcnow()
    for task_id, (task, result) in known.items():
        if task_id not in tasks:
            if task.state != "cancelled":
                task.state, task.updated_at = "cancelled", now
                counts["deleted_on_server"] += 1
            continue
        decision: Decision = decide(tasks[task_id])
        if result is None:
            result = ReviewResult(review_task_id=task.id, conflict=False)
            db.add(result)
        if (result.annotations_sig or _UNTOUCHED) == decision.signature:
            counts["unchanged"] += 1
            continue
        counts["changed"] += 1
        if decision.state in counts:
            counts[decision.state] += 1
        if decision.state == "done" and decision.label != result.human_label:
            previous = current.get(task.sample_id, (None, None))[0]
            events.append({
                "sample_id": task.sample_id, "label": decision.label, "source": "human", "actor": ",".join(decision.voters)[:200],
                "created_at": decision.decided_at, "previous_label": previous, "ls_project_id": project, "ls_task_id": task_id,
                "ls_annotation_id": decision.annotation_id,
                "dedup_key": f"human:ls{project}:t{task_id}:a{decision.annotation_id}:{decision.decided_at.isoformat()}:{decision.label}",
            })
            result.human_label = decision.label
        task.state, task.updated_at = _STATE_OF[decision.state], now
        result.votes, result.agreement, result.conflict = decision.votes or None, decision.agreement, decision.state == "conflict"
        result.annotations_sig, result.pulled_at = decision.signature, now
    ledger.append_label_events(db, events)
    return {**counts, "new_human_labels": len(events), "label_changes": sum(1 for e in events if e["label"] != e["previous_label"])}
