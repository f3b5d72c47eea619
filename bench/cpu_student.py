"""The CPU student of `make run` (issue 39): the retrain stage's MobileNetV2 on FER2013, as the default workflow trains it.

    python bench/cpu_student.py --teacher CKPT                # the default workflow's retrain settings
    python bench/cpu_student.py --teacher CKPT --epochs 8 --augment full --name e8-full   # a variant (any knob below)
    python bench/cpu_student.py --no-distill --name scratch   # no teacher: from the labels alone

Trains from plain rows (FER2013 train, the stratified 10 % validation carve; test = PublicTest + PrivateTest as the class
folders hold them) through the same ``curate.models.fit`` that `curate retrain` runs, distilled from a teacher's logits
the way the retrain stage gets them when prelabel has not cached them: one forward pass of the teacher checkpoint
(``--teacher``: the ``teacher.safetensors`` of a `make run` or of bench/cpu_teacher.py, in its run folder). Reports the
kept checkpoint's test accuracy, balanced accuracy, macro-F1 and ECE, the validation curve and the minutes, in
``bench/results/cpu-student-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._data import rows_of  # noqa: E402

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parents[1] / "shared/data/fer2013"
WORKFLOW = BENCH.parent / "workflows" / "fer2013.yaml"
KNOBS = ("arch", "epochs", "lr", "optimizer", "batch_size", "image_size", "weight_decay", "label_smoothing", "warmup_epochs",
         "ema_decay", "random_crop", "stem_stride", "augment", "balance", "kd_weight", "kd_temperature", "nproc")


def workflow_retrain() -> dict:
    """The retrain stage's parameters in the default workflow: what `make run` trains."""
    stages = yaml.safe_load(WORKFLOW.read_text())["stages"]
    return {k: v for k, v in next(s for s in stages if s["stage"] == "retrain").items() if k != "stage"}


def teacher_logits(checkpoint: Path, rows: list) -> np.ndarray:
    from curate.models.checkpoint import load_checkpoint
    from curate.models.infer import predict
    from curate.models.preprocess import Preprocess

    model, side = load_checkpoint(checkpoint)
    logits, _ = predict(model, rows, side["classes"], Preprocess.from_dict(side["preprocess"]), 256, "cpu")
    return logits


def main() -> None:
    from curate.models.config import RetrainConfig
    from curate.models.fit import fit
    from curate.models.manifest import split_rows
    from curate.retrain.stage import score_on_test
    from curate.taxonomy import EMOTIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--teacher", type=Path, default=None, help="Teacher checkpoint to distil from (the recipe distils).")
    parser.add_argument("--no-distill", action="store_true", help="Train from the labels alone.")
    parser.add_argument("--name", default="default", help="Names the run folder and the result file.")
    parser.add_argument("--limit", type=int, default=None, help="Smoke run on the first N faces of each split.")
    parser.add_argument("--threads", type=int, default=None)
    for knob in KNOBS:
        kind = type(getattr(RetrainConfig, knob)) if getattr(RetrainConfig, knob) is not None else int
        parser.add_argument("--" + knob.replace("_", "-"), default=None, type=kind)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not (args.data / "train").is_dir():
        raise SystemExit(f"error: {args.data}: no train/<class> folders (pass --data)")
    params = workflow_retrain()
    params.update({k: v for k, v in vars(args).items() if k in KNOBS and v is not None})
    distill = bool(params.pop("distill", False)) and not args.no_distill
    if distill and (args.teacher is None or not args.teacher.is_file()):
        raise SystemExit("error: the recipe distils from a teacher: pass --teacher CKPT (a make run's or bench/cpu_teacher.py's "
                         "teacher.safetensors), or --no-distill")
    known = set(RetrainConfig.__dataclass_fields__)
    config = RetrainConfig(**{**{k: v for k, v in params.items() if k in known}, "distill": distill, "device": "cpu", "workers": 0})
    train, val, _ = split_rows(rows_of(args.data, "train", args.limit, 0), 0)
    test = rows_of(args.data, "test", args.limit, 0)
    run = BENCH / "runs" / "cpu-student" / args.name
    resume = run / "state.pt" if (run / "state.pt").is_file() else None
    started = time.monotonic()
    logits = teacher_logits(args.teacher, train) if distill else None
    teacher_seconds = time.monotonic() - started

    def say(record: dict, _ckpt: Path) -> None:
        print(f"epoch {record['epoch']}/{config.epochs}: loss {record['train_loss']:.3f}, val accuracy {record['val']['accuracy']:.3f}, "
              f"balanced {record['val']['balanced_accuracy']:.3f}, {record['train_seconds']} s", file=sys.stderr, flush=True)

    result = fit(train, val, list(EMOTIONS), config, run, {}, logits, resume, on_epoch=say)
    fit_seconds = time.monotonic() - started - teacher_seconds
    out = {
        "name": args.name, "config": config.to_dict(), "train": len(train), "val": len(val), "test": len(test),
        "teacher": str(args.teacher) if distill else None, "best_epoch": result["best_epoch"],
        "test_metrics": {k: v for k, v in score_on_test(run / "best.safetensors", test, config).items() if k != "confusion_matrix"},
        "curve": [{"epoch": h["epoch"], "val_accuracy": h["val"]["accuracy"], "val_balanced": h["val"]["balanced_accuracy"],
                   "train_loss": h["train_loss"], "train_seconds": h["train_seconds"]} for h in result["history"]],
        "train_images_per_s": round(result["train_images_per_s"], 1), "teacher_pass_seconds": round(teacher_seconds, 1),
        "fit_minutes": round(fit_seconds / 60, 2), "resumed_from_epoch": result["started_at_epoch"] if resume else None,
        "command": "python bench/cpu_student.py " + " ".join(sys.argv[1:]),
    }
    target = BENCH / ("runs" if args.limit else "results") / f"cpu-student-{args.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
