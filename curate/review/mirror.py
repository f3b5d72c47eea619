"""FiftyOne mirrors the review outcome so people can browse it; SQL stays the truth.

Fields: ``review_status`` (pending, done, skipped, conflict), ``reviewed`` (a human decided the
label), ``review_agreement`` (share of annotators who chose the decided label), ``review_conflict``
(annotators tied), ``review_removed`` (``not_a_face`` or ``unclear`` when a reviewer's answer took the face out of
the working set) and ``label`` (the current label, rebuilt from the ledger). Saved views:
``to_review``, ``reviewed``, ``review_conflicts``, ``relabeled`` (humans changed the label), and through
fo_store.ensure_views ``not_a_face`` and ``unclear``, which ``curated`` leaves out.

No field here may contain ``_state``: FiftyOne 1.22 takes any saved view whose stages contain that
substring for a generated view, and overwriting it marks the *dataset* non-persistent, so it is
deleted when the database next shuts down (``_handle_delete_generated_saved_view``). Hence
``review_status``, and a test that re-saves the views and checks the dataset is still persistent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from curate.exceptions import CurateError
from curate.review.lock import review_lock

__all__ = ["mirror_states", "mirror_from_ledger", "REVIEW_FIELDS"]

REVIEW_FIELDS = {"review_status": "string", "reviewed": "bool", "review_agreement": "float", "review_conflict": "bool", "label_before_review": "string",
                 "review_removed": "string"}


def _declare(ds) -> None:  # noqa: ANN001
    import fiftyone as fo

    kinds = {"string": fo.StringField, "bool": fo.BooleanField, "float": fo.FloatField}
    schema = ds.get_field_schema()
    for name, kind in REVIEW_FIELDS.items():
        if name not in schema:
            ds.add_sample_field(name, kinds[kind])


def mirror_states(dataset: str, updates: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str] | None = None) -> None:
    """Set review fields per sample uid (and ``label`` for ``labels``), then refresh the saved views."""
    from curate.store import fo_store

    ds = fo_store.load_dataset(dataset, create=False)  # first: fo_store sets FiftyOne's quiet settings before the import
    from fiftyone import ViewField as F

    _declare(ds)
    existing = set(ds.distinct("sample_uid"))
    fields = sorted({f for u in updates.values() for f in u})
    for name in fields:
        values = {uid: u[name] for uid, u in updates.items() if name in u and uid in existing}
        if values:
            ds.set_values(name, values, key_field="sample_uid")
    if labels:
        f = fo_store.fo()
        ds.set_values("label", {uid: f.Classification(label=l) for uid, l in labels.items() if uid in existing}, key_field="sample_uid")
    ds.save_view("to_review", ds.match(F("review_status").is_in(["pending", "conflict"])), overwrite=True)
    ds.save_view("reviewed", ds.match(F("reviewed") == True), overwrite=True)  # noqa: E712
    ds.save_view("review_conflicts", ds.match(F("review_conflict") == True), overwrite=True)  # noqa: E712
    ds.save_view("relabeled", ds.match((F("reviewed") == True) & (F("label.label") != F("label_before_review"))), overwrite=True)  # noqa: E712
    if ds.info.get("curate_views") != fo_store.VIEWS_VERSION:  # a dataset from before `curated` knew review_removed
        fo_store.ensure_views(ds)


def mirror_from_ledger(url: str, home: Path, dataset: str, dataset_id: int, project: int) -> None:
    """Rebuild every reviewed sample's FiftyOne fields from the ledger, so FiftyOne converges even after a crash."""
    from curate.review.records import known_tasks
    from curate.store.sql import ledger, session

    with session.session_scope(url) as db:
        known = known_tasks(db, dataset_id, project)
        current = ledger.current_labels(db, dataset_id)
        removed = ledger.current_removals(db, dataset_id)
        updates: dict[str, dict[str, Any]] = {}
        labels: dict[str, str] = {}
        for uid, (task, result) in known.items():
            conflict = bool(result and result.conflict)
            updates[uid] = {"review_status": "conflict" if conflict else task.state,
                            "reviewed": bool(result and result.human_label), "review_conflict": conflict,
                            "review_agreement": result.agreement if result else None,
                            "label_before_review": result.label_at_push if result else None,
                            "review_removed": removed[task.sample_id][0] if task.sample_id in removed else None}
            label, source = current.get(task.sample_id, (None, None))
            if source == "human" and label:
                labels[uid] = label
    try:
        with review_lock(home, dataset):
            mirror_states(dataset, updates, labels)
    except CurateError as exc:  # the FiftyOne dataset is gone: SQL still holds everything, and the next run mirrors it again
        raise CurateError(f"dataset {dataset!r}: the ledger is updated but FiftyOne was not ({exc})") from None
