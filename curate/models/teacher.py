"""The teacher from plain rows: K fold models, calibrated, with out-of-fold probabilities.

The teacher is K fold models (``oof="cross"``, the default): each trains on K-1 folds of the train
rows through the checkpointed loop of curate/models/fit.py (so a killed run resumes from its run
folder), predicts its held-out fold (the out-of-fold probabilities cleanlab needs), and their mean is
the teacher that pre-labels everything else. K = 2 costs one training's worth of images; the old way
(a teacher plus K extra fold trainings) cost K + 1. On a CPU the members train side by side, one process each
(curate/models/members.py: 1.25x the images per second of one process on two cores).

Calibration is honest: the temperature is fitted on one half of the validation split and ECE is
reported on the other half, before and after.

Touches neither FiftyOne nor SQL, so it runs where only torch and timm exist
(``python -m curate.models.from_manifest teacher``); curate/prelabel/teacher.py registers the result
in the stores.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.models.config import OOF_MODES, RetrainConfig, TeacherPlan, TrainConfig
from curate.models.manifest import Row
from curate.taxonomy import EMOTIONS

__all__ = ["TeacherOptions", "fit_teacher"]


@dataclass
class TeacherOptions(TeacherPlan):
    """What to train (``config``), how its out-of-fold probabilities are made (TeacherPlan) and where it goes."""

    dataset: str
    config: TrainConfig = field(default_factory=TrainConfig)
    out: Path | None = None
    resume: Path | None = None  # a teacher run folder to continue


@dataclass
class _Calibration:
    temperature: float = 1.0
    ece: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class _OutOfFold:
    rows: list[Row] = field(default_factory=list)
    probs: np.ndarray | None = None
    folds: np.ndarray | None = None
    seconds: float = 0.0


def _plan(opts: TeacherOptions, train: list[Row], runs: Path) -> tuple[Path, dict[str, Any]]:
    """The run folder and its plan (config, members and their fold ids), new or read back for ``resume``."""
    from curate.files import atomic_write_bytes
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
    atomic_write_bytes(run_dir / "plan.json", (json.dumps(plan) + "\n").encode())
    return run_dir, plan


def member_rows(plan: dict[str, Any], train: list[Row], member: int) -> list[Row]:
    """The rows fold model ``member`` trains on: every train row outside its own fold (all of them for one model)."""
    if plan["members"] == 1:
        return list(train)
    return [r for r in train if plan["folds"][r.uid] != member]


def _train_members(run_dir: Path, plan: dict[str, Any], cfg: RetrainConfig, train: list[Row], val: list[Row], requested_at_once: int,
                   say: Callable[[str], None], progress: Callable[[int], None] | None) -> list[Path]:
    """Train (or finish) every member, side by side where that pays (curate/models/members.py); returns their best checkpoints."""
    from curate.models.members import MemberJob, members_at_once, train_members, usable_cores

    k = plan["members"]
    folders = [run_dir / (f"fold-{f}" if k > 1 else "model") for f in range(k)]
    jobs = []
    for f, folder in enumerate(folders):
        if (folder / "done.json").is_file():
            say(f"  {folder.name}: finished earlier")
            continue
        state = folder / "state.pt"
        jobs.append(MemberJob(f, member_rows(plan, train, f), folder, state if state.is_file() else None))
    at_once = members_at_once(requested_at_once, jobs, cfg)
    if at_once > 1:
        say(f"  fold models {', '.join(str(j.member + 1) for j in jobs)} of {k} side by side: {at_once} processes, "
            f"{max(1, usable_cores() // at_once)} thread(s) each, {len(jobs[0].rows)} faces each"
            + (" (resuming)" if any(j.state for j in jobs) else ""))
    left = {j.member: cfg.epochs - _last_epoch(j.folder) for j in jobs}
    started, done_epochs = time.monotonic(), 0

    def on_epoch(member: int, record: dict[str, Any]) -> None:
        nonlocal done_epochs
        done_epochs += 1
        left[member] = cfg.epochs - record["epoch"]
        eta = (time.monotonic() - started) / done_epochs * sum(left.values())  # epochs finish at the rate seen so far
        who = f"fold {member + 1}, " if at_once > 1 else ""
        say(f"    {who}epoch {record['epoch']}/{cfg.epochs}: loss {record['train_loss']:.3f}, val accuracy {record['val']['accuracy']:.3f}, "
            f"macro-F1 {record['val']['macro_f1']:.3f}; ETA {eta / 60:.0f} min")

    if at_once == 1:  # one after another: a header line per member, as each starts
        for job in jobs:
            what = f"fold model {job.member + 1}/{k} on {len(job.rows)} faces" if k > 1 else f"one model on {len(job.rows)} faces"
            say(f"  {what}" + (" (resuming)" if job.state else ""))
            train_members([job], val, cfg, 1, on_epoch, progress)
    else:
        train_members(jobs, val, cfg, at_once, on_epoch, progress)
    return [folder / "best.safetensors" for folder in folders]


def _last_epoch(folder: Path) -> int:
    """The last epoch a member's folder holds a checkpoint of (for the ETA only: its resume state is read once, by fit)."""
    kept = max((int(p.stem.split("-")[1]) for p in folder.glob("epoch-[0-9][0-9][0-9].json")), default=0)
    last = folder / "last.json"  # members that keep no per-epoch files (keep_epochs off)
    return max(kept, int(json.loads(last.read_text()).get("epoch", 0)) if last.is_file() else 0)


def _calibrate(model: Any, val: list[Row], cfg: RetrainConfig) -> _Calibration:
    """Validation metrics, and a temperature fitted on one half of val with ECE measured on the other."""
    from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics

    if not val:
        return _Calibration()
    classes = list(EMOTIONS)
    logits, _ = predict(model, val, classes, cfg.preprocess(), cfg.batch_size, cfg.device, cfg.workers)
    y = np.array([classes.index(r.label) for r in val])
    result = _Calibration(val_metrics=classification_metrics(y, logits.argmax(1), classes))
    if len(val) >= 4:
        fit_idx, eval_idx = np.arange(len(val)) % 2 == 0, np.arange(len(val)) % 2 == 1
        result.temperature = fit_temperature(logits[fit_idx], y[fit_idx])
        result.ece = {"before": expected_calibration_error(softmax(logits[eval_idx]), y[eval_idx]),
                      "after": expected_calibration_error(softmax(logits[eval_idx], result.temperature), y[eval_idx]),
                      "n": int(eval_idx.sum())}
    return result


def _held_out(model: Any, val: list[Row], test: list[Row], cfg: RetrainConfig, temperature: float) -> tuple[np.ndarray, dict | None]:
    """The whole teacher's logits on val + test (no member trained on them), and its test metrics."""
    from curate.models.calibrate import expected_calibration_error, softmax
    from curate.models.infer import predict
    from curate.models.metrics import classification_metrics

    classes = list(EMOTIONS)
    held = [*val, *test]
    if not held:
        return np.zeros((0, len(classes))), None
    logits, _ = predict(model, held, classes, cfg.preprocess(), cfg.batch_size, cfg.device, cfg.workers)
    if not test:
        return logits, None
    y = np.array([classes.index(r.label) for r in test])
    test_logits = logits[len(val):]
    metrics = classification_metrics(y, test_logits.argmax(1), classes)
    metrics["ece"] = expected_calibration_error(softmax(test_logits, temperature), y)
    return logits, metrics


def _out_of_fold(opts: TeacherOptions, plan: dict[str, Any], members: list, cfg: RetrainConfig, train: list[Row],
                 held: list[Row], held_logits: np.ndarray) -> _OutOfFold:
    """Each train row's probabilities from the member that never saw it; val and test rows from the whole teacher."""
    from curate.models.calibrate import softmax
    from curate.models.infer import predict

    if plan["oof"] == "none":
        return _OutOfFold()
    classes = list(EMOTIONS)
    t0 = time.monotonic()
    rows = [*train, *held]
    if plan["oof"] == "cross":
        probs = np.zeros((len(rows), len(classes)), np.float32)
        fold_ids = np.array([plan["folds"][r.uid] for r in train] + [-1] * len(held))
        for f, (member, _) in enumerate(members):
            mine = [i for i, r in enumerate(train) if plan["folds"][r.uid] == f]
            logits, _ = predict(member, [train[i] for i in mine], classes, cfg.preprocess(), cfg.batch_size, cfg.device, cfg.workers)
            probs[mine] = softmax(logits)
        probs[len(train):] = softmax(held_logits)
    else:  # linear: a CV head on a frozen pretrained backbone
        from curate.models.factory import create_model
        from curate.models.oof import oof_linear

        backbone = create_model(cfg.arch, len(classes), cfg.weights)
        _, emb = predict(backbone, rows, classes, cfg.preprocess(), cfg.batch_size, cfg.device, cfg.workers)
        probs, fold_ids = oof_linear(emb, [r.label for r in rows], classes, opts.folds, cfg.seed)
    return _OutOfFold(rows, probs, fold_ids, time.monotonic() - t0)


def _sidecar(opts: TeacherOptions, plan: dict[str, Any], cfg: RetrainConfig, members: list, cal: _Calibration, test_metrics: dict | None,
             oof: _OutOfFold, counts: dict[str, int], train_seconds: float) -> dict[str, Any]:
    """What the teacher's checkpoint records about itself: recipe, members, calibration, OOF accuracy and its cost."""
    k = plan["members"]
    first = members[0][1]
    oof_accuracy = None
    if oof.probs is not None and counts["train"]:
        y_train = np.array([EMOTIONS.index(r.label) for r in oof.rows[:counts["train"]]])
        oof_accuracy = float((oof.probs[:counts["train"]].argmax(1) == y_train).mean())
    return {
        "kind": "teacher", "arch": cfg.arch, "classes": list(EMOTIONS), "preprocess": cfg.preprocess().to_dict(),
        "model_options": first.get("model_options", {}), "members": k if k > 1 else 0, "temperature": cal.temperature,
        "dataset": opts.dataset, "label_snapshot_id": None, "weights_init": cfg.weights, "train_config": cfg.to_dict(),
        "best_epoch": first["epoch"], "member_best_epochs": [s["epoch"] for _, s in members], "history": [s["history"] for _, s in members],
        "val_metrics": cal.val_metrics, "test_metrics": test_metrics, "ece": cal.ece,
        "oof": {"method": plan["oof"], "folds": k if plan["oof"] == "cross" else (opts.folds if plan["oof"] == "linear" else 0),
                "seconds": round(oof.seconds, 1), "train_accuracy": oof_accuracy,
                # cross-fitting: K members x (K-1)/K of the rows each = (K-1) trainings' worth of images
                "cost_vs_one_training": (k - 1) if plan["oof"] == "cross" else None},
        "counts": counts, "train_seconds": round(train_seconds, 1),
    }


def fit_teacher(opts: TeacherOptions, train: list[Row], val: list[Row], test: list[Row], runs: Path,
                say: Callable[[str], None] = lambda _: None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the teacher from plain rows, calibrate it, compute OOF probabilities and save
    ``teacher.safetensors`` (+ ``.oof.npz``) in its run folder."""
    from curate.files import atomic_write_bytes
    from curate.models.checkpoint import load_checkpoint, save_checkpoint
    from curate.models.ensemble import Ensemble

    # read: the run's plan (new, or the interrupted run's)
    run_dir, plan = _plan(opts, train, runs)
    known = {f.name for f in dataclasses.fields(RetrainConfig)}  # a plan written by an older curate may hold retired knobs
    cfg = RetrainConfig(**{**{k: v for k, v in plan["config"].items() if k in known}, "balance": "none", "distill": False})
    # The machine may differ from the one that started the run: device and loader workers are this machine's.
    cfg.device, cfg.workers = opts.config.device, opts.config.workers
    k = plan["members"]
    say(f"training teacher {cfg.arch} on {len(train)} faces (val {len(val)}, test {len(test)}): {k} model(s), "
        f"{cfg.epochs} epochs at {cfg.image_size} px" + (f" (random {cfg.random_crop} px windows)" if cfg.random_crop else "") + f" -> {run_dir}")
    # compute: members, calibration, held-out metrics, out-of-fold probabilities
    t_train = time.monotonic()
    members = [load_checkpoint(p) for p in _train_members(run_dir, plan, cfg, train, val, opts.parallel_folds, say, progress)]
    train_seconds = time.monotonic() - t_train
    model = Ensemble([m for m, _ in members]) if k > 1 else members[0][0]
    cal = _calibrate(model, val, cfg)
    held_logits, test_metrics = _held_out(model, val, test, cfg, cal.temperature)
    oof = _out_of_fold(opts, plan, members, cfg, train, [*val, *test], held_logits)
    counts = {"train": len(train), "val": len(val), "test": len(test)}
    sidecar = _sidecar(opts, plan, cfg, members, cal, test_metrics, oof, counts, train_seconds)
    # write: the out-of-fold probabilities, then the teacher, whose sidecar carries their sha256 (checked on import)
    out = run_dir / "teacher.safetensors"
    if oof.probs is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, uids=np.array([r.uid for r in oof.rows]), probs=oof.probs, folds=oof.folds)
        atomic_write_bytes(out.with_suffix(".oof.npz"), buf.getvalue())
        sidecar["oof"]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    digest = save_checkpoint(out, model, sidecar)
    return {
        "checkpoint": str(out), "run_dir": str(run_dir), "sha256": digest, "arch": cfg.arch, "members": k, "counts": counts,
        "best_epoch": sidecar["best_epoch"], "val_metrics": {k_: v for k_, v in cal.val_metrics.items() if k_ != "confusion_matrix"},
        "test_metrics": {k_: v for k_, v in (test_metrics or {}).items() if k_ != "confusion_matrix"} or None,
        "temperature": cal.temperature, "ece": cal.ece, "oof": sidecar["oof"] | {"samples": 0 if oof.probs is None else len(oof.probs)},
        "resumed": opts.resume is not None,
    }
