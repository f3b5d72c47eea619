"""Models that learn (issue 11): the recipe's student, distilled student and fold-model teacher on FER2013.

    python bench/models.py train student   [--epochs 12]            # MobileNetV2 from scratch, the retrain defaults
    python bench/models.py train teacher   [--epochs 8] [--folds 2] # ResNet-50 fold models = the teacher (+ OOF)
    python bench/models.py train teacher --fold F                    # one fold model (run folds side by side; then without --fold)
    python bench/models.py train distilled [--epochs 12]            # MobileNetV2 distilled from that teacher
    python bench/models.py report                                    # score every run on test -> RESULTS.md, results/models.json
    bash bench/gpu_run.sh                                            # issue 29's GPU run (one device call); see that script
    python bench/models.py publish --source DIR                      # bring a GPU run's $OUT home

Train on FER2013 train (sharp), select on a stratified 10 % validation carve of it, report on the
7,178 test faces. Runs from plain data (class folders -> manifest rows) with torch/timm only, so the
same commands run on a GPU machine. Every run checkpoints each epoch into
``bench/runs/<device>/<run>/`` and a re-run of the same command resumes it (kill it whenever);
``bench/results/models-<device>-<run>.json`` gets the accuracy-per-epoch curve after every epoch, so
an unfinished run still shows where it was heading. ``--threads`` caps torch's CPU threads (two
runs side by side on 2 cores: 1 each).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import rows_of  # noqa: E402
from bench._results import machine, write_section  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS_DIR = BENCH / "results"
DEFAULT_DATA = BENCH.parents[1] / "shared/data/fer2013"
RUNS = ("student", "teacher", "distilled")


def device_kind(device: str) -> str:
    """cpu or gpu; smoke runs (--limit) get their own folders and results, never mixed with real ones."""
    import torch

    kind = "cpu" if device == "cpu" or (device == "auto" and not torch.cuda.is_available()) else "gpu"
    return f"smoke-{kind}" if LIMIT else kind


RUNS_ROOT = BENCH / "runs"  # --runs moves runs and results elsewhere (tests; a scratch copy)


def run_dir(kind: str, run: str) -> Path:
    return RUNS_ROOT / kind / run


def progress_path(kind: str, run: str) -> Path:
    base = RUNS_ROOT if kind.startswith("smoke") else RESULTS_DIR
    return base / f"models-{kind}-{run}.json"


class OutOfTime(Exception):
    """--deadline reached after an epoch was saved: the same command resumes from there."""


LIMIT: int | None = None  # --limit: a smoke run on the first N faces of each split
DEADLINE: float | None = None  # --deadline: unix time by which training stops after a saved epoch
SECONDS: float | None = None  # --seconds: fit each run's epochs to this much training time (the teacher's K members share it)


def data_rows(data: Path, seed: int = 0) -> tuple[list, list, list]:
    from curate.models.manifest import split_rows

    if not (data / "train").is_dir():
        raise SystemExit(f"error: {data}: no train/<class> folders (pass --data)")
    train, val, _ = split_rows(rows_of(data, "train", LIMIT, seed), seed)
    return train, val, rows_of(data, "test", LIMIT, seed)


def config_for(run: str, args: argparse.Namespace):  # noqa: ANN201
    """The command defaults (the recipe), with the few knobs the bench varies."""
    from curate.models.config import RetrainConfig

    if run == "teacher":
        cfg = RetrainConfig(arch="resnet50", balance="none")  # the teacher's probabilities must keep the data's prior
    else:
        cfg = RetrainConfig(distill=run == "distilled")
    cfg.max_steps_per_epoch = args.max_steps
    for name in ("epochs", "lr", "image_size", "stem_stride", "batch_size", "random_crop", "optimizer", "weight_decay", "label_smoothing",
                 "warmup_epochs", "ema_decay", "seed") + (("arch",) if run == "teacher" else ()):
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    cfg.device = args.device
    cfg.workers = args.workers if args.workers is not None else (0 if "cpu" in device_kind(args.device) else 8)
    if "cpu" not in device_kind(args.device):
        # Issue 40: on the GPU no file per epoch (94 ResNet-50 epochs were ~9 GB) and the resume state at most once a
        # minute (writing it every 3-second epoch halved the images per second); a kill loses at most that minute.
        cfg.keep_epochs, cfg.state_every = False, 60.0
    return cfg


def _say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def measured_rate(cfg) -> float:  # noqa: ANN001
    """Training images per second of ``cfg``'s model on its device: 20 timed steps on random faces of its input size
    (the faces themselves live on the device, so the step is the cost)."""
    import torch
    import torch.nn.functional as F

    from curate.models.infer import autocast, resolve_device

    device = resolve_device(cfg.device)
    model = cfg.build_model(8).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    size = cfg.preprocess().input_size
    x = torch.randn(cfg.batch_size, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (cfg.batch_size,), device=device)
    started = 0.0
    for step in range(25):
        if step == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with autocast(device):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 20 * cfg.batch_size / (time.perf_counter() - started)


PLAN_MARGIN = 0.9  # the share of a run's seconds its planned epochs may fill: the rest absorbs noise between epochs


def loop_epoch_seconds(rows: list, val: list, cfg, probe_dir: Path, steps: int = 12) -> tuple[float, dict]:  # noqa: ANN001
    """Seconds one epoch of ``rows`` costs in the real loop: a timed warm-up of ``fit`` itself (2 epochs of ``steps``
    batches, validation and the checkpoint writes the run's policy makes, one resume-state write included), the second
    epoch timed, scaled to the full epoch. Why not the bare step: the first H200 run planned from it (x 0.75) while its
    loop ran at 0.42x the bare step, and every plan overran its share (../shared/gpu-runs/2026-12-04-h200)."""
    import shutil

    from curate.models.fit import fit
    from curate.taxonomy import EMOTIONS

    probe = dataclasses.replace(cfg, epochs=2, max_steps_per_epoch=steps, state_every=0.0)
    marks: list[float] = []
    records: list[dict] = []
    shutil.rmtree(probe_dir, ignore_errors=True)
    started = time.perf_counter()
    fit(rows, val, EMOTIONS, probe, probe_dir, {"probe": True}, None if not cfg.distill else _uniform_logits(len(rows)), None,
        lambda record, _ckpt: (marks.append(time.perf_counter()), records.append(record)))
    shutil.rmtree(probe_dir, ignore_errors=True)
    warm = records[-1]
    epoch_wall = marks[-1] - marks[-2] if len(marks) > 1 else marks[-1] - started
    images = min(steps, max(1, len(rows) // cfg.batch_size)) * cfg.batch_size  # a small set runs out of batches first
    train_rate = images / max(warm["train_seconds"], 1e-6)  # images/s of the training step inside the loop
    fixed = max(0.0, epoch_wall - warm["train_seconds"])  # validation and writes: a cost per epoch, not per image
    full_train = len(rows) / train_rate
    if cfg.state_every > 0:  # the probe wrote every epoch; the run writes once per interval when its epochs are shorter
        write = max(0.0, fixed - warm["eval_seconds"])
        fixed = warm["eval_seconds"] + write * min(1.0, (full_train + fixed) / cfg.state_every)
    return full_train + fixed, {"loop_images_per_s": round(train_rate), "fixed_seconds_per_epoch": round(fixed, 2),
                                "probe_epoch_seconds": round(epoch_wall, 2), "bare_images_per_s": round(measured_rate(cfg))}


def _uniform_logits(n: int):  # noqa: ANN202
    import numpy as np

    return np.zeros((n, 8), np.float32)


def planned_epochs(name: str, rows: list, val: list, cfg, out: Path, seconds: float) -> int:  # noqa: ANN001
    """--seconds: the epochs that fit that many seconds in the real loop (:func:`loop_epoch_seconds`, with
    ``PLAN_MARGIN``), at most --epochs, chosen once and kept in the run folder, so a resumed run keeps its schedule."""
    plan = out / "planned-epochs.json"
    if plan.exists():
        return int(json.loads(plan.read_text())["epochs"])
    per_epoch, measured = loop_epoch_seconds(rows, val, cfg, out.with_name(out.name + "-probe"))
    epochs = max(1, min(cfg.epochs, int(seconds * PLAN_MARGIN / per_epoch)))
    out.mkdir(parents=True, exist_ok=True)
    plan.write_text(json.dumps({"epochs": epochs, "seconds": seconds, "epoch_seconds": round(per_epoch, 2), "rows": len(rows),
                                **measured}) + "\n")
    _say(f"{name}: {per_epoch:.1f} s per epoch in the real loop ({measured['loop_images_per_s']} training images/s, "
         f"{measured['fixed_seconds_per_epoch']} s of validation and writes): {epochs} epochs fit {seconds:.0f} s")
    return epochs


def _train_one(name: str, rows: list, val: list, cfg, out: Path, kind: str, teacher_logits=None,  # noqa: ANN001
               extra: dict | None = None, seconds: float | None = None) -> dict[str, Any]:
    """One resumable training run; its progress file is rewritten after every epoch."""
    from curate.models.fit import fit
    from curate.taxonomy import EMOTIONS

    state = out / "state.pt"
    done = out / "done.json"
    if done.exists():
        _say(f"{name}: finished earlier ({done})")
        return json.loads(done.read_text())
    if seconds:
        cfg = dataclasses.replace(cfg, epochs=planned_epochs(name, rows, val, cfg, out, seconds))
    started = time.time()
    record_path = progress_path(kind, name.replace("/", "-"))
    prior = json.loads(record_path.read_text()) if record_path.exists() and state.exists() else {}
    spent = float(prior.get("train_minutes", 0.0))
    seen = history_of(out)  # the curve so far: what the saved files hold, then every epoch as it ends (written or not)

    def on_epoch(record: dict, _ckpt: Path) -> None:
        _write_progress(record)
        epoch_seconds = record["train_seconds"] + record["eval_seconds"]
        # Only after an epoch whose state was written: stopping after one between writes would lose what came since.
        if DEADLINE and record.get("state_saved", True) and record["epoch"] < cfg.epochs \
                and time.time() + 1.2 * epoch_seconds + cfg.state_every > DEADLINE:
            raise OutOfTime(f"{name}: stopped after epoch {record['epoch']}/{cfg.epochs} (its state is saved): the --deadline "
                            f"leaves no time for another; run the same command again to resume")

    def _write_progress(record: dict) -> None:
        nonlocal spent
        spent += record["train_seconds"] / 60
        seen[:] = [r for r in seen if r["epoch"] < record["epoch"]] + [record]
        curve = [{"epoch": r["epoch"], "val_accuracy": r["val"]["accuracy"], "val_macro_f1": r["val"]["macro_f1"],
                  "val_raw_accuracy": r.get("val_raw", {}).get("accuracy"), "train_loss": r["train_loss"]} for r in seen]
        eta = (cfg.epochs - record["epoch"]) * (record["train_seconds"] + record["eval_seconds"]) / 60
        _say(f"{name} epoch {record['epoch']}/{cfg.epochs}: loss {record['train_loss']:.3f}, val acc {record['val']['accuracy']:.3f} "
             f"(raw weights {record.get('val_raw', {}).get('accuracy', float('nan')):.3f}), macro-F1 {record['val']['macro_f1']:.3f}; "
             f"{record['train_seconds']:.0f} s train + {record['eval_seconds']:.0f} s val; ETA {eta:.0f} min")
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps({"run": name, "device": kind, "machine": machine(), "config": cfg.to_dict(),
                                           "train_rows": len(rows), "val_rows": len(val), "train_minutes": round(spent, 2),
                                           "epochs_done": record["epoch"], "curve": curve, **(extra or {})}, indent=1) + "\n")

    _say(f"{name}: {cfg.arch} (stem stride {cfg.resolved_stem_stride()}), {len(rows)} train / {len(val)} val faces, {cfg.epochs} epochs"
         + (f"; resuming after epoch {len(history_of(out))}" if state.exists() else ""))
    result = fit(rows, val, EMOTIONS, cfg, out, {"bench": name}, teacher_logits, state if state.exists() else None, on_epoch)
    summary = {"best_epoch": result["best_epoch"], "train_images_per_s": result["train_images_per_s"],
               "wall_minutes_this_invocation": round((time.time() - started) / 60, 1)}
    done.write_text(json.dumps(summary) + "\n")
    return summary


def history_of(out: Path) -> list[dict]:
    """The run's curve so far: from its newest epoch file, or from ``last.json`` where epochs are not kept (GPU runs)."""
    latest = sorted(out.glob("epoch-*.json"))
    newest = latest[-1] if latest else out / "last.json"
    return json.loads(newest.read_text())["history"] if newest.is_file() else []


def teacher_paths(kind: str) -> tuple[Path, Path]:
    base = run_dir(kind, "teacher")
    return base / "teacher.safetensors", base / "oof.npz"


def train_teacher(args: argparse.Namespace) -> None:
    """K fold models on the train carve; then their ensemble checkpoint and the OOF probabilities.

    ``--fold F`` trains fold model F alone and stops (fold models can train side by side, e.g. on one
    GPU that a single small-input run does not fill); a later run without it assembles."""
    from curate.models.oof import stratified_folds

    kind = device_kind(args.device)
    train, val, _ = data_rows(args.data)
    cfg = config_for("teacher", args)
    folds = stratified_folds([r.label for r in train], args.folds, cfg.seed)
    for f in range(args.folds) if args.fold is None else [args.fold]:
        fold_rows = [r for r, k in zip(train, folds) if k != f]
        _train_one(f"teacher/fold-{f}", fold_rows, val, cfg, run_dir(kind, "teacher") / f"fold-{f}", kind,
                   extra={"fold": f, "folds": args.folds}, seconds=SECONDS and SECONDS / (args.folds if args.fold is None else 1))
    if args.fold is None:
        assemble_teacher(kind, train, folds, args)


def assemble_teacher(kind: str, train: list, folds: np.ndarray, args: argparse.Namespace) -> None:
    from dataclasses import replace

    from curate.models.calibrate import softmax
    from curate.models.checkpoint import load_checkpoint, save_checkpoint
    from curate.models.ensemble import Ensemble
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess

    members, sides = [], []
    for f in range(args.folds):
        model, side = load_checkpoint(run_dir(kind, "teacher") / f"fold-{f}" / "best.safetensors")
        members.append(model)
        sides.append(side)
    pp = replace(Preprocess.from_dict(sides[0]["preprocess"]), tta_flip=not args.teacher_no_tta)
    oof = np.zeros((len(train), len(sides[0]["classes"])), np.float32)
    for f, model in enumerate(members):
        held = [i for i in range(len(train)) if folds[i] == f]
        logits, _ = predict(model, [train[i] for i in held], sides[0]["classes"], pp, 256, args.device)
        oof[held] = softmax(logits)
    ckpt, oof_path = teacher_paths(kind)
    side = {k: sides[0][k] for k in ("arch", "classes", "preprocess", "model_options", "train_config")}
    save_checkpoint(ckpt, Ensemble(members), {**side, "kind": "teacher", "members": len(members), "temperature": 1.0,
                                              "fold_best_epochs": [s["epoch"] for s in sides]})
    np.savez_compressed(oof_path, uids=np.array([r.uid for r in train]), probs=oof, folds=folds)
    _say(f"teacher: {ckpt} ({len(members)} fold models), OOF probabilities for {len(train)} train faces -> {oof_path}")


def train_distilled(args: argparse.Namespace) -> None:
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess

    kind = device_kind(args.device)
    ckpt, _ = teacher_paths(kind)
    if not ckpt.exists():
        raise SystemExit(f"error: {ckpt}: no teacher yet; run `python bench/models.py train teacher` first")
    train, val, _ = data_rows(args.data)
    cache = run_dir(kind, "distilled") / "teacher-logits.npy"
    if cache.exists():
        logits = np.load(cache)
    else:
        model, side = load_checkpoint(ckpt)
        _say(f"distilled: teacher logits for {len(train)} train faces")
        logits, _ = predict(model, train, side["classes"], Preprocess.from_dict(side["preprocess"]), 256, args.device)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, logits)
    _train_one("distilled", train, val, config_for("distilled", args), run_dir(kind, "distilled"), kind, teacher_logits=logits, seconds=SECONDS)


# ---------------------------------------------------------------------------------------------- report


def _scores(model, rows: list, side: dict, device: str, tta: bool | None = None) -> np.ndarray:  # noqa: ANN001
    from dataclasses import replace

    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess

    pp = Preprocess.from_dict(side["preprocess"])
    if tta is not None:
        pp = replace(pp, tta_flip=tta)
    logits, _ = predict(model, rows, side["classes"], pp, 256, device)
    return logits


def _truth(rows: list, classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[r.label] for r in rows])


def evaluate_student(run: str, kind: str, test: list, args: argparse.Namespace) -> dict[str, Any] | None:
    from curate.models.checkpoint import load_checkpoint
    from curate.models.metrics import classification_metrics

    best = run_dir(kind, run) / "best.safetensors"
    if not best.exists():
        return None
    model, side = load_checkpoint(best)
    y = _truth(test, side["classes"])
    tta = _scores(model, test, side, args.device, True)
    plain = _scores(model, test, side, args.device, False)
    progress = json.loads(progress_path(kind, run).read_text())
    m = classification_metrics(y, tta.argmax(1), side["classes"])
    return {"test_accuracy": m["accuracy"], "test_balanced_accuracy": m["balanced_accuracy"], "test_macro_f1": m["macro_f1"],
            "test_accuracy_no_tta": float((plain.argmax(1) == y).mean()), "predicted_contempt": int((tta.argmax(1) == side["classes"].index("contempt")).sum()),
            "per_class_recall": m["per_class_recall"], "best_epoch": side["epoch"], "epochs_done": progress["epochs_done"],
            "epochs_planned": progress["config"]["epochs"], "train_minutes": progress["train_minutes"], "device": kind,
            "curve": progress["curve"], "checkpoint": str(best)}


def evaluate_teacher(kind: str, train: list, val: list, test: list, args: argparse.Namespace) -> dict[str, Any] | None:
    """Each fold model predicts val and test once; the teacher (their mean) and the single-model figure come from those logits."""
    from curate.models.calibrate import expected_calibration_error, fit_temperature, softmax
    from curate.models.checkpoint import load_checkpoint
    from curate.models.metrics import classification_metrics

    ckpt, oof_path = teacher_paths(kind)
    if not ckpt.exists():
        return None
    model, side = load_checkpoint(ckpt)
    classes = side["classes"]
    tta = not args.teacher_no_tta
    per_member = [(_scores(m, val, side, args.device, tta), _scores(m, test, side, args.device, tta)) for m in model.members]
    val_logits = np.mean([v for v, _ in per_member], axis=0)
    logits = np.mean([t for _, t in per_member], axis=0)
    t = fit_temperature(val_logits, _truth(val, classes))
    y = _truth(test, classes)
    m = classification_metrics(y, logits.argmax(1), classes)
    calibrated = softmax(logits, t)
    coverage = []
    for threshold in (0.9, 0.8, 0.7):
        keep = calibrated.max(1) >= threshold
        coverage.append({"threshold": threshold, "share": float(keep.mean()),
                         "accuracy": float((calibrated.argmax(1)[keep] == y[keep]).mean()) if keep.any() else None})
    oof = np.load(oof_path)
    by_uid = {r.uid: r for r in train}
    oof_y = _truth([by_uid[u] for u in oof["uids"]], classes)
    folds = [json.loads(progress_path(kind, f"teacher-fold-{f}").read_text()) for f in range(int(oof["folds"].max()) + 1)]
    fold_images = sum(f["train_rows"] * f["epochs_done"] for f in folds)
    one_training_images = len(train) * folds[0]["config"]["epochs"]
    usage = np.array([Path(r.path).name.split("_", 1)[0] for r in test])  # FER2013's PublicTest_/PrivateTest_ file names
    by_usage = {u: float((logits.argmax(1)[usage == u] == y[usage == u]).mean()) for u in ("PublicTest", "PrivateTest") if (usage == u).any()}
    return {"test_accuracy": m["accuracy"], "test_macro_f1": m["macro_f1"], "test_balanced_accuracy": m["balanced_accuracy"],
            "test_accuracy_single_fold_model": float((per_member[0][1].argmax(1) == y).mean()), "tta": tta,
            "member_test_accuracy": [float((t_.argmax(1) == y).mean()) for _, t_ in per_member], "test_accuracy_by_usage": by_usage,
            "arch": side["arch"], "epochs": [f["epochs_done"] for f in folds], "config": folds[0]["config"],
            "temperature": t, "ece_raw": expected_calibration_error(softmax(logits), y), "ece_calibrated": expected_calibration_error(calibrated, y),
            "coverage": coverage, "per_class_recall": m["per_class_recall"], "members": side["members"], "device": kind,
            "train_minutes": round(sum(f["train_minutes"] for f in folds), 1), "fold_curves": [f["curve"] for f in folds],
            "oof": {"accuracy": float((oof["probs"].argmax(1) == oof_y).mean()), "samples": len(oof_y),
                    "cost_ratio": fold_images / one_training_images,
                    "cost_note": "training images seen by all fold models / images of one teacher training on the whole train carve, same epochs"}}


def int8_figures(best: Path, test: list, args: argparse.Namespace) -> dict[str, Any]:
    """ONNX + static INT8 of the best student (no TTA in the graph): size, CPU latency per face (batch 1,
    onnxruntime, this machine), accuracy change on test."""
    import tempfile

    from curate.models.checkpoint import read_sidecar
    from curate.models.export import _batch, export_onnx

    def latency_ms(path: str, x: np.ndarray) -> float:
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        for face in x[:20]:
            sess.run(None, {"image": face[None]})
        t0 = time.perf_counter()
        for face in x:
            sess.run(None, {"image": face[None]})
        return 1000 * (time.perf_counter() - t0) / len(x)

    with tempfile.TemporaryDirectory() as tmp:
        r = export_onnx(best, Path(tmp) / "student.onnx", int8=True, rows=test)
        x = _batch(test[:300], read_sidecar(best))
        r["fp32_ms_per_face"] = latency_ms(r["onnx"], x)
        r["int8_ms_per_face"] = latency_ms(r["onnx_int8"], x)
    return {k: v for k, v in r.items() if k not in ("onnx", "onnx_int8")}


def report(args: argparse.Namespace) -> None:
    kind = device_kind(args.device)
    train, val, test = data_rows(args.data)
    data: dict[str, Any] = {"machine": machine(), "data": str(args.data), "counts": {"train": len(train), "val": len(val), "test": len(test)}}
    for run, key in (("student", "student"), ("distilled", "student_distilled")):
        found = evaluate_student(run, kind, test, args)
        if found:
            data[key] = found
    teacher = evaluate_teacher(kind, train, val, test, args)
    if teacher:
        data["oof"] = teacher.pop("oof")
        data["teacher"] = teacher
    unfinished = unfinished_runs(kind, data)
    if unfinished:
        data["unfinished"] = unfinished
    best = data.get("student_distilled", data.get("student"))
    if best and not args.skip_int8:
        data["int8"] = int8_figures(Path(best["checkpoint"]), test, args)
    if LIMIT:
        print(render(data, kind))
        return
    if RESULTS_DIR != BENCH / "results":  # --runs: a scratch copy (the GPU machine, tests); `publish` brings it home
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"models-{kind}.md").write_text(render(data, kind) + "\n")
        (RESULTS_DIR / f"models-{kind}.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
        print(render(data, kind))
        return
    write_section(f"models-{kind}", render(data, kind), data)
    write_models_json()


def unfinished_runs(kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run whose figures the report could not assemble (a teacher cut short at its deadline, a student not
    finished), from the progress file each epoch rewrites: its epochs, best validation accuracy and curve. Why: the first
    H200 run stopped its teacher at the deadline and came back with an empty report although one fold model had trained
    94 epochs (issue 40); a partial run is reported as such, with the command that resumes it."""
    shown = {"teacher"} if data.get("teacher") else set()
    shown |= {run for run, key in (("student", "student"), ("distilled", "student_distilled")) if data.get(key)}
    found = []
    for path in sorted(progress_path(kind, "x").parent.glob(f"models-{kind}-*.json")):
        run = path.stem.removeprefix(f"models-{kind}-")
        if run.split("-")[0] in shown:  # teacher-fold-N, student, distilled
            continue
        try:
            progress = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        curve = progress.get("curve") or []
        if not curve or "epochs_done" not in progress:
            continue
        found.append({"run": progress.get("run", run), "epochs_done": progress["epochs_done"],
                      "epochs_planned": (progress.get("config") or {}).get("epochs"), "train_minutes": progress.get("train_minutes"),
                      "best_val_accuracy": max(c["val_accuracy"] for c in curve), "curve": [c["val_accuracy"] for c in curve]})
    return found


def publish(args: argparse.Namespace) -> None:
    """Bring a scratch run's results home (what bench/gpu_run.sh left in $OUT): its section of RESULTS.md, its
    JSON files, models.json and the teacher's OOF probabilities as results/teacher-oof-<kind>.npz."""
    import shutil

    source = args.source
    for kind in ("gpu", "cpu"):
        md, js = source / f"models-{kind}.md", source / f"models-{kind}.json"
        if not (md.exists() and js.exists()):
            continue
        command = (source / "command.txt").read_text().strip() if (source / "command.txt").exists() else "bash bench/gpu_run.sh"
        section = md.read_text().rstrip() + f"\n\nRun: `{command}` (results brought home with `python bench/models.py publish {source}`)"
        write_section(f"models-{kind}", section, json.loads(js.read_text()))
        for extra in source.glob(f"models-{kind}-*.json"):
            shutil.copy2(extra, BENCH / "results" / extra.name)
        oof = source / f"teacher-oof-{kind}.npz"
        if oof.exists():
            shutil.copy2(oof, BENCH / "results" / oof.name)
        _say(f"published {kind} results from {source}")
    write_models_json()


def write_models_json() -> None:
    """results/models.json: the issue's keys from the strongest device measured (GPU over CPU), each
    run with its ``device`` and ``train_minutes``; ``by_device`` keeps every device's full figures."""
    by_device = {k: json.loads((RESULTS_DIR / f"models-{k}.json").read_text())
                 for k in ("cpu", "gpu") if (RESULTS_DIR / f"models-{k}.json").exists()}
    if not by_device:
        return
    best = by_device.get("gpu") or by_device["cpu"]
    top = {k: best[k] for k in ("teacher", "student", "student_distilled", "oof", "int8", "counts") if k in best}
    (RESULTS_DIR / "models.json").write_text(json.dumps({**top, "by_device": by_device}, indent=2, default=float) + "\n")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def render(data: dict[str, Any], kind: str) -> str:
    lines = [f"## Models that learn, {kind.upper()} (bench/models.py)", "",
             f"FER2013: {data['counts']['train']} train / {data['counts']['val']} val (stratified carve of train) / {data['counts']['test']} test faces.",
             "Accuracy is over FER2013's 7 classes; the 8-way head keeps a contempt output that no training face carries, "
             "so it is trained toward zero (how often it was predicted on test is listed).", "",
             "| figure | goal | measured | run |", "|---|---|---|---|"]
    s, d, t, o = data.get("student"), data.get("student_distilled"), data.get("teacher"), data.get("oof")

    def run_note(r: dict | None) -> str:
        if not r:
            return "not run yet"
        if "epochs_done" in r:
            return f"{r['epochs_done']}/{r['epochs_planned']} epochs, {r['train_minutes']:.0f} min training ({r['device']})"
        return f"{r['train_minutes']:.0f} min training ({r['device']})"

    # Goals of issue 29 (the published FER2013 figures, bench/RESULTS.md "Models" explains them).
    lines.append(f"| MobileNetV2 from scratch, test accuracy | >= 68 % | {_pct(s and s['test_accuracy'])} | {run_note(s)} |")
    lines.append(f"| MobileNetV2 distilled from the teacher | >= 71 % | {_pct(d and d['test_accuracy'])} | {run_note(d)} |")
    arch = t.get("arch", "resnet50") if t else "resnet50"
    lines.append(f"| {arch} teacher (mean of {t['members'] if t else '-'} fold models), test accuracy | >= 73.5 % (stretch 75 %) | "
                 f"{_pct(t and t['test_accuracy'])} | {run_note(t)} |")
    if t:
        members = ", ".join(_pct(a) for a in t.get("member_test_accuracy", [t["test_accuracy_single_fold_model"]]))
        lines.append(f"| one fold model alone, test accuracy | >= 71 % | {members} | epochs {t.get('epochs', '-')} |")
        usage = t.get("test_accuracy_by_usage") or {}
        if usage:
            lines.append(f"| teacher on PublicTest / PrivateTest | | {_pct(usage.get('PublicTest'))} / {_pct(usage.get('PrivateTest'))} | |")
        lines.append(f"| ECE on test, raw -> after temperature {t['temperature']:.2f} (fitted on val) | <= 0.03 | {t['ece_raw']:.3f} -> {t['ece_calibrated']:.3f} | |")
        cov = "; ".join(f">= {c['threshold']}: {_pct(c['share'])} of faces at {_pct(c['accuracy'])}" for c in t["coverage"])
        lines.append(f"| coverage at calibrated confidence | >= 40 % of faces at >= 95 % accuracy at 0.9 | {cov} | |")
    if o:
        lines.append(f"| OOF accuracy on train ({o['samples']} faces), cost vs one teacher training | >= 70 % | "
                     f"{_pct(o['accuracy'])}, {o['cost_ratio']:.2f}x | |")
    i8 = data.get("int8")
    if i8:
        lines.append(f"| INT8 ONNX of the best student: size, CPU latency, accuracy change | <= 1 point lost | "
                     f"{i8['size_int8_bytes'] / 1e6:.1f} MB ({i8['int8_size_ratio']:.2f}x of fp32), "
                     f"{i8['int8_ms_per_face']:.2f} ms/face (fp32 {i8['fp32_ms_per_face']:.2f}), "
                     f"accuracy {_pct(i8['accuracy_fp32'])} -> {_pct(i8['accuracy_int8'])} ({100 * i8['accuracy_change']:+.1f} points) | |")
    for label, r in (("student", s), ("distilled", d)):
        if r:
            lines += ["", f"**{label}**: test accuracy {_pct(r['test_accuracy'])} with flip TTA, {_pct(r['test_accuracy_no_tta'])} without; "
                      f"balanced {_pct(r['test_balanced_accuracy'])}, macro-F1 {r['test_macro_f1']:.3f}; contempt predicted {r['predicted_contempt']} times; "
                      f"best epoch {r['best_epoch']}.", "",
                      "| epoch | val acc (weight average) | val acc (raw weights) | train loss |", "|---|---|---|---|"]
            lines += [f"| {c['epoch']} | {_pct(c['val_accuracy'])} | {_pct(c['val_raw_accuracy'])} | {c['train_loss']:.3f} |" for c in r["curve"]]
    for u in data.get("unfinished", []):
        lines += ["", f"**{u['run']}, not finished**: {u['epochs_done']}/{u['epochs_planned']} epochs done "
                  f"({u['train_minutes']} min of training), best val accuracy {_pct(u['best_val_accuracy'])}; it resumes with the "
                  "same command (`bash bench/gpu_run.sh` on the device). Val accuracy by epoch: "
                  + ", ".join(_pct(a) for a in u["curve"])]
    if t:
        lines += ["", f"**teacher**: the mean of {t['members']} fold models; one fold model alone: {_pct(t['test_accuracy_single_fold_model'])} on test"
                  + ("" if t.get("tta", True) else " (teacher figures and OOF without flip TTA, to fit the CPU time)") + ".", ""]
        for f, curve in enumerate(t["fold_curves"]):
            lines.append(f"fold {f} val accuracy by epoch: " + ", ".join(_pct(c["val_accuracy"]) for c in curve))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("train", "report", "publish"))
    parser.add_argument("run", nargs="?", choices=RUNS)
    parser.add_argument("--source", type=Path, default=None, help="publish: the folder bench/gpu_run.sh wrote ($OUT).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--stem-stride", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--fold", type=int, default=None, help="train teacher: this fold model only (no assembly).")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on CPU, 8 on a GPU).")
    parser.add_argument("--skip-int8", action="store_true")
    parser.add_argument("--teacher-no-tta", action="store_true", help="Teacher OOF and figures without flip TTA (half the CPU time).")
    parser.add_argument("--limit", type=int, default=None, help="Smoke run: N faces per split, runs under bench/runs/smoke-*.")
    parser.add_argument("--max-steps", type=int, default=None, help="Smoke run: cap steps per epoch.")
    parser.add_argument("--arch", default=None, help="train teacher: the architecture (default resnet50).")
    parser.add_argument("--random-crop", type=int, default=None, help="Train on random windows of this many px (inference: the centre).")
    parser.add_argument("--optimizer", default=None, choices=("adamw", "sgd"))
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--label-smoothing", type=float, default=None)
    parser.add_argument("--warmup-epochs", type=float, default=None)
    parser.add_argument("--ema-decay", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=None,
                        help="Unix time: stop after the last epoch that ends before it (state saved; exit 3; the same command resumes).")
    parser.add_argument("--seconds", type=float, default=None,
                        help="Fit the epochs to this many seconds of training at the rate measured on this device (at most --epochs); "
                             "the teacher's fold models share them. Chosen once per run folder.")
    parser.add_argument("--runs", type=Path, default=None, help="Keep runs and results under this folder instead of bench/.")
    args = parser.parse_args()
    global LIMIT, DEADLINE, SECONDS, RUNS_ROOT, RESULTS_DIR
    LIMIT, DEADLINE, SECONDS = args.limit, args.deadline, args.seconds
    if args.runs is not None:
        RUNS_ROOT, RESULTS_DIR = args.runs / "runs", args.runs / "results"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.action == "publish":
            publish(args)
        elif args.action == "report":
            report(args)
        elif args.run == "teacher":
            train_teacher(args)
        elif args.run == "distilled":
            train_distilled(args)
        elif args.run == "student":
            train, val, _ = data_rows(args.data)
            kind = device_kind(args.device)
            _train_one("student", train, val, config_for("student", args), run_dir(kind, "student"), kind, seconds=SECONDS)
        else:
            parser.error("train needs a run: student, teacher or distilled")
    except OutOfTime as stop:
        _say(str(stop))
        sys.exit(3)


if __name__ == "__main__":
    main()
