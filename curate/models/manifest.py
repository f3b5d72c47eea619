"""The plain-data contract between the stores and the models: one ``Row`` per sample.

A row is (uid, path, label, split, box, group): label None = unlabeled, box in pixels or None,
group = subject id where the source has one. ``from_dataset`` builds rows from FiftyOne (paths,
splits, boxes, quality) and the SQL ledger (current labels: human beats dataset); the model code
needs nothing else, so it runs where neither store exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Row", "from_dataset", "training_rows", "split_rows", "write_manifest", "read_manifest", "MANIFEST_COLUMNS"]

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


def split_rows(rows: list[Row], seed: int, val_fraction: float = 0.1) -> tuple[list[Row], list[Row], list[Row]]:
    """(train, val, test) by the dataset's splits. When there is no val split one is carved from train:
    by whole subjects when rows carry one (CK+: the same person never sits on both sides), else stratified."""
    train = [r for r in rows if r.split in (None, "train")]
    val = [r for r in rows if r.split == "val"]
    test = [r for r in rows if r.split == "test"]
    if not val and any(r.group for r in train):
        import numpy as np

        groups = sorted({r.group or "" for r in train})
        rng = np.random.default_rng(seed)
        rng.shuffle(groups)
        n_val = max(1, round(len(groups) * val_fraction))
        held = set(groups[:n_val])
        return [r for r in train if (r.group or "") not in held], [r for r in train if (r.group or "") in held], test
    if not val and len(train) >= 10:
        from curate.models.oof import stratified_folds

        folds = stratified_folds([r.label for r in train], max(2, round(1 / val_fraction)), seed)
        val = [r for r, f in zip(train, folds) if f == 0]
        train = [r for r, f in zip(train, folds) if f != 0]
    return train, val, test


def training_rows(dataset: str, url: str, seed: int) -> tuple[list[Row], list[Row], list[Row]]:
    """(train, val, test) rows of quality-passing samples with a current label; refuses too few to train on."""
    from curate.exceptions import CurateError

    rows = [r for r in from_dataset(dataset, url, curated_only=True) if r.label is not None]
    if len(rows) < 4:
        raise CurateError(f"dataset {dataset!r}: only {len(rows)} labeled quality-passing samples; nothing to train on")
    return split_rows(rows, seed)


def write_manifest(rows: list[Row], path, relative_to=None) -> int:  # noqa: ANN001
    """Rows as CSV (path, label, split, sample_uid, box, group), written atomically; returns the count.

    With ``relative_to`` paths are written relative to that folder, so the manifest and the image
    folder can move together to another machine (a GPU box without FiftyOne or SQL)."""
    import csv
    import io
    import os
    from pathlib import Path

    from curate.files import atomic_write_bytes

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
