"""Stages that train, apply and ship models: ``teacher``, ``prelabel``, ``retrain``, ``export``, ``compare``.

The training stages' options are the recipe's own dataclasses (curate/models/config.py) plus what
only that stage does, so a recipe default changes in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.models.config import RetrainConfig, TeacherPlan, TrainConfig
from curate.parallel import ENGINES
from curate.stages.spec import Stage, StageContext, option


def _config(cls: type, opts: Any, ctx: StageContext) -> Any:
    """The recipe config from the stage options, machine settings filling what was not given."""
    from curate.models.data import default_workers

    s = ctx.settings
    values = {f.name: getattr(opts, f.name) for f in dataclasses.fields(cls)}
    values.update(batch_size=s.batch_size, device=s.device, seed=s.seed, workers=default_workers(s.device))
    return cls(**values)


@dataclass
class _FromSettings:
    """The training stages' machine knobs: not given means the settings' value (settings < workflow < env < option),
    where the recipe dataclass alone would pin its own default."""

    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    batch_size: int | None = option(None, "Images per step.", minimum=1, setting="batch_size")
    device: str | None = option(None, "auto, cpu or cuda[:N].", setting="device")
    seed: int | None = option(None, "Seed of every random choice.", setting="seed")


@dataclass
class TeacherStageOptions(_FromSettings, TeacherPlan, TrainConfig):
    out: Path | None = option(None, "Folder for run folders (default CURATE_HOME/checkpoints/<dataset>).")
    resume: Path | None = option(None, "A teacher run folder of an interrupted run: continue where it stopped.")


def run_teacher(ctx: StageContext, opts: TeacherStageOptions) -> dict[str, Any]:
    from curate.models.teacher import TeacherOptions
    from curate.prelabel.teacher import train_teacher

    s = ctx.settings
    options = TeacherOptions(dataset=s.dataset, config=_config(TrainConfig, opts, ctx), folds=opts.folds, oof=opts.oof,
                             parallel_folds=opts.parallel_folds, out=ctx.path(opts.out), resume=ctx.path(opts.resume))
    return train_teacher(options, s.database_url, s.home, say=ctx.say, progress=ctx.progress)


@dataclass
class PrelabelStageOptions:
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    checkpoint: Path | None = option(None, "Teacher checkpoint (default: the newest registered).")
    batch_size: int | None = option(None, "Images per inference batch.", minimum=1, setting="batch_size")
    device: str | None = option(None, "auto, cpu or cuda[:N].", setting="device")
    engine: str = option("local", "Where inference runs: local (this process) or ray (inference actors; a local Ray unless "
                                  "--ray-address or RAY_ADDRESS names a cluster). This process writes either way.", choices=ENGINES)
    ray_workers: int = option(1, "Inference actors with --engine ray (each gets cores / N threads, or one GPU on CUDA).", minimum=1)
    ray_address: str | None = option(None, "Ray cluster to use with --engine ray (default: RAY_ADDRESS, else a local Ray).")


def run_prelabel(ctx: StageContext, opts: PrelabelStageOptions) -> dict[str, Any]:
    from curate.models.data import default_workers
    from curate.prelabel.stage import prelabel

    s = ctx.settings
    return prelabel(s.dataset, s.database_url, ctx.path(opts.checkpoint), s.batch_size, s.device, default_workers(s.device), ctx.progress,
                    engine=opts.engine, ray_workers=opts.ray_workers, ray_address=opts.ray_address, review_threshold=s.review_threshold)


@dataclass
class RetrainStageOptions(_FromSettings, RetrainConfig):
    teacher: Path | None = option(None, "Teacher checkpoint for --distill (default: cached prelabel logits or newest teacher).")
    resume: Path | None = option(None, "state.pt of an interrupted run: continue exactly where it stopped.")
    out: Path | None = option(None, "Folder for run folders (default CURATE_HOME/checkpoints/<dataset>).")


def run_retrain(ctx: StageContext, opts: RetrainStageOptions) -> dict[str, Any]:
    from curate.retrain.stage import RetrainOptions
    from curate.retrain.stage import run_retrain as retrain

    s = ctx.settings
    options = RetrainOptions(dataset=s.dataset, config=_config(RetrainConfig, opts, ctx), teacher=ctx.path(opts.teacher),
                             resume=ctx.path(opts.resume), out=ctx.path(opts.out))
    return retrain(options, s.database_url, s.home, say=ctx.say)


CHECKPOINT_HELP = "A checkpoint file, or 'best' (the newest retrain's best) / 'previous' (the retrain before it)."


@dataclass
class ExportStageOptions:
    checkpoint: str = option(help=CHECKPOINT_HELP, argument=True)
    format: str = option("onnx", "Only onnx for now.", choices=("onnx",))
    int8: bool = option(False, "Also write a statically quantized INT8 model.")
    dataset: str | None = option(None, "Dataset whose faces check and calibrate the export (default: the checkpoint's).")
    split: str = option("test", "Samples used to check and calibrate (test, val, train, all); an empty test split falls back "
                                "to val, then to every labeled sample.")
    limit: int = option(512, "Faces used to check against torch and calibrate INT8 (accuracy reads every face of the split).", minimum=1)
    out: Path | None = option(None, "Output .onnx path (default: beside the checkpoint).")


def run_export(ctx: StageContext, opts: ExportStageOptions) -> dict[str, Any]:
    from curate.exceptions import CurateError
    from curate.models.checkpoint import read_sidecar
    from curate.models.export import export_onnx
    from curate.store.sql.registry import resolve_checkpoint, verify_registered

    if opts.format != "onnx":
        raise CurateError(f"format {opts.format!r}: only onnx is supported")
    s = ctx.settings
    checkpoint = verify_registered(s.database_url, ctx.path(resolve_checkpoint(opts.checkpoint, s.database_url, opts.dataset or s.dataset)))
    # Real faces whenever a dataset is known: the one named, else the one the checkpoint was trained on.
    name = opts.dataset or read_sidecar(checkpoint).get("dataset")
    rows, used = [], None
    if name is not None:
        for candidate in (opts.split, "val", "all") if opts.split == "test" else (opts.split,):
            try:
                rows = labeled_rows(s.database_url, name, candidate)
            except CurateError:
                if opts.dataset is not None:
                    raise
                break  # the checkpoint's dataset is not on this machine: random inputs
            if rows:
                used = candidate
                break
        if not rows and opts.dataset is not None:
            raise CurateError(f"dataset {name!r}: no labeled quality-passing samples to check the export on")
    summary = export_onnx(checkpoint, ctx.path(opts.out), opts.int8, rows, check_limit=opts.limit, split=used)
    from curate.store.sql.registry import record_export

    record_export(s.database_url, checkpoint, summary)
    return {**summary, "checkpoint": str(checkpoint), "checked_split": used, "checked_dataset": name if rows else None}


def labeled_rows(url: str, dataset: str, split: str) -> list:
    from curate.models.manifest import from_dataset

    return [r for r in from_dataset(dataset, url, curated_only=True) if r.label and (split == "all" or r.split == split)]


@dataclass
class CompareStageOptions:
    checkpoint_a: str = option(help="Checkpoint A. " + CHECKPOINT_HELP, argument=True)
    checkpoint_b: str = option(help="Checkpoint B. " + CHECKPOINT_HELP, argument=True)
    dataset: str | None = option(None, "Dataset name.", setting="dataset")
    split: str = option("test", "Samples both checkpoints are scored on.")
    batch_size: int | None = option(None, "Images per inference batch.", minimum=1, setting="batch_size")


def run_compare(ctx: StageContext, opts: CompareStageOptions) -> dict[str, Any]:
    import numpy as np

    from curate.exceptions import CurateError
    from curate.models.checkpoint import load_checkpoint
    from curate.models.compare import mcnemar, per_class_recall_delta
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess
    from curate.store.sql.registry import resolve_checkpoint, verify_registered

    s = ctx.settings
    a, b = (resolve_checkpoint(c, s.database_url, s.dataset) for c in (opts.checkpoint_a, opts.checkpoint_b))
    if a is None or b is None:  # 'previous' on a dataset's first retrain
        return {"dataset": s.dataset, "skipped": "no earlier retrain to compare with (this is the first)", "a": str(a), "b": str(b)}
    a, b = (verify_registered(s.database_url, ctx.path(c)) for c in (a, b))
    rows = labeled_rows(s.database_url, s.dataset, opts.split)
    if not rows:
        raise CurateError(f"dataset {s.dataset!r}: no labeled quality-passing samples in split {opts.split!r}")
    preds, classes = [], None
    for ckpt in (a, b):
        model, side = load_checkpoint(ckpt)
        if classes is not None and side["classes"] != classes:
            raise CurateError(f"{ckpt}: classes differ from {a}")
        classes = side["classes"]
        logits, _ = predict(model, rows, classes, Preprocess.from_dict(side["preprocess"]), s.batch_size, s.device)
        preds.append(logits.argmax(1))
    y = np.array([classes.index(r.label) for r in rows])
    return {"a": str(a), "b": str(b), "dataset": s.dataset, "split": opts.split, **mcnemar(preds[0] == y, preds[1] == y),
            "per_class": per_class_recall_delta(y, preds[0], preds[1], classes)}


def _teacher_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]teacher[/] {s['arch']} -> {s['checkpoint']}")
    v = s["val_metrics"]
    r.say(f"  val ({v.get('n', 0):,} faces): accuracy {v.get('accuracy', 0):.3f}, macro-F1 {v.get('macro_f1', 0):.3f} (epoch {s['best_epoch']})")
    if s["test_metrics"]:
        t = s["test_metrics"]
        r.say(f"  test ({t['n']:,} faces): accuracy {t['accuracy']:.3f}, balanced {t['balanced_accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f}, "
              f"ECE {t['ece']:.3f}")
    if s["ece"]:
        r.say(f"  temperature {s['temperature']:.2f}: ECE {s['ece']['before']:.3f} -> {s['ece']['after']:.3f} (held-out half of val)")
    oof = s["oof"]
    acc = f", accuracy {oof['train_accuracy']:.3f} on train" if oof.get("train_accuracy") is not None else ""
    r.say(f"  out-of-fold probabilities: {oof['method']} ({oof['samples']} samples{acc}, {oof['seconds']} s)")


def _prelabel_human(r: Any) -> None:
    s = r.summary
    r.say(f"[bold]{s['dataset']}[/]: pre-labeled {s['samples']} samples with {Path(s['checkpoint']).name} "
          f"({s['images_per_s']} images/s); {s['below_review_threshold']} below the review threshold {s['review_threshold']}"
          + (f"; agrees with {100 * s['agreement_with_current_label']:.1f} % of the current labels"
             if s["agreement_with_current_label"] is not None else "; no labels to agree with"))


def _retrain_human(r: Any) -> None:
    s = r.summary
    m = s["val_metrics"]
    r.say(f"[bold]retrain[/] {s['dataset']}: best epoch {s['best_epoch']} -> {s['best_checkpoint']}")
    r.say(f"  val ({m['n']:,} faces): accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}")
    t = s.get("test_metrics")
    if t:
        r.say(f"  test ({t['n']:,} faces): accuracy {t['accuracy']:.3f}, balanced {t['balanced_accuracy']:.3f}, "
              f"macro-F1 {t['macro_f1']:.3f}, ECE {t['ece']:.3f}")
    r.say(f"  balance {s['balance']}: class counts {s['class_counts_before']} -> {s['class_counts_after']}")
    r.say(f"  report {s['report']}")


def _export_human(r: Any) -> None:
    s = r.summary
    r.say(f"{s['onnx']}: {s['size_fp32_bytes'] / 1e6:.1f} MB, max |onnx - torch| = {s['max_abs_diff']:.2e} on {s['inputs_checked']} inputs, "
          f"{s['latency_ms_fp32']:.2f} ms/face on one core")
    if "onnx_int8" in s:
        r.say(f"{s['onnx_int8']}: {s['size_int8_bytes'] / 1e6:.1f} MB ({100 * s['int8_size_ratio']:.0f} %), {s['latency_ms_int8']:.2f} ms/face "
              f"on one core, top-1 agreement {100 * s['int8_top1_agreement']:.1f} %")
    if "accuracy_fp32" in s:
        change = f" -> INT8 {s['accuracy_int8']:.3f} ({100 * s['accuracy_change']:+.1f} points)" if "accuracy_int8" in s else ""
        r.say(f"  {s['accuracy_split'] or 'given'} accuracy ({s['accuracy_faces']:,} faces, the exported network without flip TTA): "
              f"fp32 {s['accuracy_fp32']:.3f}{change}")


def _compare_human(r: Any) -> None:
    s = r.summary
    if s.get("skipped"):
        r.say(f"compare: {s['skipped']}")
        return
    verdict = "significantly" if s["significant"] else "not significantly"
    r.say(f"A {Path(s['a']).name}: accuracy {s['accuracy_a']:.3f}; B {Path(s['b']).name}: accuracy {s['accuracy_b']:.3f} on {s['n']} {s['split']} samples")
    r.say(f"McNemar: A-only correct {s['a_only_correct']}, B-only correct {s['b_only_correct']}, p = {s['p_value']:.4g}: "
          f"{s['better']} is {verdict} better (alpha {s['alpha']})")
    for c, d in s["per_class"].items():
        r.say(f"  {c:<9} recall {d['recall_a']:.3f} -> {d['recall_b']:.3f} ({d['delta_b_minus_a']:+.3f}, n={d['n']})")


TEACHER = Stage("teacher", "teacher train", TeacherStageOptions, run_teacher,
                "Train the teacher on quality-passing labeled samples (current labels from the ledger); resumable.",
                _teacher_human, "teacher", writes=True)
PRELABEL = Stage("prelabel", "prelabel", PrelabelStageOptions, run_prelabel,
                 "Store prelabel (label, calibrated confidence, logits) and embeddings for every quality-passing sample.",
                 _prelabel_human, "prelabel", writes=True)
RETRAIN = Stage("retrain", "retrain", RetrainStageOptions, run_retrain,
                "Train balanced checkpoints on quality-passing samples; the best by validation macro-F1 is kept.",
                _retrain_human, writes=True)
EXPORT = Stage("export", "export", ExportStageOptions, run_export,
               "Export CHECKPOINT to ONNX, check it against torch (max abs diff), optionally quantize to INT8.",
               _export_human)
COMPARE = Stage("compare", "compare", CompareStageOptions, run_compare,
                "Paired comparison on the same samples: McNemar's exact test and per-class recall deltas.", _compare_human)
