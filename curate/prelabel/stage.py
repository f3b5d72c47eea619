"""Pre-label every quality-passing sample with the teacher: calibrated confidence, logits, embeddings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.settings import Settings

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


CHUNK_SIZE = 8192  # faces per predict-and-store round: 8192 x 1280 float32 embeddings = 42 MB, whatever the dataset size


def ray_chunk_size(samples: int, chunk_size: int, actors: int, batch_size: int) -> int:
    """Faces per Ray task: at most ``chunk_size`` (memory), but small enough that every actor gets work, with
    four tasks per actor so that one finishing late does not leave the others idle (one 8,192-face chunk
    for a 2,000-face dataset would run on one actor while the rest wait). Whole batches, never below one."""
    per_task = -(-samples // (actors * 4)) if samples else chunk_size
    per_task = -(-per_task // batch_size) * batch_size
    return max(batch_size, min(chunk_size, per_task))


class Predictor:
    """One inference worker for ``--engine ray`` (a Ray actor): loads the checkpoint once, predicts chunk after chunk."""

    def __init__(self, checkpoint: str, batch_size: int, device: str, threads: int) -> None:
        import torch

        from curate.models.checkpoint import load_checkpoint
        from curate.models.preprocess import Preprocess

        torch.set_num_threads(threads)
        self.model, sidecar = load_checkpoint(Path(checkpoint), device="cpu")
        self.classes, self.pp = sidecar["classes"], Preprocess.from_dict(sidecar["preprocess"])
        self.batch_size, self.device = batch_size, device

    def run(self, rows: list) -> tuple[np.ndarray, np.ndarray]:
        from curate.models.infer import predict

        return predict(self.model, rows, self.classes, self.pp, self.batch_size, self.device, 0)


def prelabel(dataset: str, url: str, checkpoint: Path | None, batch_size: int, device: str, workers: int,
             progress: Callable[[int], None] | None = None, chunk_size: int = CHUNK_SIZE, engine: str = "local",
             ray_workers: int = 1, ray_address: str | None = None, review_threshold: float = Settings.review_threshold) -> dict[str, Any]:
    """Pre-label in chunks: inference, FiftyOne and SQL writes per chunk, so memory does not grow with the
    dataset (all embeddings of AffectNet at once would be ~2 GB, plus the copies the writes make).

    ``engine="ray"``: ``ray_workers`` inference actors (each one thread per core it is given, or its GPU) predict
    the chunks, bounded two per actor; this process stores each chunk as it comes back, as it does locally.
    The summary counts the faces below ``review_threshold``: the ones review push will route."""
    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint, verified_sidecar
    from curate.models.infer import predict, resolve_device
    from curate.models.manifest import from_dataset
    from curate.models.preprocess import Preprocess
    from curate.parallel import preflight
    from curate.prelabel import records

    preflight(engine, ray_address)
    from curate.store.sql.registry import verify_registered

    ckpt = verify_registered(url, checkpoint or latest_teacher(url, dataset))
    # With Ray the actors load the model; this process only needs to know the checkpoint is intact and what it predicts.
    model, sidecar = load_checkpoint(ckpt, device="cpu") if engine == "local" else (None, verified_sidecar(ckpt))
    classes, temperature = sidecar["classes"], float(sidecar.get("temperature", 1.0))
    rows = from_dataset(dataset, url, curated_only=True)
    run_id, created = records.prelabel_run(url, dataset, sidecar["arch"], sidecar["sha256"],
                                           {"checkpoint": str(ckpt), "batch_size": batch_size, "device": str(resolve_device(device))})
    pp = Preprocess.from_dict(sidecar["preprocess"])
    t0 = time.perf_counter()
    confidences = np.zeros(len(rows), np.float32)
    by_start: dict[int, list[str]] = {}
    starts = range(0, len(rows), chunk_size)
    if engine == "ray":
        import os

        from curate.parallel import map_chunks

        threads = max(1, (os.cpu_count() or 1) // ray_workers)
        chunk_size = ray_chunk_size(len(rows), chunk_size, ray_workers, batch_size)
        starts = range(0, len(rows), chunk_size)
        results = map_chunks(starts, lambda s: rows[s:s + chunk_size], Predictor, (str(ckpt), batch_size, device, threads),
                             engine="ray", workers=ray_workers, ray_address=ray_address,
                             gpus_per_worker=1 if resolve_device(device).type == "cuda" else 0)
    else:
        results = ((s, predict(model, rows[s:s + chunk_size], classes, pp, batch_size, device, workers, progress)) for s in starts)
    for start, (logits, embeddings) in results:  # predict, store, forget: no array of every embedding is ever held
        chunk = rows[start:start + chunk_size]
        probs = softmax(logits, temperature)
        by_start[start] = [classes[i] for i in probs.argmax(1)]
        confidences[start:start + len(chunk)] = probs.max(1)
        records.store_prelabels(url, dataset, run_id, sidecar["sha256"], [r.uid for r in chunk], by_start[start],
                                confidences[start:start + len(chunk)], logits, embeddings)
        if engine == "ray" and progress:
            progress(len(chunk))
        del logits, embeddings, probs
    labels = [label for start in sorted(by_start) for label in by_start[start]]
    seconds = time.perf_counter() - t0
    counts = {"samples": len(rows), "labeled": sum(1 for r in rows if r.label), "images_per_s": len(rows) / seconds if seconds else 0.0,
              "below_review_threshold": int((confidences < review_threshold).sum()), "review_threshold": review_threshold}
    records.finish_prelabel_run(url, run_id, counts)
    agree = [r.label == p for r, p in zip(rows, labels) if r.label]
    return {
        "dataset": dataset, "checkpoint": str(ckpt), "model_run_id": run_id, "reused_run": not created, "samples": len(rows),
        "temperature": temperature, "mean_confidence": float(confidences.mean()) if len(rows) else None,
        "review_threshold": review_threshold, "below_review_threshold": counts["below_review_threshold"], "agreement_with_current_label": float(np.mean(agree)) if agree else None,
        "predicted": {c: labels.count(c) for c in classes if labels.count(c)}, "images_per_s": round(counts["images_per_s"], 1),
        "seconds": round(seconds, 2),
    }
