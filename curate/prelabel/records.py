"""Where teacher and prelabel results are stored: FiftyOne fields and SQL rows (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["label_snapshot_id", "store_oof", "register_teacher", "prelabel_run", "store_prelabels"]


def label_snapshot_id(url: str) -> int | None:
    """The newest label event id: which labels a model was trained on."""
    from sqlalchemy import func, select

    from curate.store.sql import session
    from curate.store.sql.models import LabelEvent

    with session.session_scope(url) as db:
        return db.scalar(select(func.max(LabelEvent.id)))


def store_oof(dataset: str, uids: Sequence[str], probs: np.ndarray, folds: np.ndarray) -> int:
    """Out-of-fold probabilities onto the samples they name (others, e.g. from another dataset, are ignored); returns the count."""
    from curate.store import fo_store

    ds = fo_store.load_dataset(dataset, create=False)
    present = set(ds.values("sample_uid"))
    keep = [i for i, u in enumerate(uids) if u in present]
    ds.set_values("prelabel_oof", {uids[i]: probs[i].astype(float).tolist() for i in keep}, key_field="sample_uid")
    ds.set_values("oof_fold", {uids[i]: int(folds[i]) for i in keep}, key_field="sample_uid")
    return len(keep)


def register_teacher(url: str, dataset: str, path: Path, digest: str, sidecar: dict[str, Any]) -> tuple[int, bool]:
    """The teacher's model run and checkpoint rows: (model run id, created). Importing the very file that is
    registered already (trained here, or imported twice) reuses its rows instead of failing on the unique
    path; a file whose weights changed in place gets a new run and its checkpoint row follows it."""
    from sqlalchemy import select

    from curate.exceptions import CurateError
    from curate.store.sql import ledger, session
    from curate.store.sql.models import Checkpoint, ModelRun, utcnow

    resolved = str(path.resolve())
    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        ds_id = ds.id if ds else None
        existing = db.scalars(select(Checkpoint).where(Checkpoint.path == resolved)).first()
        if existing is not None and existing.sha256 == digest:
            if existing.dataset_id != ds_id:
                raise CurateError(f"{path}: already registered for another dataset; copy the file to register it for {dataset!r}")
            return existing.model_run_id, False
        run = ModelRun(kind="teacher-train", architecture=sidecar["arch"], weights_hash=digest, dataset_id=ds_id,
                       params=sidecar["train_config"], counts=sidecar["counts"], status="done", finished_at=utcnow())
        db.add(run)
        db.flush()
        metrics = {"val": sidecar["val_metrics"], "test": sidecar["test_metrics"], "ece": sidecar["ece"], "temperature": sidecar["temperature"]}
        row = existing or Checkpoint(path=resolved)
        row.model_run_id, row.dataset_id, row.sha256, row.architecture = run.id, ds_id, digest, sidecar["arch"]
        row.epoch, row.label_snapshot_id, row.metrics, row.is_best = sidecar["best_epoch"], sidecar["label_snapshot_id"], metrics, True
        db.add(row)
        return run.id, True


def prelabel_run(url: str, dataset: str, arch: str, digest: str, params: dict[str, Any]) -> tuple[int, bool]:
    """The model_runs row of (prelabel, these weights, this dataset): reused on re-run. (id, created)."""
    from sqlalchemy import select

    from curate.store.sql import ledger, session
    from curate.store.sql.models import ModelRun

    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        ds_id = ds.id if ds else None
        run = db.scalars(select(ModelRun).where(ModelRun.kind == "prelabel", ModelRun.weights_hash == digest, ModelRun.dataset_id == ds_id)).first()
        if run is not None:
            return run.id, False
        run = ModelRun(kind="prelabel", architecture=arch, weights_hash=digest, dataset_id=ds_id, params=params, status="running")
        db.add(run)
        db.flush()
        return run.id, True


def store_prelabels(url: str, dataset: str, run_id: int, digest: str, uids: Sequence[str], labels: Sequence[str],
                    confidences: np.ndarray, logits: np.ndarray, embeddings: np.ndarray | None) -> None:
    """One chunk of pre-labels: FiftyOne fields and model label events (deduplicated by key, so a re-run or
    a chunk stored twice after a crash adds nothing). Called per chunk so memory stays flat with dataset size.
    ``embeddings`` None: predictions that come without them (e.g. a re-fit on top of the teacher's probabilities)."""
    from curate.store import fo_store
    from curate.store.sql import ledger, session
    from curate.store.sql.models import Sample

    f = fo_store.fo()
    ds = fo_store.load_dataset(dataset, create=False)
    values = {u: f.Classification(label=l, confidence=float(c), logits=lg.astype(float).tolist())
              for u, l, c, lg in zip(uids, labels, confidences, logits)}
    ds.set_values("prelabel", values, key_field="sample_uid")
    if embeddings is not None:
        ds.set_values("embedding", {u: e.astype(np.float32) for u, e in zip(uids, embeddings)}, key_field="sample_uid")
    with session.session_scope(url) as db:
        found = ledger.find_dataset(db, dataset)
        id_of = dict(db.query(Sample.uid, Sample.id).filter(Sample.dataset_id == found.id, Sample.uid.in_(list(uids))).all()) if found else {}
        ledger.append_label_events(db, [
            {"sample_id": id_of[u], "label": l, "source": "model", "actor": f"model_run:{run_id}", "confidence": float(c),
             "model_run_id": run_id, "dedup_key": f"model:{digest[:16]}:{u}"}
            for u, l, c in zip(uids, labels, confidences) if u in id_of
        ])


def finish_prelabel_run(url: str, run_id: int, counts: dict[str, Any]) -> None:
    from curate.store.sql import session
    from curate.store.sql.models import ModelRun, utcnow

    with session.session_scope(url) as db:
        run = db.get(ModelRun, run_id)
        run.counts, run.status, run.finished_at = counts, "done", utcnow()
