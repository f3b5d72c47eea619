"""Pre-label every quality-passing sample with the teacher: calibrated confidence, logits, embeddings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError

__all__ = ["prelabel", "latest_teacher"]


def latest_teacher(url: str, dataset: str) -> Path:
    """The newest registered teacher checkpoint of ``dataset`` that still exists on disk."""
    from sqlalchemy import select

    from curate.store.sql import ledger, session
    from curate.store.sql.models import Checkpoint, ModelRun

    with session.session_scope(url) as db:
        ds = ledger.find_dataset(db, dataset)
        rows = db.scalars(select(Checkpoint.path).join(ModelRun, ModelRun.id == Checkpoint.model_run_id)
                          .where(ModelRun.kind == "teacher-train", Checkpoint.dataset_id == (ds.id if ds else None))
                          .order_by(Checkpoint.id.desc())).all()
    for path in rows:
        if Path(path).is_file():
            return Path(path)
    raise CurateError(f"dataset {dataset!r}: no teacher checkpoint; run `curate teacher train` or pass --checkpoint")


def prelabel(dataset: str, url: str, checkpoint: Path | None, batch_size: int, device: str, workers: int,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict, resolve_device
    from curate.models.manifest import from_dataset
    from curate.models.preprocess import Preprocess
    from curate.prelabel import records

    ckpt = checkpoint or latest_teacher(url, dataset)
    model, sidecar = load_checkpoint(ckpt, device="cpu")
    classes, temperature = sidecar["classes"], float(sidecar.get("temperature", 1.0))
    rows = from_dataset(dataset, url, curated_only=True)
    run_id, created = records.prelabel_run(url, dataset, sidecar["arch"], sidecar["sha256"],
                                           {"checkpoint": str(ckpt), "batch_size": batch_size, "device": str(resolve_device(device))})
    t0 = time.perf_counter()
    logits, embeddings = predict(model, rows, classes, Preprocess.from_dict(sidecar["preprocess"]), batch_size, device, workers, progress)
    seconds = time.perf_counter() - t0
    probs = softmax(logits, temperature)
    labels = [classes[i] for i in probs.argmax(1)]
    confidences = probs.max(1)
    counts = {"samples": len(rows), "labeled": sum(1 for r in rows if r.label), "images_per_s": len(rows) / seconds if seconds else 0.0,
              "below_0.9": int((confidences < 0.9).sum())}
    records.store_prelabels(url, dataset, run_id, sidecar["sha256"], [r.uid for r in rows], labels, confidences, logits, embeddings, counts)
    agree = [r.label == p for r, p in zip(rows, labels) if r.label]
    return {
        "dataset": dataset, "checkpoint": str(ckpt), "model_run_id": run_id, "reused_run": not created, "samples": len(rows),
        "temperature": temperature, "mean_confidence": float(confidences.mean()) if len(rows) else None,
        "below_threshold_0.9": counts["below_0.9"], "agreement_with_current_label": float(np.mean(agree)) if agree else None,
        "predicted": {c: labels.count(c) for c in classes if labels.count(c)}, "images_per_s": round(counts["images_per_s"], 1),
        "seconds": round(seconds, 2),
    }
