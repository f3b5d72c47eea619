"""The plain-data contract between the stores and the models: one ``Row`` per sample.

A row is (uid, path, label, split, box, group): label None = unlabeled, box in pixels or None,
group = subject id where the source has one. ``from_dataset`` builds rows from FiftyOne (paths,
splits, boxes, quality) and the SQL ledger (current labels: human beats dataset); the model code
needs nothing else, so it runs where neither store exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Row", "from_dataset", "write_manifest", "read_manifest", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = ("path", "label", "split", "sample_uid", "box", "group")


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


def write_manifest(rows: list[Row], path, relative_to=None) -> int:  # noqa: ANN001
    """Rows as CSV (path, label, split, sample_uid, box, group), written atomically; returns the count.

    With ``relative_to`` paths are written relative to that folder, so the manifest and the image
    folder can move together to another machine (a GPU box without FiftyOne or SQL)."""
    import csv
    import io
    import os
    from pathlib import Path

    from curate.models.checkpoint import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(MANIFEST_COLUMNS)
    for r in rows:
        shown = os.path.relpath(r.path, relative_to) if relative_to else r.path
        box = " ".join(f"{v:g}" for v in r.box) if r.box else ""
        writer.writerow([shown, r.label or "", r.split or "", r.uid, box, r.group or ""])
    atomic_write_bytes(Path(path), buf.getvalue().encode())
    return len(rows)


def read_manifest(path, root=None) -> list[Row]:  # noqa: ANN001
    """Rows from a manifest CSV; relative paths are resolved against ``root`` (default: the manifest's folder)."""
    import csv
    from pathlib import Path

    from curate.exceptions import CurateError

    path = Path(path)
    base = Path(root) if root else path.parent
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(MANIFEST_COLUMNS[:4]) - set(reader.fieldnames or [])
        if missing:
            raise CurateError(f"{path}: not a curate manifest (missing columns {', '.join(sorted(missing))})")
        rows = []
        for line_no, rec in enumerate(reader, start=2):
            try:
                box = tuple(float(v) for v in rec["box"].split()) if rec.get("box") else None
            except ValueError:
                raise CurateError(f"{path}:{line_no}: box {rec['box']!r} is not four numbers") from None
            p = Path(rec["path"])
            rows.append(Row(rec["sample_uid"], str(p if p.is_absolute() else base / p), rec["label"] or None, rec["split"] or None,
                            box, rec.get("group") or None))  # type: ignore[arg-type]
    return rows
