"""`curate review status`: where review stands, from the ledger alone (no server needed).

Per class (the label at push time): pending, done, skipped, conflicts. Then the figures a labeling
lead asks for: how often humans changed the label, how often annotators agreed with each other
(tasks with two or more votes), how often they agreed with the model, each annotator's quality as
CROWDLAB estimated it at the latest pull, and how many faces they took out of the working set as
"not a face" or "unclear".
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from curate.taxonomy import REMOVAL_REASONS

__all__ = ["review_status"]


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def review_status(url: str, dataset: str) -> dict[str, Any]:
    from sqlalchemy import select

    from curate.store.sql import ledger, session
    from curate.store.sql.models import ReviewPull, ReviewResult, ReviewTask, Sample

    session.require_schema(url)
    with session.session_scope(url) as db:
        found = ledger.require_dataset(db, dataset)
        rows = db.execute(
            select(ReviewTask.state, ReviewResult.label_at_push, ReviewResult.model_label, ReviewResult.human_label,
                   ReviewResult.votes, ReviewResult.conflict)
            .join(Sample, Sample.id == ReviewTask.sample_id)
            .outerjoin(ReviewResult, ReviewResult.review_task_id == ReviewTask.id)
            .where(Sample.dataset_id == found.id)
        ).tuples().all()
        removed = ledger.current_removals(db, found.id)
        quality = db.scalars(select(ReviewPull.annotator_quality).where(ReviewPull.dataset_id == found.id, ReviewPull.annotator_quality.is_not(None))
                             .order_by(ReviewPull.id.desc()).limit(1)).first()
    per_class: dict[str, dict[str, int]] = defaultdict(lambda: {"pending": 0, "done": 0, "skipped": 0, "conflict": 0, "cancelled": 0})
    changed = decided = with_model = model_agrees = multi = unanimous = 0
    agreement_sum = 0.0
    for state, before, model, human, votes, conflict in rows:
        per_class[before or "unlabeled"]["conflict" if conflict else state] += 1
        if state == "done" and human:
            decided += 1
            changed += human != before
            if model:
                with_model += 1
                model_agrees += human == model
        n_votes = sum((votes or {}).values())
        if n_votes >= 2:
            multi += 1
            top = max(votes.values())
            agreement_sum += top / n_votes
            unanimous += top == n_votes
    totals = {k: sum(c[k] for c in per_class.values()) for k in ("pending", "done", "skipped", "conflict", "cancelled")}
    return {
        "dataset": dataset,
        "tasks": len(rows),
        **totals,
        "per_class": {k: dict(v) for k, v in sorted(per_class.items())},
        "human_changed_label": _share(changed, decided),
        "changed": changed,
        "annotator_agreement": round(agreement_sum / multi, 4) if multi else None,
        "unanimous_share": _share(unanimous, multi),
        "multi_annotated": multi,
        "agreement_with_model": _share(model_agrees, with_model),
        "annotator_quality": quality,  # CROWDLAB's estimate at the latest pull that could make one (two annotators on a task)
        "removed_by_review": {reason: sum(1 for r, _ in removed.values() if r == reason) for reason in REMOVAL_REASONS},
    }
