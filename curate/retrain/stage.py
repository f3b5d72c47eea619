"""Retrain from the current labels (human labels win), register every checkpoint with its metrics."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.models.config import RetrainConfig
from curate.taxonomy import EMOTIONS

__all__ = ["RetrainOptions", "run_retrain", "score_on_test"]


@dataclass
class RetrainOptions:
    """What to train (``config``) plus where the teacher, the resume state and the output are."""

    dataset: str
    config: RetrainConfig = field(default_factory=RetrainConfig)
    teacher: Path | None = None
    resume: Path | None = None
    out: Path | None = None


def _teacher_logits(opts: RetrainOptions, url: str, rows: list, say: Callable[[str], None]) -> np.ndarray:
    """Cached prelabel logits when every row has them, else a forward pass of the teacher."""
    from curate.store import fo_store

    ds = fo_store.load_dataset(opts.dataset, create=False)
    if "prelabel" in ds.get_field_schema() and opts.teacher is None:
        uids, logits = ds.values(["sample_uid", "prelabel.logits"])
        cache = {u: lg for u, lg in zip(uids, logits) if lg is not None}
        if all(r.uid in cache for r in rows):
            say(f"distillation: cached teacher logits from prelabel for {len(rows)} samples")
            return np.array([cache[r.uid] for r in rows], dtype=np.float32)
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess
    from curate.prelabel.stage import latest_teacher
    from curate.store.sql.registry import verify_registered

    path = verify_registered(url, opts.teacher or latest_teacher(url, opts.dataset))
    model, side = load_checkpoint(path)
    say(f"distillation: teacher {path.name} forward pass over {len(rows)} samples")
    cfg = opts.config
    logits, _ = predict(model, rows, side["classes"], Preprocess.from_dict(side["preprocess"]), cfg.batch_size, cfg.device, cfg.workers)
    return logits


def _register_saved_epochs(url: str, run_id: int, dataset: str, out_dir: Path, state: Path) -> None:
    """Register every epoch the resume state covers. A kill after ``state.pt`` was written but before that
    epoch's registry row would otherwise lose the row for good (registration is insert-or-ignore by path)."""
    from curate.models.checkpoint import read_sidecar
    from curate.models.fit import load_state
    from curate.store.sql import registry

    done = int(load_state(state)["epoch"])
    for epoch in range(1, done + 1):
        ckpt = out_dir / f"epoch-{epoch:03d}.safetensors"
        if ckpt.is_file():
            side = read_sidecar(ckpt)
            registry.register_checkpoint(url, run_id, dataset, ckpt, epoch, side.get("label_snapshot_id"), side["metrics"])


def score_on_test(best: Path, test: list, cfg: RetrainConfig) -> dict[str, Any]:
    """The kept checkpoint on the test split, as the product predicts with it (its preprocessing, flip TTA): accuracy,
    balanced accuracy, macro-F1 and the ECE of its softmax. Validation chose the epoch; test was never looked at."""
    from curate.models.calibrate import expected_calibration_error, softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics
    from curate.models.preprocess import Preprocess

    model, side = load_checkpoint(best)
    classes = side["classes"]
    logits, _ = predict(model, test, classes, Preprocess.from_dict(side["preprocess"]), cfg.batch_size, cfg.device, cfg.workers)
    y = np.array([classes.index(r.label) for r in test])
    metrics = classification_metrics(y, logits.argmax(1), classes)
    metrics["ece"] = expected_calibration_error(softmax(logits), y)
    return metrics


def run_retrain(opts: RetrainOptions, url: str, home: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    from curate.models.fit import fit
    from curate.models.manifest import training_rows
    from curate.models.report import write_report
    from curate.prelabel import records
    from curate.store.sql import registry

    started = time.monotonic()
    cfg = opts.config
    if not cfg.keep_epochs:
        raise CurateError("retrain keeps a checkpoint per epoch: the registry records each with its metrics (--keep-epochs); "
                          "a student's epoch files are small (2.9 MB for the CPU recipe's)")
    classes = list(EMOTIONS)
    train, val, test = training_rows(opts.dataset, url, cfg.seed)
    if opts.resume is not None:
        if not opts.resume.is_file():
            raise CurateError(f"{opts.resume}: no resume state (expected state.pt of an earlier run)")
        out_dir = opts.resume.parent
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out_dir = (opts.out or home / "checkpoints" / opts.dataset) / f"retrain-{cfg.arch}-{stamp}"
    teacher = _teacher_logits(opts, url, train, say) if cfg.distill else None
    snapshot = records.label_snapshot_id(url)
    run_id = registry.start_run(url, opts.dataset, cfg, out_dir, opts.resume is not None)
    extra = {"kind": "retrain", "dataset": opts.dataset, "label_snapshot_id": snapshot, "model_run_id": run_id,
             "counts": {"train": len(train), "val": len(val), "test": len(test)}}
    say(f"retraining {cfg.arch} on {len(train)} faces (val {len(val)}), balance={cfg.balance}, distill={cfg.distill}")

    def on_epoch(record: dict[str, Any], ckpt: Path) -> None:
        registry.register_checkpoint(url, run_id, opts.dataset, ckpt, record["epoch"], snapshot, record["val"])
        say(f"  epoch {record['epoch']}: loss {record['train_loss']:.3f}, val macro-F1 {record['val']['macro_f1']:.3f} -> {ckpt.name}")

    if opts.resume is not None:
        _register_saved_epochs(url, run_id, opts.dataset, out_dir, opts.resume)
    result = fit(train, val, classes, cfg, out_dir, extra, teacher, opts.resume, on_epoch)
    best = out_dir / f"epoch-{result['best_epoch']:03d}.safetensors"
    registry.mark_best(url, run_id, best)
    best_metrics = result["history"][result["best_epoch"] - 1]["val"]
    tested = score_on_test(best, test, cfg) if test else None
    if tested is not None:  # the stage's summary line prints it
        registry.add_metrics(url, best, test=tested)
    report = write_report(out_dir / "report.png", classes, best_metrics, result["history"], f"{cfg.arch} on {opts.dataset}")
    registry.finish_run(url, run_id, result)
    return {
        "dataset": opts.dataset, "model_run_id": run_id, "out_dir": str(out_dir), "best_checkpoint": str(out_dir / "best.safetensors"),
        "best_epoch": result["best_epoch"], "resumed_from_epoch": result["started_at_epoch"] if opts.resume else None,
        "val_metrics": {k: v for k, v in best_metrics.items() if k != "confusion_matrix"}, "balance": cfg.balance,
        "test_metrics": {k: v for k, v in tested.items() if k != "confusion_matrix"} if tested else None,
        "class_counts_before": result["class_counts_before"], "class_counts_after": result["class_counts_after"],
        "distill": cfg.distill, "report": str(report), "train_images_per_s": round(result["train_images_per_s"], 1),
        "seconds": round(time.monotonic() - started, 1),
    }
