"""The teacher of a dataset in the stores: train it from the ledger's current labels, register it, store its OOF.

The training itself is plain-data code (curate/models/teacher.py) that also runs on a machine without
FiftyOne or SQL; this module is the part that reads the rows from the stores and writes the result back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.models.teacher import TeacherOptions

__all__ = ["import_teacher", "read_oof", "train_teacher"]


def import_teacher(checkpoint: Path, dataset: str, url: str, label_snapshot_id: int | None = None) -> dict[str, Any]:
    """Register a teacher checkpoint trained elsewhere (a GPU box, from a manifest) as ``dataset``'s teacher,
    and store its out-of-fold probabilities (``.oof.npz`` beside it) on the samples they name."""
    from curate.files import file_sha256
    from curate.models.checkpoint import read_sidecar, sidecar_path
    from curate.prelabel import records

    side = read_sidecar(checkpoint)
    digest = file_sha256(checkpoint)
    if side.get("sha256") not in (None, digest):
        raise CurateError(f"{checkpoint}: weights do not match the sha256 in {sidecar_path(checkpoint).name}")
    if side.get("kind") != "teacher" or "classes" not in side:
        raise CurateError(f"{checkpoint}: not a curate teacher checkpoint (sidecar kind {side.get('kind')!r})")
    snapshot = label_snapshot_id or side.get("label_snapshot_id") or records.label_snapshot_id(url)
    side = {**side, "dataset": dataset, "label_snapshot_id": snapshot}
    run_id, created = records.register_teacher(url, dataset, checkpoint, digest, side)
    stored = 0
    oof = checkpoint.with_suffix(".oof.npz")
    if oof.is_file():
        uids, probs, folds = read_oof(oof, (side.get("oof") or {}).get("sha256"), len(side["classes"]))
        stored = records.store_oof(dataset, uids, probs, folds)
    return {"dataset": dataset, "checkpoint": str(checkpoint), "sha256": digest, "model_run_id": run_id, "registered_before": not created,
            "oof_samples_stored": stored}


def read_oof(path: Path, sha256: str | None, classes: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A teacher's out-of-fold probabilities, refused in one line when they changed after training (the sha256 its
    sidecar records; teachers from before it was recorded have none) or do not have the teacher's shape.

    They decide which faces people review and which labels cleanlab flags, so a swapped file would steer review."""
    import zipfile

    from curate.files import file_sha256

    if sha256 is not None and file_sha256(path) != sha256:
        raise CurateError(f"{path}: does not match the sha256 its teacher's sidecar records; it changed after training")
    try:
        with np.load(path, allow_pickle=False) as data:
            uids, probs, folds = data["uids"], data["probs"], data["folds"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CurateError(f"{path}: not out-of-fold probabilities ({' '.join(str(exc).split())[:160]})") from None
    if (uids.ndim != 1 or uids.dtype.kind not in "US" or probs.ndim != 2 or probs.shape != (len(uids), classes) or folds.shape != (len(uids),)
            or not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1):
        raise CurateError(f"{path}: expected uids (N), probs (N, {classes}) in [0, 1] and folds (N); got {uids.shape}, {probs.shape}, {folds.shape}")
    return uids.tolist(), probs, folds


def train_teacher(opts: TeacherOptions, url: str, home: Path, say: Callable[[str], None] = lambda _: None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The teacher of a dataset in the stores: its current labels in, a registered checkpoint and stored OOF out."""
    from curate.models.manifest import training_rows
    from curate.models.teacher import fit_teacher
    from curate.prelabel import records

    started = time.monotonic()
    snapshot = records.label_snapshot_id(url)  # the labels this teacher learns from
    train, val, test = training_rows(opts.dataset, url, opts.config.seed)
    result = fit_teacher(opts, train, val, test, home / "checkpoints" / opts.dataset, say, progress)
    imported = import_teacher(Path(result["checkpoint"]), opts.dataset, url, snapshot)
    return {"dataset": opts.dataset, **result, "model_run_id": imported["model_run_id"], "seconds": round(time.monotonic() - started, 1)}
