"""`curate review pull`: bring human decisions back into the ledger, then mirror them into FiftyOne.

Idempotent and incremental: only tasks the server updated since the previous pull are listed, a
listed task whose annotations carry the same signature as before is skipped, and every human label event has a dedup key built from the deciding annotation and
its edit time, so pulling twice, or two pulls at once, writes each decision exactly once. An edited
annotation has a new edit time: it becomes a new event whose ``previous_label`` is the old decision,
and the old event stays (the ledger is append-only).

A decision of "not a face" or "unclear" is no label: it appends a ``review_removals`` row (reviewer,
reason, task), the FiftyOne mirror takes the face out of the ``curated`` working set, and a later
emotion for the same task appends the row that brings it back.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from curate.review import project as proj
from curate.review.decide import Decision, decide
from curate.taxonomy import REMOVAL_REASONS

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
    from curate.store.sql.session import DatabaseError

    for attempt in range(attempts):
        try:
            return fn()
        except DatabaseError as exc:
            if not exc.locked or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable: the last attempt re-raises")


def pull(settings, dataset: str, full: bool = False) -> dict[str, Any]:  # noqa: ANN001
    """Record new decisions. Incremental: only tasks the server updated since the previous pull are listed;
    ``full`` lists every task, which also notices tasks deleted on the server."""
    from curate.review.client import connect
    from curate.review.mirror import mirror_from_ledger
    from curate.review.push import adopt_orphans
    from curate.review.teacher_view import teacher_probabilities
    from curate.store.sql import ledger, session

    url = settings.database_url
    session.require_schema(url)
    with session.session_scope(url) as db:
        dataset_id = ledger.require_dataset(db, dataset).id
    server = connect(settings)
    project = server.find_project(proj.project_title(dataset))
    if project is None:
        server.close()
        return {"dataset": dataset, "server": server.url, "project": None, "listed": 0, "changed": 0, "new_human_labels": 0}
    since = None if full else _watermark(url, dataset_id, project)
    listed_from = server.server_time()
    listed = list(server.iter_tasks(project, updated_after=since))
    users = server.users()
    server.close()
    tasks = {t.id: _annotation_dicts(t, users) for t in listed}

    def write() -> dict[str, Any]:
        from curate.store.sql.models import ReviewPull

        with session.session_scope(url) as db:
            adopted = adopt_orphans(listed, db, dataset_id, project)  # a push killed mid-way left these unrecorded
            counts = _apply(db, dataset_id, project, tasks, complete=since is None, probs_for=lambda uids: teacher_probabilities(dataset, uids))
            # In the same transaction: a pull that dies before committing does not move the watermark.
            db.add(ReviewPull(dataset_id=dataset_id, ls_project_id=project, listed_from=listed_from, full=since is None, listed=len(listed),
                              changed=counts["changed"], new_human_labels=counts["new_human_labels"],
                              annotator_quality=counts["annotator_quality"]))
            return {"adopted_from_interrupted_push": adopted, **counts}

    counts = _with_retry(write)
    mirror_from_ledger(url, settings.home, dataset, dataset_id, project)
    return {"dataset": dataset, "server": server.url, "project": project, "incremental_since": since.isoformat() if since else None,
            "listed": len(listed), **counts}


def _watermark(url: str, dataset_id: int, project: int) -> dt.datetime | None:
    """Where the next listing starts: when the newest completed pull began listing, by the server's clock,
    less two seconds (its Date header has whole seconds). None: no pull yet, list everything."""
    from sqlalchemy import func, select

    from curate.store.sql import session
    from curate.store.sql.models import ReviewPull

    with session.session_scope(url) as db:
        newest = db.scalar(select(func.max(ReviewPull.listed_from)).where(ReviewPull.dataset_id == dataset_id, ReviewPull.ls_project_id == project))
    if newest is None:
        return None
    if newest.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        newest = newest.replace(tzinfo=dt.timezone.utc)
    return newest - dt.timedelta(seconds=2)


def _apply(db, dataset_id: int, project: int, tasks: dict[int, list[dict[str, Any]]], complete: bool,  # noqa: ANN001
           probs_for: Callable[[list[str]], dict[str, Any]] = lambda uids: {}) -> dict[str, Any]:
    """Apply the listed tasks' decisions; ``complete`` (every task was listed) lets a missing task count as deleted.

    Three steps: each changed task's majority (curate/review/decide.py); CROWDLAB over every task's answers with the
    teacher's probabilities from ``probs_for`` (curate/review/consensus.py; annotator quality comes from all shared
    tasks, so an unchanged task's consensus may move too); then the label events, removals and states."""
    from curate.review.records import known_tasks
    from curate.store.sql.models import utcnow

    known = {t.ls_task_id: (uid, t, r) for uid, (t, r) in known_tasks(db, dataset_id, project).items()}
    now = utcnow()
    decided, counts = _decide_changed(db, known, tasks, complete, now)
    crowd = _consensus(known, probs_for)
    events, removals = _record(db, dataset_id, project, known, decided, crowd, now)
    return {**counts, "new_human_labels": len(events), "label_changes": sum(1 for e in events if e["label"] != e["previous_label"]),
            "decided_by_crowdlab": sum(1 for e in events if e["actor"].startswith("crowdlab:")),
            "annotator_quality": crowd.annotator_quality if crowd else None,
            "removed": {reason: sum(1 for r in removals if r["reason"] == reason) for reason in REMOVAL_REASONS},
            "returned_to_working_set": sum(1 for r in removals if not r["removed"])}


def _decide_changed(db, known: dict[int, tuple[str, Any, Any]], tasks: dict[int, list[dict[str, Any]]], complete: bool,  # noqa: ANN001
                    now: dt.datetime) -> tuple[dict[int, Decision], dict[str, int]]:
    """Step 1: the majority decision of every listed task whose answers changed since the last pull (a task missing
    from a ``complete`` listing is cancelled); each gets a result row to hold its answers."""
    from curate.store.sql.models import ReviewResult

    counts = {"unchanged": 0, "changed": 0, "done": 0, "skipped": 0, "conflict": 0, "deleted_on_server": 0}
    decided: dict[int, Decision] = {}
    for task_id, (uid, task, result) in known.items():
        if task_id not in tasks:
            if not complete:
                counts["unchanged"] += 1
            elif task.state != "cancelled":
                task.state, task.updated_at = "cancelled", now
                counts["deleted_on_server"] += 1
            continue
        decision: Decision = decide(tasks[task_id])
        if result is None:
            result = ReviewResult(review_task_id=task.id, conflict=False)
            db.add(result)
            known[task_id] = (uid, task, result)
        if (result.annotations_sig or _UNTOUCHED) == decision.signature:
            counts["unchanged"] += 1
            continue
        counts["changed"] += 1
        if decision.state in counts:
            counts[decision.state] += 1
        decided[task_id] = decision
        result.answers = dict(decision.answers) or None
    return decided, counts


def _record(db, dataset_id: int, project: int, known: dict[int, tuple[str, Any, Any]], decided: dict[int, Decision],  # noqa: ANN001
            crowd: Any, now: dt.datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Step 3: task states, removals and label events (appended to the ledger; also returned for the counts). A face
    gets at most one label event per pull: CROWDLAB's label where it differs from the majority, else the majority's."""
    from curate.store.sql import ledger

    current = ledger.current_labels(db, dataset_id)
    removed: dict[int, tuple[str, str] | None] = dict(ledger.current_removals(db, dataset_id))
    events: list[dict[str, Any]] = []
    removals: list[dict[str, Any]] = []
    for task_id, (_, task, result) in known.items():
        decision = decided.get(task_id)
        crowd_label = crowd.labels.get(task_id) if crowd else None
        if result is not None and crowd is not None:
            result.consensus_quality = crowd.quality.get(task_id)
        if decision is not None:
            change = _removal_change(decision, project, task_id, task.sample_id, removed.get(task.sample_id))
            if change is not None:
                removals.append(change)
                removed[task.sample_id] = (change["reason"], change["actor"]) if change["removed"] else None
                if change["removed"]:
                    result.human_label = None  # the latest decision is no label; an emotion chosen later is a new event
            task.state, task.updated_at = _STATE_OF[decision.state], now
            result.votes, result.agreement, result.conflict = decision.votes or None, decision.agreement, decision.state == "conflict"
            result.annotations_sig, result.pulled_at = decision.signature, now
        decided_removal = decision.removal if decision is not None else (result is not None and not result.conflict and not result.human_label)
        majority = decision.label if decision is not None and decision.state == "done" else None
        previous = current.get(task.sample_id, (None, None))[0]
        if crowd_label is not None and crowd_label != majority and not decided_removal and crowd_label != result.human_label:
            # CROWDLAB decides a tie, overrules a majority, or moves an earlier consensus: one event, its own actor
            events.append(_crowdlab_event(task, result, crowd_label, previous, project, now))
            result.human_label = crowd_label
            task.state, task.updated_at = "done", now  # a tie stays flagged (result.conflict) but is decided
        elif majority is not None and majority != result.human_label:
            events.append(_majority_event(task, decision, previous, project))
            result.human_label = decision.label
    ledger.append_label_events(db, events)
    ledger.append_removals(db, removals)
    return events, removals


def _crowdlab_event(task: Any, result: Any, label: str, previous: str | None, project: int, now: dt.datetime) -> dict[str, Any]:
    """The label event of a CROWDLAB decision: its actor names the annotators it weighed; keyed by their answers."""
    return {
        "sample_id": task.sample_id, "label": label, "source": "human", "created_at": now, "previous_label": previous,
        "actor": ("crowdlab:" + ",".join(sorted(result.answers or {})))[:200], "ls_project_id": project, "ls_task_id": task.ls_task_id,
        "ls_annotation_id": None,
        "dedup_key": f"crowdlab:ls{project}:t{task.ls_task_id}:{result.annotations_sig}:{result.human_label}->{label}"[:200],
    }


def _majority_event(task: Any, decision: Decision, previous: str | None, project: int) -> dict[str, Any]:
    """The label event of a majority decision: its voters, their deciding annotation and when it was made."""
    return {
        "sample_id": task.sample_id, "label": decision.label, "source": "human", "actor": ",".join(decision.voters)[:200],
        "created_at": decision.decided_at, "previous_label": previous, "ls_project_id": project, "ls_task_id": task.ls_task_id,
        "ls_annotation_id": decision.annotation_id,
        "dedup_key": f"human:ls{project}:t{task.ls_task_id}:a{decision.annotation_id}:{decision.decided_at.isoformat()}:{decision.label}",
    }


def _consensus(known: dict[int, tuple[str, Any, Any]], probs_for: Callable[[list[str]], dict[str, Any]]):  # noqa: ANN202
    """CROWDLAB over every task answered by two or more annotators (curate/review/consensus.py), or None when it
    cannot run yet; the teacher's probabilities are read only then."""
    from curate.review.consensus import crowdlab

    answers = {task_id: dict(result.answers) for task_id, (_, _, result) in known.items() if result is not None and result.answers}
    if not any(len(a) >= 2 for a in answers.values()):
        return None
    uid_of = {task_id: known[task_id][0] for task_id in answers}
    probs = probs_for(sorted(set(uid_of.values())))
    return crowdlab(answers, {task_id: probs[uid] for task_id, uid in uid_of.items() if uid in probs})


def _removal_change(decision: Decision, project: int, task_id: int, sample_id: int, was_removed: tuple[str, str] | None) -> dict[str, Any] | None:
    """The review_removals row a decision adds: the face taken out ("not a face", "unclear"), brought back (an emotion
    after a removal), or None (nothing changes for the working set)."""
    if decision.state != "done":
        return None
    takes_out = decision.removal is not None and (was_removed is None or was_removed[0] != decision.removal)
    brings_back = decision.label is not None and was_removed is not None
    if not (takes_out or brings_back):
        return None
    key = f"ls{project}:t{task_id}:a{decision.annotation_id}:{decision.decided_at.isoformat() if decision.decided_at else ''}"
    return {"sample_id": sample_id, "removed": takes_out, "reason": decision.removal if takes_out else None,
            "actor": ",".join(decision.voters)[:200], "created_at": decision.decided_at, "ls_project_id": project, "ls_task_id": task_id,
            "ls_annotation_id": decision.annotation_id, "dedup_key": f"removed:{key}:{decision.removal}" if takes_out else f"returned:{key}"}
