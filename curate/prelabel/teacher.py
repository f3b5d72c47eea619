"""Train the pre-labeling teacher on quality-passing, labeled samples; calibrate; out-of-fold probabilities.

The teacher is K fold models (``--oof cross``, the default): each trains on K-1 folds of the train
rows through the same checkpointed loop as ``curate retrain`` (so a killed run resumes with
``--resume RUN_DIR``), predicts its held-out fold (the out-of-fold probabilities cleanlab needs),
and their mean is the teacher that pre-labels everything else. K = 2 costs one training's worth of
images; the old way (a teacher plus K extra fold trainings) cost K + 1.

Calibration is honest: the temperature is fitted on one half of the validation split and ECE is
reported on the other half, before and after.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.models.train import TrainConfig
from curate.taxonomy import EMOTIONS

__all__ = ["TeacherOptions", "train_teacher", "split_rows", "training_rows", "OOF_MODES"]

OOF_MODES = ("cross", "linear", "none")


@dataclass
class TeacherOptions:
    """What to train (``config``) plus what only the teacher does: out-of-fold probabilities."""

    dataset: str
    config: TrainConfig = field(default_factory=TrainConfig)
    folds: int = 2
    oof: str = "cross"  # cross (fold models are the teacher) | linear (CV head on a frozen pretrained backbone) | none
    out: Path | None = None
    resume: Path | None = None  # a teacher run folder to continue


def split_rows(rows: list, seed: int, val_fraction: float = 0.1) -> tuple[list, list, list]:
    """(train, val, test) by the dataset's splits. When there is no val split one is carved from train:
    by whole subjects when rows carry one (CK+: the same person never sits on both sides), else stratified."""
    train = [r for r in rows if r.split in (None, "train")]
    val = [r for r in rows if r.split == "val"]
    test = [r for r in rows if r.split == "test"]
    if not val and any(r.group for r in train):
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


def _plan(opts: TeacherOptions, train: list, runs: Path) -> tuple[Path, dict[str, Any]]:
    """The run folder and its plan (config, members and their fold ids), new or read back for ``--resume``."""
    from curate.models.oof import stratified_folds

    if opts.resume is not None:
        plan_file = opts.resume / "plan.json"
        if not plan_file.is_file():
            raise CurateError(f"{opts.resume}: not a teacher run folder (no plan.json)")
        plan = json.loads(plan_file.read_text())
        if sorted(plan["folds"]) != sorted(r.uid for r in train):
            raise CurateError(f"{opts.resume}: the labeled training samples changed since this run started; start a new run")
        return opts.resume, plan
    if opts.oof not in OOF_MODES:
        raise CurateError(f"--oof {opts.oof!r} must be one of {', '.join(OOF_MODES)}")
    if opts.oof == "linear" and not opts.config.weights:
        raise CurateError("--oof linear needs pretrained --weights (a backbone that never saw these samples); use --oof cross")
    k = opts.folds if opts.oof == "cross" else 1
    if k > 1 and len(train) < 2 * k:
        raise CurateError(f"dataset {opts.dataset!r}: {len(train)} training samples cannot make {k} folds")
    folds = stratified_folds([r.label for r in train], k, opts.config.seed) if k > 1 else np.zeros(len(train), np.int64)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = (opts.out or runs) / f"teacher-{opts.config.arch}-{stamp}"
    plan = {"config": opts.config.to_dict(), "members": k, "oof": opts.oof, "folds": {r.uid: int(f) for r, f in zip(train, folds)}}
    from curate.models.checkpoint import atomic_write_bytes

    atomic_write_bytes(run_dir / "plan.json", (json.dumps(plan) + "\n").encode())
    return run_dir, plan


def _train_members(run_dir: Path, plan: dict[str, Any], cfg, train: list, val: list, say: Callable[[str], None],  # noqa: ANN001
                   progress: Callable[[int], None] | None) -> list[Path]:
    """Train (or finish) every member; returns their best checkpoints."""
    from curate.models.retrain import retrain

    k = plan["members"]
    best, started, done_epochs = [], time.monotonic(), 0
    for f in range(k):
        member_dir = run_dir / (f"fold-{f}" if k > 1 else "model")
        rows = [r for r in train if plan["folds"][r.uid] != f] if k > 1 else list(train)
        done = member_dir / "done.json"
        if done.is_file():
            say(f"  {member_dir.name}: finished earlier")
            best.append(member_dir / "best.safetensors")
            continue
        state = member_dir / "state.pt"
        what = f"fold model {f + 1}/{k} on {len(rows)} faces" if k > 1 else f"one model on {len(rows)} faces"
        say(f"  {what}" + (" (resuming)" if state.is_file() else ""))

        def on_epoch(record: dict[str, Any], _ckpt: Path, f: int = f) -> None:
            nonlocal done_epochs
            done_epochs += 1
            per_epoch = (time.monotonic() - started) / done_epochs
            left = (k - f - 1) * cfg.epochs + cfg.epochs - record["epoch"]
            say(f"    epoch {record['epoch']}/{cfg.epochs}: loss {record['train_loss']:.3f}, val accuracy {record['val']['accuracy']:.3f}, "
                f"macro-F1 {record['val']['macro_f1']:.3f}; ETA {left * per_epoch / 60:.0f} min")

        retrain(rows, val, EMOTIONS, cfg, member_dir, {"kind": "teacher-member", "member": f}, None,
                state if state.is_file() else None, on_epoch, progress)
        done.write_text("{}\n")
        best.append(member_dir / "best.safetensors")
    return best


def fit_teacher(opts: TeacherOptions, train: list, val: list, test: list, runs: Path, say: Callable[[str], None] = lambda _: None,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the teacher from plain rows, calibrate it, compute OOF probabilities and save
    ``teacher.safetensors`` (+ ``.oof.npz``) in its run folder. Touches neither FiftyOne nor SQL, so it
    runs where only torch and timm exist (``python -m curate.models.from_manifest``)."""
    from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
    from curate.models.checkpoint import load_checkpoint, save_checkpoint
    from curate.models.ensemble import Ensemble
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics
    from curate.models.oof import oof_linear
    from curate.models.retrain import RetrainConfig

    classes = list(EMOTIONS)
    run_dir, plan = _plan(opts, train, runs)
    cfg = RetrainConfig(**{**plan["config"], "balance": "none", "distill": False})
    # The machine may differ from the one that started the run: device and loader workers are this machine's.
    cfg.device, cfg.workers = opts.config.device, opts.config.workers
    k = plan["members"]
    say(f"training teacher {cfg.arch} on {len(train)} faces (val {len(val)}, test {len(test)}): {k} model(s), "
        f"{cfg.epochs} epochs at {cfg.image_size} px -> {run_dir}")
    t_train = time.monotonic()
    members = [load_checkpoint(p) for p in _train_members(run_dir, plan, cfg, train, val, say, progress)]
    train_seconds = time.monotonic() - t_train
    model = Ensemble([m for m, _ in members]) if k > 1 else members[0][0]
    pp = cfg.preprocess()
    index = {c: i for i, c in enumerate(classes)}

    # Temperature on one half of val, ECE on the other.
    temperature, ece, val_metrics = 1.0, {}, {}
    if val:
        logits, _ = predict(model, val, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
        y = np.array([index[r.label] for r in val])
        val_metrics = classification_metrics(y, logits.argmax(1), classes)
        if len(val) >= 4:
            fit_idx, eval_idx = np.arange(len(val)) % 2 == 0, np.arange(len(val)) % 2 == 1
            temperature = fit_temperature(logits[fit_idx], y[fit_idx])
            ece = {"before": expected_calibration_error(softmax(logits[eval_idx]), y[eval_idx]),
                   "after": expected_calibration_error(softmax(logits[eval_idx], temperature), y[eval_idx]), "n": int(eval_idx.sum())}
    test_metrics = None
    held_out = [*val, *test]
    held_logits, _ = predict(model, held_out, classes, pp, cfg.batch_size, cfg.device, cfg.workers) if held_out else (np.zeros((0, len(classes))), None)
    if test:
        y = np.array([index[r.label] for r in test])
        test_logits = held_logits[len(val):]
        test_metrics = classification_metrics(y, test_logits.argmax(1), classes)
        test_metrics["ece"] = expected_calibration_error(softmax(test_logits, temperature), y)

    # Out-of-fold probabilities: each train row from the member that never saw it; val and test rows
    # from the whole teacher (no member trained on them).
    oof_rows, oof_probs, fold_ids, oof_seconds = [], None, None, 0.0
    if plan["oof"] != "none":
        t0 = time.monotonic()
        oof_rows = [*train, *held_out]
        if plan["oof"] == "cross":
            oof_probs = np.zeros((len(oof_rows), len(classes)), np.float32)
            fold_ids = np.array([plan["folds"][r.uid] for r in train] + [-1] * len(held_out))
            for f, (member, _) in enumerate(members):
                held = [i for i, r in enumerate(train) if plan["folds"][r.uid] == f]
                logits, _ = predict(member, [train[i] for i in held], classes, pp, cfg.batch_size, cfg.device, cfg.workers)
                oof_probs[held] = softmax(logits)
            oof_probs[len(train):] = softmax(held_logits)
        else:  # linear
            from curate.models.factory import create_model

            backbone = create_model(cfg.arch, len(classes), cfg.weights)
            _, emb = predict(backbone, oof_rows, classes, pp, cfg.batch_size, cfg.device, cfg.workers)
            oof_probs, fold_ids = oof_linear(emb, [r.label for r in oof_rows], classes, opts.folds, cfg.seed)
        oof_seconds = time.monotonic() - t0
    oof_accuracy = None
    if oof_probs is not None and len(train):
        y_train = np.array([index[r.label] for r in train])
        oof_accuracy = float((oof_probs[: len(train)].argmax(1) == y_train).mean())

    out = run_dir / "teacher.safetensors"
    first = members[0][1]
    sidecar = {
        "kind": "teacher", "arch": cfg.arch, "classes": classes, "preprocess": pp.to_dict(), "model_options": first.get("model_options", {}),
        "members": k if k > 1 else 0, "temperature": temperature, "dataset": opts.dataset, "label_snapshot_id": None,
        "weights_init": cfg.weights, "train_config": cfg.to_dict(), "best_epoch": first["epoch"],
        "member_best_epochs": [s["epoch"] for _, s in members], "history": [s["history"] for _, s in members],
        "val_metrics": val_metrics, "test_metrics": test_metrics, "ece": ece,
        "oof": {"method": plan["oof"], "folds": k if plan["oof"] == "cross" else (opts.folds if plan["oof"] == "linear" else 0),
                "seconds": round(oof_seconds, 1), "train_accuracy": oof_accuracy,
                # cross-fitting: K members x (K-1)/K of the rows each = (K-1) trainings' worth of images
                "cost_vs_one_training": (k - 1) if plan["oof"] == "cross" else None},
        "counts": {"train": len(train), "val": len(val), "test": len(test)}, "train_seconds": round(train_seconds, 1),
    }
    digest = save_checkpoint(out, model, sidecar)
    if oof_probs is not None:
        np.savez_compressed(out.with_suffix(".oof.npz"), uids=np.array([r.uid for r in oof_rows]), probs=oof_probs, folds=fold_ids)
    return {
        "checkpoint": str(out), "run_dir": str(run_dir), "sha256": digest, "arch": cfg.arch, "members": k, "counts": sidecar["counts"],
        "best_epoch": first["epoch"], "val_metrics": {k_: v for k_, v in val_metrics.items() if k_ != "confusion_matrix"},
        "test_metrics": {k_: v for k_, v in (test_metrics or {}).items() if k_ != "confusion_matrix"} or None,
        "temperature": temperature, "ece": ece, "oof": sidecar["oof"] | {"samples": 0 if oof_probs is None else len(oof_probs)},
        "resumed": opts.resume is not None,
    }


def import_teacher(checkpoint: Path, dataset: str, url: str, label_snapshot_id: int | None = None) -> dict[str, Any]:
    """Register a teacher checkpoint trained elsewhere (a GPU box, from a manifest) as ``dataset``'s teacher,
    and store its out-of-fold probabilities (``.oof.npz`` beside it) on the samples they name."""
    from curate.models.checkpoint import file_sha256, read_sidecar, sidecar_path
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
        data = np.load(oof)
        stored = records.store_oof(dataset, data["uids"].tolist(), data["probs"], data["folds"])
    return {"dataset": dataset, "checkpoint": str(checkpoint), "sha256": digest, "model_run_id": run_id, "registered_before": not created,
            "oof_samples_stored": stored}


def train_teacher(opts: TeacherOptions, url: str, home: Path, say: Callable[[str], None] = lambda _: None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The teacher of a dataset in the stores: its current labels in, a registered checkpoint and stored OOF out."""
    from curate.prelabel import records

    started = time.monotonic()
    snapshot = records.label_snapshot_id(url)  # the labels this teacher learns from
    train, val, test = training_rows(opts.dataset, url, opts.config.seed)
    result = fit_teacher(opts, train, val, test, home / "checkpoints" / opts.dataset, say, progress)
    imported = import_teacher(Path(result["checkpoint"]), opts.dataset, url, snapshot)
    return {"dataset": opts.dataset, **result, "model_run_id": imported["model_run_id"], "seconds": round(time.monotonic() - started, 1)}
