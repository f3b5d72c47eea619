"""What the report shows, read from the ledger (SQL) and FiftyOne: plain dicts, no HTML here."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

__all__ = ["class_counts", "removed_examples", "checkpoints", "shown_metrics", "fiftyone_sections", "current_labels_by_uid"]


def class_counts(db: Any, dataset_id: int) -> dict[str, dict[str, int]]:
    """Per class: every ingested face, the curated working set, and the current label after review."""
    from sqlalchemy import select

    from curate.store.sql import ledger
    from curate.store.sql.models import CurrentLabel, Sample

    counts: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"ingested": 0, "curated": 0, "current": 0})
    removed = ledger.current_removals(db, dataset_id)  # "not a face" / "unclear" answers leave the working set too
    rows = db.execute(select(Sample.id, Sample.source_label, Sample.quality_rejected, CurrentLabel.label)
                      .outerjoin(CurrentLabel, CurrentLabel.sample_id == Sample.id).where(Sample.dataset_id == dataset_id)).tuples()
    for sample_id, source, rejected, current in rows:
        source = _canonical(source)
        counts[source]["ingested"] += 1
        if not rejected and sample_id not in removed:
            counts[source]["curated"] += 1
            counts[current or "unlabeled"]["current"] += 1
    return {k: counts[k] for k in sorted(counts)}


def current_labels_by_uid(db: Any, dataset_id: int) -> dict[str, str]:
    """sample_uid -> current label (human beats dataset), the labels the teacher's out-of-fold probabilities are judged against."""
    from sqlalchemy import select

    from curate.store.sql import ledger
    from curate.store.sql.models import Sample

    uid_of = dict(db.execute(select(Sample.id, Sample.uid).where(Sample.dataset_id == dataset_id)).tuples().all())
    return {uid_of[sid]: label for sid, (label, _) in ledger.current_labels(db, dataset_id).items() if sid in uid_of}


def _canonical(raw: str | None) -> str:
    """The dataset's own label in the taxonomy's words ('angry' folder -> anger), as the current labels are."""
    from curate.taxonomy import canonical

    if not raw:
        return "unlabeled"
    try:
        return canonical(raw)
    except Exception:  # noqa: BLE001 - a label outside the taxonomy is shown as given
        return raw


def removed_examples(db: Any, dataset_id: int, reason: str, score: str, n: int) -> tuple[int, list[dict[str, Any]]]:
    """How many faces were removed for ``reason`` and the n with the highest score (the clearest cases)."""
    from sqlalchemy import func, select

    from curate.store.sql.models import Sample

    column = getattr(Sample, score)
    where = (Sample.dataset_id == dataset_id, Sample.quality_rejected.like(f"%{reason}%"))
    total = db.scalar(select(func.count()).select_from(Sample).where(*where)) or 0
    rows = db.execute(select(Sample.uid, Sample.source_label, column).where(*where).order_by(column.desc()).limit(n)).tuples()
    return total, [{"uid": uid, "caption": f"{label or '?'} · {score} {value:.2f}"} for uid, label, value in rows]


def checkpoints(db: Any, dataset_id: int) -> list[dict[str, Any]]:
    """Teacher checkpoints and the best checkpoint of each retrain, newest first, with their metrics."""
    from sqlalchemy import or_, select

    from curate.store.sql.models import Checkpoint, ModelRun

    rows = db.execute(select(Checkpoint, ModelRun.kind).join(ModelRun, ModelRun.id == Checkpoint.model_run_id)
                      .where(Checkpoint.dataset_id == dataset_id, or_(Checkpoint.is_best.is_(True), ModelRun.kind == "teacher-train"))
                      .order_by(Checkpoint.id.desc())).tuples().all()
    out = []
    for ckpt, kind in rows:
        metrics = ckpt.metrics or {}
        # A teacher stores {"val": ..., "test": ..., "ece": ...}; a retrain epoch its validation metrics flat.
        split = "test" if metrics.get("test") else "val"
        flat = (metrics.get(split) or {}) if ("val" in metrics or "test" in metrics) else metrics
        out.append({"path": ckpt.path, "name": Path(ckpt.path).parent.name + "/" + Path(ckpt.path).name, "kind": kind,
                    "arch": ckpt.architecture, "epoch": ckpt.epoch, "created": ckpt.created_at.strftime("%Y-%m-%d %H:%M"),
                    "split": split, **shown_metrics(flat, metrics.get("export")), "classes": _classes(ckpt.path, flat)})
    return out


def _number(value: Any) -> float | int | None:
    import math

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def shown_metrics(flat: dict[str, Any], export: Any) -> dict[str, Any]:
    """The figures the Models table shows, numbers only: a checkpoint's metrics may come from a sidecar made elsewhere
    (`curate teacher import`), and a string there (``"accuracy": "<script>..."``) must not reach the page (issue 42).
    Anything that is not a number is left out, and shows as n/a."""
    matrix = flat.get("confusion_matrix")
    if not (isinstance(matrix, list) and all(isinstance(r, list) and all(isinstance(_number(v), int) for v in r) for r in matrix)):
        matrix = None
    figures = {k: _number(flat.get(k)) for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece")}
    n = _number(flat.get("n"))
    kept = None
    if isinstance(export, dict):
        kept = {k: _number(v) for k, v in export.items() if k != "accuracy_split"}
        kept["accuracy_split"] = export.get("accuracy_split") if export.get("accuracy_split") in ("test", "val", "train", "all") else None
    return {**figures, "n": n if isinstance(n, int) else None, "confusion": matrix, "export": kept}


def _classes(path: str, metrics: dict[str, Any]) -> list[str] | None:
    if metrics.get("labels"):
        return list(metrics["labels"])
    try:
        from curate.models.checkpoint import read_sidecar

        return list(read_sidecar(Path(path)).get("classes") or []) or None
    except Exception:  # noqa: BLE001 - a moved checkpoint only loses its class names in the report
        return None


def fiftyone_sections(dataset: str, n: int) -> dict[str, Any]:
    """Duplicate/leakage groups and error clusters, from the fields ingest and `curate errors` wrote."""
    from curate.store import fo_store

    fo_store.fo()
    ds = fo_store.load_dataset(dataset, create=False)
    schema = ds.get_field_schema()
    fields = ["filepath", "split", "label.label", "sample_uid"]
    has = {name: name in schema for name in ("duplicate_group", "cross_split_duplicate", "error_cluster", "suggested_label",
                                             "checkpoint_pred")}
    fields += [name for name in ("duplicate_group", "cross_split_duplicate", "error_cluster") if has[name]]
    fields += [f"{name}.label" for name in ("suggested_label", "checkpoint_pred") if has[name]]
    cols = dict(zip(fields, ds.values(fields)))
    size = len(cols["filepath"])

    groups: dict[int, list[int]] = collections.defaultdict(list)
    for i, g in enumerate(cols.get("duplicate_group", [None] * size)):
        if g is not None:
            groups[g].append(i)
    cross = cols.get("cross_split_duplicate", [None] * size)
    leaking = [g for g, members in groups.items() if any(cross[i] for i in members)]
    shown = (leaking + [g for g in groups if g not in set(leaking)])[:n]
    dup = {"groups": len(groups), "cross_split_groups": len(leaking),
           "examples": [{"leak": g in set(leaking), "faces": [{"path": cols["filepath"][i],
                                                              "caption": f"{cols['split'][i]} · {cols['label.label'][i]}"}
                                                             for i in groups[g][:4]]} for g in shown]}

    clusters: dict[int, list[int]] = collections.defaultdict(list)
    for i, c in enumerate(cols.get("error_cluster", [None] * size)):
        if c is not None:
            clusters[c].append(i)
    # What the error says the face is: cleanlab's suggestion for a label issue, else the checkpoint's prediction.
    suggested = [s or p for s, p in zip(cols.get("suggested_label.label", [None] * size), cols.get("checkpoint_pred.label", [None] * size))]
    err = []
    for c, members in sorted(clusters.items(), key=lambda kv: -len(kv[1])):
        pairs = collections.Counter((cols["label.label"][i], suggested[i]) for i in members)
        (true, pred), count = pairs.most_common(1)[0]
        err.append({"cluster": c, "size": len(members), "dominant": f"{true} -> {pred}", "share": count / len(members),
                    "faces": [{"path": cols["filepath"][i], "caption": f"{cols['label.label'][i]} -> {suggested[i]}"} for i in members[:n]]})
    views = sorted(v for v in ds.list_saved_views() if v.startswith("errors-"))
    errors_ran = "label_issue" in schema or "error_cluster" in schema  # fields `curate errors` declares
    label_issues = ds.count_values("label_issue").get(True, 0) if "label_issue" in schema else 0
    # The media file of each sample (a csv release's faces live under CURATE_HOME/media, not at their source path).
    return {"duplicates": dup, "clusters": err, "views": views, "filepaths": dict(zip(cols["sample_uid"], cols["filepath"])),
            "errors_ran": errors_ran, "label_issues": label_issues}
