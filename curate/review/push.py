"""`curate review push`: send the samples most worth a human look to Label Studio.

Crash safety: tasks are created first and recorded second, batch by batch, so a review_tasks row
always names a task the server confirmed. A push killed between the two leaves tasks the ledger does
not know; the next push (or pull) adopts them by their ``sample_id`` instead of creating them again.
One push per dataset runs at a time (``review_lock``), so two pushes cannot race.
"""

from __future__ import annotations

import os
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from curate.exceptions import CurateError
from curate.review import project as proj
from curate.review.client import ReviewServer
from curate.review.lock import review_lock
from curate.review.records import PushedTask
from curate.review.routing import DEFAULT_STRATEGY, SECOND_OPINIONS, STRATEGIES, Candidate, Routed, route

__all__ = ["push", "adopt_orphans", "image_roots", "SECOND_OPINIONS"]

#: How faces reach ``annotators`` people: every task asks them all ("all"), or each asks one and ActiveLab reopens the
#: answered ones worth a second look, spending the push's tasks where they tell the most ("activelab").


def image_roots(dataset_root: str | None, home: Path, dataset: str) -> list[Path]:
    """Folders a dataset's images may live in: the ingested root, and the media folder of csv-only pixels."""
    roots = [Path(dataset_root)] if dataset_root else []
    roots.append(home / "media" / dataset)
    return [Path(os.path.realpath(r)) for r in roots]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _model_version(db, dataset_id: int) -> str:  # noqa: ANN001
    from sqlalchemy import select

    from curate.store.sql.models import ModelRun

    run = db.scalars(select(ModelRun).where(ModelRun.kind == "prelabel", ModelRun.dataset_id == dataset_id).order_by(ModelRun.id.desc())).first()
    return f"{run.architecture}@{(run.weights_hash or '')[:12]}" if run else "unknown"


def _candidates(dataset: str, current: dict[str, str]) -> tuple[list[Candidate], dict[str, str]]:
    """(candidates from the curated view, uid -> filepath)."""
    from curate.store import fo_store

    ds = fo_store.load_dataset(dataset, create=False)
    schema = ds.get_field_schema()
    if "prelabel" not in schema and "label_issue" not in schema:
        raise CurateError(f"dataset {dataset!r}: no predictions to route by; run `curate prelabel` (and `curate errors`) first")
    view = ds.load_saved_view("curated") if ds.has_saved_view("curated") else ds.view()
    fields = ["sample_uid", "filepath", "prelabel.label", "prelabel.confidence", "label_issue", "label_quality"]
    present = [f for f in fields if f.split(".")[0] in schema]
    values = dict(zip(present, view.values(present)))
    n = len(values["sample_uid"])
    col = {f: values.get(f, [None] * n) for f in fields}
    candidates = [
        Candidate(uid, current.get(uid), model, conf, bool(issue), quality)
        for uid, model, conf, issue, quality in zip(col["sample_uid"], col["prelabel.label"], col["prelabel.confidence"], col["label_issue"],
                                                     col["label_quality"])
    ]
    return candidates, dict(zip(col["sample_uid"], col["filepath"]))


def adopt_orphans(server_tasks: Iterable[Any], db, dataset_id: int, project: int) -> int:  # noqa: ANN001
    """Record tasks that exist on the server but not in the ledger (a push killed mid-way). Returns the count."""
    from curate.review.records import known_tasks, record_pushed, sample_ids

    known_ids = {t.ls_task_id for t, _ in known_tasks(db, dataset_id, project).values()}
    ids = sample_ids(db, dataset_id)
    orphans = []
    for task in server_tasks:
        data = task.data if isinstance(task.data, dict) else {}
        uid = data.get("sample_id")
        # The server's copy is anyone's to edit: a sample_id that is no string (``["x"]`` raised in every push and pull,
        # issue 42) or names no face of the dataset is not ours to adopt.
        if task.id in known_ids or not isinstance(uid, str) or uid not in ids:
            continue
        prediction = (task.predictions or [None])[0]
        orphans.append(PushedTask(uid, task.id, _adopted_reason(data.get("reason")), None, _emotion_or_none(data.get("dataset_label")),
                                  _emotion_or_none(data.get("model_label")), _probability_or_none(getattr(prediction, "score", None))))
    return record_pushed(db, dataset_id, project, orphans)


# What adoption accepts from a task's data: the server's copy is not the ledger's to trust (anyone with the project's
# token can edit it), and one over-long value would break every later pull on PostgreSQL's String(50) columns.
_PUSH_REASONS = {"low_confidence", "label_issue", "low_confidence+label_issue", "label_issue+low_confidence"}


def _adopted_reason(value: Any) -> str:
    return value if isinstance(value, str) and value in _PUSH_REASONS else "adopted"


def _emotion_or_none(value: Any) -> str | None:
    from curate.taxonomy import EMOTIONS

    return value if isinstance(value, str) and value in EMOTIONS else None


def _probability_or_none(value: Any) -> float | None:
    import math

    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1 else None


def open_inside(path: Path, roots: list[Path]):  # noqa: ANN201
    """Open ``path`` for reading only if the file actually opened lies inside ``roots``.

    Screening resolved the path earlier; between then and now a component could have been swapped
    for a symlink. O_NOFOLLOW refuses a symlinked file, and the real path of the open descriptor
    (/proc/self/fd, Linux) catches a symlinked folder on the way."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise CurateError(f"{path}: not opened for upload ({exc.strerror}; replaced by a link after screening?)") from None
    try:
        real = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.isdir("/proc/self/fd") else Path(os.path.realpath(path))
    except OSError:
        real = Path(os.path.realpath(path))
    if not any(_inside(real, r) for r in roots):
        os.close(fd)
        raise CurateError(f"{path}: now resolves to {real}, outside the dataset's image roots; refused")
    return os.fdopen(fd, "rb")


def _screen(queue: list[Routed], filepaths: dict[str, str], roots: list[Path], limit: int | None) -> tuple[list[tuple[Routed, Path]], list[dict[str, str]]]:
    """(sendable items with their real paths, refusals). Real paths, so a symlink cannot smuggle a file out."""
    sendable: list[tuple[Routed, Path]] = []
    refused: list[dict[str, str]] = []
    for item in queue:
        if limit is not None and len(sendable) >= limit:
            break
        real = Path(os.path.realpath(filepaths[item.uid]))
        if not any(_inside(real, r) for r in roots):
            refused.append({"path": filepaths[item.uid], "reason": "outside_image_root"})
        elif not real.is_file():
            refused.append({"path": filepaths[item.uid], "reason": "missing_file"})
        else:
            sendable.append((item, real))
    return sendable, refused


class _ImageLinks:
    """The URL a task shows its face under: served in place when the server's local-files root covers it, else uploaded."""

    def __init__(self, server: ReviewServer, project: int, roots: list[Path], files_root: Path | None) -> None:
        self.server, self.project, self.roots, self.files_root = server, project, roots, files_root
        self.storages: set[Path] = set()
        self.counts = {"local_files": 0, "upload": 0}

    def _storage_for(self, real: Path) -> Path | None:
        """The local-files storage folder that serves ``real``, or None to upload it.

        Never wider than needed, and always strictly below the server's document root (Label Studio
        refuses a storage equal to it): the dataset's image root when it lies below the document root,
        else the image's top-level folder under it. An image directly in the document root is uploaded."""
        if self.files_root is None or not _inside(real, self.files_root):
            return None
        root = next((r for r in self.roots if _inside(real, r) and _inside(r, self.files_root) and r != self.files_root), None)
        if root is not None:
            return root
        parts = real.relative_to(self.files_root).parts
        return self.files_root / parts[0] if len(parts) > 1 else None

    def urls(self, batch: list[tuple[Routed, Path]]) -> dict[str, str]:
        urls: dict[str, str] = {}
        to_upload: dict[str, Path] = {}
        for item, real in batch:
            storage = self._storage_for(real)
            if storage is not None:
                if storage not in self.storages:
                    self.server.ensure_local_storage(self.project, storage)
                    self.storages.add(storage)
                urls[item.uid] = "/data/local-files/?d=" + urllib.parse.quote(real.relative_to(self.files_root).as_posix())
            else:
                to_upload[item.uid] = real
        if to_upload:
            urls.update(self.server.upload(self.project, to_upload, open_file=lambda p: open_inside(p, self.roots)))
        self.counts["local_files"] += len(batch) - len(to_upload)
        self.counts["upload"] += len(to_upload)
        return urls


def ensure_project(server: ReviewServer, dataset: str) -> tuple[int, bool]:
    title = proj.project_title(dataset)
    found = server.find_project(title)
    if found is not None:
        server.ensure_label_config(found, proj.label_config())
        return found, False
    description = (f"Review of dataset {dataset!r}: pick the emotion shown (keys 1-8), or 'not a face' (9) or 'unclear' (0): "
                   "those faces leave the working set. The model's guess is pre-selected.")
    return server.create_project(title, proj.label_config(), description), True


def _under_asked(known: dict[str, tuple[Any, Any]], annotators: int) -> dict[int, tuple[str, dict[str, str]]]:
    """{task: (uid, answers)} for the answered tasks with fewer than ``annotators`` emotion answers: ActiveLab's pool."""
    from curate.taxonomy import EMOTIONS

    return {task.ls_task_id: (uid, dict(result.answers)) for uid, (task, result) in known.items()
            if task.state == "done" and result is not None and result.answers
            and sum(a in EMOTIONS for a in result.answers.values()) < annotators}


def _second_opinions(dataset: str, sendable: list[tuple[Routed, Path]], limit: int | None,
                     answered: dict[int, tuple[str, dict[str, str]]]) -> tuple[list[tuple[Routed, Path]], list[tuple[int, int]]]:
    """(the new faces to send, [(answered task, people to ask in all)] to reopen): ActiveLab over the under-asked
    ``answered`` tasks (:func:`_under_asked`) and the new faces this push would send (curate/review/consensus.py).
    A reopened task takes a new face's place within ``limit``; without a limit every new face still goes."""
    import numpy as np

    from curate.review.consensus import second_opinions
    from curate.review.teacher_view import teacher_probabilities
    from curate.taxonomy import EMOTIONS

    budget = limit if limit is not None else len(sendable)
    if not answered or budget <= 0:
        return sendable, []
    candidates = sendable[:budget]
    probs = teacher_probabilities(dataset, [uid for uid, _ in answered.values()] + [item.uid for item, _ in candidates])
    new = [probs[item.uid] for item, _ in candidates if item.uid in probs]
    picks = second_opinions({t: a for t, (_, a) in answered.items()}, {t: probs[u] for t, (u, _) in answered.items() if u in probs},
                            np.stack(new) if new else np.zeros((0, len(EMOTIONS))), budget)
    keep = sendable[:budget - len(picks)] if limit is not None else sendable
    return keep, [(t, sum(a in EMOTIONS for a in answered[t][1].values()) + 1) for t in picks]


def _reopen(server: ReviewServer, url: str, project: int, reopen: list[tuple[int, int]]) -> None:
    """Reopen on the server first, then mark pending in the ledger (a pull would set a task back to done only when its
    answers change, and they will: the next person's answer is what was asked for)."""
    from sqlalchemy import select

    from curate.store.sql import session
    from curate.store.sql.models import ReviewTask, utcnow

    for task_id, people in reopen:
        server.reopen_task(task_id, people)
    with session.session_scope(url) as db:
        for task in db.scalars(select(ReviewTask).where(ReviewTask.ls_project_id == project, ReviewTask.ls_task_id.in_([t for t, _ in reopen]))):
            task.state, task.updated_at = "pending", utcnow()


def push(settings, dataset: str, threshold: float, limit: int | None, batch_size: int = 100,  # noqa: ANN001, PLR0913
         progress: Callable[[int], None] | None = None, annotators: int | None = None,
         routing: str = DEFAULT_STRATEGY, second_opinions: str = "all") -> dict[str, Any]:
    """Route, screen and send; ``annotators`` sets how many people label each face (Label Studio's overlap), ``routing``
    which faces go first (curate.review.routing), ``second_opinions`` whether every task asks them all or ActiveLab
    reopens the answered tasks worth another look (SECOND_OPINIONS)."""
    if routing not in STRATEGIES:
        raise CurateError(f"--routing {routing!r}: unknown; one of {', '.join(STRATEGIES)}")
    if second_opinions not in SECOND_OPINIONS:
        raise CurateError(f"--second-opinions {second_opinions!r}: unknown; one of {', '.join(SECOND_OPINIONS)}")
    adaptive = second_opinions == "activelab" and (annotators or 1) > 1
    from curate.review.client import connect
    from curate.review.mirror import mirror_from_ledger
    from curate.review.records import known_tasks, record_pushed, sample_ids
    from curate.store.sql import ledger, session

    url = settings.database_url
    session.require_schema(url)
    with session.session_scope(url) as db:
        found = ledger.require_dataset(db, dataset)
        dataset_id, dataset_root = found.id, found.root
        uid_of = {sid: uid for uid, sid in sample_ids(db, dataset_id).items()}
        current = {uid_of[sid]: label for sid, (label, _) in ledger.current_labels(db, dataset_id).items() if sid in uid_of}
        model_version = _model_version(db, dataset_id)
    candidates, filepaths = _candidates(dataset, current)
    from curate.errors.trust import dataset_probability_quality, warning

    trust = dataset_probability_quality(dataset, current)
    caution = warning(trust, "routing by them sends most faces to review") if trust else None
    server = connect(settings)
    with review_lock(settings.home, dataset):
        project, created = ensure_project(server, dataset)
        if annotators:
            server.set_overlap(project, 1 if adaptive else annotators)
        with session.session_scope(url) as db:
            adopted = adopt_orphans(server.iter_tasks(project), db, dataset_id, project)
            known = known_tasks(db, dataset_id, project)
            in_review = set(known)
            under_asked = _under_asked(known, annotators or 1) if adaptive else {}
        queue = route(candidates, threshold, exclude=in_review, limit=None, strategy=routing)
        roots = image_roots(dataset_root, settings.home, dataset)
        files_root = Path(os.path.realpath(server.endpoint.files_root)) if server.endpoint.files_root else None
        sendable, refused = _screen(queue, filepaths, roots, limit)
        reopen: list[tuple[int, int]] = []
        if adaptive:
            sendable, reopen = _second_opinions(dataset, sendable, limit, under_asked)
            if reopen:
                _reopen(server, url, project, reopen)
        by_candidate = {c.uid: c for c in candidates}
        images = _ImageLinks(server, project, roots, files_root)
        pushed: list[PushedTask] = []
        for start in range(0, len(sendable), batch_size):
            batch = sendable[start : start + batch_size]
            urls = images.urls(batch)
            payloads = []
            for item, _ in batch:
                c = by_candidate[item.uid]
                payloads.append(proj.task_payload(item.uid, urls[item.uid], c.label, c.model_label, c.confidence, item.reason, model_version))
            task_ids = server.import_tasks(project, payloads)
            confirmed = [PushedTask(item.uid, tid, item.reason, item.priority, by_candidate[item.uid].label, by_candidate[item.uid].model_label,
                                    by_candidate[item.uid].confidence) for (item, _), tid in zip(batch, task_ids)]
            with session.session_scope(url) as db:
                record_pushed(db, dataset_id, project, confirmed)
            pushed.extend(confirmed)
            if progress:
                progress(len(batch))
    server.close()
    mirror_from_ledger(url, settings.home, dataset, dataset_id, project)
    routed = [item for item, _ in sendable]
    return {
        "dataset": dataset, "server": server.url, "project": project, "project_created": created, "threshold": threshold, "routing": routing,
        "queued": len(queue), "already_in_review": len(in_review), "adopted_from_interrupted_push": adopted,
        "pushed": len(pushed), "left_in_queue": len(queue) - len(routed) - len(refused), "refused": refused,
        "second_opinions": second_opinions if annotators and annotators > 1 else None, "reopened": len(reopen),
        "reopened_tasks": [t for t, _ in reopen],
        "by_reason": dict(Counter(r.reason for r in routed).most_common()), "by_class": dict(Counter(r.group for r in routed).most_common()), "images": images.counts,
        "model_version": model_version, "probability_quality": trust, "warning": caution,
    }
