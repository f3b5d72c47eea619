"""The plain-data contract between the stores and the models: one ``Row`` per sample.

A row is (uid, path, label, split, box, group): label None = unlabeled, box in pixels or None,
group = subject id where the source has one. ``from_dataset`` builds rows from FiftyOne (paths,
splits, boxes, quality) and the SQL ledger (current labels: human beats dataset); the model code
needs nothing else, so it runs where neither store exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Row", "from_dataset"]


@dataclass(frozen=True)
class Row:
    uid: str
    path: str
    label: str | None
    split: str | None
    box: tuple[float, float, float, float] | None = None
    group: str | None = None  # e.g. the CK+ subject: rows of one group never straddle train and val


def from_dataset(dataset: str, url: str, curated_only: bool = True) -> list[Row]:
    """Rows of a dataset's quality-passing samples, labeled with the ledger's current label."""
    from curate.store import fo_store
    from curate.store.sql import ledger, session
    from curate.store.sql.models import Sample

    ds = fo_store.load_dataset(dataset, create=False)
    view = ds.load_saved_view("curated") if curated_only and ds.has_saved_view("curated") else ds.view()
    uids, paths, splits, boxes, widths, heights, subjects = view.values(
        ["sample_uid", "filepath", "split", "face.bounding_box", "metadata.width", "metadata.height", "subject"])
    with session.session_scope(url) as db:
        found = ledger.find_dataset(db, dataset)
        labels: dict[str, str] = {}
        if found is not None:
            by_id = ledger.current_labels(db, found.id)
            uid_of = dict(db.query(Sample.id, Sample.uid).filter(Sample.dataset_id == found.id).all())
            labels = {uid_of[sid]: label for sid, (label, _) in by_id.items() if sid in uid_of}
    rows = []
    for uid, path, split, box, w, h, subject in zip(uids, paths, splits, boxes, widths, heights, subjects):
        px = (box[0] * w, box[1] * h, box[2] * w, box[3] * h) if box and w and h else None
        rows.append(Row(uid, path, labels.get(uid), split, px, subject))
    return rows
