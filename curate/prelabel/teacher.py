"""Train the pre-labeling teacher on quality-passing, labeled samples; calibrate; compute OOF probabilities.

Calibration is honest: the temperature is fitted on one half of the validation split and
ECE is reported on the other half, before and after.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.models.train import TrainConfig
from curate.taxonomy import EMOTIONS

__all__ = ["TeacherOptions", "train_teacher", "split_rows", "training_rows"]


@dataclass
class TeacherOptions:
    """What to train (``config``) plus what only the teacher does: out-of-fold probabilities."""

    dataset: str
    config: TrainConfig = field(default_factory=TrainConfig)
    folds: int = 5
    oof: str = "auto"  # auto | full | linear | none
    out: Path | None = None


def split_rows(rows: list, seed: int, val_fraction: float = 0.1) -> tuple[list, list, list]:
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


def training_rows(dataset: str, url: str, seed: int) -> tuple[list, list, list]:
    """(train, val, test) rows of quality-passing samples with a current label; refuses too few to train on."""
    from curate.models.manifest import from_dataset

    rows = [r for r in from_dataset(dataset, url, curated_only=True) if r.label is not None]
    if len(rows) < 4:
        raise CurateError(f"dataset {dataset!r}: only {len(rows)} labeled quality-passing samples; nothing to train on")
    return split_rows(rows, seed)


def train_teacher(opts: TeacherOptions, url: str, home: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
    from curate.models.checkpoint import save_checkpoint
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics
    from curate.models.oof import oof_full, oof_linear
    from curate.models.preprocess import Preprocess
    from curate.models.train import train_model
    from curate.prelabel import records

    started = time.monotonic()
    cfg = opts.config
    classes = list(EMOTIONS)
    train, val, test = training_rows(opts.dataset, url, cfg.seed)
    rows = [*train, *val, *test]
    say(f"training {cfg.arch} on {len(train)} faces (val {len(val)}, test {len(test)}), {cfg.epochs} epochs at {cfg.image_size} px")
    result = train_model(train, val, classes, cfg, on_epoch=lambda e: say(f"  epoch {e['epoch']}: loss {e['train_loss']:.3f}, val macro-F1 {e['val'].get('macro_f1', 0):.3f}"))
    pp = Preprocess(cfg.image_size)
    index = {c: i for i, c in enumerate(classes)}

    # Temperature on one half of val, ECE on the other.
    temperature, ece = 1.0, {}
    if len(val) >= 4:
        logits, _ = predict(result.model, val, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
        y = np.array([index[r.label] for r in val])
        fit_idx, eval_idx = np.arange(len(val)) % 2 == 0, np.arange(len(val)) % 2 == 1
        temperature = fit_temperature(logits[fit_idx], y[fit_idx])
        ece = {"before": expected_calibration_error(softmax(logits[eval_idx]), y[eval_idx]),
               "after": expected_calibration_error(softmax(logits[eval_idx], temperature), y[eval_idx]), "n": int(eval_idx.sum())}
    test_metrics = None
    if test:
        logits, _ = predict(result.model, test, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
        y = np.array([index[r.label] for r in test])
        test_metrics = classification_metrics(y, logits.argmax(1), classes)
        test_metrics["ece"] = expected_calibration_error(softmax(logits, temperature), y)

    method = opts.oof if opts.oof != "auto" else ("linear" if cfg.weights else "full")
    oof_probs, folds, oof_seconds = None, None, 0.0
    if method != "none":
        t0 = time.monotonic()
        if method == "linear":
            if not cfg.weights:
                raise CurateError("--oof linear needs pretrained --weights (a backbone that never saw these samples); use --oof full")
            from curate.models.factory import create_model

            backbone = create_model(cfg.arch, len(classes), cfg.weights)
            _, emb = predict(backbone, rows, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
            oof_probs, folds = oof_linear(emb, [r.label for r in rows], classes, opts.folds, cfg.seed)
        elif method == "full":
            say(f"out-of-fold probabilities: {opts.folds} fold models (full fine-tuning)")
            oof_probs, folds = oof_full(rows, classes, cfg, opts.folds)
        else:
            raise CurateError(f"--oof {method!r} must be auto, full, linear or none")
        oof_seconds = time.monotonic() - t0

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = (opts.out or home / "checkpoints" / opts.dataset) / f"teacher-{cfg.arch}-{stamp}.safetensors"
    snapshot = records.label_snapshot_id(url)
    sidecar = {
        "kind": "teacher", "arch": cfg.arch, "classes": classes, "preprocess": pp.to_dict(), "temperature": temperature,
        "dataset": opts.dataset, "label_snapshot_id": snapshot, "weights_init": cfg.weights, "train_config": cfg.to_dict(),
        "best_epoch": result.best_epoch, "history": result.history, "val_metrics": result.best_metrics, "test_metrics": test_metrics,
        "ece": ece, "oof": {"method": method, "folds": opts.folds if method != "none" else 0, "seconds": round(oof_seconds, 1)},
        "counts": {"train": len(train), "val": len(val), "test": len(test)}, "train_images_per_s": result.train_images_per_s,
    }
    digest = save_checkpoint(out, result.model, sidecar)
    if oof_probs is not None:
        np.savez_compressed(out.with_suffix(".oof.npz"), uids=np.array([r.uid for r in rows]), probs=oof_probs, folds=folds)
        records.store_oof(opts.dataset, [r.uid for r in rows], oof_probs, folds)
    run_id = records.register_teacher(url, opts.dataset, out, digest, sidecar)
    return {
        "dataset": opts.dataset, "checkpoint": str(out), "sha256": digest, "model_run_id": run_id, "arch": cfg.arch,
        "counts": sidecar["counts"], "best_epoch": result.best_epoch, "val_metrics": {k: v for k, v in result.best_metrics.items() if k != "confusion_matrix"},
        "test_metrics": {k: v for k, v in (test_metrics or {}).items() if k != "confusion_matrix"} or None,
        "temperature": temperature, "ece": ece, "oof": sidecar["oof"] | {"samples": 0 if oof_probs is None else len(oof_probs)},
        "seconds": round(time.monotonic() - started, 1),
    }
